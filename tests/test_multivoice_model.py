"""Multi-voice models against the published exp.-6 weights and golden examples (SPEC §3)."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from voicecomp.metrics import nats_per_event
from voicecomp.models import MultiVoiceConfig, MultiVoiceModel
from voicecomp.vocab import EMPTY, NUM_SPECIAL, START
from voicecomp.weights import params_from_reference, params_to_reference, reference_layout

from conftest import missing_shared

CFG = MultiVoiceConfig()


def _indices(one_hot: np.ndarray) -> np.ndarray:
    """One-hot rows -> indices, all-zero (masked) rows -> -1."""
    return np.where(one_hot.sum(-1) > 0, one_hot.argmax(-1), -1)


def _swap(x: np.ndarray, voice: np.ndarray, axis: int) -> np.ndarray:
    """Exchanges channels 0 and ``voice[b]`` along ``axis`` for every example b."""
    out = x.copy()
    for b, v in enumerate(voice):
        if v:
            index = [slice(None)] * x.ndim
            index[0] = b
            first, other = list(index), list(index)
            first[axis], other[axis] = 0, v
            out[tuple(first)], out[tuple(other)] = x[tuple(other)], x[tuple(first)]
    return out


def _swap_flows(f: np.ndarray, voice: np.ndarray) -> np.ndarray:
    return _swap(_swap(f, voice, f.ndim - 2), voice, f.ndim - 1)


@pytest.fixture(scope="module")
def reference(shared_dir: Path) -> dict[str, np.ndarray]:
    path = shared_dir / "reference"
    weights_path, golden_path = path / "multipart6_weights.npz", path / "golden_multipart6.npz"
    if not (weights_path.exists() and golden_path.exists()):
        missing_shared("reference weights/golden examples not found")
    with np.load(weights_path) as weights, np.load(golden_path) as golden:
        out = {"weights": {k: weights[k] for k in weights.files}}
        out.update({k: golden[k] for k in golden.files})
    return out


@pytest.fixture(scope="module")
def variables(reference):
    return params_from_reference(reference["weights"], CFG)


@pytest.fixture(scope="module")
def golden_inputs(reference) -> dict[str, np.ndarray]:
    r = reference
    return dict(
        e=r["e"], t=_indices(r["t"]), f=r["f"], y=r["y"], yt=_indices(r["yt"]), yf=r["yf"],
        loc=r["loc"].argmax(-1),
    )


@pytest.fixture(scope="module")
def golden_run(variables, golden_inputs):
    """One compile: logits, nats and gradients of time_nats + note_nats on the 256 examples."""
    model = MultiVoiceModel(CFG)

    def loss(variables, inputs):
        duration_logits, note_logits = model.apply(variables, inputs)
        nats = nats_per_event(
            duration_logits, note_logits, inputs["yt"][:, 0] - NUM_SPECIAL, inputs["y"][:, 0]
        )
        return nats[0] + nats[1], (nats, duration_logits, note_logits)

    (_, (nats, duration_logits, note_logits)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
        variables, golden_inputs
    )
    return dict(nats=nats, duration_logits=duration_logits, note_logits=note_logits, grads=grads)


# Pinned near the measured float32 agreement (BUILD.md: logits 3.8e-6 / 1.3e-5 max abs, nats
# 1.3e-6 relative, gradients 3.6e-6 relative), so a real regression cannot hide in the slack.
LOGITS_ATOL = 2e-5
NATS_RTOL = 5e-6
GRADIENT_RTOL = 2e-5


def test_golden_logits(golden_run, reference):
    np.testing.assert_allclose(golden_run["duration_logits"], reference["rhythm_logits"], rtol=0, atol=LOGITS_ATOL)
    np.testing.assert_allclose(golden_run["note_logits"], reference["note_logits"], rtol=0, atol=LOGITS_ATOL)


def test_golden_nats(golden_run, reference):
    time_nats, note_nats = golden_run["nats"]
    np.testing.assert_allclose(time_nats, reference["time_nats"], rtol=NATS_RTOL)
    np.testing.assert_allclose(note_nats, reference["note_nats"], rtol=NATS_RTOL)


def test_golden_gradients(golden_run, reference):
    grads = params_to_reference(golden_run["grads"], CFG)
    assert set(grads) == {spec.name for spec in reference_layout(CFG)}
    for name, grad in grads.items():
        expected = reference[f"grad_{name}"]
        relative = np.linalg.norm(grad - expected) / np.linalg.norm(expected)
        assert relative < GRADIENT_RTOL, f"{name}: relative gradient error {relative:.2e}"


def test_weight_round_trip(reference, variables):
    arrays = params_to_reference(variables, CFG)
    for name, array in arrays.items():
        np.testing.assert_array_equal(array, reference["weights"][name], err_msg=name)
    again = params_from_reference(arrays, CFG)
    jax.tree_util.tree_map(np.testing.assert_array_equal, again, variables)


def test_weight_import_errors(reference):
    weights = dict(reference["weights"])
    missing = {k: v for k, v in weights.items() if k != "notes_wref"}
    with pytest.raises(KeyError, match="notes_wref"):
        params_from_reference(missing, CFG)
    misshaped = dict(weights, rhythm_wtop=np.zeros((64, 51), np.float32))
    with pytest.raises(ValueError, match=r"rhythm_wtop.*\(64, 51\)"):
        params_from_reference(misshaped, CFG)
    extra = dict(weights, rhythm_wbogus=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="rhythm_wbogus"):
        params_from_reference(extra, CFG)
    # The exp.-6 file is not a distributed (exp.-3) model.
    with pytest.raises(KeyError, match="rhythmpart_who"):
        params_from_reference(weights, MultiVoiceConfig(architecture="distributed"))


def test_frame_shared_matches_per_example(variables, golden_inputs, reference):
    """Each golden example un-swapped into its own frame, plus a second example per frame that
    predicts another voice; frame-shared logits must equal per-example logits."""
    g = golden_inputs
    voice = reference["voice"].astype(np.int64)
    rng = np.random.default_rng(0)
    other = (voice + rng.integers(1, CFG.num_voices, size=voice.shape)) % CFG.num_voices
    frame_history = dict(e=_swap(g["e"], voice, 2), t=_swap(g["t"], voice, 2), f=_swap_flows(g["f"], voice))
    frame_current = dict(y=_swap(g["y"], voice, 1), yt=_swap(g["yt"], voice, 1), yf=_swap_flows(g["yf"], voice))

    num_frames = len(voice)
    both = np.concatenate([voice, other])
    frame = np.concatenate([np.arange(num_frames)] * 2)
    per_example = dict(
        e=_swap(frame_history["e"][frame], both, 2),
        t=_swap(frame_history["t"][frame], both, 2),
        f=_swap_flows(frame_history["f"][frame], both),
        y=_swap(frame_current["y"][frame], both, 1),
        yt=_swap(frame_current["yt"][frame], both, 1),
        yf=_swap_flows(frame_current["yf"][frame], both),
        loc=g["loc"][frame],
    )
    np.testing.assert_array_equal(per_example["e"][:num_frames], g["e"])  # un-swap/swap round trip
    shared = dict(
        frame_history, loc=g["loc"], frame=frame, voice=both,
        y=per_example["y"], yt=per_example["yt"], yf=per_example["yf"],
    )
    model = MultiVoiceModel(CFG)
    expected = jax.jit(model.apply)(variables, per_example)
    got = jax.jit(lambda v, x: model.apply(v, x, method=model.frame_shared))(variables, shared)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got[0][:num_frames], reference["rhythm_logits"], rtol=0, atol=LOGITS_ATOL)
    np.testing.assert_allclose(got[1][:num_frames], reference["note_logits"], rtol=0, atol=LOGITS_ATOL)


def _random_inputs(cfg: MultiVoiceConfig, frames: int, per_frame: int, seed: int = 0):
    """Random frame-shared batch and the equivalent per-example batch."""
    rng = np.random.default_rng(seed)
    c, v, m = cfg.voice_history, cfg.num_voices, cfg.pitch_range
    e = (rng.random((frames, c, v, m)) < 0.05).astype(np.int8)
    t = rng.integers(0, cfg.num_durations, (frames, c, v))
    perms = np.stack([[rng.permutation(v) for _ in range(c)] for _ in range(frames)])
    f = (perms[..., :, None] == np.arange(v)).astype(np.int8)  # random permutation flows
    f[:, 0, 0, :] = 0  # plus one split/merge: 0 -> {0, 1}
    f[:, 0, 0, 0] = f[:, 0, 0, 1] = 1
    loc = rng.integers(0, cfg.num_locations, frames)
    frame = np.repeat(np.arange(frames), per_frame)
    voice = rng.integers(0, v, frame.shape)
    b = frame.shape[0]
    y = (rng.random((b, v, m)) < 0.05).astype(np.int8)
    yt = rng.integers(-1, cfg.num_durations, (b, v))
    yt[:, 0] = rng.integers(NUM_SPECIAL, cfg.num_durations, b)
    yf = np.broadcast_to(np.eye(v, dtype=np.int8), (b, v, v)).copy()
    shared = dict(e=e, t=t, f=f, loc=loc, frame=frame, voice=voice, y=y, yt=yt, yf=yf)
    per_example = dict(
        e=_swap(e[frame], voice, 2), t=_swap(t[frame], voice, 2), f=_swap_flows(f[frame], voice),
        y=y, yt=yt, yf=yf, loc=loc[frame],
    )
    return shared, per_example


SMALL = dict(voice_history=3, duration_hidden=8, notes_hidden=8, pitch_embedding=4, init_std=0.3)


@pytest.mark.parametrize(
    "cfg",
    [
        MultiVoiceConfig(architecture="distributed", **SMALL),
        MultiVoiceConfig.independent(**SMALL),
        MultiVoiceConfig(architecture="hierarchical", global_history=0, **SMALL),
        MultiVoiceConfig(architecture="hierarchical", global_history=1, **SMALL),
    ],
    ids=["distributed", "independent", "global0", "global1"],
)
def test_variants_run_and_share_frames(cfg: MultiVoiceConfig):
    shared, per_example = _random_inputs(cfg, frames=3, per_frame=3)
    model = MultiVoiceModel(cfg)
    # Eager: for these tiny shapes op-by-op dispatch is cheaper than compiling.
    variables = model.init(jax.random.PRNGKey(0), per_example)
    # Parameter set and shapes are those of the notebook (exp. 3 / exp. 8 / exp. 4-5).
    arrays = params_to_reference(variables, cfg)
    assert {k: v.shape for k, v in arrays.items()} == {s.name: s.reference_shape for s in reference_layout(cfg)}
    duration_logits, note_logits = model.apply(variables, per_example)
    assert duration_logits.shape == (9, cfg.num_note_values) and note_logits.shape == (9, cfg.pitch_range)
    assert np.isfinite(duration_logits).all() and np.isfinite(note_logits).all()
    assert np.std(duration_logits) > 0 and np.std(note_logits) > 0
    shared_logits = model.apply(variables, shared, method=model.frame_shared)
    np.testing.assert_allclose(shared_logits[0], duration_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(shared_logits[1], note_logits, rtol=1e-5, atol=1e-5)


def test_independent_reference_sizes():
    cfg = MultiVoiceConfig.independent()
    shapes = {s.name: s.reference_shape for s in reference_layout(cfg)}
    assert shapes["rhythm_wh"] == (300, 300) and shapes["notes_wnote"] == (16, 1, 1, 156)
    assert shapes["notes_wtop"] == (300, 1) and shapes["notes_bias"] == (78,)


def test_global_history_changes_output():
    base = dict(SMALL)
    shared, per_example = _random_inputs(MultiVoiceConfig(**base), frames=2, per_frame=1)
    outputs = []
    for global_history in (0, 3):
        model = MultiVoiceModel(MultiVoiceConfig(global_history=global_history, **base))
        variables = model.init(jax.random.PRNGKey(1), per_example)
        outputs.append(model.apply(variables, per_example)[1])
    assert not np.allclose(outputs[0], outputs[1])


# ----------------------------------------------------------------------------------------------
# Idle channels (unused channels carried as one) and the decoding methods

IDLE_CFG = MultiVoiceConfig(global_history=4, **dict(SMALL, voice_history=4))
USED = 3  # channels USED.. are unused in _unused_channels_batch


def _unused_channels_batch(cfg: MultiVoiceConfig, padding: int, per_frame: int = 2, seed: int = 0):
    """A frame-shared batch whose channels >= USED are unused (SPEC §1.4 windows of a 3-voice
    score): EMPTY, no notes, no flow; the first ``padding`` history steps are START padding (every
    channel START, identity flow) and the step after them, the score's first frame, has the
    identity flow over all channels (the current frame, where ``padding`` is the whole window)."""
    rng = np.random.default_rng(seed)
    frames, c, v, m = 3, cfg.voice_history, cfg.num_voices, cfg.pitch_range
    e = np.zeros((frames, c, v, m), np.int8)
    e[:, :, :USED] = rng.random((frames, c, USED, m)) < 0.05
    t = np.full((frames, c, v), EMPTY)
    t[:, :, :USED] = rng.integers(0, cfg.num_durations, (frames, c, USED))
    f = np.zeros((frames, c, v, v), np.int8)
    perms = rng.permuted(np.tile(np.arange(USED), (frames, c, 1)), axis=-1)
    f[..., :USED, :USED] = perms[..., :, None] == np.arange(USED)  # random permutations among used
    e[:, :padding], t[:, :padding], f[:, :padding] = 0, START, np.eye(v, dtype=np.int8)
    current_flow = np.zeros((v, v), np.int8)
    current_flow[:USED, :USED] = np.eye(USED, dtype=np.int8)
    if padding < c:
        f[:, padding] = np.eye(v, dtype=np.int8)
    else:
        current_flow = np.eye(v, dtype=np.int8)
    frame = np.repeat(np.arange(frames), per_frame)
    b = frame.size
    voice = rng.integers(0, USED, b)
    y = np.zeros((b, v, m), np.int8)
    y[:, :USED] = rng.random((b, USED, m)) < 0.05
    yt = np.full((b, v), EMPTY)
    yt[:, :USED] = rng.integers(-1, cfg.num_durations, (b, USED))
    yt[:, 0] = rng.integers(NUM_SPECIAL, cfg.num_durations, b)
    yf = np.broadcast_to(current_flow, (b, v, v)).copy()
    return dict(e=e, t=t, f=f, loc=rng.integers(0, cfg.num_locations, frames),
                step_loc=rng.integers(0, cfg.num_locations, (frames, c)), frame=frame, voice=voice, y=y, yt=yt, yf=yf)


def _leave_out_unused(batch: dict, idle_inputs: bool) -> dict:
    """``batch`` with channels >= USED left out; ``idle_inputs``: with their tokens and self-flows."""
    out = dict(batch, e=batch["e"][:, :, :USED], t=batch["t"][:, :, :USED], f=batch["f"][:, :, :USED, :USED],
               y=batch["y"][:, :USED], yt=batch["yt"][:, :USED], yf=batch["yf"][:, :USED, :USED])
    if idle_inputs:
        first_example = np.searchsorted(batch["frame"], np.arange(batch["e"].shape[0]))
        out["idle_t"] = np.concatenate([batch["t"][:, :, USED], batch["yt"][first_example, USED, None]], axis=1)
        out["idle_f"] = np.concatenate([batch["f"][:, :, USED, USED], batch["yf"][first_example, USED, USED, None]],
                                       axis=1)
    return out


@pytest.mark.parametrize("step_loc", [False, True], ids=["window-loc", "step-loc"])
@pytest.mark.parametrize("padding", [0, 2, IDLE_CFG.voice_history], ids=["clear", "padded", "first-frame"])
def test_idle_channels_equal_all_channels(padding: int, step_loc: bool):
    """Unused channels left out and carried as one summed state give the logits of all six
    channels: in windows that reach the START padding (where their states evolve: the idle
    inputs give their tokens and flows) and in windows clear of it (no idle inputs needed)."""
    batch = _unused_channels_batch(IDLE_CFG, padding)
    if not step_loc:
        del batch["step_loc"]
    model = MultiVoiceModel(IDLE_CFG)
    variables = model.init(jax.random.PRNGKey(0), batch, method=model.frame_shared)
    run = jax.jit(lambda x: model.apply(variables, x, method=model.frame_shared))
    want = run(batch)
    for got in (run(_leave_out_unused(batch, idle_inputs=True)),) + ((run(_leave_out_unused(batch, False)),)
                                                                    if padding == 0 else ()):
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)
    if padding:  # the padding's START states matter: without their inputs the logits differ
        closed_form = run(_leave_out_unused(batch, idle_inputs=False))
        assert np.abs(np.asarray(closed_form[1]) - np.asarray(want[1])).max() > 1e-3


def test_idle_channels_rejected_where_unsupported():
    batch = _unused_channels_batch(IDLE_CFG, 0)
    distributed = MultiVoiceModel(MultiVoiceConfig(architecture="distributed", **dict(SMALL, voice_history=4)))
    with pytest.raises(ValueError, match="hierarchical"):
        distributed.init(jax.random.PRNGKey(0), _leave_out_unused(batch, False), method=distributed.frame_shared)
    model = MultiVoiceModel(IDLE_CFG)
    with pytest.raises(ValueError, match="idle-channel inputs"):
        idle = _leave_out_unused(batch, True)
        model.init(jax.random.PRNGKey(0), dict(batch, idle_t=idle["idle_t"], idle_f=idle["idle_f"]),
                   method=model.frame_shared)


@pytest.mark.parametrize("architecture,used", [("hierarchical", USED), ("hierarchical", 6), ("distributed", 6)],
                         ids=["hierarchical-idle", "hierarchical", "distributed"])
def test_decoding_methods_equal_frame_shared(architecture: str, used: int):
    """The sampler's methods (one example per frame, channels unswapped): ``duration_logits``,
    ``note_logit_at`` and ``note_logit_fast`` at every pitch give the frame-shared logits."""
    cfg = MultiVoiceConfig(architecture=architecture, global_history=4, **dict(SMALL, voice_history=4))
    batch = _unused_channels_batch(cfg, padding=1, per_frame=1, seed=3)
    if used < cfg.num_voices:
        batch = _leave_out_unused(batch, idle_inputs=True)
    model = MultiVoiceModel(cfg)
    variables = model.init(jax.random.PRNGKey(2), batch, method=model.frame_shared)
    want_duration, want_notes = jax.jit(lambda x: model.apply(variables, x, method=model.frame_shared))(batch)
    voice = batch["voice"]
    # the frame's rows as the frame has them (the examples' are swapped): the voice's own row
    # holds its duration and onsets, of which each pitch sees those below it
    y, yt, yf = _swap(batch["y"], voice, 1), _swap(batch["yt"], voice, 1), _swap_flows(batch["yf"], voice)
    onsets = batch["y"][:, 0]
    history = {k: batch[k] for k in ("e", "t", "f", "loc", "step_loc", "idle_t", "idle_f") if k in batch}
    pitches = jnp.arange(cfg.pitch_range)

    @jax.jit
    def decode():
        apply = lambda *args, method: model.apply(variables, *args, method=method)  # noqa: E731
        states = apply(history, method=model.history)
        duration = apply(states, y, yt, yf, voice, batch["loc"], method=model.duration_logits)
        at = jax.vmap(lambda n: apply(states, y, yt, yf, voice, onsets, n, method=model.note_logit_at))(pitches)
        frame_context = apply(states, yf, method=model.notes_frame_context)
        context = apply(frame_context, apply(y, method=model.notes_row_embedding), yt, voice,
                        method=model.notes_voice_context)
        fast = jax.vmap(lambda n: apply(context, onsets, n, method=model.note_logit_fast))(pitches)
        return duration, at.T, fast.T

    duration, at, fast = decode()
    np.testing.assert_allclose(np.asarray(duration), np.asarray(want_duration), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(at), np.asarray(want_notes), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(fast), np.asarray(want_notes), rtol=1e-5, atol=1e-5)
    assert np.std(np.asarray(want_notes)) > 0.1


def test_bfloat16_compute_close(variables, golden_inputs):
    small = {k: v[:8] for k, v in golden_inputs.items()}
    model32 = MultiVoiceModel(CFG)
    model16 = MultiVoiceModel(MultiVoiceConfig(compute_dtype=jnp.bfloat16))
    d32, n32 = model32.apply(variables, small)
    d16, n16 = model16.apply(variables, small)
    assert d16.dtype == jnp.float32
    # bfloat16 keeps ~3 significant digits: compare relative to the logits' magnitude.
    for low, high in ((d16, d32), (n16, n32)):
        low, high = np.asarray(low), np.asarray(high)
        assert np.abs(low - high).max() <= 0.02 * np.abs(high).max()


def test_nats_per_event_weights():
    rng = np.random.default_rng(0)
    duration_logits = rng.normal(size=(4, 52)).astype(np.float32)
    note_logits = rng.normal(size=(4, 78)).astype(np.float32)
    duration_target = np.array([0, 5, 51, 7])
    notes_target = (rng.random((4, 78)) < 0.1).astype(np.int8)
    time_all, note_all = nats_per_event(duration_logits, note_logits, duration_target, notes_target)
    time_w, note_w = nats_per_event(
        duration_logits, note_logits, duration_target, notes_target, weights=np.array([1, 1, 0, 0])
    )
    time_2, note_2 = nats_per_event(duration_logits[:2], note_logits[:2], duration_target[:2], notes_target[:2])
    np.testing.assert_allclose(time_w, time_2, rtol=1e-6)
    np.testing.assert_allclose(note_w, note_2, rtol=1e-6)
    log_softmax = duration_logits - np.log(np.exp(duration_logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(time_all, -log_softmax[np.arange(4), duration_target].mean(), rtol=1e-5)
    p = 1 / (1 + np.exp(-note_logits))
    bce = -(notes_target * np.log(p) + (1 - notes_target) * np.log(1 - p)).sum(-1).mean()
    np.testing.assert_allclose(note_all, bce, rtol=1e-5)
