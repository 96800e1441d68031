"""Learning-curve figure of a training run (the PNG next to its metrics log).

Losses fall by one or two orders of magnitude in the first evaluations (the iterate average of a
freshly initialised model is hundreds of bits per beat), so a linear axis fitted to every point
shows a flat line.  The y axis is fitted to the curve after its first few percent of steps
instead; the earlier points lie above the axis and the first of them is labelled with its value.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

from voicecomp.checkpoint import read_metrics

CURVES_FILE = "learning_curves.png"
# Points in this first fraction of the run's steps (and always the very first point) do not set
# the y limits: they are the initial drop, not the progress one reads a curve for.
EARLY_FRACTION = 0.05


def visible_range(steps: Sequence[float], values: Sequence[float],
                  early_fraction: float = EARLY_FRACTION) -> Optional[tuple[float, float]]:
    """y limits that show a falling curve's progress, or None (fewer than 3 points: fit all)."""
    points = sorted(zip(steps, values))
    if len(points) < 3:
        return None
    last = points[-1][0]
    kept = [v for s, v in points[1:] if s >= early_fraction * last]
    if len(kept) < 2:
        kept = [v for _, v in points[1:]]
    low, high = min(kept), max(kept)
    pad = 0.05 * (high - low) or 0.05 * abs(high) or 1.0
    return low - pad, high + pad


def _fit(ax, series: Sequence[tuple[Sequence[float], Sequence[float]]]) -> None:
    """Set ``ax``'s y limits by :func:`visible_range` over every series; label the first point
    left above the axis."""
    steps = [s for xs, _ in series for s in xs]
    values = [v for _, ys in series for v in ys]
    limits = visible_range(steps, values)
    if limits is None:
        return
    ax.set_ylim(*limits)
    above = sorted((s, v) for s, v in zip(steps, values) if v > limits[1])
    if above:
        step, value = above[0]
        ax.annotate(f"step {step:,.0f}: {value:.1f} (off scale)", xy=(step, limits[1]), xytext=(4, -12),
                    textcoords="offset points", fontsize=8, color="0.3")


def draw_learning_curves(rows: Sequence[dict[str, Any]]):
    """A matplotlib figure of the metrics rows (``voicecomp.checkpoint.read_metrics``): training loss
    and the iterate average's bits per beat on the evaluation samples, against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps, losses = [r["step"] for r in train], [r["loss"] for r in train]
        axes[0].plot(steps, losses, lw=0.8)
        _fit(axes[0], [(steps, losses)])
    axes[0].set(title="training loss (bits/beat, training rate)", xlabel="step")
    series = []
    for split, colour in (("train", "tab:blue"), ("test", "tab:green"), ("valid", "tab:orange")):
        points = [(r["step"], r[split]["bits_per_beat_reference"]["total"]) for r in evals if split in r]
        if points:
            steps, values = zip(*points)
            axes[1].plot(steps, values, marker="o", ms=3, color=colour, label=split)
            series.append((steps, values))
    if series:
        _fit(axes[1], series)
        axes[1].legend()
    axes[1].set(title="iterate average, bits/beat (reference rate)", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_learning_curves(workdir: str) -> Optional[str]:
    """Write ``workdir``'s learning-curve PNG from its metrics log; its path (None without
    matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig = draw_learning_curves(read_metrics(workdir))
    path = os.path.join(workdir, CURVES_FILE)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
