"""Fetch the KernScores corpora from their public Humdrum repositories.

Each corpus folder of the corpus table is a git repository (``sources.json``);
``download`` clones the missing ones into ``DEST/<folder>`` (shallow), so the
result is a ``--kernscores_dir``.  Already present folders are left alone, and
a clone goes to a temporary folder first, so an interrupted run never leaves a
half-cloned corpus behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from typing import Callable, Mapping, Optional

from voicecomp.data import tables


def repositories(sources_file: Optional[str] = None) -> dict[str, str]:
    """Corpus folder -> git URL, from the package table or ``sources_file``."""
    if sources_file:
        with open(sources_file) as handle:
            table = json.load(handle)
    else:
        table = json.loads(resources.files("voicecomp.data").joinpath("sources.json").read_text())
    return dict(table["repositories"])


def download(
    dest: str,
    *,
    sources: Optional[Mapping[str, str]] = None,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> dict[str, str]:
    """Clone every corpus folder that ``dest`` lacks; returns folder -> status."""
    sources = dict(repositories() if sources is None else sources)
    folders = sorted(set(tables.kernscores()["corpora"].values()))
    missing = [f for f in folders if f not in sources]
    if missing:
        raise ValueError(f"no repository known for corpus folders {missing}")
    status = {}
    for i, folder in enumerate(folders, 1):
        target = os.path.join(dest, folder)
        if os.path.isdir(target) and os.listdir(target):
            status[folder] = "present"
            log(f"[{i}/{len(folders)}] {folder}: present")
            continue
        partial = target + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        log(f"[{i}/{len(folders)}] {folder}: cloning {sources[folder]}")
        result = run(
            ["git", "clone", "--quiet", "--depth", "1", sources[folder], partial],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            status[folder] = f"failed: {result.stderr.strip()}"
            log(f"  failed: {result.stderr.strip()}")
            continue
        if os.path.isdir(target):
            os.rmdir(target)  # an empty leftover
        os.replace(partial, target)
        status[folder] = "cloned"
    return status
