"""Pure numpy encoders: parsed scores -> padded frame tensors (SPEC §1.3-1.5).

Per score (:func:`encode_score`): ``notes[F, V, M]`` onset bits in the pitch
window, ``durations[F, V]`` indices of the canonical 55-symbol vocabulary,
``flows[F, V, V]`` and the onset location of every frame.

Per split (:class:`FrameTable`): those arrays concatenated over scores plus one
row per multi-voice example (score, voice, onset).  Examples are assembled for a
batch of indices by vectorised gathers (:func:`gather_examples`); durations stay
integer indices, one-hot encoding happens at the model boundary.
"""

from __future__ import annotations

import dataclasses
import hashlib
from fractions import Fraction
from typing import Iterator, Mapping, Optional, Sequence

import numpy as np

from voicecomp.data.humdrum import CONT_TICKS, EMPTY_TICKS, TICKS_PER_QUARTER, KernScore
from voicecomp.vocab import (  # noqa: F401 - also read as encoding.<name> by the batchers
    CONT,
    EMPTY,
    MAX_VOICES,
    NOTE_VALUES,
    NUM_LOCATIONS,
    NUM_SPECIAL,
    PITCH_OFFSET,
    PITCH_RANGE,
    START,
)

# Duration of each vocabulary symbol in quarter notes (specials count 0).
DURATION_QUARTERS = np.array([0.0] * NUM_SPECIAL + [float(v) for v in NOTE_VALUES])
_INDEX_OF_TICKS = {int(v * TICKS_PER_QUARTER): NUM_SPECIAL + i for i, v in enumerate(NOTE_VALUES)}
_INDEX_OF_TICKS[CONT_TICKS] = CONT
_INDEX_OF_TICKS[EMPTY_TICKS] = EMPTY


class EncodingError(ValueError):
    """A score cannot be encoded in the canonical vocabulary or pitch window."""


@dataclasses.dataclass(frozen=True)
class EncodedScore:
    """SPEC §1.3 arrays of one score."""

    notes: np.ndarray  # int8 [F, V, M]
    durations: np.ndarray  # int8 [F, V] vocabulary indices
    flows: np.ndarray  # int8 [F, V, V]
    locations: np.ndarray  # int64 [F] int(loc) of each frame
    dropped_notes: int  # onset bits outside the pitch window (0 for KernScores)

    @property
    def location_classes(self) -> np.ndarray:
        return np.mod(self.locations, NUM_LOCATIONS)

    def onsets(self) -> np.ndarray:
        """bool [F, V]: the channel starts a note or rest at this frame."""
        return self.durations >= NUM_SPECIAL

    def beats(self) -> float:
        """Sum of channel-0 onset durations in quarter notes."""
        return float(DURATION_QUARTERS[self.durations[:, 0]].sum())

    def sha256(self) -> str:
        blob = self.notes.astype(np.int8).tobytes() + self.durations.astype(np.int8).tobytes()
        return hashlib.sha256(blob + self.flows.astype(np.int8).tobytes()).hexdigest()


def duration_indices(ticks: np.ndarray) -> np.ndarray:
    """Map durations in ticks (with CONT/EMPTY codes) to vocabulary indices."""
    flat = ticks.ravel()
    out = np.empty(flat.shape, dtype=np.int8)
    for value in np.unique(flat):
        index = _INDEX_OF_TICKS.get(int(value))
        if index is None:
            raise EncodingError(f"note value {Fraction(int(value), TICKS_PER_QUARTER)} quarters is not in the vocabulary")
        out[flat == value] = index
    return out.reshape(ticks.shape)


def frame_locations(score: KernScore, arithmetic: str = "reference") -> np.ndarray:
    """``int(loc)`` of each frame, loc in 48ths of a quarter note (SPEC §1.3).

    ``reference`` accumulates the reference pipeline's float64 durations in the
    same order it did (and so truncates exactly as it did); ``exact`` uses the
    rational durations.
    """
    onset = score.durations > 0
    if arithmetic == "reference":
        quarters = np.where(onset, score.reference_durations, np.inf)
        steps = NUM_LOCATIONS * quarters.min(axis=1)
        start = -NUM_LOCATIONS * (score.reference_pickup % 1)
        # add.accumulate is sequential, so this reproduces loc += 48 * step bit for bit.
        loc = np.add.accumulate(np.concatenate([[start], steps[:-1]]))
        return np.trunc(loc).astype(np.int64)
    if arithmetic == "exact":
        ticks = np.where(onset, score.durations, np.iinfo(np.int64).max).min(axis=1)
        frac_pickup = score.pickup % TICKS_PER_QUARTER
        elapsed = np.concatenate([[0], np.cumsum(ticks[:-1])]) - frac_pickup
        per_location = TICKS_PER_QUARTER // NUM_LOCATIONS  # exact: 48 divides the tick rate
        # truncation toward zero, as int() does
        return np.where(elapsed >= 0, elapsed // per_location, -((-elapsed) // per_location))
    raise ValueError(f"unknown location arithmetic {arithmetic!r}; expected reference or exact")


def encode_score(
    score: KernScore,
    *,
    pitch_offset: int = PITCH_OFFSET,
    pitch_range: int = PITCH_RANGE,
    location_arithmetic: str = "reference",
) -> EncodedScore:
    """SPEC §1.3 arrays of one parsed score."""
    num_frames = score.num_frames
    durations = duration_indices(score.durations)
    pitch = score.note_pitch - pitch_offset
    inside = (pitch >= 0) & (pitch < pitch_range)
    notes = np.zeros((num_frames, MAX_VOICES, pitch_range), dtype=np.int8)
    notes[score.note_frame[inside], score.note_channel[inside], pitch[inside]] = 1
    # A continuing voice repeats the notes of its channel in the previous frame.
    cont_frames, cont_channels = np.nonzero(durations == CONT)
    for j, v in zip(cont_frames.tolist(), cont_channels.tolist()):
        if j == 0:
            raise EncodingError("first frame continues a note")
        notes[j, v] = notes[j - 1, v]
    return EncodedScore(
        notes=notes,
        durations=durations,
        flows=score.flows,
        locations=frame_locations(score, location_arithmetic),
        dropped_notes=int((~inside).sum()),
    )


@dataclasses.dataclass(frozen=True)
class FrameTable:
    """Encoded scores of a split concatenated along frames, with the example index.

    Examples are ordered by score id, then voice, then onset, as the reference
    pipeline enumerated them.
    """

    score_ids: tuple[str, ...]
    score_start: np.ndarray  # int64 [S+1] first frame of each score (and total)
    notes: np.ndarray  # int8 [F, V, M]
    durations: np.ndarray  # int8 [F, V]
    flows: np.ndarray  # int8 [F, V, V]
    location_class: np.ndarray  # int8 [F]
    first_frame: np.ndarray  # int64 [F] first frame of the frame's score
    example_frame: np.ndarray  # int64 [N]
    example_voice: np.ndarray  # int8 [N]
    beats: float

    @property
    def num_examples(self) -> int:
        return int(self.example_frame.shape[0])

    @property
    def events_per_beat(self) -> float:
        return self.num_examples / self.beats

    def score_of_example(self, index: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.score_start, self.example_frame[index], side="right") - 1

    def example_index(self, score_id: str, voice: int, voice_event: int) -> int:
        """Index of the ``voice_event``-th onset of ``voice`` in score ``score_id``."""
        s = self.score_ids.index(score_id)
        lo, hi = self.score_start[s], self.score_start[s + 1]
        rows = np.nonzero(
            (self.example_frame >= lo) & (self.example_frame < hi) & (self.example_voice == voice)
        )[0]
        return int(rows[voice_event])


def build_frame_table(encoded: Mapping[str, EncodedScore]) -> FrameTable:
    """Concatenate encoded scores (sorted by id) and enumerate their examples."""
    ids = tuple(sorted(encoded))
    parts = [encoded[s] for s in ids]
    lengths = np.array([p.notes.shape[0] for p in parts], dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(lengths)])
    durations = np.concatenate([p.durations for p in parts]) if parts else np.zeros((0, MAX_VOICES), np.int8)
    example_frame, example_voice = [], []
    for s, part in enumerate(parts):
        onset = part.onsets()
        for v in range(MAX_VOICES):
            frames = np.nonzero(onset[:, v])[0]
            example_frame.append(frames + start[s])
            example_voice.append(np.full(frames.shape, v, dtype=np.int8))
    return FrameTable(
        score_ids=ids,
        score_start=start,
        notes=np.concatenate([p.notes for p in parts]) if parts else np.zeros((0, MAX_VOICES, PITCH_RANGE), np.int8),
        durations=durations,
        flows=np.concatenate([p.flows for p in parts]) if parts else np.zeros((0, MAX_VOICES, MAX_VOICES), np.int8),
        location_class=np.concatenate([p.location_classes for p in parts]).astype(np.int8)
        if parts
        else np.zeros((0,), np.int8),
        first_frame=np.repeat(start[:-1], lengths),
        example_frame=np.concatenate(example_frame) if example_frame else np.zeros((0,), np.int64),
        example_voice=np.concatenate(example_voice) if example_voice else np.zeros((0,), np.int8),
        beats=float(sum(p.beats() for p in parts)),
    )


def _swap_permutation(voices: np.ndarray) -> np.ndarray:
    """[B, V] channel order that moves channel ``voice`` to 0 and 0 to ``voice``."""
    perm = np.tile(np.arange(MAX_VOICES, dtype=np.int64), (voices.shape[0], 1))
    rows = np.arange(voices.shape[0])
    perm[rows, voices] = 0
    perm[rows, 0] = voices
    return perm


def permute_channels(
    notes: np.ndarray, durations: np.ndarray, flows: np.ndarray, order: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame arrays (any leading axes) with their channels reordered: channel ``c`` of the result
    is channel ``order[c]`` of the input, flows permuted on both axes.  The models share their
    voice weights, so only the within-frame prediction order (lowest channel first) changes;
    ``np.argsort(order)`` is the inverse."""
    order = np.asarray(order, dtype=np.int64)
    if sorted(order.tolist()) != list(range(durations.shape[-1])):
        raise ValueError(f"channel order {order.tolist()} is not a permutation of 0..{durations.shape[-1] - 1}")
    flows = np.asarray(flows)[..., order, :][..., order]
    return np.asarray(notes)[..., order, :], np.asarray(durations)[..., order], flows


def gather_history(
    table: FrameTable, frames: np.ndarray, history: int, voices: Optional[np.ndarray] = None
) -> dict[str, np.ndarray]:
    """History of the given frames: frames j-C..j-1, padded before the score start.

    With ``voices`` the channels of each row are swapped 0 <-> voice (both axes
    of the flows) by the same gather.  Returns ``e`` int8 [B, C, V, M], ``t``
    int8 [B, C, V], ``f`` int8 [B, C, V, V], ``loc`` int32 [B] (location class).
    """
    frames = np.asarray(frames, dtype=np.int64)
    index = frames[:, None] + np.arange(-history, 0)
    pad = index < table.first_frame[frames][:, None]
    index = np.where(pad, 0, index)
    if voices is None:
        e = np.take(table.notes, index, axis=0)
        t = np.take(table.durations, index, axis=0)
        f = np.take(table.flows, index, axis=0)
    else:
        perm = _swap_permutation(np.asarray(voices, dtype=np.int64))
        # Flat row indices let one take() gather and permute at once.
        rows = index[:, :, None] * MAX_VOICES + perm[:, None, :]
        e = np.take(table.notes.reshape(-1, table.notes.shape[-1]), rows, axis=0)
        t = np.take(table.durations.reshape(-1), rows)
        f = np.take(table.flows.reshape(-1), rows[..., None] * MAX_VOICES + perm[:, None, None, :])
    if pad.any():
        e[pad] = 0
        t[pad] = START
        f[pad] = np.eye(MAX_VOICES, dtype=np.int8)
    return {"e": e, "t": t, "f": f, "loc": table.location_class[frames].astype(np.int32)}


def gather_current(table: FrameTable, frames: np.ndarray, voices: np.ndarray) -> dict[str, np.ndarray]:
    """The current frame of each example as the model sees it, channel 0 <-> voice swapped.

    Channels up to the predicted voice show their true notes and durations;
    later channels only what is already determined (CONT with the continuing
    notes, EMPTY), otherwise a masked row (``yt = -1``, zero notes).
    """
    frames = np.asarray(frames, dtype=np.int64)
    voices = np.asarray(voices, dtype=np.int64)
    perm = _swap_permutation(voices)  # swapped channel c shows original channel perm[c]
    rows = frames[:, None] * MAX_VOICES + perm
    durations = np.take(table.durations.reshape(-1), rows)
    notes = np.take(table.notes.reshape(-1, table.notes.shape[-1]), rows, axis=0)
    known = perm <= voices[:, None]
    cont = durations == CONT
    yt = np.where(known | cont | (durations == EMPTY), durations, -1).astype(np.int8)
    y = notes * (known | cont)[..., None].astype(np.int8)
    yf = np.take(table.flows.reshape(-1), rows[:, :, None] * MAX_VOICES + perm[:, None, :])
    return {
        "y": y,
        "yt": yt,
        "yf": yf,
        "duration_target": durations[:, 0].astype(np.int32) - NUM_SPECIAL,
        "notes_target": notes[:, 0],
    }


def gather_examples(table: FrameTable, examples: np.ndarray, history: int = 10) -> dict[str, np.ndarray]:
    """Multi-voice example tensors (SPEC §1.4) for a batch of example indices."""
    examples = np.asarray(examples, dtype=np.int64)
    frames = table.example_frame[examples]
    voices = table.example_voice[examples].astype(np.int64)
    batch = gather_history(table, frames, history, voices)
    batch.update(gather_current(table, frames, voices))
    return batch


def gather_frame_batch(
    table: FrameTable, examples: np.ndarray, history: int = 10, max_frames: Optional[int] = None
) -> dict[str, np.ndarray]:
    """Frame-shared batch: history once per distinct frame, current step per example.

    ``frame`` [B] indexes the per-frame history rows; ``voice`` [B] is the
    channel the model swaps with 0.  With ``max_frames`` the frame axis is
    padded to a static size (padding rows repeat the first frame).
    """
    examples = np.asarray(examples, dtype=np.int64)
    frames = table.example_frame[examples]
    voices = table.example_voice[examples].astype(np.int64)
    unique, slot = np.unique(frames, return_inverse=True)
    if max_frames is not None:
        if unique.shape[0] > max_frames:
            raise ValueError(f"batch spans {unique.shape[0]} frames > max_frames={max_frames}")
        unique = np.concatenate([unique, np.full(max_frames - unique.shape[0], unique[0] if unique.size else 0)])
    batch = gather_history(table, unique, history)
    batch.update(gather_current(table, frames, voices))
    batch["frame"] = slot.astype(np.int32)
    batch["voice"] = voices.astype(np.int32)
    return batch


# ---------------------------------------------------------------------------
# Batch orders


@dataclasses.dataclass(frozen=True)
class BatchPosition:
    """Where a training order stands: resume from here to continue exactly."""

    epoch: int = 0
    batch: int = 0


def encode_corpus(corpus, *, location_arithmetic: str = "reference") -> tuple[dict[str, EncodedScore], dict[str, str]]:
    """Encode every score of a :class:`~voicecomp.data.corpus.Corpus`.

    Returns the encoded scores and, for scores that cannot be encoded (a note
    value outside the vocabulary), the reason; those are left out.
    """
    encoded, rejected = {}, {}
    for score_id, score in corpus.scores.items():
        try:
            encoded[score_id] = encode_score(score, location_arithmetic=location_arithmetic)
        except EncodingError as err:
            rejected[score_id] = str(err)
    return encoded, rejected


def split_tables(corpus, encoded: Mapping[str, EncodedScore], splits: Sequence[str]) -> dict[str, FrameTable]:
    """FrameTable of each named split (``train``, ``test``, ``test_nonpiano``, ``all``)."""
    return {
        split: build_frame_table({k: encoded[k] for k in corpus.split_ids(split) if k in encoded})
        for split in splits
    }
