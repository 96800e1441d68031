"""Data parallel training: 4 forced host devices give the losses and parameters of 1 device."""

from __future__ import annotations

import os
import subprocess

import jax
import numpy as np

from test_train import train_command
from voicecomp import checkpoint as checkpoint_lib
from voicecomp import train as train_lib


def test_four_devices_match_one(tmp_path, chorale_root):
    runs = {}
    for devices in (1, 4):
        workdir = tmp_path / f"devices{devices}"
        env = dict(os.environ, VOICECOMP_CACHE=str(tmp_path / "cache"),
                   XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        command = train_command(workdir, chorale_root) + ["--batch_shards=4", "--num_steps=10", "--log_every=1"]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        # the child really ran on the forced devices (train() reports them)
        assert f"4 batch shard(s) on {devices} device(s)" in result.stdout, result.stdout
        runs[devices] = workdir
    losses = {d: [r["loss"] for r in checkpoint_lib.read_metrics(str(w)) if r["kind"] == "train"] for d, w in runs.items()}
    assert len(losses[1]) == 10
    np.testing.assert_allclose(losses[4], losses[1], rtol=1e-5)
    (_, _, one, _), (_, _, four, _) = (train_lib.load_checkpoint(str(runs[d])) for d in (1, 4))
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(four.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
