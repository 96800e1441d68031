"""The learning-curve figure shows training progress, not the initial drop: checked on the
published exp.-6 run's own curve (reference/multipart6_curve.json)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("matplotlib")

from voicecomp import curves  # noqa: E402
from voicecomp import checkpoint as checkpoint_lib  # noqa: E402


@pytest.fixture(scope="module")
def published_rows(shared_dir):
    """The published run's evaluations as the metrics rows train.py logs."""
    curve = json.loads((shared_dir / "reference" / "multipart6_curve.json").read_text())
    return [{"kind": "eval", "step": int(step),
             "test": {"bits_per_beat_reference": {"total": curve["test_bits_per_beat"][step]}},
             "train": {"bits_per_beat_reference": {"total": curve["train_sample_bits_per_beat"][step]}}}
            for step in sorted(curve["test_bits_per_beat"], key=int)]


def test_iterate_average_progress_is_visible(published_rows):
    import matplotlib.pyplot as plt

    fig = curves.draw_learning_curves(published_rows)
    try:
        bottom, top = fig.axes[1].get_ylim()
        test = {r["step"]: r["test"]["bits_per_beat_reference"]["total"] for r in published_rows}
        steps = sorted(test)
        start, half, end = test[steps[0]], test[steps[len(steps) // 2]], test[steps[-1]]
        assert start > 300 and top < 20  # the step-0 value (398 bits/beat) does not set the scale
        assert bottom <= min(test.values()) and top >= max(v for s, v in test.items() if s >= 0.05 * steps[-1])
        # The second half of the run (0.2 bits/beat on the test sample) spans a readable part of the
        # axis: over 5% of its height, where an axis fitted to every point gives it under 0.1%.
        assert (half - end) / (top - bottom) > 0.05
        assert (half - end) / (start - min(test.values())) < 0.001
        labels = [t.get_text() for t in fig.axes[1].texts]
        assert labels == [f"step 0: {start:.1f} (off scale)"]
    finally:
        plt.close(fig)


def test_visible_range():
    assert curves.visible_range([0, 10], [100.0, 5.0]) is None  # too few points: matplotlib fits them
    low, high = curves.visible_range([0, 30, 60], [400.0, 20.0, 10.0])  # a short run: only step 0 left out
    assert 9 < low < 10 and 20 < high < 21
    low, high = curves.visible_range([0, 10, 500, 1000], [400.0, 50.0, 12.0, 11.0])  # first 5% left out
    assert 10 < low < 11 and 12 < high < 13


def test_plot_writes_the_png(tmp_path, published_rows):
    with open(tmp_path / checkpoint_lib.METRICS_FILE, "w") as handle:
        for row in published_rows[:40]:
            handle.write(json.dumps(row) + "\n")
    path = curves.plot_learning_curves(str(tmp_path))
    assert path == str(tmp_path / curves.CURVES_FILE)
    assert (tmp_path / curves.CURVES_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_runs_reads_run_directories(tmp_path):
    """experiments/compare_runs.py on two hand-written metrics logs: the last evaluation, the
    steps and the step-weighted mean examples/s of each (derived by hand below), and a figure."""
    import subprocess
    import sys
    from pathlib import Path

    def evaluation(step, seconds, total):
        return {"kind": "eval", "step": step, "train_seconds": seconds,
                "test": {"bits_per_beat_reference": {"total": total, "time": total / 4, "notes": 3 * total / 4}}}

    logs = {"a": [evaluation(0, 0.0, 40.0), {"kind": "train", "step": 100, "examples_per_s": 50.0},
                  {"kind": "train", "step": 300, "examples_per_s": 80.0}, evaluation(300, 600.0, 20.0)],
            "b": [evaluation(0, 0.0, 40.0), {"kind": "train", "step": 50, "examples_per_s": 200.0},
                  evaluation(50, 300.0, 30.0)]}
    runs = []
    for label, rows in logs.items():
        (tmp_path / label).mkdir()
        (tmp_path / label / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        runs.append(f"{label}={tmp_path / label}")
    script = Path(__file__).resolve().parents[1] / "experiments" / "compare_runs.py"
    result = subprocess.run([sys.executable, str(script), f"--runs={','.join(runs)}",
                             f"--out_json={tmp_path / 'out.json'}", f"--out_png={tmp_path / 'out.png'}"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "out.json").read_text())["runs"]
    assert summary["a"]["final"]["total"] == 20.0 and summary["a"]["steps"] == 300
    assert summary["a"]["mean_examples_per_s"] == pytest.approx((50 * 100 + 80 * 200) / 300)
    assert summary["b"]["final"]["train_seconds"] == 300.0 and summary["b"]["mean_examples_per_s"] == 200.0
    assert (tmp_path / "out.png").stat().st_size > 1000
