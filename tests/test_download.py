"""`python -m voicecomp.data download` against local git repositories (no network here)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from voicecomp.data import download, tables

CHORALE = "**kern\t**kern\n*I\"Soprano\t*I\"Bass\n4c\t4C\n=1\t=1\n2d\t2D\n*-\t*-\n"


def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture()
def local_repo(tmp_path):
    repo = tmp_path / "origin"
    (repo / "kern").mkdir(parents=True)
    (repo / "kern" / "piece.krn").write_text(CHORALE)
    _git("init", "-q", cwd=repo)
    _git("add", ".", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "x", cwd=repo)
    return repo


def test_download_clones_every_folder_once(tmp_path, local_repo):
    folders = sorted(set(tables.kernscores()["corpora"].values()))
    sources = {folder: local_repo.as_uri() for folder in folders}
    dest = tmp_path / "kernscores"
    status = download.download(str(dest), sources=sources, log=lambda s: None)
    assert set(status.values()) == {"cloned"} and len(status) == len(folders)
    for folder in folders:
        assert (dest / folder / "kern" / "piece.krn").read_text() == CHORALE
    again = download.download(str(dest), sources=sources, log=lambda s: None)
    assert set(again.values()) == {"present"}

    from voicecomp.data.corpus import load_corpus

    corpus = load_corpus("kernscores", kernscores_dir=str(dest), cache_dir=str(tmp_path / "cache"), progress=False)
    assert "bach.chorales.piece" in corpus.scores and not corpus.failures


def test_failed_clone_leaves_nothing(tmp_path, local_repo):
    folders = sorted(set(tables.kernscores()["corpora"].values()))
    sources = {folder: local_repo.as_uri() for folder in folders}
    sources[folders[0]] = (tmp_path / "does-not-exist").as_uri()
    dest = tmp_path / "kernscores"
    status = download.download(str(dest), sources=sources, log=lambda s: None)
    assert status[folders[0]].startswith("failed")
    assert not (dest / folders[0]).exists() and not (dest / (folders[0] + ".partial")).exists()
    assert all(v == "cloned" for k, v in status.items() if k != folders[0])


def test_download_cli_needs_dest():
    result = subprocess.run([sys.executable, "-m", "voicecomp.data", "download"], capture_output=True, text=True)
    assert result.returncode != 0 and "--dest" in result.stderr


def test_missing_repository_is_reported(tmp_path):
    with pytest.raises(ValueError, match="no repository known"):
        download.download(str(tmp_path), sources={}, log=lambda s: None)
