"""Named experiment presets, listed: the ``--experiment`` / ``--list_experiments`` layer over the
task registry (:mod:`voicecomp.tasks`).

Presets live with their task: Table 4 of the paper and the main job in
:mod:`voicecomp.tasks.multivoice`, the full-history rows in :mod:`voicecomp.tasks.streaming`,
Table 6 in :mod:`voicecomp.tasks.singlevoice`.  ``PRESETS[name]`` is a complete
:class:`TrainConfig`; ``experiments/train.py --experiment=NAME`` starts from it and every
explicitly given flag overrides it (``--print_config`` shows the result).  ``PAPER_RESULTS[name]``
holds the paper's figures for the row (Tables 4 and 6), ``MEASURED[name]`` voicecomp's own for
presets beyond the paper.
"""

from __future__ import annotations

from typing import Any, Optional

from voicecomp import tasks
from voicecomp.config import TrainConfig

_ALL = tasks.all_presets()
PRESETS: dict[str, TrainConfig] = {name: preset.config for name, preset in _ALL.items()}
DESCRIPTIONS: dict[str, str] = {name: preset.description for name, preset in _ALL.items()}
PAPER_RESULTS: dict[str, dict[str, Any]] = {name: dict(p.paper) for name, p in _ALL.items() if p.paper}
MEASURED: dict[str, str] = {name: preset.measured for name, preset in _ALL.items() if preset.measured}


def get_preset(name: str) -> TrainConfig:
    """The preset ``name``; a helpful error for an unknown one."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(sorted(PRESETS))}") from None


def describe(name: str) -> str:
    return DESCRIPTIONS.get(name, name)


def paper_summary(name: str) -> str:
    """``'12.87 = 5.12 time + 7.75 notes (test_nonpiano, reference)'`` or ``'-'``."""
    figures = PAPER_RESULTS.get(name)
    if not figures:
        return "-"
    total = figures.get("total")
    parts = []
    if total is not None:
        parts.append(f"{total:.2f}")
    if figures.get("time") is not None and figures.get("notes") is not None:
        parts.append(f"= {figures['time']:.2f} time + {figures['notes']:.2f} notes")
    where = ", ".join(str(figures[k]) for k in ("split", "convention") if figures.get(k))
    if where:
        parts.append(f"({where})")
    return " ".join(parts) if parts else str(figures)


def list_experiments() -> str:
    """One line per preset: name, description, paper figures."""
    width = max(len(n) for n in PRESETS)
    lines = []
    for name in sorted(PRESETS, key=_sort_key):
        measured = f" | voicecomp: {MEASURED[name]}" if name in MEASURED else ""
        lines.append(f"{name:<{width}}  {describe(name)}  | paper: {paper_summary(name)}{measured}")
    return "\n".join(lines)


def _sort_key(name: str) -> tuple:
    head, _, tail = name.rpartition("_")
    return (head, int(tail)) if tail.isdigit() else (name, 0)


def paper_total(name: str) -> Optional[float]:
    figures = PAPER_RESULTS.get(name) or {}
    return figures.get("total")
