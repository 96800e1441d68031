"""Shared fixtures: the ../shared folder, the parsed KernScores corpus (once per session) and
the published exp.-6 weights as a checkpoint.

Without ../shared the tests that need it are skipped -- except under CI (``CI=true``), where
missing data is an error: a suite that passes by skipping proves nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared() -> Path:
    return Path(os.environ.get("VOICECOMP_SHARED", REPO.parent / "shared"))


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing_shared(reason: str) -> None:
    """Skip for want of the shared data; under CI fail instead."""
    if under_ci():
        pytest.fail(f"{reason} (CI=true: shared data is required)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = _shared()
    if not (path / "reference").is_dir():
        missing_shared(f"shared data not found at {path} (set VOICECOMP_SHARED)")
    return path


@pytest.fixture(scope="session")
def kernscores_dir(shared_dir: Path) -> str:
    path = os.environ.get("VOICECOMP_KERNSCORES") or str(shared_dir / "kernscores")
    if not os.path.isdir(path):
        missing_shared(f"KernScores corpus not found at {path} (set VOICECOMP_KERNSCORES)")
    return path


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    # A per-user cache survives between test sessions (a cold parse costs ~10 s);
    # its key is a content hash, so it can never serve stale scores.
    return os.environ.get("VOICECOMP_TEST_CACHE") or str(tmp_path_factory.getbasetemp().parent / "voicecomp-test-cache")


@pytest.fixture(scope="session")
def kernscores_corpus(kernscores_dir: str, cache_dir: str):
    from voicecomp.data.corpus import load_corpus

    return load_corpus("kernscores", kernscores_dir=kernscores_dir, cache_dir=cache_dir, progress=False)


@pytest.fixture(scope="session")
def encoded_kernscores(kernscores_corpus):
    from voicecomp.encoding import encode_score

    return {k: encode_score(s) for k, s in kernscores_corpus.scores.items()}


@pytest.fixture(scope="session")
def frame_tables(kernscores_corpus, encoded_kernscores):
    """FrameTable per split: train, test, test_nonpiano."""
    from voicecomp.encoding import build_frame_table

    return {
        split: build_frame_table({k: encoded_kernscores[k] for k in kernscores_corpus.split_ids(split)})
        for split in ("train", "test", "test_nonpiano")
    }


# bach.chorales.chor006 and chor027 are in the published test split
CHORALES = ["chor006", "chor027", "chor001", "chor002", "chor003", "chor004", "chor005", "chor007", "chor008", "chor009"]


@pytest.fixture()
def chorale_root(tmp_path, kernscores_dir) -> Path:
    """A --kernscores_dir holding ten chorales (two of them in the test split)."""
    import shutil

    folder = tmp_path / "kernscores" / "bach-js" / "bach-371-chorales" / "kern"
    folder.mkdir(parents=True)
    for name in CHORALES:
        shutil.copy(Path(kernscores_dir) / "bach-js" / "bach-371-chorales" / "kern" / f"{name}.krn", folder)
    return tmp_path / "kernscores"


@pytest.fixture(scope="session")
def published_checkpoint(tmp_path_factory, shared_dir: Path) -> Path:
    """The published exp.-6 weights imported by experiments/import_reference.py (the documented
    way to evaluate or sample them)."""
    weights = shared_dir / "reference" / "multipart6_weights.npz"
    if not weights.is_file():
        missing_shared(f"reference weights not found at {weights}")
    workdir = tmp_path_factory.mktemp("published6") / "run"
    result = subprocess.run([sys.executable, str(REPO / "experiments" / "import_reference.py"), f"--weights={weights}",
                             f"--workdir={workdir}"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return workdir
