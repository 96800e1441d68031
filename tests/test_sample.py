"""voicecomp.sample: the fast jitted sampler against a plain reference loop over the model's
per-example forward pass, validity of sampled scores, prompts, clamps and determinism."""

from __future__ import annotations

import dataclasses
import functools
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from voicecomp import sample as S
from voicecomp.data.humdrum import parse_kern
from voicecomp.encoding import encode_score, permute_channels
from voicecomp import export
from voicecomp.export import Voices, to_kern, voices_from_frames
from voicecomp.models.multivoice import MultiVoiceConfig, MultiVoiceModel
from voicecomp.vocab import CONT, EMPTY, NOTE_VALUE_TICKS_PER_QUARTER, NOTE_VALUES, NUM_SPECIAL, START

C, V, M = 3, 6, 78
VOICES = 3
FRAMES = 6
CONFIG = MultiVoiceConfig(voice_history=C, global_history=C, duration_hidden=8, notes_hidden=8,
                          pitch_embedding=4, init_std=0.3)


def _inputs(batch: int) -> dict:
    return {
        "e": np.zeros((batch, C, V, M), np.int8), "t": np.zeros((batch, C, V), np.int8),
        "f": np.zeros((batch, C, V, V), np.int8), "y": np.zeros((batch, V, M), np.int8),
        "yt": np.zeros((batch, V), np.int8), "yf": np.zeros((batch, V, V), np.int8),
        "loc": np.zeros((batch,), np.int32),
    }


@pytest.fixture(scope="module")
def tiny():
    model = MultiVoiceModel(CONFIG)
    params = model.init(jax.random.PRNGKey(0), _inputs(1))["params"]
    # A bias towards few onsets per note makes the scores look more like music (and readable).
    params = jax.tree_util.tree_map(lambda x: x, params)
    params["notes"]["recurrence"]["readout"]["bias"] = params["notes"]["recurrence"]["readout"]["bias"] - 2.5
    return model, params


@pytest.fixture(scope="module")
def sampled(tiny):
    model, params = tiny
    return S.sample(model, params, num_scores=2, voices=VOICES, frames=FRAMES, seed=3)


# ----------------------------------------------------------------------------------------------
# Reference: SPEC §6 order, per-example tensors of SPEC §1.4, one full forward per decision.
# It shares no code with voicecomp.sample: noise, draws and clock are written out here.


def _swap(v: int) -> np.ndarray:
    perm = np.arange(V)
    perm[0], perm[v] = v, 0
    return perm


_FORWARD = {}


def _noise(seed: int, score: int, step: int, voice: int) -> tuple[np.ndarray, np.ndarray]:
    """The sampler's documented noise of one decision: key fold_in(PRNGKey(seed), score), then the
    step and the voice, split into Gumbel noise for the duration and uniforms for the pitch bits."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), score), step), voice)
    k_duration, k_notes = jax.random.split(key)
    return (np.asarray(jax.random.gumbel(k_duration, (len(NOTE_VALUES),))),
            np.asarray(jax.random.uniform(k_notes, (M,))))


def _draw_duration(logits: np.ndarray, gumbel: np.ndarray, temperature: float) -> int:
    """Gumbel-max: a sample of softmax(logits / temperature); the argmax when greedy."""
    if temperature == 0:
        return int(np.argmax(logits))
    return int(np.argmax(logits.astype(np.float32) / np.float32(temperature) + gumbel))


def _draw_bit(logit: float, uniform: float, temperature: float) -> int:
    """Bernoulli(sigmoid(logit / temperature)) by inverse transform; logit > 0 when greedy."""
    if temperature == 0:
        return int(logit > 0)
    return int(uniform < 1.0 / (1.0 + math.exp(-float(logit) / temperature)))


def _replay(durations: np.ndarray) -> tuple[list[Fraction], dict[int, Fraction]]:
    """Start time of every frame of encoded durations (a frame starts where the earliest sounding
    note ends) and when each channel's note ends after the last frame."""
    time, ends, times = Fraction(0), {}, []
    for j, row in enumerate(np.asarray(durations)):
        if j:
            time = min(ends.values())
        times.append(time)
        for c, d in enumerate(row.tolist()):
            if d >= NUM_SPECIAL:
                ends[c] = time + NOTE_VALUES[d - NUM_SPECIAL]
            elif d == EMPTY:
                ends.pop(c, None)
    return times, ends


def reference_sample(model, params, num_scores, voices, frames, seed, temperature=1.0, prompt=None, clamp=None,
                     duration_temperature=None, notes_temperature=None):
    duration_temperature = temperature if duration_temperature is None else duration_temperature
    notes_temperature = temperature if notes_temperature is None else notes_temperature
    if id(params) not in _FORWARD:
        _FORWARD[id(params)] = (params, jax.jit(lambda inputs: model.apply({"params": params}, inputs)))
    forward = _FORWARD[id(params)][1]
    out = []
    for b in range(num_scores):
        notes = [] if prompt is None else list(prompt.notes)
        durs = [] if prompt is None else [d.astype(np.int64) for d in prompt.durations]
        flows = [] if prompt is None else list(prompt.flows)
        ends = [Fraction(0)] * voices
        time = Fraction(0)
        pickup = Fraction(0) if prompt is None else prompt.pickup
        if prompt is not None:
            times, prompt_ends = _replay(prompt.durations)
            time = times[-1]
            ends = [prompt_ends[c] for c in range(voices)]
        ptr = {c: 0 for c in (clamp.channels if clamp else ())}
        for step in range(frames):
            if notes:
                time = min(ends)
            onset = [ends[c] == time for c in range(voices)]
            cur_n = np.zeros((V, M), np.int8)
            cur_d = np.full((V,), EMPTY, np.int64)
            for c in range(voices):
                if onset[c]:
                    cur_d[c] = -1  # decided at its turn
                else:
                    cur_n[c], cur_d[c] = notes[-1][c], CONT
            used = np.diag([1] * voices + [0] * (V - voices)).astype(np.int8)
            cur_f = np.eye(V, dtype=np.int8) if not notes else used
            loc = int(48 * (time - pickup % 1)) % 48
            hist = []
            for k in range(len(notes) - C, len(notes)):
                if k < 0:
                    hist.append((np.zeros((V, M), np.int8), np.full((V,), START), np.eye(V, dtype=np.int8)))
                else:
                    hist.append((notes[k], durs[k], flows[k]))
            for v in range(voices):
                if not onset[v]:
                    continue
                perm = _swap(v)
                gumbel, uniform = _noise(seed, b, step, v)

                def example(cur_n=cur_n, cur_d=cur_d):
                    known = np.array([c <= v or cur_d[c] in (CONT, EMPTY) for c in range(V)])
                    yt = np.where(known, cur_d, -1)
                    y = cur_n * known[:, None]
                    return {
                        "e": np.stack([h[0][perm] for h in hist])[None],
                        "t": np.stack([h[1][perm] for h in hist])[None],
                        "f": np.stack([h[2][perm][:, perm] for h in hist])[None],
                        "y": y[perm][None], "yt": yt[perm][None], "yf": cur_f[perm][:, perm][None],
                        "loc": np.array([loc], np.int32),
                    }

                clamped = v in ptr and ptr[v] < clamp.lengths()[clamp.channels.index(v)]
                if clamped:
                    row = clamp.channels.index(v)
                    cur_d[v] = clamp.durations[row, ptr[v]]
                    cur_n[v] = clamp.notes[row, ptr[v]]
                    ptr[v] += 1
                else:
                    logits = np.asarray(forward(example())[0])[0]
                    cur_d[v] = _draw_duration(logits, gumbel, duration_temperature) + NUM_SPECIAL
                    cur_n[v] = 0
                    for n in range(M):
                        logit = np.asarray(forward(example())[1])[0, n]
                        cur_n[v, n] = _draw_bit(logit, uniform[n], notes_temperature)
                ends[v] = time + NOTE_VALUES[cur_d[v] - NUM_SPECIAL]
            notes.append(cur_n)
            durs.append(cur_d)
            flows.append(cur_f)
        out.append((np.stack(notes), np.stack(durs)))
    return out


def test_equivalence_with_reference_loop(tiny, sampled):
    model, params = tiny
    ref = reference_sample(model, params, 2, VOICES, FRAMES, seed=3)
    for got, (notes, durs) in zip(sampled, ref):
        np.testing.assert_array_equal(got.durations, durs)
        np.testing.assert_array_equal(got.notes, notes)
        assert got.notes.shape == (FRAMES, V, M) and got.durations.shape == (FRAMES, V)
        assert (got.durations[:, VOICES:] == EMPTY).all()
        assert (got.durations[0, :VOICES] >= NUM_SPECIAL).all()
    assert sum(int((s.durations[:, :VOICES] == CONT).sum()) for s in sampled) > 0  # the test covers CONT


def test_greedy_decoding(tiny):
    """Temperature 0: argmax durations and bits with positive logits, as the reference loop
    decides them; the noise is unused, so every seed gives the same score."""
    model, params = tiny
    # Without the fixture's onset bias: greedy would never switch a pitch on.
    params = jax.tree_util.tree_map(lambda x: x, params)
    params["notes"]["recurrence"]["readout"]["bias"] = params["notes"]["recurrence"]["readout"]["bias"] + 2.5
    got = S.sample(model, params, num_scores=1, voices=VOICES, frames=FRAMES, seed=1, temperature=0)
    (notes, durs), = reference_sample(model, params, 1, VOICES, FRAMES, seed=1, temperature=0)
    np.testing.assert_array_equal(got[0].durations, durs)
    np.testing.assert_array_equal(got[0].notes, notes)
    other = S.sample(model, params, num_scores=1, voices=VOICES, frames=FRAMES, seed=2, temperature=0)
    np.testing.assert_array_equal(other[0].durations, got[0].durations)
    np.testing.assert_array_equal(other[0].notes, got[0].notes)
    assert got[0].notes[:, :VOICES].any()  # greedy picks some pitches (the test would be empty otherwise)


def test_equivalence_five_voices(tiny):
    """Five voices: one unused channel, carried as the model's idle channel."""
    model, params = tiny
    got = S.sample(model, params, num_scores=2, voices=5, frames=4, seed=5, chunk_frames=4)
    ref = reference_sample(model, params, 2, 5, 4, seed=5)
    for score, (notes, durs) in zip(got, ref):
        np.testing.assert_array_equal(score.durations, durs)
        np.testing.assert_array_equal(score.notes, notes)


def test_distributed_model():
    """The distributed architecture (exp. 3): all six channels (idle channels are for
    hierarchical models), the specialised pitch loop and the generic one."""
    cfg = dataclasses.replace(CONFIG, architecture="distributed")
    model = MultiVoiceModel(cfg)
    params = model.init(jax.random.PRNGKey(1), _inputs(1))["params"]
    ref = reference_sample(model, params, 2, 2, 4, seed=2)
    for fast_notes in (True, False):
        got = S.sample(model, params, num_scores=2, voices=2, frames=4, seed=2, chunk_frames=4, fast_notes=fast_notes)
        for score, (notes, durs) in zip(got, ref):
            np.testing.assert_array_equal(score.durations, durs)
            np.testing.assert_array_equal(score.notes, notes)


def test_unused_channels_alike(source):
    prompt = S.prompt_from_frames(source.notes, source.durations, source.flows, 4)
    assert S._unused_channels_alike(prompt, 3, C)
    notes = prompt.notes.copy()
    notes[-1, 4, 10] = 1
    assert not S._unused_channels_alike(dataclasses.replace(prompt, notes=notes), 3, C)
    flows = prompt.flows.copy()
    flows[-1, 4, 4] = 1
    assert not S._unused_channels_alike(dataclasses.replace(prompt, flows=flows), 3, C)


def test_deterministic(tiny, sampled):
    """Same seed, same scores (here also: 12 frames in two jit calls start with the 6 frames of one
    call); another seed, other scores.  Reuses the fixture's compiled chunk."""
    model, params = tiny
    again = S.sample(model, params, num_scores=2, voices=VOICES, frames=2 * FRAMES, seed=3, chunk_frames=FRAMES)
    for a, b in zip(again, sampled):
        np.testing.assert_array_equal(a.notes[:FRAMES], b.notes)
        np.testing.assert_array_equal(a.durations[:FRAMES], b.durations)
    other = S.sample(model, params, num_scores=2, voices=VOICES, frames=FRAMES, seed=4)
    assert not np.array_equal(other[0].notes, sampled[0].notes)


def test_generic_notes_loop_agrees(tiny, sampled):
    """The generic pitch loop (``note_logit_at``: the whole current step at each pitch) gives
    the same scores as the specialised one (``note_logit_fast``)."""
    model, params = tiny
    generic = S.sample(model, params, num_scores=2, voices=VOICES, frames=FRAMES, seed=3, fast_notes=False)
    for a, b in zip(generic, sampled):
        np.testing.assert_array_equal(a.notes, b.notes)
        np.testing.assert_array_equal(a.durations, b.durations)


def test_valid_kern_and_render(tiny, sampled):
    for score in sampled:
        voices = score.voices()
        text = to_kern(voices)
        parsed = parse_kern(text)
        encoded = encode_score(parsed)
        np.testing.assert_array_equal(encoded.durations, score.durations)
        np.testing.assert_array_equal(encoded.notes, score.notes)
        times = [Fraction(x) for x in voices.grid.times]
        assert [t * voices.grid.unit for t in score.times] == times
    # Closed (voices padded with rests to a common end, rests of any length): re-parses with the
    # same frames first, and verovio engraves it without messages.
    for score in sampled:
        text = to_kern(score.voices(close=True))
        parsed = parse_kern(text)
        f = score.num_frames
        assert parsed.num_frames >= f
        exact = parse_kern(to_kern(score.voices()))
        np.testing.assert_array_equal(parsed.durations[:f], exact.durations)
        assert parsed.note_pitch.tolist() == exact.note_pitch.tolist()  # the padding is rests
        pytest.importorskip("verovio")
        messages = export.verovio_messages(text)
        assert not [line for line in messages if "rror" in line], messages


@pytest.fixture(scope="module")
def source():
    """A three-voice score (quarters, halves, eighths) through kern, as encoded frames."""
    voices = Voices.from_lists([
        [(k, 1, (67 + (k % 3),)) for k in range(4)],
        [(2 * k, 2, (60 - k,)) for k in range(2)],
        [(Fraction(k, 2), Fraction(1, 2), (48 + k % 5,)) for k in range(8)],
    ])
    return encode_score(parse_kern(to_kern(voices)))


def test_prompt_and_clamp(tiny, source):
    """A continuation keeps the prompt; a clamped voice equals the given voice note for note;
    both agree with the reference loop, every voice decided at its own channel's turn
    (``clamped_first=False``).  The prompt ends inside a half note of the clamped voice."""
    model, params = tiny
    n = 3
    prompt = S.prompt_from_frames(source.notes, source.durations, source.flows, n)
    assert source.durations[n - 1, 1] == CONT
    clamp = S.clamp_from_frames(source.notes, source.durations, [1], start_frame=n)
    got = S.sample(model, params, num_scores=2, frames=FRAMES, seed=11, prompt=prompt, clamp=clamp,
                   clamped_first=False)
    ref = reference_sample(model, params, 2, VOICES, FRAMES, seed=11, prompt=prompt, clamp=clamp)
    original = voices_from_frames(source.notes, source.durations).voices[1]
    for score, (notes, durs) in zip(got, ref):
        np.testing.assert_array_equal(score.durations, durs)
        np.testing.assert_array_equal(score.notes, notes)
        np.testing.assert_array_equal(score.durations[:n], source.durations[:n])
        np.testing.assert_array_equal(score.notes[:n], source.notes[:n])
        assert score.num_frames == n + FRAMES
        mine = score.voices().voices[1]
        assert mine == original[: len(mine)] and len(mine) == 2
    assert not np.array_equal(got[0].notes, got[1].notes)


def test_nucleus():
    # softmax([2, 1, 0, -1]) = 0.644, 0.237, 0.087, 0.032: 0.7 needs the first two, 0.9 three
    logits = jnp.array([[2.0, 1.0, 0.0, -1.0], [0.0, 2.0, -1.0, 1.0]])
    assert S.nucleus(logits, 0.7).tolist() == [[True, True, False, False], [False, True, False, True]]
    assert S.nucleus(logits, 0.9).tolist() == [[True, True, True, False], [True, True, False, True]]
    assert S.nucleus(logits, 1e-6).tolist() == [[True, False, False, False], [False, True, False, False]]
    assert bool(S.nucleus(logits, 1.0).all())
    gumbel = jax.random.gumbel(jax.random.PRNGKey(0), (500, 4))
    drawn = S.draw_duration(jnp.broadcast_to(logits[:1], (500, 4)), gumbel, 1.0, top_p=0.7)
    assert set(np.asarray(drawn).tolist()) == {0, 1}  # only the nucleus, both of it
    plain = S.draw_duration(jnp.broadcast_to(logits[:1], (500, 4)), gumbel, 1.0)
    assert set(np.asarray(plain).tolist()) == {0, 1, 2, 3}


def _same(a, b) -> bool:
    return all(np.array_equal(x.notes, y.notes) and np.array_equal(x.durations, y.durations) for x, y in zip(a, b))


def test_draw_options_limits(tiny, sampled):
    """--temperature sets both parts; temperatures 0 are greedy part by part (the reference loop
    with a greedy part); a tiny nucleus is the most likely duration."""
    model, params = tiny
    run = functools.partial(S.sample, model, params, num_scores=2, voices=VOICES, frames=FRAMES, seed=3)
    assert _same(run(duration_temperature=1.0, notes_temperature=1.0), sampled)
    assert _same(run(temperature=0.0), run(duration_temperature=0.0, notes_temperature=0.0))
    greedy_durations = run(duration_temperature=0.0)
    assert _same(run(top_p=1e-6), greedy_durations)
    assert not _same(greedy_durations, sampled)
    for duration_temperature, notes_temperature, got in ((0.0, 1.0, greedy_durations),
                                                         (1.0, 0.0, run(notes_temperature=0.0))):
        ref = reference_sample(model, params, 2, VOICES, FRAMES, seed=3, duration_temperature=duration_temperature,
                               notes_temperature=notes_temperature)
        for score, (notes, durs) in zip(got, ref):
            np.testing.assert_array_equal(score.durations, durs)
            np.testing.assert_array_equal(score.notes, notes)
    with pytest.raises(ValueError, match="top_p"):
        run(top_p=0.0)
    with pytest.raises(ValueError, match="temperatures"):
        run(notes_temperature=-1.0)


def test_clamped_first_order():
    assert S.clamped_first_order([2], 3, V) == [2, 0, 1, 3, 4, 5]
    assert S.clamped_first_order([2, 0], 4, V) == [0, 2, 1, 3, 4, 5]
    with pytest.raises(ValueError, match="not one of the 3 voices"):
        S.clamped_first_order([3], 3, V)


def test_clamped_voices_are_decided_first(tiny, source):
    """With ``clamped_first`` the clamped voice (here channel 2, the highest of 3) is decided first
    in every frame: the sampler is the reference loop run on the channels reordered so that it is channel 0
    (prompt and clamp reordered too), put back in the caller's order.  The clamped voice still
    follows the given voice note for note; the other voices come out different from the
    own-channel order."""
    model, params = tiny
    n = 3
    prompt = S.prompt_from_frames(source.notes, source.durations, source.flows, n)
    clamp = S.clamp_from_frames(source.notes, source.durations, [2], start_frame=n)
    got = S.sample(model, params, num_scores=2, frames=FRAMES, seed=11, prompt=prompt, clamp=clamp,
                   clamped_first=True)
    order = [2, 0, 1, 3, 4, 5]
    moved = S.prompt_from_frames(*permute_channels(source.notes, source.durations, source.flows, order), n)
    ref = reference_sample(model, params, 2, VOICES, FRAMES, seed=11, prompt=moved,
                           clamp=dataclasses.replace(clamp, channels=(0,)))
    original = voices_from_frames(source.notes, source.durations).voices[2]
    for score, (notes, durs) in zip(got, ref):
        back_notes, back_durs, _ = permute_channels(notes, durs, np.zeros(durs.shape + (V,)), np.argsort(order))
        np.testing.assert_array_equal(score.durations, back_durs)
        np.testing.assert_array_equal(score.notes, back_notes)
        np.testing.assert_array_equal(score.notes[:n], source.notes[:n])
        mine = score.voices().voices[2]
        assert mine == original[: len(mine)] and len(mine) >= 2
    own = S.sample(model, params, num_scores=2, frames=FRAMES, seed=11, prompt=prompt, clamp=clamp)
    assert any(not np.array_equal(a.notes[:, :2], b.notes[:, :2]) for a, b in zip(got, own))


def test_sampled_voices_hear_the_clamped_notes(tiny):
    """The clamped voice's notes in a frame reach the voices sampled in that frame only when it is
    decided first.  Two clamps differ only in the pitch of their first note: at the first frame
    (START history) the sampled voices come out the same when the clamped voice is decided last,
    and differ when it is decided first (same seed, same noise)."""
    model, params = tiny
    quarter = NUM_SPECIAL + NOTE_VALUES.index(Fraction(1))

    def first_frame(pitch: int, clamped_first: bool) -> np.ndarray:
        notes = np.zeros((1, 1, M), np.int8)
        notes[0, 0, pitch - 24] = 1
        clamp = S.Clamp((VOICES - 1,), np.array([[quarter]]), notes)
        scores = S.sample(model, params, num_scores=4, voices=VOICES, frames=1, seed=7, clamp=clamp,
                          clamped_first=clamped_first)
        return np.stack([np.concatenate([s.notes[0, :VOICES - 1].ravel(), s.durations[0, :VOICES - 1]])
                         for s in scores])

    np.testing.assert_array_equal(first_frame(48, False), first_frame(84, False))
    assert not np.array_equal(first_frame(48, True), first_frame(84, True))


def test_sampled_logits_depend_on_the_clamped_onsets(tiny):
    """Through the model's public decoding methods, on the frame the sampler builds when the
    clamped voice (channel 0) has been decided and voice 1 is next: the gradients of voice 1's
    duration logits and of a note logit with respect to channel 0's onsets are nonzero."""
    model, params = tiny
    b = 2
    frames = {"e": jnp.zeros((b, C, V, M)), "t": jnp.full((b, C, V), START),
              "f": jnp.broadcast_to(jnp.eye(V), (b, C, V, V)), "loc": jnp.zeros((b,), jnp.int32)}
    states = model.apply({"params": params}, frames, method=model.history)
    quarter = NUM_SPECIAL + NOTE_VALUES.index(Fraction(1))
    y = jnp.zeros((b, V, M)).at[:, 0, 60 - 24].set(1.0)
    yt = jnp.array([[quarter, -1, -1, EMPTY, EMPTY, EMPTY]] * b)
    yf = jnp.broadcast_to(jnp.eye(V), (b, V, V))
    loc = jnp.zeros((b,), jnp.int32)

    def duration(y):
        return model.apply({"params": params}, states, y, yt, yf, 1, loc, method=model.duration_logits).sum()

    def note(y):
        return model.apply({"params": params}, states, y, yt.at[:, 1].set(quarter), yf, 1, jnp.zeros((b, M)), 40,
                           method=model.note_logit_at).sum()

    for fn in (duration, note):
        grad = jax.grad(fn)(y)
        assert float(jnp.abs(grad[:, 0]).sum()) > 0


def test_clamp_from_scratch_and_beats(tiny):
    model, params = tiny
    # A hand-written voice: quarter, half, quarter C major triad tones in channel 0.
    q = NUM_SPECIAL + NOTE_VALUES.index(Fraction(1))
    h = NUM_SPECIAL + NOTE_VALUES.index(Fraction(2))
    notes = np.zeros((3, M), np.int8)
    for k, p in enumerate((60, 64, 67)):
        notes[k, p - 24] = 1
    clamp = S.Clamp((0,), np.array([[q, h, q]]), notes[None])
    got = S.sample(model, params, num_scores=2, voices=VOICES, beats=4, seed=0, clamp=clamp, chunk_frames=FRAMES)
    for score in got:
        voice = score.voices().voices[0]
        assert [(n.onset, n.duration, n.pitches) for n in voice[:3]] == [
            (0, 1, (60,)), (1, 2, (64,)), (3, 1, (67,))]
        assert all(t < 4 for t in score.times)
        assert score.voices().end >= 4


def test_location_truncation():
    tpq = NOTE_VALUE_TICKS_PER_QUARTER
    quarters = jnp.array([0, 0, -1, -1, 2], jnp.int32)
    phase = jnp.array([0, tpq // 48 + 1, tpq - 1, tpq // 2, tpq // 96], jnp.int32)
    # t = 0, 1/48+, -1/TPQ, -1/2, 2 + 1/96
    assert S._location(quarters, phase).tolist() == [0, 1, 0, 24, 0]


def test_rejects_bad_options(tiny):
    model, params = tiny
    with pytest.raises(ValueError):
        S.sample(model, params, voices=7, frames=2)
    with pytest.raises(ValueError):
        S.sample(model, params, frames=2, beats=2)
    with pytest.raises(ValueError):
        S.sample(MultiVoiceModel(MultiVoiceConfig.independent()), None, frames=2)
