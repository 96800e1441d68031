"""Voice-part tables: the single-voice dataset (SPEC §1.5, factorization (4), Table 6). Pure numpy.

A *voice-part* is every note and rest of one instrument in one score (piano
corpora excluded; piano staves are already grouped as one ``piano`` part by the
parser), ordered by onset.  The reference rules for overlapping events, applied
here with exact integer-tick arithmetic:

* events of a part are sorted by onset, then duration (shorter first), then
  parse order (record order, then spine order);
* walking the sorted events with ``prev`` (onset of the last kept event) and
  ``next`` (its end), an event starting before ``next`` is merged into the last
  kept event (union of onset bits) when it starts at ``prev`` and ends at
  ``next``, and is dropped otherwise; an event starting after ``next`` (a gap)
  is an error, as it was in the reference;
* each kept event carries 78 onset bits (MIDI 24..101), its duration as an index
  of the canonical 55-symbol vocabulary and the location class
  ``round(48 * (onset - frac(pickup))) mod 48`` (quarter notes; ``round`` is
  Python's round-half-to-even, evaluated exactly).

Parts are ordered by part id ``<score_id>:<instrument>`` (sorted strings, the
reference order) and concatenated into a :class:`PartTable`; every event of a
part is one example.  Histories:

* ``r(m)`` (:func:`gather_part_examples`): the part's previous m events, padded
  before the part's start with zero notes and ``START`` durations.
* ``r~(m)`` (:func:`gather_frame_history_examples`): the reference built it from
  the multi-voice dataset restricted to non-piano corpora -- one example per
  (score, channel v, onset of v at frame j), history = channel v of frames
  j-m..j-1 of the frame encoding (notes, including the copied notes of ``CONT``
  cells, and the 55-symbol durations including ``CONT``/``EMPTY``/``START``),
  location class of the frame encoding.  :func:`gather_part_frame_history` gives
  the same slice for the events of a :class:`PartTable` (the channel of the
  event's first kept note token).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from typing import Mapping, Optional, Sequence

import numpy as np

from voicecomp.data.humdrum import TICKS_PER_QUARTER, KernScore
from voicecomp.encoding import DURATION_QUARTERS, EncodedScore, FrameTable, build_frame_table, encode_score
from voicecomp.vocab import NOTE_VALUES, NUM_LOCATIONS, NUM_SPECIAL, PITCH_OFFSET, PITCH_RANGE, START

# Vocabulary index of every canonical note value, keyed by its length in ticks.
_INDEX_OF_TICKS = {int(v * TICKS_PER_QUARTER): NUM_SPECIAL + i for i, v in enumerate(NOTE_VALUES)}


class PartsError(ValueError):
    """A voice-part violates the single-voice data rules (gap, unknown note value)."""


@dataclasses.dataclass(frozen=True)
class PartStats:
    """What building the parts did, for reporting."""

    raw_events: int = 0  # note/rest tokens of the non-piano parts before merging
    merged_events: int = 0  # same onset and duration as the kept event: bits unioned
    dropped_events: int = 0  # other overlapping events
    dropped_note_events: int = 0  # dropped events that carried notes (not just rests)
    dropped_notes: int = 0  # onset bits outside the pitch window
    unknown_durations: tuple[str, ...] = ()  # note values outside the vocabulary (kept events)


@dataclasses.dataclass(frozen=True)
class PartTable:
    """Voice-parts of a split concatenated along events.

    Event arrays [N]; ``part_start`` [P+1] gives each part's first event.
    ``event_frame``/``event_channel`` locate each event's (first kept) note
    token in its score's frame encoding (frame index within the score).
    """

    part_ids: tuple[str, ...]
    part_start: np.ndarray  # int64 [P+1]
    notes: np.ndarray  # int8 [N, M] onset bits, pitch n = MIDI n + pitch_offset
    durations: np.ndarray  # int8 [N] vocabulary index (3..54)
    location_class: np.ndarray  # int8 [N] 0..47
    onset: np.ndarray  # int64 [N] onset in ticks from the score's start
    event_frame: np.ndarray  # int64 [N] frame of the score (SPEC §1.2 frames)
    event_channel: np.ndarray  # int8 [N] kern channel of that token
    beats: float  # sum of the kept events' durations, quarter notes
    stats: PartStats = PartStats()

    @property
    def num_parts(self) -> int:
        return len(self.part_ids)

    @property
    def num_examples(self) -> int:
        return int(self.durations.shape[0])

    num_events = num_examples

    @property
    def events_per_beat(self) -> float:
        """Events per quarter note of part time (every part spans its score)."""
        return self.num_examples / self.beats

    @property
    def part_lengths(self) -> np.ndarray:
        return np.diff(self.part_start)

    @property
    def score_ids(self) -> tuple[str, ...]:
        """Score id of every part."""
        return tuple(p.rsplit(":", 1)[0] for p in self.part_ids)

    def part_of_event(self, index: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.part_start, np.asarray(index), side="right") - 1

    def example_index(self, part_id: str, event: int) -> int:
        p = self.part_ids.index(part_id)
        if not 0 <= event < self.part_start[p + 1] - self.part_start[p]:
            raise IndexError(f"part {part_id} has no event {event}")
        return int(self.part_start[p] + event)

    def part(self, part_id: str) -> dict[str, np.ndarray]:
        """Arrays of one part."""
        p = self.part_ids.index(part_id)
        s = slice(int(self.part_start[p]), int(self.part_start[p + 1]))
        return {
            "notes": self.notes[s],
            "durations": self.durations[s],
            "location_class": self.location_class[s],
            "onset": self.onset[s],
        }

    def duration_values(self) -> np.ndarray:
        """Quarter-note length of every event (float)."""
        return DURATION_QUARTERS[self.durations]


def _round_half_even_div(num: np.ndarray, den: int) -> np.ndarray:
    """round(num / den) (ties to even) for int64 ``num`` and positive ``den``."""
    q, r = np.divmod(num, den)
    twice = 2 * r
    up = (twice > den) | ((twice == den) & (q % 2 == 1))
    return q + up


def location_classes(onset: np.ndarray, pickup: int) -> np.ndarray:
    """``round(48 * (onset - frac(pickup))) mod 48`` with onset and pickup in ticks.

    Exact: the whole quarters are split off first, so no int64 product can
    overflow (48 * onset would, for long scores, at this tick resolution).
    """
    frac_pickup = int(pickup) % TICKS_PER_QUARTER
    # onset - frac_pickup = q * T + r with 0 <= r < T; 48 q is a multiple of 48.
    _, r = np.divmod(np.asarray(onset, dtype=np.int64) - frac_pickup, TICKS_PER_QUARTER)
    return np.mod(_round_half_even_div(NUM_LOCATIONS * r, TICKS_PER_QUARTER), NUM_LOCATIONS)


def _walk_overlapping(onset: np.ndarray, duration: np.ndarray, label: str) -> np.ndarray:
    """Reference overlap rules on one part's sorted events.

    Returns ``group`` [K]: the position (in the sorted order) of the kept event
    each event belongs to (itself when kept), or -1 when the event is dropped.
    """
    group = np.full(onset.shape[0], -1, dtype=np.int64)
    prev = nxt = 0
    head = -1
    for k, (loc, dur) in enumerate(zip(onset.tolist(), duration.tolist())):
        if loc < nxt:
            if loc == prev and loc + dur == nxt:
                group[k] = head  # same start, same end: one chord
            continue  # otherwise dropped (prev/next unchanged)
        if loc > nxt:
            raise PartsError(
                f"gap in part {label}: event at {Fraction(loc, TICKS_PER_QUARTER)} quarters, "
                f"part reached {Fraction(nxt, TICKS_PER_QUARTER)}"
            )
        prev, nxt, head = loc, loc + dur, k
        group[k] = k
    return group


def _walk_overlapping_float(location: np.ndarray, duration: np.ndarray, label: str) -> np.ndarray:
    """:func:`_walk_overlapping` with the reference's float comparisons (tolerance 1e-4)."""
    group = np.full(location.shape[0], -1, dtype=np.int64)
    prev = nxt = 0.0
    head = -1
    for k, (loc, dur) in enumerate(zip(location.tolist(), duration.tolist())):
        attach = False
        if loc < nxt - 1e-4:
            attach = abs(loc - prev) < 1e-4 and abs(loc + dur - nxt) < 1e-4
            if not attach:
                continue
        if loc > nxt + 1e-4:
            raise PartsError(f"gap in part {label} at {4 * loc} quarters")
        prev, nxt = loc, loc + dur
        if not attach:
            head = k
        group[k] = head
    return group


def score_parts(
    score_id: str,
    score: KernScore,
    *,
    pitch_offset: int = PITCH_OFFSET,
    pitch_range: int = PITCH_RANGE,
    arithmetic: str = "reference",
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int]]:
    """The voice-parts of one parsed score.

    ``arithmetic``: ``exact`` sorts and compares onsets in integer ticks;
    ``reference`` replays the reference's float onsets for parts with
    overlapping events (``KernScore.event_reference_onset``; a clean succession
    of events is unaffected), including its float location classes there.

    Returns ``{part_id: arrays}`` (notes int8 [K, M], duration_ticks int64 [K],
    location_class int8 [K], onset int64 [K], frame int64 [K], channel int8 [K])
    and counters (raw, merged, dropped, dropped_with_notes, dropped_notes).
    """
    num_events = int(score.event_part.shape[0])
    # The parser appends one event per note/rest token, record by record and
    # spine by spine: exactly the onset cells of the frames in row-major order.
    frames, channels = np.nonzero(score.durations > 0)
    if frames.shape[0] != num_events or not np.array_equal(score.durations[frames, channels], score.event_duration):
        raise PartsError(f"{score_id}: part events do not match the frame onsets")
    pitch = score.event_note_pitch.astype(np.int64) - pitch_offset
    inside = (pitch >= 0) & (pitch < pitch_range)
    bits = np.zeros((num_events, pitch_range), dtype=np.int8)
    bits[score.event_note_event[inside], pitch[inside]] = 1
    has_notes = np.zeros(num_events, dtype=bool)
    has_notes[score.event_note_event] = True
    counts = {"raw": num_events, "merged": 0, "dropped": 0, "dropped_with_notes": 0, "dropped_notes": int((~inside).sum())}

    if arithmetic not in ("exact", "reference"):
        raise ValueError(f"unknown arithmetic {arithmetic!r}; expected exact or reference")
    float_onsets: Optional[np.ndarray] = None
    out: dict[str, dict[str, np.ndarray]] = {}
    for p, name in enumerate(score.part_names):
        part_id = f"{score_id}:{name}"
        idx = np.nonzero(score.event_part == p)[0]
        # onset, then duration, then parse order (lexsort is stable)
        idx = idx[np.lexsort((score.event_duration[idx], score.event_onset[idx]))]
        onset = score.event_onset[idx]
        duration = score.event_duration[idx]
        location = None
        if onset.size and onset[0] == 0 and np.array_equal(onset[1:], onset[:-1] + duration[:-1]):
            # the common case: a clean succession of events, nothing to merge or drop
            keep = idx
            notes = bits[idx]
        else:
            if arithmetic == "exact":
                group = _walk_overlapping(onset, duration, part_id)
            else:
                if float_onsets is None:
                    float_onsets = score.event_reference_onset
                raw = np.nonzero(score.event_part == p)[0]
                wholes = score.reference_durations[frames[raw], channels[raw]] / 4.0
                # stable sorts: by duration, then by onset (the reference's order)
                order = np.argsort(wholes, kind="stable")
                order = order[np.argsort(float_onsets[raw][order], kind="stable")]
                idx = raw[order]
                onset = score.event_onset[idx]
                group = _walk_overlapping_float(float_onsets[idx], wholes[order], part_id)
                location = float_onsets[idx]
            kept = group >= 0
            heads = np.nonzero(group == np.arange(group.shape[0]))[0]
            slot = np.searchsorted(heads, group[kept])
            notes = np.zeros((heads.shape[0], pitch_range), dtype=np.int8)
            np.maximum.at(notes, slot, bits[idx[kept]])
            keep = idx[heads]
            if location is not None:
                location = location[heads]
            counts["merged"] += int(kept.sum() - heads.shape[0])
            counts["dropped"] += int((~kept).sum())
            counts["dropped_with_notes"] += int(has_notes[idx[~kept]].sum())
        if part_id in out:
            raise PartsError(f"duplicate part id {part_id}")
        if location is None:
            classes = location_classes(score.event_onset[keep], score.pickup)
        else:  # the reference's float expression, round(48 * loc) % 48
            shifted = 4 * location - score.reference_pickup % 1
            classes = np.array([round(NUM_LOCATIONS * x) % NUM_LOCATIONS for x in shifted.tolist()], dtype=np.int64)
        out[part_id] = {
            "notes": notes,
            "duration_ticks": score.event_duration[keep],
            "location_class": classes.astype(np.int8),
            "onset": score.event_onset[keep],
            "frame": frames[keep].astype(np.int64),
            "channel": channels[keep].astype(np.int8),
        }
    return out, counts


def _duration_indices(ticks: np.ndarray, unknown: set) -> np.ndarray:
    out = np.empty(ticks.shape, dtype=np.int8)
    for value in np.unique(ticks).tolist():
        index = _INDEX_OF_TICKS.get(int(value))
        if index is None:
            unknown.add(str(Fraction(int(value), TICKS_PER_QUARTER)))
            index = -1
        out[ticks == value] = index
    return out


def split_score_ids(corpus, split: str) -> list[str]:
    """Non-piano score ids of a split (``train``, ``test``/``test_nonpiano``, ``all``)."""
    if split == "test_nonpiano":
        split = "test"
    return [s for s in corpus.split_ids(split) if not corpus.is_piano(s)]


def build_parts(
    corpus,
    split: str,
    *,
    pitch_offset: int = PITCH_OFFSET,
    pitch_range: int = PITCH_RANGE,
    arithmetic: str = "reference",
    strict: bool = True,
) -> PartTable:
    """The single-voice dataset of a split: every voice-part of its non-piano scores.

    ``corpus`` is a :class:`voicecomp.data.corpus.Corpus` (``scores``,
    ``split_ids``, ``is_piano``).  With ``strict`` a kept event whose note value
    is not in the canonical vocabulary raises; otherwise it is listed in
    ``stats.unknown_durations`` and its duration index is -1.

    ``arithmetic='exact'`` orders and compares onsets exactly (train
    6,623 parts / 2,012,819 events, test 648 / 214,689); ``'reference'`` (default)
    replays the reference's float onsets where parts overlap, which reproduces
    its counts (test 214,404: in haydn.quartets.op09n3-01, whose two
    ``Violino I`` spines run different tuplets, float onsets of the same
    instant differ in the last bits and reorder the chain, keeping 311 instead
    of 596 events).
    """
    parts: dict[str, dict[str, np.ndarray]] = {}
    totals = {"raw": 0, "merged": 0, "dropped": 0, "dropped_with_notes": 0, "dropped_notes": 0}
    for score_id in split_score_ids(corpus, split):
        score_out, counts = score_parts(
            score_id,
            corpus.scores[score_id],
            pitch_offset=pitch_offset,
            pitch_range=pitch_range,
            arithmetic=arithmetic,
        )
        parts.update(score_out)
        for key, value in counts.items():
            totals[key] += value
    ids = tuple(sorted(parts))
    rows = [parts[p] for p in ids]
    lengths = np.array([r["onset"].shape[0] for r in rows], dtype=np.int64)

    def cat(key: str, empty: np.ndarray) -> np.ndarray:
        return np.concatenate([r[key] for r in rows]) if rows else empty

    unknown: set = set()
    durations = _duration_indices(cat("duration_ticks", np.zeros((0,), np.int64)), unknown)
    if unknown and strict:
        raise PartsError(f"note values outside the vocabulary (quarters): {sorted(unknown)}")
    table = PartTable(
        part_ids=ids,
        part_start=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        notes=cat("notes", np.zeros((0, pitch_range), np.int8)),
        durations=durations,
        location_class=cat("location_class", np.zeros((0,), np.int8)),
        onset=cat("onset", np.zeros((0,), np.int64)),
        event_frame=cat("frame", np.zeros((0,), np.int64)),
        event_channel=cat("channel", np.zeros((0,), np.int8)),
        beats=float(DURATION_QUARTERS[durations[durations >= 0]].sum()),
        stats=PartStats(
            raw_events=totals["raw"],
            merged_events=totals["merged"],
            dropped_events=totals["dropped"],
            dropped_note_events=totals["dropped_with_notes"],
            dropped_notes=totals["dropped_notes"],
            unknown_durations=tuple(sorted(unknown)),
        ),
    )
    return table


# ---------------------------------------------------------------------------
# r(m): the previous m events of the part


def history_index(table: PartTable, indices: np.ndarray, history_m: int) -> tuple[np.ndarray, np.ndarray]:
    """[B, m] event indices of the previous m events and the padding mask (before the part)."""
    indices = np.asarray(indices, dtype=np.int64)
    first = table.part_start[table.part_of_event(indices)]
    index = indices[:, None] + np.arange(-history_m, 0, dtype=np.int64)
    pad = index < first[:, None]
    return np.where(pad, 0, index), pad


def gather_part_examples(table: PartTable, indices: np.ndarray, history_m: int) -> dict[str, np.ndarray]:
    """Single-voice examples with history ``r(m)`` for a batch of event indices.

    Returns
      ``e`` int8 [B, m, M]: onset bits of the previous m events (zeros before the part),
      ``t`` int8 [B, m]: their duration indices (``START`` before the part),
      ``loc`` int32 [B]: location class of the current event,
      ``y`` int8 [B, M] / ``yt`` int8 [B]: the current event's bits and duration index,
      ``duration_target`` int32 [B] (``yt - 3``, one of the 52 note values) and
      ``notes_target`` int8 [B, M] (= ``y``).
    """
    indices = np.asarray(indices, dtype=np.int64)
    index, pad = history_index(table, indices, history_m)
    e = table.notes[index]
    t = table.durations[index]
    if pad.any():
        e[pad] = 0
        t[pad] = START
    return {"e": e, "t": t, **_current_event(table.location_class[indices], table.notes[indices], table.durations[indices])}


def _current_event(location_class: np.ndarray, y: np.ndarray, yt: np.ndarray) -> dict[str, np.ndarray]:
    """The predicted event's inputs and targets (the duration target indexes the 52 note values)."""
    return {
        "loc": location_class.astype(np.int32),
        "y": y,
        "yt": yt,
        "duration_target": yt.astype(np.int32) - NUM_SPECIAL,
        "notes_target": y,
    }


# ---------------------------------------------------------------------------
# r~(m): one channel of the multi-voice frame encoding


def build_voice_frame_table(
    corpus,
    split: str,
    encoded: Optional[Mapping[str, EncodedScore]] = None,
    *,
    location_arithmetic: str = "reference",
) -> FrameTable:
    """FrameTable of the split's non-piano scores (the reference's r~ data set).

    ``encoded`` may supply already-encoded scores (any superset).
    """
    ids = split_score_ids(corpus, split)
    if encoded is None:
        encoded = {}
    chosen = {
        s: encoded[s] if s in encoded else encode_score(corpus.scores[s], location_arithmetic=location_arithmetic)
        for s in ids
    }
    return build_frame_table(chosen)


def _gather_channel_history(
    frames_table: FrameTable, frames: np.ndarray, channels: np.ndarray, history_m: int
) -> dict[str, np.ndarray]:
    frames = np.asarray(frames, dtype=np.int64)
    channels = np.asarray(channels, dtype=np.int64)
    index = frames[:, None] + np.arange(-history_m, 0, dtype=np.int64)
    pad = index < frames_table.first_frame[frames][:, None]
    index = np.where(pad, 0, index)
    e = frames_table.notes[index, channels[:, None]]  # [B, m, M]
    t = frames_table.durations[index, channels[:, None]]  # [B, m]
    if pad.any():
        e[pad] = 0
        t[pad] = START
    return {"e": e, "t": t}


def gather_frame_history_examples(
    frames_table: FrameTable, examples: np.ndarray, history_m: int = 10
) -> dict[str, np.ndarray]:
    """Single-voice examples with history ``r~(m)``, as the reference built them.

    ``examples`` index the multi-voice examples of ``frames_table`` (score,
    channel v, onset frame j; build the table with :func:`build_voice_frame_table`).
    Returns ``e`` int8 [B, m, M] and ``t`` int8 [B, m] (channel v of frames
    j-m..j-1: notes incl. those copied into ``CONT`` cells, durations incl.
    ``CONT``/``EMPTY``; ``START`` and zero notes before the score), ``loc``
    int32 [B] (the frame's location class, SPEC §1.3), ``y``/``yt`` the voice's
    notes and duration index at frame j, ``duration_target``, ``notes_target``.
    Equal to channel 0 of :func:`voicecomp.encoding.gather_examples` after its swap.
    """
    examples = np.asarray(examples, dtype=np.int64)
    frames = frames_table.example_frame[examples]
    voices = frames_table.example_voice[examples].astype(np.int64)
    batch = _gather_channel_history(frames_table, frames, voices, history_m)
    batch.update(_current_event(frames_table.location_class[frames], frames_table.notes[frames, voices],
                                frames_table.durations[frames, voices]))
    return batch


def event_global_frames(table: PartTable, frames_table: FrameTable) -> np.ndarray:
    """int64 [N]: each part event's frame in ``frames_table`` (which must hold its score)."""
    position = {s: i for i, s in enumerate(frames_table.score_ids)}
    try:
        score_index = np.array([position[s] for s in table.score_ids], dtype=np.int64)
    except KeyError as err:
        raise KeyError(f"score {err} of the part table is not in the frame table") from None
    offset = frames_table.score_start[score_index] if score_index.size else np.zeros((0,), np.int64)
    return np.repeat(offset, table.part_lengths) + table.event_frame


def gather_part_frame_history(
    table: PartTable,
    frames_table: FrameTable,
    indices: np.ndarray,
    history_m: int = 10,
    global_frames: Optional[np.ndarray] = None,
) -> dict[str, np.ndarray]:
    """``r~(m)`` for part events: the m frames before the event's frame, restricted to
    the channel of its (first kept) note token; otherwise as :func:`gather_part_examples`
    (targets and location class from the part table).  Pass ``global_frames``
    (:func:`event_global_frames`) to avoid recomputing the map per batch.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if global_frames is None:
        global_frames = event_global_frames(table, frames_table)
    batch = _gather_channel_history(
        frames_table, global_frames[indices], table.event_channel[indices], history_m
    )
    batch.update(_current_event(table.location_class[indices], table.notes[indices], table.durations[indices]))
    return batch


def distinct_note_values(table: PartTable) -> list[Fraction]:
    """The note values (quarters) occurring in the table, ascending."""
    values = np.unique(table.durations)
    return [NOTE_VALUES[v - NUM_SPECIAL] for v in values.tolist() if v >= NUM_SPECIAL]


__all__: Sequence[str] = (
    "PartStats",
    "PartTable",
    "PartsError",
    "build_parts",
    "build_voice_frame_table",
    "distinct_note_values",
    "event_global_frames",
    "gather_frame_history_examples",
    "gather_part_examples",
    "gather_part_frame_history",
    "history_index",
    "location_classes",
    "score_parts",
    "split_score_ids",
)
