"""Full-history (streaming) models: exactness against the windowed model, TBPTT, resume (SPEC §3.1)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from voicecomp import encoding
from voicecomp.data.humdrum import parse_kern
from voicecomp.models.multivoice import MultiVoiceConfig, MultiVoiceModel, zero_carry
from voicecomp.tasks.streaming import StreamBatcher

CHORALE_DIR = Path("bach-js") / "bach-371-chorales" / "kern"


def _table(kernscores_dir: str, names: list[str]) -> encoding.FrameTable:
    scores = {}
    for name in names:
        path = Path(kernscores_dir) / CHORALE_DIR / f"{name}.krn"
        scores[name] = encoding.encode_score(parse_kern(path.read_text(encoding="latin-1"), str(path),
                                                        default_instrument="voice"))
    return encoding.build_frame_table(scores)


def _score_frames(table: encoding.FrameTable, s: int, frames: int) -> dict[str, np.ndarray]:
    lo = int(table.score_start[s])
    rows = slice(lo, lo + frames)
    return {"e": table.notes[rows], "t": table.durations[rows], "f": table.flows[rows],
            "loc": table.location_class[rows].astype(np.int32)}


def _with_padding(score: dict[str, np.ndarray], padding: int, length: int) -> dict[str, np.ndarray]:
    """A stream of ``padding`` START frames then the score's frames, cut or extended to ``length``."""
    v = encoding.MAX_VOICES
    frames = score["e"].shape[0]
    take = min(frames, length - padding)
    tail = length - padding - take
    e = np.concatenate([np.zeros((padding, v, encoding.PITCH_RANGE), np.int8), score["e"][:take],
                        np.zeros((tail, v, encoding.PITCH_RANGE), np.int8)])
    t = np.concatenate([np.full((padding, v), encoding.START, np.int8), score["t"][:take],
                        np.full((tail, v), encoding.START, np.int8)])
    eye = np.eye(v, dtype=np.int8)
    f = np.concatenate([np.broadcast_to(eye, (padding, v, v)), score["f"][:take], np.broadcast_to(eye, (tail, v, v))])
    loc = np.concatenate([np.full(padding, score["loc"][0]), score["loc"][:take], np.zeros(tail, np.int32)])
    return {"e": e, "t": t, "f": f, "loc": loc.astype(np.int32)}


def _examples_of_frames(table: encoding.FrameTable, frames: np.ndarray):
    """Every (frame, voice) example of the given table frames, in frame order."""
    order = np.lexsort((table.example_voice, table.example_frame))
    keep = np.isin(table.example_frame[order], frames)
    chosen = order[keep]
    return table.example_frame[chosen], table.example_voice[chosen].astype(np.int64)


def _every_frame_check(table, s: int, frames: int, config: MultiVoiceConfig, params) -> None:
    """Frame k of score s: the stream with P = C - k START frames against the windowed model with
    window C = frames + 1 (so every window reaches back before the score's start)."""
    window = frames + 1
    score = _score_frames(table, s, frames)
    lo = int(table.score_start[s])
    example_frame, example_voice = _examples_of_frames(table, np.arange(lo, lo + frames))
    k = example_frame - lo
    current = encoding.gather_current(table, example_frame, example_voice)

    # windowed: one frame row per frame k, its window = (C - k) START frames + frames 0..k-1
    rows = [_with_padding(score, window - j, window) for j in range(frames)]
    windowed = {key: np.stack([r[key] for r in rows]) for key in ("e", "t", "f")}
    windowed["step_loc"] = np.stack([r["loc"] for r in rows])
    windowed["loc"] = score["loc"]
    windowed.update(frame=k.astype(np.int32), voice=example_voice.astype(np.int32),
                    **{key: current[key] for key in ("y", "yt", "yf")})
    model = MultiVoiceModel(config)
    want = jax.jit(lambda p, x: model.apply({"params": p}, x, method=model.frame_shared))(params, windowed)

    # streaming: lane j holds the stream of frame j (C - j START frames), all of length C + frames
    lanes = [_with_padding(score, window - j, window + frames) for j in range(frames)]
    stream = {key: np.stack([r[key] for r in lanes]) for key in ("e", "t", "f", "loc")}
    stream["reset"] = np.zeros(stream["loc"].shape, np.int8)
    stream["reset"][:, 0] = 1
    stream.update(frame=(k * (window + frames) + window).astype(np.int32), voice=example_voice.astype(np.int32),
                  own_notes=current["notes_target"], own_duration=current["duration_target"] + encoding.NUM_SPECIAL)
    got, _ = jax.jit(lambda p, x, c: model.apply({"params": p}, x, c, method=model.stream))(
        params, stream, zero_carry(config, frames))
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("architecture", ["hierarchical", "distributed"])
def test_stream_equals_window_at_every_frame(kernscores_dir, architecture):
    table = _table(kernscores_dir, ["chor006", "chor027"])
    frames = 24
    config = MultiVoiceConfig(architecture=architecture, voice_history=frames + 1, global_history=frames + 1,
                              duration_hidden=8, notes_hidden=8, pitch_embedding=4, init_std=0.08)
    model = MultiVoiceModel(config)
    pack = {k: v[:1] for k, v in encoding.gather_frame_batch(table, np.arange(2), history=2).items()}
    params = model.init(jax.random.PRNGKey(1), pack, method=model.frame_shared)["params"]
    for s in range(2):
        _every_frame_check(table, s, frames, config, params)


TINY_FULL = MultiVoiceConfig(history="full", voice_history=4, global_history=4, duration_hidden=8, notes_hidden=8,
                             pitch_embedding=4, init_std=0.08)


def _tiny_task(table: encoding.FrameTable, lanes: int, chunk: int):
    from voicecomp.config import TrainConfig
    from voicecomp.tasks.multivoice import Data
    from voicecomp.tasks.streaming import StreamingTask

    config = TrainConfig(model=TINY_FULL, lanes=lanes, chunk_frames=chunk, batch_shards=1)
    task = StreamingTask(config, data=Data(tables={"train": table, "test": table}))
    params = task.init_params(jax.random.PRNGKey(0), None)
    return task, params


def test_carried_chunks_equal_one_pass(kernscores_dir):
    """Short chunks over 2 lanes, states carried: every example's losses equal one long chunk's."""
    from voicecomp import evaluation

    table = _table(kernscores_dir, ["chor006", "chor027", "chor001"])
    results = {}
    for lanes, chunk in ((2, 8), (1, 512), (0, 16)):  # 0: the pass's own lanes
        task, params = _tiny_task(table, lanes or 4, chunk)
        batcher = task.eval_batcher("test", shards=1)
        if lanes:
            batcher.sequential_lanes = lambda lanes=lanes: lanes
        else:
            assert batcher.sequential_lanes() == 3  # streams of 84, 46 and 71 positions: 201 / 84 -> 3
        assert batcher.num_examples == table.num_examples
        results[lanes] = evaluation.evaluate_batches(evaluation.make_eval_step(task), params, batcher,
                                                     train_events_per_beat=4.0, split_events_per_beat=4.0,
                                                     fresh_carry=task.fresh_carry)
    for other in (2, 0):
        assert results[1].examples == results[other].examples == table.num_examples
        np.testing.assert_allclose(results[1].time_nats, results[other].time_nats, rtol=1e-6)
        np.testing.assert_allclose(results[1].note_nats, results[other].note_nats, rtol=1e-6)
        assert results[1].note_ap == pytest.approx(results[other].note_ap, abs=1e-9)


def test_one_chunk_gradient_equals_full_sequence_gradient(kernscores_dir):
    """The TBPTT loss of one chunk covering a score has the gradient of the per-frame windowed
    losses (window back to the stream's start) summed over the score."""
    from voicecomp.metrics import per_example_nats

    table = _table(kernscores_dir, ["chor006"])
    frames, padding = 12, TINY_FULL.voice_history
    window = frames + padding
    score = _score_frames(table, 0, frames)
    example_frame, example_voice = _examples_of_frames(table, np.arange(frames))
    k = example_frame
    current = encoding.gather_current(table, example_frame, example_voice)
    targets = (current["duration_target"], current["notes_target"])
    model = MultiVoiceModel(TINY_FULL)
    windowed_config = MultiVoiceConfig(voice_history=window, global_history=window, duration_hidden=8,
                                       notes_hidden=8, pitch_embedding=4, init_std=0.08)
    windowed_model = MultiVoiceModel(windowed_config)

    rows = [_with_padding(score, window - j, window) for j in range(frames)]
    windowed = {key: np.stack([r[key] for r in rows]) for key in ("e", "t", "f")}
    windowed.update(step_loc=np.stack([r["loc"] for r in rows]), loc=score["loc"], frame=k.astype(np.int32),
                    voice=example_voice.astype(np.int32), **{key: current[key] for key in ("y", "yt", "yf")})
    stream = _with_padding(score, padding, padding + frames)
    stream = {key: value[None] for key, value in stream.items()}
    stream["reset"] = np.r_[1, np.zeros(padding + frames - 1)][None].astype(np.int8)
    stream.update(frame=(k + padding).astype(np.int32), voice=example_voice.astype(np.int32),
                  own_notes=current["notes_target"], own_duration=current["duration_target"] + encoding.NUM_SPECIAL)
    pack = {key: v[:1] for key, v in encoding.gather_frame_batch(table, np.arange(2), history=2).items()}
    params = model.init(jax.random.PRNGKey(2), pack, method=model.frame_shared)["params"]

    def loss(logits):
        time_ce, note_ce = per_example_nats(*logits, *targets)
        return (time_ce + note_ce).sum()

    def streaming_loss(p):
        logits, _ = model.apply({"params": p}, stream, zero_carry(TINY_FULL, 1), method=model.stream)
        return loss(logits)

    def windowed_loss(p):
        return loss(windowed_model.apply({"params": p}, windowed, method=windowed_model.frame_shared))

    got, want = jax.jit(jax.grad(streaming_loss))(params), jax.jit(jax.grad(windowed_loss))(params)
    for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
        g, w = np.asarray(g), np.asarray(w)
        # float32 sums in different orders (the absolute-pitch kernel adds up every step, channel
        # and pitch of every window): within 1e-3 of the leaf's norm
        assert np.linalg.norm(g - w) <= 1e-3 * max(np.linalg.norm(w), 1e-8), jax.tree_util.keystr(path)
    flat_got = np.concatenate([np.ravel(x) for x in jax.tree.leaves(got)])
    flat_want = np.concatenate([np.ravel(x) for x in jax.tree.leaves(want)])
    assert np.linalg.norm(flat_got - flat_want) <= 2e-4 * np.linalg.norm(flat_want)
    assert any(np.abs(np.asarray(w)).max() > 0 for w in jax.tree.leaves(want))


def test_greedy_sampler_follows_the_streamed_model():
    """Full-history sampling (one carried step per frame): every greedy choice is the argmax of
    the full-history model run over the sampled score (teacher-forced, SPEC §3.1)."""
    from fractions import Fraction

    from voicecomp import sample as sample_lib

    config = dataclasses.replace(TINY_FULL, init_std=0.3)
    model = MultiVoiceModel(config)
    v, m = config.num_voices, config.pitch_range
    dummy = {"e": np.zeros((1, 2, v, m), np.int8), "t": np.zeros((1, 2, v), np.int8),
             "f": np.zeros((1, 2, v, v), np.int8), "loc": np.zeros((1,), np.int32), "frame": np.zeros((1,), np.int32),
             "voice": np.zeros((1,), np.int32), "y": np.zeros((1, v, m), np.int8), "yt": np.zeros((1, v), np.int8),
             "yf": np.zeros((1, v, v), np.int8)}
    params = model.init(jax.random.PRNGKey(5), dummy, method=model.frame_shared)["params"]
    scores = sample_lib.sample(model, params, num_scores=2, voices=3, frames=10, temperature=0.0, seed=1)
    onsets_checked = bits_set = 0
    for score in scores:
        padding, frames = config.voice_history, score.num_frames
        locations = np.asarray([int(48 * t) % 48 for t in score.times], np.int32)
        stream = _with_padding({"e": score.notes, "t": score.durations, "f": score.flows, "loc": locations},
                               padding, padding + frames)
        stream = {key: value[None] for key, value in stream.items()}
        stream["reset"] = np.r_[1, np.zeros(padding + frames - 1)][None].astype(np.int8)
        frame, voice = np.nonzero(score.durations >= encoding.NUM_SPECIAL)
        stream.update(frame=(frame + padding).astype(np.int32), voice=voice.astype(np.int32),
                      own_notes=score.notes[frame, voice], own_duration=score.durations[frame, voice].astype(np.int32))
        (duration_logits, note_logits), _ = model.apply({"params": params}, stream, zero_carry(config, 1),
                                                        method=model.stream)
        np.testing.assert_array_equal(np.argmax(np.asarray(duration_logits), axis=1) + encoding.NUM_SPECIAL,
                                      score.durations[frame, voice])
        np.testing.assert_array_equal((np.asarray(note_logits) > 0).astype(np.int8), score.notes[frame, voice])
        onsets_checked += frame.size
        bits_set += int(score.notes.sum())
    assert onsets_checked >= 20 and bits_set > 0
    assert scores[0].times[0] == Fraction(0)


def test_stream_with_idle_channels_equals_all_channels(kernscores_dir):
    """Four-voice chorales leave channels 4 and 5 unused all through (START in the padding, then
    EMPTY; flow only in the padding and the first frame): carried as one idle state, the streams
    give every example the logits of all six channels, chunk after chunk."""
    table = _table(kernscores_dir, ["chor006", "chor027"])
    used = 4
    assert (table.durations[:, used:] == encoding.EMPTY).all() and (table.durations[:, used - 1] != encoding.EMPTY).any()
    config, padding, frames, chunk = TINY_FULL, TINY_FULL.voice_history, 40, 22
    length = padding + frames
    lanes = [_with_padding(_score_frames(table, s, frames), padding, length) for s in range(2)]
    stream = {key: np.stack([lane[key] for lane in lanes]) for key in ("e", "t", "f", "loc")}
    stream["reset"] = np.zeros((2, length), np.int8)
    stream["reset"][:, 0] = 1
    assert stream["f"][:, :, used, used].any()  # the idle channels' own recurrence runs
    narrow = dict(stream, e=stream["e"][:, :, :used], t=stream["t"][:, :, :used], f=stream["f"][:, :, :used, :used],
                  idle_t=stream["t"][:, :, used], idle_f=stream["f"][:, :, used, used])
    # every example of the lanes' frames: its lane, table frame, voice and stream position
    examples = [(lane, *_examples_of_frames(table, np.arange(lo, lo + frames)))
                for lane, lo in enumerate(table.score_start[:2].tolist())]
    lane_of = np.concatenate([np.full(frame.size, lane) for lane, frame, _ in examples])
    frame = np.concatenate([frame for _, frame, _ in examples])
    voice = np.concatenate([voice for _, _, voice in examples])
    position = frame - table.score_start[lane_of] + padding

    model = MultiVoiceModel(config)
    pack = {k: v[:1] for k, v in encoding.gather_frame_batch(table, np.arange(2), history=2).items()}
    params = model.init(jax.random.PRNGKey(3), pack, method=model.frame_shared)["params"]
    run = jax.jit(lambda x, c: model.apply({"params": params}, x, c, method=model.stream))
    carry_all, carry_idle = zero_carry(config, 2), zero_carry(config, 2, channels=used)
    for start in range(0, length, chunk):
        inside = (position >= start) & (position < start + chunk)
        f, v = frame[inside], voice[inside]
        per_example = {"frame": (lane_of[inside] * chunk + position[inside] - start).astype(np.int32),
                       "voice": v.astype(np.int32), "own_notes": table.notes[f, v],
                       "own_duration": table.durations[f, v].astype(np.int32)}
        window = slice(start, start + chunk)
        want, carry_all = run({**{k: x[:, window] for k, x in stream.items()}, **per_example}, carry_all)
        got, carry_idle = run({**{k: x[:, window] for k, x in narrow.items()}, **per_example}, carry_idle)
        for g, w in zip(got, want):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-5, rtol=1e-5)
