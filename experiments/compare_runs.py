r"""Runs side by side against training wall time: one plot of bits/beat, and a JSON summary.

    python experiments/compare_runs.py --runs=windowed=runs/multi_6_60min,full=runs/stream_6_60min \
        --split=test --out_png=docs/results/scratch_60min.png --out_json=docs/results/scratch_60min.json

Each run directory's ``metrics.jsonl`` gives, per evaluation, the iterate average's bits per beat
(reference convention) on the run's fixed evaluation samples and the training wall time so far
(``train_seconds``: every invocation, evaluations excluded).  The summary holds, per run, the last
evaluation, the steps and examples trained and the mean training examples per second.
"""

from __future__ import annotations

import json
import os

from absl import flags

from voicecomp import cli

_RUNS = flags.DEFINE_list("runs", None, "label=run_directory pairs, in plotting order.")
_SPLIT = flags.DEFINE_string("split", "test", "Evaluation sample to plot (test, train or valid).")
_OUT_PNG = flags.DEFINE_string("out_png", None, "Write the figure here.")
_OUT_JSON = flags.DEFINE_string("out_json", None, "Write the summary here.")
flags.mark_flags_as_required(["runs"])


def run_summary(rows: list[dict], split: str) -> dict:
    """Curve (train_seconds, step, total, time, notes) and totals of one run's metrics rows."""
    evals = [r for r in rows if r["kind"] == "eval" and split in r and "train_seconds" in r]
    if not evals:
        raise cli.UsageError(f"no evaluation of {split!r} with train_seconds in the metrics")
    curve = [{"train_seconds": r["train_seconds"], "step": r["step"],
              **r[split]["bits_per_beat_reference"]} for r in evals]
    train = [r for r in rows if r["kind"] == "train"]
    steps = train[-1]["step"] if train else 0
    # examples/s of each logged interval, weighted by its steps: the run's mean training rate
    rates = [(r["examples_per_s"], r["step"] - p["step"]) for p, r in zip([{"step": 0}] + train, train)]
    weight = sum(n for _, n in rates)
    return {"curve": curve, "final": curve[-1], "steps": steps,
            "mean_examples_per_s": sum(rate * n for rate, n in rates) / weight if weight else None}


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    from voicecomp.checkpoint import read_metrics

    runs = {}
    for item in _RUNS.value:
        label, sep, workdir = item.partition("=")
        if not sep or not label or not workdir:
            raise cli.UsageError(f"--runs item {item!r} is not label=run_directory")
        if not os.path.isdir(workdir):
            raise cli.UsageError(f"--runs: {workdir} is not a directory")
        rows = read_metrics(workdir)
        if not rows:
            raise cli.UsageError(f"--runs: {workdir} has no metrics.jsonl rows")
        runs[label] = {"workdir": workdir, **run_summary(rows, _SPLIT.value)}
    for label, run in runs.items():
        final = run["final"]
        rate = run["mean_examples_per_s"]
        speed = f"; {rate:.1f} training ex/s" if rate else ""
        print(f"{label:>12}: {final['total']:.3f} = {final['time']:.3f} + {final['notes']:.3f} bits/beat "
              f"({_SPLIT.value} sample) after {final['train_seconds'] / 60:.1f} min, step {final['step']:,}{speed}")
    if _OUT_JSON.value:
        with open(_OUT_JSON.value, "w") as handle:
            json.dump({"split": _SPLIT.value, "runs": runs}, handle, indent=1)
    if _OUT_PNG.value:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.2))
        for label, run in runs.items():
            minutes = [p["train_seconds"] / 60 for p in run["curve"]]
            ax.plot(minutes, [p["total"] for p in run["curve"]], marker="o", ms=3, label=label)
        ax.set(xlabel="training wall time (minutes, evaluations excluded)",
               ylabel=f"bits/beat, {_SPLIT.value} sample (reference rate)", title="iterate average")
        # from scratch the curves fall by orders of magnitude: a log scale shows them whole; a
        # fine-tune's moves by tenths, and its first points would flatten the rest
        totals = [p["total"] for run in runs.values() for p in run["curve"]]
        tails = [p["total"] for run in runs.values() for p in run["curve"][1:]] or [0.0]
        if min(totals) > 0 and max(totals) > 2 * min(totals):
            ax.set_yscale("log")
        else:
            ax.set_ylim(min(tails) - 0.2, min(max(tails), min(tails) + 6) + 0.2)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(_OUT_PNG.value, dpi=100)
        plt.close(fig)
    return 0


if __name__ == "__main__":
    cli.run(main)
