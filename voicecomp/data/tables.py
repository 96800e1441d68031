"""Corpus tables shipped with the package (SPEC §1.1): KernScores layout and splits."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any


@functools.lru_cache(maxsize=None)
def _load(name: str) -> dict[str, Any]:
    return json.loads(resources.files("voicecomp.data").joinpath(name).read_text())


def kernscores() -> dict[str, Any]:
    """Corpus name -> folder, piano/string corpora, default instruments, rejected, test ids."""
    return _load("kernscores.json")


@functools.lru_cache(maxsize=None)
def instrument_names() -> frozenset[str]:
    """Instrument names recognised by the parser."""
    return frozenset(_load("instruments.json")["instruments"])
