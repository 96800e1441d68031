"""Training end to end on CPU: loss falls, exact resume after SIGKILL, checkpoint fallback, NaN stop."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from voicecomp import checkpoint as checkpoint_lib
from voicecomp import curves, encoding, evaluation
from voicecomp import train as train_lib
from voicecomp.config import TrainConfig
from voicecomp.models.multivoice import MultiVoiceConfig
from voicecomp.tasks import multivoice as multivoice_task
from voicecomp.tasks.base import sample_examples

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = MultiVoiceConfig(voice_history=3, global_history=3, duration_hidden=16, notes_hidden=16, pitch_embedding=8)
TINY = TrainConfig(model=TINY_MODEL, batch_size=32, max_frames=16, learning_rate=0.01, log_every=10,
                   eval_every=0, eval_examples=400, checkpoint_every=10, num_steps=40)
from conftest import CHORALES


@pytest.fixture(scope="module")
def chorale_data(kernscores_corpus, encoded_kernscores):
    ids = [f"bach.chorales.{c}" for c in CHORALES]
    tables = {
        "train": encoding.build_frame_table({k: encoded_kernscores[k] for k in ids[2:]}),
        "test": encoding.build_frame_table({k: encoded_kernscores[k] for k in ids[:2]}),
    }
    return multivoice_task.Data(tables=tables)


def test_loss_falls(tmp_path, chorale_data):
    train_lib.train(TINY.replace(num_steps=60, eval_every=30), str(tmp_path), data=chorale_data, progress=False)
    rows = checkpoint_lib.read_metrics(str(tmp_path))
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    evals = [r["test"]["bits_per_beat_reference"]["total"] for r in rows if r["kind"] == "eval"]
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0]
    assert len(evals) == 3 and evals[-1] < evals[0]
    assert (tmp_path / curves.CURVES_FILE).is_file()


def test_training_budget_counts_across_invocations(tmp_path, chorale_data):
    """--max_train_minutes: the run stops once its training time (evaluations excluded) is spent,
    saves and evaluates there; the training time is in every eval row and checkpoint, so a rerun
    of a spent run trains no further step."""
    config = TINY.replace(num_steps=100_000, eval_every=20)
    train_lib.train(config, str(tmp_path), data=chorale_data, progress=False, max_train_seconds=3.0)
    rows = checkpoint_lib.read_metrics(str(tmp_path))
    evals = [r for r in rows if r["kind"] == "eval"]
    _, _, _, step = train_lib.load_checkpoint(str(tmp_path))
    assert 0 < step < config.num_steps and evals[-1]["step"] == step
    seconds = [r["train_seconds"] for r in evals]
    assert seconds[0] == 0.0 and seconds == sorted(seconds) and seconds[-1] >= 3.0
    train_lib.train(config, str(tmp_path), data=chorale_data, progress=False, max_train_seconds=3.0)
    assert train_lib.load_checkpoint(str(tmp_path))[3] == step
    assert checkpoint_lib.read_metrics(str(tmp_path)) == rows


def test_nonfinite_loss_stops_with_checkpoint_intact(tmp_path, chorale_data):
    config = TINY.replace(learning_rate=1e4, num_steps=200, checkpoint_every=1)
    with pytest.raises(train_lib.NonFiniteLoss, match="is intact"):
        train_lib.train(config, str(tmp_path), data=chorale_data, progress=False)
    _, _, state, step = train_lib.load_checkpoint(str(tmp_path))
    assert step >= 1
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state.params))


def test_corrupted_latest_checkpoint_falls_back(tmp_path, chorale_data, capsys):
    train_lib.train(TINY.replace(num_steps=30), str(tmp_path), data=chorale_data, progress=False)
    steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    assert steps == [10, 20, 30]
    for path in (tmp_path / "checkpoints" / "30" / "state").rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    _, _, _, step = train_lib.load_checkpoint(str(tmp_path))
    assert step == 20
    assert "unreadable" in capsys.readouterr().out


def train_command(workdir: Path, root: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, str(REPO / "experiments" / "train.py"), f"--workdir={workdir}",
            f"--kernscores_dir={root}", "--voice_history=3", "--global_history=3", "--duration_hidden=16",
            "--notes_hidden=16", "--pitch_embedding=8", "--batch_size=32", "--max_frames=16",
            "--learning_rate=0.01", "--num_steps=40", "--checkpoint_every=10", "--eval_every=0",
            "--eval_examples=200", "--log_every=10", "--seed=3", *extra]


@pytest.mark.parametrize("extra", [(), ("--history=full", "--lanes=2", "--chunk_frames=8")],
                         ids=["windowed", "full_history"])
def test_resume_after_sigkill_matches_uninterrupted(tmp_path, chorale_root, extra):
    """A run killed mid-way resumes to bit-identical parameters, averages, optimiser state and
    (full history) carried states."""
    root = chorale_root
    env = dict(os.environ, VOICECOMP_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")
    straight = tmp_path / "straight"
    subprocess.run(train_command(straight, root, extra), env=env, check=True, capture_output=True, timeout=600)

    resumed = tmp_path / "resumed"
    process = subprocess.Popen(train_command(resumed, root, extra), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not (resumed / "checkpoints" / "20").is_dir():
        assert process.poll() is None, process.stdout.read().decode()
        assert time.time() < deadline
        time.sleep(0.01)  # kill soon after checkpoint 20, well before the run ends at 40
    process.send_signal(signal.SIGKILL)
    process.wait()
    # Where the kill landed: the newest checkpoint and the last logged step of the killed run.
    saved = sorted(int(p.name) for p in (resumed / "checkpoints").iterdir() if p.name.isdigit())
    killed_at = max(r["step"] for r in checkpoint_lib.read_metrics(str(resumed)) if r["kind"] == "train")
    assert saved and saved[-1] < 40 and killed_at < 40, (saved, killed_at)  # killed mid-run
    result = subprocess.run(train_command(resumed, root, extra), env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    resumed_from = int(re.search(r"resumed from step (\d+)", result.stdout).group(1))
    assert resumed_from == saved[-1] and 0 < resumed_from <= killed_at < 40, (resumed_from, saved, killed_at)

    _, _, a, step_a = train_lib.load_checkpoint(str(straight))
    _, _, b, step_b = train_lib.load_checkpoint(str(resumed))
    assert step_a == step_b == 40
    leaves = lambda s: jax.tree.leaves((s.params, s.ema_params, s.opt_state, s.carry))  # noqa: E731
    assert len(leaves(a)) == len(leaves(b)) and (not extra or a.carry is not None)
    for x, y in zip(leaves(a), leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    losses = lambda d: [(r["step"], r["loss"]) for r in checkpoint_lib.read_metrics(str(d)) if r["kind"] == "train"]
    assert losses(straight) == losses(resumed)


def test_leaving_idle_channels_out_is_exact(frame_tables):
    """Evaluation batches drop channels that stay EMPTY through a window; nothing changes."""
    config = TINY.replace(model=TINY_MODEL.__class__(voice_history=3, global_history=3, duration_hidden=16,
                                                     notes_hidden=16, pitch_embedding=8, init_std=0.2))
    data = multivoice_task.Data(tables={"train": frame_tables["test"], "test": frame_tables["test"]})
    task = multivoice_task.MultiVoiceTask(config, data=data)
    params = task.init_params(jax.random.PRNGKey(0), task.dummy_pack())
    examples = sample_examples(task.num_examples("test"), 600, seed=0)
    results = {}
    for drop in (False, True):
        batcher = multivoice_task.FrameBatcher(frame_tables["test"], 3, 64, 32, examples, drop_idle_channels=drop)
        if drop:
            channels = {b["e"].shape[3] for b in batcher.sequential()}
            assert len(channels) > 1 and min(channels) < 6
        results[drop] = evaluation.evaluate_batches(evaluation.make_eval_step(task), params, batcher,
                                                    train_events_per_beat=4.0, split_events_per_beat=4.0)
    assert results[True].examples == results[False].examples == 600
    np.testing.assert_allclose(results[True].time_nats, results[False].time_nats, rtol=1e-6)
    np.testing.assert_allclose(results[True].note_nats, results[False].note_nats, rtol=1e-6)
    assert results[True].note_ap == pytest.approx(results[False].note_ap, abs=1e-9)
