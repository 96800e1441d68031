"""Single-voice models and task (Table 6): presets train, transposition equivariance, causal masking."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from voicecomp import checkpoint as checkpoint_lib
from voicecomp import tasks
from voicecomp import train as train_lib
from voicecomp.data import parts
from voicecomp.encoding import BatchPosition
from voicecomp.optim import make_optimizer
from voicecomp.tasks import singlevoice as sv
from voicecomp.models.singlevoice import SingleVoiceConfig, SingleVoiceModel

TRAIN_IDS = ("bach.chorales.chor001", "bach.chorales.chor002", "bach.chorales.chor003")
TEST_IDS = ("bach.chorales.chor006", "bach.chorales.chor027")
SMALL = dict(hidden=8, embed_dim=4)


class SubCorpus:
    """A corpus view holding only a few scores (same split assignment)."""

    def __init__(self, corpus, ids):
        self._corpus, self._ids = corpus, set(ids)
        self.scores = corpus.scores

    def split_ids(self, split):
        return [s for s in self._corpus.split_ids(split) if s in self._ids]

    def is_piano(self, score_id):
        return self._corpus.is_piano(score_id)


@pytest.fixture(scope="module")
def small(kernscores_corpus):
    corpus = SubCorpus(kernscores_corpus, TRAIN_IDS + TEST_IDS)
    tables = {split: parts.build_parts(corpus, split) for split in ("train", "test")}
    assert tables["train"].num_parts == 12 and tables["test"].num_parts == 8
    return corpus, tables


def _small_config(name, **model_changes):
    config = sv.PRESETS[name].config
    return config.replace(model=dataclasses.replace(config.model, **{**SMALL, **model_changes}), batch_size=30,
                          batch_shards=1, num_steps=1, eval_every=0, checkpoint_every=0, log_every=1)


def test_presets_cover_table6():
    assert sorted(sv.PRESETS) == [f"single_{i:02d}" for i in range(1, 23)]
    for name, preset in sv.PRESETS.items():
        config = preset.config
        assert config.task == "singlevoice" and config.experiment == name
        assert config.loss_events_per_beat == pytest.approx(1.219) and config.batch_size == 300
        assert config.model.hidden == 300 and config.model.init_scale == 0.01
        # JSON round trip (checkpoints carry the configuration)
        assert tasks.config_from_json(config.to_json()) == config
    paper = sv.PRESETS["single_01"].paper
    assert paper["time"] + paper["notes"] == pytest.approx(paper["total"]) == pytest.approx(10.07)
    history = {n: p.config.model.history for n, p in sv.PRESETS.items()}
    assert history["single_02"] == 1 and history["single_09"] == 5 and history["single_16"] == 10
    assert sv.PRESETS["single_22"].config.model.history_source == "frame"


def test_every_preset_takes_a_finite_training_step(small):
    corpus, tables = small
    for name in sorted(sv.PRESETS):
        config = _small_config(name)
        task = sv.SingleVoiceTask(config, data=tables, corpus=corpus)
        batcher = task.batcher("train", shards=1, batch_size=config.batch_size)
        _, batch = next(batcher.training(config.seed, BatchPosition()))
        state = train_lib.init_state(config, task, {k: v[0] for k, v in batch.items()})
        step = train_lib.make_train_step(task, make_optimizer(config), 1.219 / math.log(2), 0.999)
        with jax.disable_jit():  # op by op: 22 compilations would dominate the test's time
            state, metrics = step(state, batch)
        assert math.isfinite(float(metrics["loss"])), name
        assert set(state.params) == {"duration", "notes"}  # disjoint networks
        assert int(state.step) == 1
        assert task.describe().startswith("single-voice")


def test_train_loop_runs_a_preset(small, tmp_path):
    corpus, tables = small
    config = _small_config("single_10").replace(num_steps=3, eval_every=3, eval_examples=60)
    task = sv.SingleVoiceTask(config, data=tables, corpus=corpus)
    state = train_lib.train(config, str(tmp_path), task=task, progress=False)
    assert int(state.step) == 3
    rows = checkpoint_lib.read_metrics(str(tmp_path))
    evals = [r for r in rows if r["kind"] == "eval"]
    assert evals and evals[-1]["test"]["bits_per_beat_reference"]["events_per_beat"] == pytest.approx(1.219)
    assert math.isfinite(evals[-1]["test"]["bits_per_beat_reference"]["total"])

    # A wall-clock limit stops the run after the step in progress, with a checkpoint to resume from.
    longer = config.replace(num_steps=6)
    state = train_lib.train(longer, str(tmp_path), task=task, progress=False, max_seconds=1e-9)
    assert int(state.step) == 4
    state = train_lib.train(longer, str(tmp_path), task=task, progress=False)
    assert int(state.step) == 6


def test_batcher_order_is_resumable_and_sequential_pads(small):
    _, tables = small
    config = _small_config("single_03")
    task = sv.SingleVoiceTask(config, data=tables)
    batcher = task.batcher("train", shards=2, batch_size=30)
    stream = batcher.training(7, BatchPosition())
    batches = [next(stream) for _ in range(5)]
    position, _ = batches[2]
    resumed = next(batcher.training(7, position))
    np.testing.assert_array_equal(resumed[1]["y"], batches[3][1]["y"])
    assert batches[0][1]["e"].shape == (2, 15, 1, 78)
    total = sum(float(b["weight"].sum()) for b in batcher.sequential())
    assert total == tables["train"].num_examples
    assert task.events_per_beat("test") == pytest.approx(1.219)


def _random_params(config, batch, seed=0, scale=0.3):
    model = SingleVoiceModel(config)
    params = model.init(jax.random.PRNGKey(seed), batch)["params"]
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
    leaves = [scale * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)]
    return model, jax.tree.unflatten(treedef, leaves)


def _zero_absolute(params):
    """Zero the per-pitch (absolute) parameters of a relative notes network."""
    return jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.zeros_like(x) if any(getattr(p, "key", "").startswith("abs_") for p in path) else x,
        params)


def _example(rng, batch, history, lo=20, hi=50):
    e = np.zeros((batch, history, 78), np.float32)
    e[:, :, lo:hi] = rng.random((batch, history, hi - lo)) < 0.2
    y = np.zeros((batch, 78), np.float32)
    y[:, lo:hi] = rng.random((batch, hi - lo)) < 0.2
    return {"e": e, "t": rng.integers(2, 55, (batch, history)), "loc": rng.integers(0, 48, batch),
            "y": y, "yt": rng.integers(3, 55, batch)}


@pytest.mark.parametrize("arch,notes_pitch_onehot,embedding", [
    ("linear", True, False), ("fc", True, True), ("cnn2", True, True), ("rnn", True, False)])
def test_relative_notes_models_are_transposition_equivariant(arch, notes_pitch_onehot, embedding):
    config = SingleVoiceConfig(history=5 if arch != "cnn2" else 7, notes_arch=arch, duration_arch="bias",
                               notes_pitch_onehot=notes_pitch_onehot, notes_embedding=embedding, **SMALL)
    rng = np.random.default_rng(0)
    batch = _example(rng, 3, config.history)
    model, params = _random_params(config, batch)
    params = _zero_absolute(params)
    shift = 4
    moved = dict(batch, e=np.roll(batch["e"], shift, axis=-1), y=np.roll(batch["y"], shift, axis=-1))
    logits = model.apply({"params": params}, batch, method=model.notes_logits)
    shifted = model.apply({"params": params}, moved, method=model.notes_logits)
    assert float(jnp.abs(logits).max()) > 1e-3
    # away from the window edges, the logit of pitch n moves to pitch n + shift
    np.testing.assert_allclose(shifted[:, 10 + shift:68 + shift], logits[:, 10:68], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch,pitch", [
    ("linear", "absolute"), ("fc", "absolute"), ("linear", "relative"), ("fc", "relative"),
    ("cnn", "relative"), ("rnn", "relative")])
def test_note_logit_ignores_current_onsets_at_and_above_its_pitch(arch, pitch):
    config = SingleVoiceConfig(history=5, notes_arch=arch, duration_arch="bias", notes_pitch=pitch,
                               notes_pitch_onehot=True, notes_embedding=arch == "cnn", **SMALL)
    rng = np.random.default_rng(1)
    batch = _example(rng, 1, config.history, lo=0, hi=78)
    model, params = _random_params(config, batch, scale=0.5)

    def logits_of(y):
        return model.apply({"params": params}, dict(batch, y=y[None]), method=model.notes_logits)[0]

    jac = np.asarray(jax.jacrev(logits_of)(jnp.asarray(batch["y"][0])))  # [n, p]
    upper = np.triu(np.ones((78, 78), bool))  # p >= n
    assert np.abs(jac[upper]).max() == 0.0
    assert np.abs(jac[~upper]).max() > 0.0  # the lower onsets do matter


def test_frame_history_preset_gathers_channel_history(small):
    corpus, tables = small
    config = _small_config("single_22")
    task = sv.SingleVoiceTask(config, data=tables, corpus=corpus)
    batch = task.gather("test", np.arange(20))
    frames = parts.build_voice_frame_table(corpus, "test")
    expected = parts.gather_part_frame_history(tables["test"], frames, np.arange(20), 10)
    for key in expected:
        np.testing.assert_array_equal(batch[key], expected[key])


@pytest.mark.parametrize("channels", [(1, 3), (4, 2)])
def test_toeplitz_pitch_convolutions_match_direct_convolution(channels):
    """The Toeplitz-matmul convolutions equal a direct convolution, values and kernel gradients."""
    from voicecomp.models import singlevoice as models

    cin, cout = channels
    m = 78
    rng = np.random.default_rng(cin)
    x = jnp.asarray(rng.random((3, m, cin)) < 0.2, jnp.float32)
    full = jnp.asarray(rng.normal(size=(2 * m - 1, cin, cout)), jnp.float32)
    lower = jnp.asarray(rng.normal(size=(m - 1, cin, cout)), jnp.float32)

    def direct_full(kernel):
        return jax.lax.conv_general_dilated(x, kernel, (1,), [(m - 1, m - 1)], dimension_numbers=("NWC", "WIO", "NWC"))

    def direct_lower(kernel):
        out = jax.lax.conv_general_dilated(x, kernel, (1,), [(m - 1, 0)], dimension_numbers=("NWC", "WIO", "NWC"))
        return out[:, :m]

    weights = jnp.asarray(rng.normal(size=(3, m, cout)), jnp.float32)
    for ours, direct, kernel in ((lambda k: models.relative_conv(x, k), direct_full, full),
                                 (lambda k: models.causal_conv(x, k), direct_lower, lower)):
        np.testing.assert_allclose(ours(kernel), direct(kernel), rtol=1e-5, atol=1e-4)
        grad_ours = jax.grad(lambda k: jnp.sum(ours(k) * weights))(kernel)
        grad_direct = jax.grad(lambda k: jnp.sum(direct(k) * weights))(kernel)
        np.testing.assert_allclose(grad_ours, grad_direct, rtol=1e-5, atol=1e-4)
