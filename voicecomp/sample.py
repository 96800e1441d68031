"""Ancestral sampling from coupled multi-voice models (SPEC §6), batched and jit-compiled.

Order (the factorization of SPEC §1.4).  A score is a sequence of frames.  Every voice ``c``
(channel ``0 .. voices-1``) has a time at which its current note ends; the next frame starts at the
earliest of them (the voice(s) whose time has advanced least).  At that frame the voices whose note
ends there start a new note, in increasing channel order (ties: lowest channel first); the others
continue (``CONT``, their notes copied); unused channels are ``EMPTY``.  A starting voice draws first
its duration (softmax over the 52 note values, ``/ temperature``), then its 78 onset bits from low to
high pitch, each a Bernoulli on ``sigmoid(logit / temperature)`` conditioned on the lower ones (the
notes net's ``CausalPitchEmbedding``).  It sees the frame as training examples did: channels below it
with their sampled notes and durations, later channels only ``CONT``/``EMPTY`` (others masked).
Flows are the identity over the active channels (the very first frame of a score: the full identity,
as the encoder writes it).  How a decision is drawn is :class:`DrawOptions`: a temperature for the
durations and one for the onset bits (0: greedy, argmax duration and bit = logit > 0) and nucleus
(top-p) sampling of the duration softmax.

Speed.  The recurrences over the ``C`` history frames do not depend on the current frame, so one
sampling step (one frame) computes the history states once (``MultiVoiceModel.history``) and then,
per starting voice, the duration logits of the current step and 78 sequential note logits, one
pitch at a time (position ``n`` depends on the current voice only through its onsets below ``n``):
``MultiVoiceModel.notes_voice_context`` does once per voice what does not depend on those onsets,
``note_logit_fast`` the rest, one pitch of one channel (``note_logit_at``, the whole current step
at one pitch, is the slower cross-check of ``fast_notes=False``).  The unused channels of a
hierarchical model are carried as one (the model's idle channels); in a window clear of the START
padding they need no recurrence.  Everything runs in one ``lax.scan`` over frames (chunks of frames
per jit call, for progress reporting), ``fori_loop`` over voices and pitches; the model is reached
only through ``model.apply(variables, ..., method=...)``.

Randomness.  Score ``b`` uses the key ``fold_in(PRNGKey(seed), b)``; the noise of sampled frame
``s`` and channel ``v`` is :func:`step_noise` (Gumbel noise for the duration, uniforms for the
bits), so a score depends only on (seed, its index, the model, the options), not on the batch size
or chunking.

Time is exact: integer ticks (``NOTE_VALUE_TICKS_PER_QUARTER`` = lcm of the note values'
denominators, much coarser than the parser's grid); the
location class of a frame is ``int(48 * (t - frac(pickup))) mod 48`` in exact arithmetic (the
reference encoder's float accumulation differs in rare cases, SPEC §1.3).

Conditioning.
* ``prompt``: the first frames of a score (:class:`Prompt`, e.g. :func:`load_prompt`) are copied and
  sampling continues after them; the voices are the channels used in the prompt's last frame, and
  notes still sounding at its end continue.  The output starts with the prompt's frames.
* ``clamp`` (harmonization, :class:`Clamp`): the listed channels are teacher-forced: at their turn
  they take their next note (duration and pitches) from the given sequence instead of sampling.
  They are therefore fixed and condition only on their own past (the model is never asked about
  them, and they do not react to the sampled voices).  When a clamped voice's sequence runs out it
  is sampled freely.  With ``clamped_first`` the clamped channels are decided first
  in every frame, so every sampled voice conditions on the clamped notes sounding with it: the
  model shares its voice weights across channels, so the sampler simply runs on the channels
  reordered by :func:`clamped_first_order` (prompt and clamp included) and puts the output back in
  the caller's channel order.  Without it every channel is decided at its own place, and a sampled
  voice below a clamped one sees only the clamped voice's past.  The model was trained on scores
  whose channels run from the lowest voice up, so it expects the voices decided before it to lie
  below it: ``experiments/bench_harmonize.py`` measures both orders, and with the published exp.-6
  weights deciding a soprano first puts the sampled voices above it (higher conditional bits per
  beat, twice the voice crossings), so the default keeps every channel at its own turn.

Only the coupled architectures (hierarchical, distributed) are supported.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from voicecomp.encoding import permute_channels
from voicecomp.models.multivoice import MultiVoiceModel, zero_carry
from voicecomp.vocab import CONT, EMPTY, NOTE_VALUE_TICKS_PER_QUARTER, NOTE_VALUES, NUM_LOCATIONS, NUM_SPECIAL, START

# Length of every vocabulary symbol in ticks (specials 0); the longest (15 quarters) fits int32.
NOTE_TICKS = np.array([0] * NUM_SPECIAL + [int(v * NOTE_VALUE_TICKS_PER_QUARTER) for v in NOTE_VALUES], dtype=np.int64)
assert NOTE_TICKS.max() < 2**30
MAX_FRAMES = 8192


# ----------------------------------------------------------------------------------------------
# Inputs and outputs


@dataclasses.dataclass(frozen=True)
class Prompt:
    """Frames a continuation starts from (SPEC §1.3 arrays of the first N frames of a score)."""

    notes: np.ndarray  # int8 [N, 6, 78]
    durations: np.ndarray  # int8 [N, 6]
    flows: np.ndarray  # int8 [N, 6, 6]
    pickup: Fraction = Fraction(0)

    @property
    def num_frames(self) -> int:
        return int(self.durations.shape[0])

    @property
    def voices(self) -> int:
        """Channels used in the last frame (the voices the continuation keeps)."""
        return int((np.asarray(self.durations[-1]) != EMPTY).sum())


@dataclasses.dataclass(frozen=True)
class Clamp:
    """Teacher-forced voices: ``durations[i, k]`` / ``notes[i, k]`` is the k-th note of channel
    ``channels[i]`` from where sampling starts (``durations`` -1 after the end)."""

    channels: tuple[int, ...]
    durations: np.ndarray  # int [len(channels), K] vocabulary indices (>= 3), -1 padding
    notes: np.ndarray  # int8 [len(channels), K, 78]

    def lengths(self) -> np.ndarray:
        return (np.asarray(self.durations) >= NUM_SPECIAL).sum(axis=1)


def clamped_first_order(clamped: Sequence[int], voices: int, num_channels: int) -> list[int]:
    """The channel order that decides clamped channels first: channel ``c`` of the reordered score
    is channel ``order[c]`` of the caller's (clamped channels, then the other voices, then the
    unused channels, each group in increasing order); ``np.argsort(order)`` undoes it."""
    clamped = sorted(set(int(c) for c in clamped))
    outside = [c for c in clamped if not 0 <= c < voices]
    if outside:
        raise ValueError(f"clamped channel {outside[0]} is not one of the {voices} voices")
    return clamped + [c for c in range(num_channels) if c not in clamped]


class DrawOptions(NamedTuple):
    """How the sampler draws its decisions.

    ``duration_temperature`` divides the duration logits and ``notes_temperature`` the onset-bit
    logits (0: greedy, the argmax duration and the bits with positive logits); ``top_p`` keeps,
    before a duration is drawn, only the most probable note values whose (tempered) probabilities
    first reach ``top_p`` in total (nucleus sampling; 1: all of them; a tiny value: the argmax)."""

    duration_temperature: float = 1.0
    notes_temperature: float = 1.0
    top_p: float = 1.0

    def check(self) -> "DrawOptions":
        if self.duration_temperature < 0 or self.notes_temperature < 0:
            raise ValueError(f"temperatures must be >= 0, got {self.duration_temperature} (durations) and "
                             f"{self.notes_temperature} (notes)")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        return self


@dataclasses.dataclass(frozen=True)
class SampledScore:
    """One sampled score: SPEC §1.3 arrays (prompt frames first) and the frame start times."""

    notes: np.ndarray  # int8 [F, 6, 78]
    durations: np.ndarray  # int8 [F, 6]
    flows: np.ndarray  # int8 [F, 6, 6]
    times: tuple[Fraction, ...]  # start of each frame, quarter notes from the score start
    pickup: Fraction = Fraction(0)
    prompt_frames: int = 0

    @property
    def num_frames(self) -> int:
        return int(self.durations.shape[0])

    def voices(self, close: bool = False):
        """:class:`voicecomp.export.Voices` of the score (for the writers of voicecomp.export).

        ``close=False``: exactly the frames (``to_kern`` re-encodes to the same arrays), but the
        voices end at different times (their last notes), which engravers such as verovio report
        as an inconsistent rhythm.  ``close=True``: every voice ends at the same time, padded with
        a rest after its last note (re-encoding gives the same frames followed by rest frames)."""
        from voicecomp.export import Note, Voices, voices_from_frames

        voices = voices_from_frames(self.notes, self.durations, pickup=self.pickup)
        if not close:
            return voices
        end = voices.end
        padded = []
        for voice in voices.voices:
            voice = list(voice)
            if voice:
                for start, length in _rest_values(voice[-1].end, end):
                    voice.append(Note(start, length, ()))
            padded.append(tuple(voice))
        return Voices(tuple(padded), voices.pickup)


def _rest_values(start: Fraction, end: Fraction) -> list[tuple[Fraction, Fraction]]:
    """``(onset, duration)`` of rests filling ``start..end``, in as few pieces (at most 3) as
    make every piece printable (a kern reciprocal, optionally dotted: no ``N%M``, which verovio
    cannot engrave), pieces other than the last taken from the vocabulary; else one rest."""
    from voicecomp.export import kern_duration

    def printable(d: Fraction) -> bool:
        return d > 0 and "%" not in kern_duration(d)

    total = end - start
    if total <= 0:
        return []
    values = sorted(NOTE_VALUES, reverse=True)
    pieces = [total] if printable(total) else None
    if pieces is None:
        pieces = next(([a, total - a] for a in values if a < total and printable(total - a)), None)
    if pieces is None:
        pieces = next(([a, b, total - a - b] for a in values for b in values
                       if a + b < total and printable(total - a - b)), [total])
    rests = []
    for length in pieces:
        rests.append((start, length))
        start += length
    return rests


def load_score(path: Union[str, Path], *, default_instrument: str = "voice"):
    """``(EncodedScore, pickup)`` of a score file, read by its extension
    (:func:`voicecomp.data.scorefile.read_score`): ``**kern`` (Latin-1, the lenient Humdrum
    policy, which reads every strictly valid file identically; spines without an instrument get
    ``default_instrument``), MusicXML (``.musicxml``/``.mxl``/``.xml``) or MIDI (``.mid``/``.midi``).

    Raises ``ScoreReadError`` or ``KernParseError`` (one-line ``file[:line]: reason``) for an
    unreadable file or one with more voices than channels, and ``ScoreReadError`` for note
    values outside the model's vocabulary."""
    from voicecomp.data.humdrum import LENIENT
    from voicecomp.data.humdrum import TICKS_PER_QUARTER as KERN_TICKS
    from voicecomp.data.scorefile import ScoreReadError, read_score
    from voicecomp.encoding import EncodingError, encode_score

    score = read_score(path, policy=LENIENT, default_instrument=default_instrument)
    try:
        encoded = encode_score(score)
    except EncodingError as err:
        raise ScoreReadError(str(path), str(err)) from None
    return encoded, Fraction(int(score.pickup), KERN_TICKS)


def load_prompt(path: Union[str, Path], frames: int) -> Prompt:
    """The first ``frames`` frames of a ``**kern`` file as a :class:`Prompt`."""
    encoded, pickup = load_score(path)
    return prompt_from_frames(encoded.notes, encoded.durations, encoded.flows, frames, pickup)


def prompt_from_frames(notes, durations, flows, frames: int, pickup=Fraction(0)) -> Prompt:
    total = int(np.asarray(durations).shape[0])
    if not 1 <= frames <= total:
        raise ValueError(f"prompt of {frames} frames from a score of {total}")
    return Prompt(np.asarray(notes[:frames], np.int8), np.asarray(durations[:frames], np.int8),
                  np.asarray(flows[:frames], np.int8), Fraction(pickup))


def frame_times(durations: np.ndarray) -> list[Fraction]:
    """Start time (quarters) of every frame of encoded ``durations`` (as voicecomp.export has them)."""
    from voicecomp.export import voices_from_frames

    durations = np.asarray(durations)
    grid = voices_from_frames(np.zeros(durations.shape + (1,), np.int8), durations).grid
    return [Fraction(t, grid.unit) for t in grid.times]


def _channel_ends(durations: np.ndarray, times: Sequence[Fraction]) -> list[Optional[Fraction]]:
    """End time of the note sounding in each channel at the last frame (None: channel unused)."""
    last = durations.shape[0] - 1
    ends: list[Optional[Fraction]] = []
    for c in range(durations.shape[1]):
        if durations[last, c] == EMPTY:
            ends.append(None)
            continue
        j = last
        while j > 0 and durations[j, c] == CONT:
            j -= 1
        value = NOTE_VALUES[int(durations[j, c]) - NUM_SPECIAL] if durations[j, c] >= NUM_SPECIAL else Fraction(0)
        ends.append(times[j] + value)
    return ends


def clamp_from_frames(notes: np.ndarray, durations: np.ndarray, channels: Sequence[int], start_frame: int = 0) -> Clamp:
    """Clamp ``channels`` to their notes in encoded frames, from the first onset at or after
    ``start_frame`` (use the prompt length when the prompt is the same score).  A channel's notes
    must follow each other without gaps (only ``CONT`` between onsets); its sequence ends at the
    first ``EMPTY``."""
    notes, durations = np.asarray(notes), np.asarray(durations)
    seqs = []
    for c in channels:
        if not 0 <= c < durations.shape[1]:
            raise ValueError(f"clamp channel {c} out of range")
        d_list, n_list = [], []
        for j in range(start_frame, durations.shape[0]):
            d = int(durations[j, c])
            if d == EMPTY:
                break
            if d >= NUM_SPECIAL:
                d_list.append(d)
                n_list.append(notes[j, c])
        if not d_list:
            raise ValueError(f"channel {c} has no notes to clamp from frame {start_frame}")
        seqs.append((d_list, n_list))
    k = max(len(d) for d, _ in seqs)
    out_d = np.full((len(channels), k), -1, np.int32)
    out_n = np.zeros((len(channels), k, notes.shape[-1]), np.int8)
    for i, (d_list, n_list) in enumerate(seqs):
        out_d[i, : len(d_list)] = d_list
        out_n[i, : len(n_list)] = np.stack(n_list)
    return Clamp(tuple(int(c) for c in channels), out_d, out_n)


# ----------------------------------------------------------------------------------------------
# Noise and draws (shared with the reference loop of the tests)


def score_keys(seed: int, num_scores: int) -> jax.Array:
    """Per-score base keys ``fold_in(PRNGKey(seed), b)`` ([B, 2] uint32)."""
    base = jax.random.PRNGKey(seed)
    return jax.vmap(lambda b: jax.random.fold_in(base, b))(jnp.arange(num_scores))


def step_noise(keys: jax.Array, step, voice, num_note_values: int, pitch_range: int) -> tuple[jax.Array, jax.Array]:
    """Noise of sampled frame ``step`` (0 = first frame after the prompt), channel ``voice``:
    Gumbel ``[B, num_note_values]`` for the duration and uniforms ``[B, pitch_range]`` for the bits."""

    def one(key):
        key = jax.random.fold_in(jax.random.fold_in(key, step), voice)
        k_dur, k_notes = jax.random.split(key)
        return jax.random.gumbel(k_dur, (num_note_values,)), jax.random.uniform(k_notes, (pitch_range,))

    return jax.vmap(one)(keys)


def nucleus(logits, top_p: float):
    """bool mask of the nucleus of ``softmax(logits)`` (last axis): the most probable entries,
    in decreasing order (ties: lower index first), up to the first whose cumulative probability
    reaches ``top_p``.  It always holds the argmax."""
    probs = jax.nn.softmax(logits, axis=-1)
    order = jnp.argsort(-probs, axis=-1, stable=True)
    ranked = jnp.take_along_axis(probs, order, axis=-1)
    keep_ranked = jnp.cumsum(ranked, axis=-1) - ranked < top_p  # the mass ranked above it is short of top_p
    return jnp.take_along_axis(keep_ranked, jnp.argsort(order, axis=-1), axis=-1)


def draw_duration(logits, gumbel, temperature: float, top_p: float = 1.0):
    """Index (0..51) of a note value: Gumbel-max on ``logits / temperature`` restricted to its
    :func:`nucleus` (``top_p`` 1: every value); the argmax at temperature 0."""
    if temperature == 0:
        return jnp.argmax(logits, axis=-1)
    scaled = logits / temperature
    if top_p < 1:
        scaled = jnp.where(nucleus(scaled, top_p), scaled, -jnp.inf)
    return jnp.argmax(scaled + gumbel, axis=-1)


def draw_bits(logits, uniform, temperature: float):
    """Bernoulli(sigmoid(logits / temperature)) as ``uniform < p`` (``logits > 0`` at 0)."""
    if temperature == 0:
        return (logits > 0).astype(jnp.int8)
    # u < sigmoid(x)  <=>  logit(u) < x, without rounding p near 0 or 1.
    return (jnp.log(uniform) - jnp.log1p(-uniform) < logits / temperature).astype(jnp.int8)


# ----------------------------------------------------------------------------------------------
# Unused channels


def _unused_channels_alike(prompt: "Prompt", voices: int, history: int) -> bool:
    """Whether the channels ``voices..`` of the prompt frames in the sampler's window are alike
    (:class:`voicecomp.models.multivoice.IdleChannels`: the same duration token, no notes, no flow
    to or from the used channels, a common self-flow), so the model may carry them as one."""
    durations = np.asarray(prompt.durations)[-history:]
    notes = np.asarray(prompt.notes)[-history:]
    flows = np.asarray(prompt.flows)[-history:]
    rest = slice(voices, None)
    same_token = (durations[:, rest] == durations[:, voices:voices + 1]).all()
    no_notes = not notes[:, rest].any()
    no_cross = not flows[:, :voices, rest].any() and not flows[:, rest, :voices].any()
    block = flows[:, rest, rest].astype(np.int64)
    diagonal = np.diagonal(block, axis1=1, axis2=2)
    alike = (block == np.einsum("fi,ij->fij", diagonal, np.eye(block.shape[1], dtype=np.int64))).all()
    return bool(same_token and no_notes and no_cross and alike and (diagonal == diagonal[:, :1]).all())


def _history_frames(e, t, f, loc, yt, yf, width: int) -> dict:
    """The model's history inputs for the window ``e, t, f`` ([B, C, V, ...]): channels below
    ``width``, the rest as idle channels (their tokens and self-flows over the window and the
    current frame ``yt, yf``, read from channel ``width``)."""
    frames = {"e": e[:, :, :width], "t": t[:, :, :width], "f": f[:, :, :width, :width], "loc": loc}
    if width < e.shape[2]:
        frames["idle_t"] = jnp.concatenate([t[:, :, width], yt[:, width, None]], axis=1)
        frames["idle_f"] = jnp.concatenate([f[:, :, width, width], yf[:, width, width, None]], axis=1)
    return frames


# ----------------------------------------------------------------------------------------------
# The jitted frame step


def _location(quarters, phase):
    """``int(48 * t) mod 48`` (truncation toward zero) for ``t = quarters + phase / TPQ``."""
    scaled = 48 * phase
    floor = 48 * quarters + scaled // NOTE_VALUE_TICKS_PER_QUARTER
    inexact = scaled % NOTE_VALUE_TICKS_PER_QUARTER != 0
    trunc = floor + ((floor < 0) & inexact).astype(floor.dtype)
    return jnp.mod(trunc, NUM_LOCATIONS).astype(jnp.int32)


def _frame_step(model: MultiVoiceModel, variables, voices: int, draw: DrawOptions, fast_notes: bool,
                merge_unused: bool, consts, carry, _unused=None):
    cfg = model.config
    V, M = cfg.num_voices, cfg.pitch_range
    memory, remaining, quarters, phase, first, ptr, step, keys = carry
    full_history = cfg.history == "full"
    # memory: the last C frames (windowed models) or the last frame's notes and the carried states
    if full_history:
        last_notes, stream_states = memory
    else:
        e, t, f = memory
        last_notes = e[:, -1]
    B = last_notes.shape[0]
    apply = functools.partial(model.apply, variables)
    active = jnp.arange(V) < voices

    # Next frame: the earliest end among the active voices; those voices start a note.
    big = jnp.iinfo(jnp.int32).max
    masked = jnp.where(active, remaining, big)
    delta = masked.min(axis=1)
    onset = active & (masked == delta[:, None])
    remaining = jnp.where(active, remaining - delta[:, None], 0)
    phase = phase + delta
    quarters = quarters + phase // NOTE_VALUE_TICKS_PER_QUARTER
    phase = phase % NOTE_VALUE_TICKS_PER_QUARTER
    loc = _location(quarters, phase)

    cont = active & ~onset
    y = jnp.where(cont[..., None], last_notes, 0).astype(jnp.float32)
    yt = jnp.where(active, jnp.where(onset, -1, CONT), EMPTY).astype(jnp.int32)
    yt = jnp.broadcast_to(yt, (B, V))
    eye = jnp.eye(V, dtype=jnp.float32)
    yf = jnp.where(first[:, None, None], eye, eye * active.astype(jnp.float32))

    # The model sees channels below `width`; the unused ones above are carried as one (idle).
    width = voices if merge_unused else V
    if full_history:
        states = stream_states
    else:
        states = apply(_history_frames(e, t, f, loc, yt, yf, width), method=model.history)
    yf_seen = yf[:, :width, :width]
    if fast_notes:
        frame_context = apply(states, yf_seen, method=model.notes_frame_context)
        embedded = apply(y[:, :width], method=model.notes_row_embedding)  # [B, W, M, H]
    else:
        embedded = jnp.zeros((B, 1, 1, 1), jnp.float32)

    def voice_body(v, state):
        y, yt, remaining, ptr, embedded = state
        on_v = onset[:, v]
        gumbel, uniform = step_noise(keys, step, v, cfg.num_note_values, M)
        clamped = ptr[:, v] < consts["clamp_len"][v]
        k = jnp.minimum(ptr[:, v], consts["clamp_dur"].shape[1] - 1)
        clamp_d = consts["clamp_dur"][v][k]
        clamp_n = consts["clamp_notes"][v][k].astype(jnp.float32)

        def draw_pitches(logit_at):
            # low to high: pitch n sees the voice's onsets below n
            def pitch_body(n, bits):
                u = jax.lax.dynamic_index_in_dim(uniform, n, axis=1, keepdims=False)
                return bits.at[:, n].set(draw_bits(logit_at(bits, n), u, draw.notes_temperature).astype(jnp.float32))

            return jax.lax.fori_loop(0, M, pitch_body, jnp.zeros((B, M), jnp.float32))

        def sample(_):
            logits = apply(states, y[:, :width], yt[:, :width], yf_seen, v, loc, method=model.duration_logits)
            d = draw_duration(logits, gumbel, draw.duration_temperature, draw.top_p).astype(jnp.int32) + NUM_SPECIAL
            d = jnp.where(clamped, clamp_d, d)
            yt_now = yt.at[:, v].set(d)[:, :width]
            if fast_notes:
                # Everything but the voice's own onsets is fixed during its pitch loop.
                context = apply(frame_context, embedded, yt_now, v, method=model.notes_voice_context)
                bits = draw_pitches(lambda bits, n: apply(context, bits, n, method=model.note_logit_fast))
            else:
                bits = draw_pitches(lambda bits, n: apply(states, y[:, :width], yt_now, yf_seen, v, bits, n,
                                                          method=model.note_logit_at))
            return d, jnp.where(clamped[:, None], clamp_n, bits)

        def teacher(_):
            return clamp_d, clamp_n

        need = jnp.any(on_v & ~clamped)
        d, bits = jax.lax.cond(need, sample, teacher, None)
        y = y.at[:, v].set(jnp.where(on_v[:, None], bits, y[:, v]))
        yt = yt.at[:, v].set(jnp.where(on_v, d, yt[:, v]))
        ticks = jnp.asarray(NOTE_TICKS, jnp.int32)[jnp.clip(d, 0, len(NOTE_TICKS) - 1)]
        remaining = remaining.at[:, v].set(jnp.where(on_v, ticks, remaining[:, v]))
        ptr = ptr.at[:, v].add((on_v & clamped).astype(jnp.int32))
        if fast_notes:
            row = apply(jnp.take(y, v, axis=1)[:, None], method=model.notes_row_embedding)[:, 0]
            embedded = embedded.at[:, v].set(row)
        return y, yt, remaining, ptr, embedded

    y, yt, remaining, ptr, _ = jax.lax.fori_loop(0, voices, voice_body, (y, yt, remaining, ptr, embedded))
    y8, yt8, yf8 = y.astype(jnp.int8), yt.astype(jnp.int8), yf.astype(jnp.int8)
    if full_history:
        # one recurrent step moves the carried states past the sampled frame
        frame_inputs = {"e": y8[:, None], "t": yt[:, None], "f": yf8[:, None], "loc": loc[:, None],
                        "reset": jnp.zeros((B, 1), jnp.float32)}
        memory = (y8, apply(stream_states, frame_inputs, method=model.advance))
    else:
        memory = (jnp.concatenate([e[:, 1:], y8[:, None]], axis=1), jnp.concatenate([t[:, 1:], yt[:, None]], axis=1),
                  jnp.concatenate([f[:, 1:], yf8[:, None]], axis=1))
    carry = (memory, remaining, quarters, phase, jnp.zeros_like(first), ptr, step + 1, keys)
    return carry, (y8, yt8, yf8, quarters, phase)


@functools.lru_cache(maxsize=32)
def _chunk_fn(config, voices: int, draw: DrawOptions, length: int, fast_notes: bool = True,
              merge_unused: bool = False):
    """Jitted ``(variables, consts, carry) -> (carry, frames)`` running ``length`` frames."""
    model = MultiVoiceModel(config)

    def run(variables, consts, carry):
        body = functools.partial(_frame_step, model, variables, voices, draw, fast_notes, merge_unused, consts)
        return jax.lax.scan(body, carry, None, length=length)

    return jax.jit(run)


# ----------------------------------------------------------------------------------------------
# Driver


def _initial_carry(cfg, variables, num_scores: int, voices: int, seed: int, prompt: Optional[Prompt],
                   pickup: Fraction):
    B, C, V, M = num_scores, cfg.voice_history, cfg.num_voices, cfg.pitch_range
    pad_e = np.zeros((C, V, M), np.int8)
    pad_t = np.full((C, V), START, np.int32)
    pad_f = np.broadcast_to(np.eye(V, dtype=np.int8), (C, V, V))
    remaining = np.zeros((V,), np.int64)
    time = Fraction(0)
    first = prompt is None
    if prompt is not None:
        # a windowed model keeps the last C frames; a full-history one streams them all
        keep = -C if cfg.history == "window" else None
        pad_e = np.concatenate([pad_e, prompt.notes])[keep:]
        pad_t = np.concatenate([pad_t, prompt.durations.astype(np.int32)])[keep:]
        pad_f = np.concatenate([pad_f, prompt.flows])[keep:]
        times = frame_times(prompt.durations)
        time = times[-1]
        ends = _channel_ends(np.asarray(prompt.durations), times)
        live = [end - time for end in ends if end is not None and end > time]
        fallback = min(live) if live else Fraction(0)
        for c, end in enumerate(ends):
            if c < voices and end is not None:
                remaining[c] = int((end - time if end > time else fallback) * NOTE_VALUE_TICKS_PER_QUARTER)
    # Location time t' = t - frac(pickup) as quarters + phase / TPQ.
    shifted = time - (pickup % 1)
    ticks = int(round(shifted * NOTE_VALUE_TICKS_PER_QUARTER))
    quarters, phase = divmod(ticks, NOTE_VALUE_TICKS_PER_QUARTER)
    rep = lambda x: np.broadcast_to(x, (B,) + np.shape(x)).copy()
    if cfg.history == "full":
        memory = (rep(pad_e[-1]), _stream_states(cfg, variables, B, pad_e, pad_t, pad_f, _window_locations(pad_t, pickup)))
    else:
        memory = (rep(pad_e), rep(pad_t), rep(pad_f))
    return (
        memory, rep(remaining.astype(np.int32)),
        np.full((B,), quarters, np.int32), np.full((B,), phase, np.int32), np.full((B,), first),
        np.zeros((B, V), np.int32), np.int32(0), score_keys(seed, B),
    )


def _window_locations(durations: np.ndarray, pickup: Fraction) -> np.ndarray:
    """Location class of every frame of a START-padded window (START frames: the first real
    frame's), in the sampler's exact arithmetic."""
    durations = np.asarray(durations)
    real = np.flatnonzero((durations != START).any(axis=1))
    first = int(real[0]) if real.size else len(durations)
    times = frame_times(durations[first:]) if real.size else [Fraction(0)]
    shift = pickup % 1
    classes = []
    for time in times:
        ticks = int(round((time - shift) * NOTE_VALUE_TICKS_PER_QUARTER))
        quarters, phase = divmod(ticks, NOTE_VALUE_TICKS_PER_QUARTER)
        classes.append(int(_location(np.int64(quarters), np.int64(phase))))
    return np.asarray([classes[0]] * first + classes[:len(durations) - first], np.int32)


@functools.lru_cache(maxsize=8)
def _advance_fn(config):
    """Jitted ``(variables, carry, frames) -> carry`` of :meth:`MultiVoiceModel.advance`."""
    model = MultiVoiceModel(config)
    return jax.jit(lambda variables, carry, frames: model.apply(variables, carry, frames, method=model.advance))


def _stream_states(cfg, variables, num_scores: int, e, t, f, loc) -> dict:
    """Carried states of a full-history model after the START frames and prompt ``e, t, f``
    (one stream, then copied for every score)."""
    frames = {"e": e[None], "t": t[None], "f": f[None], "loc": loc[None],
              "reset": np.r_[1, np.zeros(len(t) - 1)][None].astype(np.float32)}
    states = _advance_fn(cfg)(variables, zero_carry(cfg, 1), frames)
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (num_scores,) + x.shape[1:]), states)


def _clamp_consts(clamp: Optional[Clamp], V: int, M: int, voices: int) -> dict:
    """Clamp tables indexed by channel, ``K`` padded to a power of two >= 8 (one compile for
    runs with and without clamps of similar length)."""
    length = np.zeros((V,), np.int32)
    width = 8 if clamp is None else max(8, 1 << int(np.asarray(clamp.durations).shape[1] - 1).bit_length())
    dur = np.full((V, width), -1, np.int32)
    notes = np.zeros((V, width, M), np.int8)
    if clamp is not None:
        d = np.asarray(clamp.durations, np.int32)
        if ((d[d >= 0] < NUM_SPECIAL) | (d[d >= 0] >= len(NOTE_TICKS))).any():
            raise ValueError("clamp durations must be note-value vocabulary indices")
        for i, c in enumerate(clamp.channels):
            if not 0 <= c < voices:
                raise ValueError(f"clamped channel {c} is not one of the {voices} voices")
            dur[c, : d.shape[1]] = d[i]
            notes[c, : d.shape[1]] = clamp.notes[i]
            length[c] = clamp.lengths()[i]
    return {"clamp_len": length, "clamp_dur": dur, "clamp_notes": notes}


def sample(
    model: MultiVoiceModel,
    params: Any,
    *,
    num_scores: int = 1,
    voices: Optional[int] = None,
    frames: Optional[int] = None,
    beats: Optional[float] = None,
    temperature: float = 1.0,
    duration_temperature: Optional[float] = None,
    notes_temperature: Optional[float] = None,
    top_p: float = 1.0,
    seed: int = 0,
    prompt: Optional[Prompt] = None,
    clamp: Optional[Clamp] = None,
    clamped_first: bool = False,
    chunk_frames: int = 25,
    max_frames: int = MAX_FRAMES,
    progress: Optional[Callable[[int, int], None]] = None,
    fast_notes: bool = True,
    pickup: Union[Fraction, int, float, None] = None,
) -> list[SampledScore]:
    """Sample ``num_scores`` scores.

    Args:
      model, params: a coupled :class:`MultiVoiceModel` and its parameters (e.g. ``state.ema_params``
        of ``voicecomp.train.load_checkpoint``).
      voices: number of voices 1..6 (default 4; with a prompt, the prompt's last-frame voices).
      frames: frames (events) to sample after the prompt; or ``beats``: sample until every score's
        next frame starts at or after this many quarter notes from the score start (frames
        starting later are dropped, the last notes may sound beyond it).
      temperature: softmax / sigmoid temperature (0: greedy); ``duration_temperature`` /
        ``notes_temperature`` override it for the durations / the onset bits.
      top_p: nucleus sampling of the duration softmax (:class:`DrawOptions`; 1: off).
      seed: scores are a deterministic function of (seed, score index, model, options).
      prompt: continue these frames (:class:`Prompt`); clamp: teacher-forced voices (:class:`Clamp`).
      clamped_first: decide the clamped channels first in every frame (module docstring); the
        output keeps the caller's channels either way.
      chunk_frames: frames per jit call (progress granularity); ``progress(done, total)`` after
        each (``total`` None with ``beats``).
      pickup: quarter notes before the first barline (location classes and barlines); default 0,
        with a prompt the prompt's.
      fast_notes: the specialised pitch loop (``note_logit_fast``); False: the whole current step
        at every pitch (``note_logit_at``, slower; a cross-check).
    Returns one :class:`SampledScore` per score (prompt frames first).
    """
    cfg = model.config
    if cfg.architecture not in ("hierarchical", "distributed"):
        raise ValueError(f"sampling supports the coupled architectures, not {cfg.architecture!r}")
    if (frames is None) == (beats is None):
        raise ValueError("give exactly one of frames and beats")
    if prompt is not None:
        if voices is not None and voices != prompt.voices:
            raise ValueError(f"the prompt has {prompt.voices} voices, not {voices}")
        voices = prompt.voices
    voices = 4 if voices is None else int(voices)
    if not 1 <= voices <= cfg.num_voices:
        raise ValueError(f"voices must be 1..{cfg.num_voices}, got {voices}")
    draw = DrawOptions(
        float(temperature if duration_temperature is None else duration_temperature),
        float(temperature if notes_temperature is None else notes_temperature), float(top_p)).check()
    order = list(range(cfg.num_voices))
    if clamp is not None and clamped_first:
        order = clamped_first_order(clamp.channels, voices, cfg.num_voices)
        clamp = dataclasses.replace(clamp, channels=tuple(order.index(c) for c in clamp.channels))
        if prompt is not None:
            prompt = dataclasses.replace(prompt, **dict(zip(("notes", "durations", "flows"), permute_channels(
                prompt.notes, prompt.durations, prompt.flows, order))))
    consts = _clamp_consts(clamp, cfg.num_voices, cfg.pitch_range, voices)
    merge = cfg.architecture == "hierarchical" and cfg.history == "window" and voices < cfg.num_voices and (
        prompt is None or _unused_channels_alike(prompt, voices, cfg.voice_history))
    if prompt is not None:
        pickup = prompt.pickup
    pickup = Fraction(pickup or 0)
    variables = {"params": params}
    carry = _initial_carry(cfg, variables, num_scores, voices, seed, prompt, pickup)
    target = frames if frames is not None else max_frames
    n_chunks = max(1, math.ceil(target / chunk_frames)) if frames is not None else None
    length = math.ceil(target / n_chunks) if frames is not None else chunk_frames
    outputs = []
    done = 0
    while done < target:
        carry, out = _chunk_fn(cfg, voices, draw, length, fast_notes, merge)(variables, consts, carry)
        out = jax.device_get(out)
        outputs.append(out)
        done += length
        if progress is not None:
            progress(min(done, target), target if frames is not None else None)
        if beats is not None:
            # Next frame time of every score (its earliest end): stop when all reached `beats`.
            q, p = out[3][-1], out[4][-1]
            rem = np.where(np.arange(cfg.num_voices) < voices, np.asarray(carry[1]), np.iinfo(np.int32).max).min(1)
            next_time = q + (p + rem) / NOTE_VALUE_TICKS_PER_QUARTER + float(pickup % 1)
            if (next_time >= beats).all():
                break
    y, yt, yf, q, p = (np.concatenate([o[i] for o in outputs]) for i in range(5))
    scores = []
    base = pickup % 1
    for b in range(num_scores):
        times = [Fraction(int(qq)) + Fraction(int(pp), NOTE_VALUE_TICKS_PER_QUARTER) + base
                 for qq, pp in zip(q[:, b], p[:, b])]
        keep = len(times) if frames is None else frames
        if beats is not None:
            keep = sum(1 for x in times if x < beats)
        parts = [y[:keep, b], yt[:keep, b], yf[:keep, b]]
        prompt_times: list[Fraction] = []
        if prompt is not None:
            parts = [np.concatenate([a, x]) for a, x in zip((prompt.notes, prompt.durations, prompt.flows), parts)]
            prompt_times = frame_times(prompt.durations)
        parts = permute_channels(*parts, np.argsort(order))  # back to the caller's channels
        scores.append(SampledScore(
            notes=parts[0].astype(np.int8), durations=parts[1].astype(np.int8), flows=parts[2].astype(np.int8),
            times=tuple(prompt_times) + tuple(times[:keep]), pickup=pickup,
            prompt_frames=0 if prompt is None else prompt.num_frames,
        ))
    return scores
