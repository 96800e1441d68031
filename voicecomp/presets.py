"""Named experiment presets: Table 4 of the paper (multi-voice) and Table 6 (single-voice).

``PRESETS[name]`` is a complete :class:`TrainConfig`; ``experiments/train.py --experiment=NAME``
starts from it and every explicitly given flag overrides it (``--print_config`` shows the result).
``PAPER_RESULTS[name]`` holds the paper's figures for the row (Tables 4 and 6).

Multi-voice rows (history = voice history / steps that update the global state):

=========  ==============================  ===============================================
multi_1    hierarchical 3/3
multi_2    hierarchical 5/5
multi_3    distributed 5 (no global state)
multi_4    hierarchical 10/1               ``global_history=0``: only the current step
                                           updates the global state (reference notebook
                                           exp. 4, ``if k < context: continue``)
multi_5    hierarchical 10/5               ``global_history=5`` (``if k < 5: continue``)
multi_6    hierarchical 10/10              the published recipe and weights
multi_7    hierarchical 20/20
multi_8    independent 10                  single-voice RNNs (300 units), non-piano corpora
=========  ==============================  ===============================================

Each row follows its own notebook (``multipart<N>.ipynb`` of the reference, tabulated in
``reference/multipart_recipes.json``): window, hidden sizes, training corpora, batch size, L2,
evaluation interval (``update_rate``) and its learning-rate stages, each stage a new SGD
optimiser, i.e. momentum restarted from zero (``fresh_momentum=True``).

Stage lengths were not recorded (every stage ran until stopped by hand); the only record is the
published exp.-6 run's curve (``multipart6_curve.json``), whose uneven evaluation steps show
where that run was restarted: 505,792, 1,001,584 (both followed at once by a clear drop of the
test curve) and 1,251,696; the run ended at 1,389,536.  Hence, for every row, stage *i* starts where exp. 6's
stage *i* started (0, 505,792, 1,001,584, 1,251,696); a fifth stage starts 137,840 steps (the
length of exp. 6's last stage) after the fourth; a run ends 137,840 steps after its last stage
started.  Consecutive stages with the same rate (exp. 6: 0.0003 three times; exp. 7: twice) are
one stage here: their restarts fell on epoch boundaries, so the curve does not show where they
were.  (The curve's one other restart, at 158,408 with an unchanged rate, is not a stage of the
notebook.)  ``learning_rate`` is the first stage's rate and ``lr_schedule`` lists the later
stages, so ``--learning_rate`` alone changes the first stage.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from voicecomp.config import TrainConfig
from voicecomp.data import tables
from voicecomp.models.multivoice import MultiVoiceConfig

# Where the stages of the published exp.-6 run started (its restarts), and its length.
EXP6_STAGE_STARTS = (0, 505_792, 1_001_584, 1_251_696)
PUBLISHED_NUM_STEPS = 1_389_536
LAST_STAGE_STEPS = PUBLISHED_NUM_STEPS - EXP6_STAGE_STARTS[-1]  # 137,840
# The exp.-6 learning-rate schedule after its first stage (0.003): 0.001 -> 0.0003 -> 0.0001.
PUBLISHED_LR_SCHEDULE = "0.001@505792,0.0003@1001584,0.0001@1251696"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One notebook's training recipe, as ``multipart_recipes.json`` records it."""

    context: int  # voice history C
    global_history: int  # steps updating the global state (0: only the current one)
    hidden: tuple[int, int]  # duration, notes widths
    corpora: str  # "all" | "non-piano"
    batch_size: int
    l2: float
    stages: tuple[float, ...]  # learning rate of every stage, in order (each a new optimiser)
    update_rate: int  # steps between evaluations / checkpoints


RECIPES: dict[str, Recipe] = {
    "multi_1": Recipe(3, 3, (64, 128), "all", 100, 1e-4, (0.003, 0.001, 0.0003), 5000),
    "multi_2": Recipe(5, 5, (64, 128), "all", 100, 1e-4, (0.003, 0.001, 0.0003, 0.0001), 5000),
    "multi_3": Recipe(5, 5, (64, 128), "all", 100, 1e-4, (1e-4, 3e-5, 1e-5), 5000),
    "multi_4": Recipe(10, 0, (64, 128), "all", 100, 1e-4, (0.003, 0.001, 0.0003, 0.0001), 5000),
    "multi_5": Recipe(10, 5, (64, 128), "all", 100, 1e-4, (0.003, 0.001, 0.0003, 0.0001, 3e-5), 5000),
    "multi_6": Recipe(10, 10, (64, 128), "all", 100, 1e-4, (0.003, 0.001, 0.0003, 0.0003, 0.0003, 0.0001), 5000),
    "multi_7": Recipe(20, 20, (64, 128), "all", 100, 1e-4, (0.001, 0.0003, 0.0003, 0.0001, 3e-5), 5000),
    "multi_8": Recipe(10, 10, (300, 300), "non-piano", 300, 0.0, (0.001, 0.0003), 1000),
}


def non_piano_corpora() -> tuple[str, ...]:
    """KernScores corpus names that are not piano corpora (exp. 8 trains on these)."""
    data = tables.kernscores()
    piano = set(data["piano_corpora"])
    return tuple(name for name in data["corpora"] if name not in piano)


def merged_stages(rates: tuple[float, ...]) -> list[float]:
    """``rates`` with consecutive repeats made one stage (their boundaries are unknown)."""
    return [rate for i, rate in enumerate(rates) if i == 0 or rate != rates[i - 1]]


def stage_starts(count: int) -> list[int]:
    """First step of each of ``count`` stages (the module docstring's rule)."""
    starts = list(EXP6_STAGE_STARTS[:count])
    while len(starts) < count:
        starts.append(starts[-1] + LAST_STAGE_STEPS)
    return starts


def stage_schedule(rates: tuple[float, ...]) -> tuple[float, str, int]:
    """``(learning_rate, lr_schedule, num_steps)`` of a recipe's stages."""
    merged = merged_stages(rates)
    starts = stage_starts(len(merged))
    schedule = ",".join(f"{rate:g}@{start}" for rate, start in zip(merged[1:], starts[1:]))
    return merged[0], schedule, starts[-1] + LAST_STAGE_STEPS


def _model(name: str, recipe: Recipe) -> MultiVoiceConfig:
    duration_hidden, notes_hidden = recipe.hidden
    if name == "multi_8":
        return MultiVoiceConfig.independent(voice_history=recipe.context, global_history=recipe.global_history,
                                            duration_hidden=duration_hidden, notes_hidden=notes_hidden)
    return MultiVoiceConfig(architecture="distributed" if name == "multi_3" else "hierarchical",
                            voice_history=recipe.context, global_history=recipe.global_history,
                            duration_hidden=duration_hidden, notes_hidden=notes_hidden, pitch_embedding=16,
                            init_std=0.003)


def _preset(name: str, recipe: Recipe) -> TrainConfig:
    """A Table 4 row as its notebook trained it (SPEC §5 where the notebook is silent)."""
    learning_rate, schedule, num_steps = stage_schedule(recipe.stages)
    return TrainConfig(
        task="multivoice",
        model=_model(name, recipe),
        corpus="kernscores",
        corpora=non_piano_corpora() if recipe.corpora == "non-piano" else (),
        optimizer="sgd",
        learning_rate=learning_rate,
        lr_schedule=schedule,
        momentum=0.95,
        fresh_momentum=True,
        l2=recipe.l2,
        ema_decay=0.999,
        batch_size=recipe.batch_size,
        num_steps=num_steps,
        eval_every=recipe.update_rate,
        eval_examples=50_000,
        checkpoint_every=recipe.update_rate,
        experiment=name,
    )


MULTI_VOICE_PRESETS: dict[str, TrainConfig] = {name: _preset(name, recipe) for name, recipe in RECIPES.items()}

DESCRIPTIONS: dict[str, str] = {
    "multi_1": "Table 4 exp. 1: hierarchical, history 3/3",
    "multi_2": "Table 4 exp. 2: hierarchical, history 5/5",
    "multi_3": "Table 4 exp. 3: distributed (no global state), history 5",
    "multi_4": "Table 4 exp. 4: hierarchical, history 10/1 (global state updated at the current step only)",
    "multi_5": "Table 4 exp. 5: hierarchical, history 10/5",
    "multi_6": "Table 4 exp. 6: hierarchical, history 10/10 -- the published recipe and weights",
    "multi_7": "Table 4 exp. 7: hierarchical, history 20/20",
    "multi_8": "Table 4 exp. 8: independent single-voice RNNs (300 units), history 10, non-piano corpora",
}

# The paper's figures (reference/paper_tables.json), bits per beat.  Table 4: non-piano test
# split at the training split's events per beat (SPEC §2); Table 6: test parts at 1.219
# events per beat.
_TABLE4 = {  # exp.: (total, time, notes)
    1: (14.05, 5.65, 8.40), 2: (13.40, 5.35, 8.04), 3: (13.82, 5.41, 8.41), 4: (13.20, 5.22, 7.98),
    5: (12.94, 5.13, 7.81), 6: (12.87, 5.12, 7.75), 7: (12.78, 5.01, 7.76), 8: (18.63, 6.56, 12.08),
}
_TABLE6 = {  # row: (parameters, time, notes, total)
    1: ("112", 2.92, 7.15, 10.07), 2: ("21k", 2.00, 6.05, 8.05), 3: ("9k", 2.00, 4.29, 6.29),
    4: ("11k", 1.83, 4.29, 6.12), 5: ("149k", 1.99, 3.93, 5.92), 6: ("135k", 1.99, 4.07, 6.06),
    7: ("172k", 1.80, 3.90, 5.70), 8: ("72k", 1.86, 6.05, 7.91), 9: ("36k", 1.86, 3.91, 5.77),
    10: ("38k", 1.73, 3.91, 5.64), 11: ("418k", 1.64, 3.26, 4.90), 12: ("497k", 1.64, 3.16, 4.80),
    13: ("535k", 1.59, 3.10, 4.69), 14: ("228k", 1.58, 3.05, 4.63), 15: ("134k", 1.83, 6.05, 7.88),
    16: ("71k", 1.71, 3.83, 5.54), 17: ("372k", 1.55, 3.00, 4.55), 18: ("250k", 1.55, 3.01, 4.56),
    19: ("769k", 1.50, 2.92, 4.42), 20: ("342k", 1.48, 2.89, 4.37), 21: ("283k", 1.48, 2.88, 4.36),
    22: ("301k", 1.59, 2.93, 4.52),
}

PAPER_RESULTS: dict[str, dict[str, Any]] = {
    **{f"multi_{exp}": {"total": total, "time": time_bits, "notes": notes_bits, "split": "test_nonpiano",
                        "convention": "reference"}
       for exp, (total, time_bits, notes_bits) in _TABLE4.items()},
    **{f"single_{row:02d}": {"total": total, "time": time_bits, "notes": notes_bits, "params": params,
                             "split": "test parts", "convention": "1.219 events/beat"}
       for row, (params, time_bits, notes_bits, total) in _TABLE6.items()},
}
PAPER_RESULTS["multi_6"]["note"] = "published weights re-measured with the original code: 12.878 = 5.114 + 7.764"

PRESETS: dict[str, TrainConfig] = dict(MULTI_VOICE_PRESETS)


def _merge_single_voice() -> None:
    """Add ``voicecomp.singlevoice.SINGLE_VOICE_PRESETS`` / ``SINGLE_VOICE_PAPER`` if they exist."""
    try:
        from voicecomp import singlevoice
    except Exception:  # noqa: BLE001 - the single-voice module is optional here
        return
    single = getattr(singlevoice, "SINGLE_VOICE_PRESETS", None)
    if isinstance(single, dict):
        for name, config in single.items():
            if name not in PRESETS and isinstance(config, TrainConfig):
                PRESETS[name] = config if config.experiment else config.replace(experiment=name)
                DESCRIPTIONS.setdefault(name, _describe_single(name, config))
    paper = getattr(singlevoice, "SINGLE_VOICE_PAPER", None)
    if isinstance(paper, dict):
        for name, figures in paper.items():
            if isinstance(figures, dict):
                PAPER_RESULTS.setdefault(name, figures)
            elif isinstance(figures, (tuple, list)) and len(figures) == 2:  # (time, notes)
                time_bits, notes_bits = figures
                PAPER_RESULTS.setdefault(name, {"total": round(time_bits + notes_bits, 2), "time": time_bits,
                                                "notes": notes_bits, "split": "test parts",
                                                "convention": "1.219 events/beat"})
            else:
                PAPER_RESULTS.setdefault(name, {"total": float(figures)})
    descriptions = getattr(singlevoice, "SINGLE_VOICE_DESCRIPTIONS", None)
    if isinstance(descriptions, dict):
        for name, text in descriptions.items():
            DESCRIPTIONS.setdefault(name, str(text))


def _describe_single(name: str, config: TrainConfig) -> str:
    row = name.rpartition("_")[2].lstrip("0")
    try:
        detail = config.model.describe()
    except Exception:  # noqa: BLE001 - a description is optional
        detail = ""
    return f"Table 6 row {row}: " + (detail or "single-voice")


_merge_single_voice()

# Full-history presets (SPEC §3.1; beyond the paper): the exp.-6 cells with their states carried
# from the start of every score, trained by truncated BPTT over batches of 16 streams x 16 frames.
PUBLISHED_WEIGHTS = "../shared/reference/multipart6_weights.npz"
_STREAM_MODEL = dataclasses.replace(MULTI_VOICE_PRESETS["multi_6"].model, history="full")
STREAM_PRESETS: dict[str, TrainConfig] = {
    # from scratch: the exp.-6 optimisation (stages, momentum restarts, L2, iterate average)
    "stream_6": MULTI_VOICE_PRESETS["multi_6"].replace(
        model=_STREAM_MODEL, lanes=16, chunk_frames=16, eval_examples=10_000, experiment="stream_6"),
    # warm start from the published weights, the recipe of the measured fine-tune (BUILD.md)
    "stream_6_ft": MULTI_VOICE_PRESETS["multi_6"].replace(
        model=_STREAM_MODEL, lanes=16, chunk_frames=16, init_from=PUBLISHED_WEIGHTS, learning_rate=3e-4,
        lr_schedule="0.0001@1700", fresh_momentum=False, num_steps=2600, eval_every=650, eval_examples=10_000,
        checkpoint_every=200, experiment="stream_6_ft"),
}
DESCRIPTIONS.update({
    "stream_6": "full history: exp.-6 cells, states carried through each score, trained from scratch",
    "stream_6_ft": "full history: exp.-6 cells fine-tuned from the published weights (about 90 min on one CPU core)",
})
PRESETS.update(STREAM_PRESETS)
# voicecomp's own measurements of presets beyond the paper (BUILD.md, docs/results/)
MEASURED: dict[str, str] = {
    "stream_6": "not measured yet",
    "stream_6_ft": "12.717 = 5.044 time + 7.672 notes (test_nonpiano, reference; 85 min on one CPU core)",
}


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
