"""The full-history fine-tune of BUILD.md (preset stream_6_ft) run end to end for a few steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def test_stream_6_ft_command_runs_a_few_steps(tmp_path, shared_dir, kernscores_dir, cache_dir, kernscores_corpus):
    """BUILD.md's fine-tune command (the preset, the published weights, the non-piano corpora with
    a held-out validation set) for 3 steps: it warm-starts from the published weights, trains,
    evaluates the valid sample and checkpoints, and the run directory holds what the preset says."""
    import jax

    from voicecomp import train as train_lib
    from voicecomp.weights import load_reference_weights

    weights = shared_dir / "reference" / "multipart6_weights.npz"
    workdir = tmp_path / "stream_6_ft"
    env = dict(os.environ, VOICECOMP_CACHE=cache_dir, PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [sys.executable, str(REPO / "experiments" / "train.py"), "--experiment=stream_6_ft", f"--workdir={workdir}",
         f"--kernscores_dir={kernscores_dir}", f"--init_from={weights}", "--num_steps=3", "--eval_every=3",
         "--eval_examples=300", "--log_every=1", "--max_train_minutes=90"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    config = json.loads((workdir / "config.json").read_text())
    assert config["holdout_validation"] and "josquin" in config["corpora"] and "chopin" not in str(config["corpora"])
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [1, 2, 3]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 3] and all({"test", "train", "valid"} <= set(r) for r in evals)
    # the warm start took: three small steps away from the published weights
    run_config, _, state, step = train_lib.load_checkpoint(str(workdir))
    published = load_reference_weights(str(weights), run_config.model)["params"]
    assert step == 3
    moved = [float(np.abs(np.asarray(a) - np.asarray(b)).max())
             for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(published))]
    assert 0 < max(moved) < 0.05
