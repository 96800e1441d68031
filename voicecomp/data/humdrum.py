"""Humdrum ``**kern`` parser (SPEC §1.2, reference-compatible).

A pure function of the file text: :func:`parse_kern` returns a :class:`KernScore`
holding the frames of the multi-voice encoding (onset bits, durations, flows) and
the per-instrument note events of the single-voice task.

Times are exact: durations and spine frontiers are integers in ticks
(``TICKS_PER_QUARTER`` per quarter note), a resolution at which every note value
of the corpus (including tuplets up to 23-lets and mensural /4 scaling) is an
integer.  A duration that is not is reported as a parse error rather than rounded.
The reference pipeline's floating-point duration (in quarter notes) is kept beside
the exact one only to reproduce its location arithmetic (SPEC §1.3).

Two policies: ``strict`` (the default, SPEC §1.2 as the reference applied it to
KernScores) and ``lenient`` for other Humdrum collections (see :func:`parse_kern`).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Mapping, Optional

import numpy as np

from voicecomp.vocab import MAX_VOICES

NUM_MIDI = 128
# 2^14 covers mensural /4 with four dots on 64th notes; the odd primes cover the
# tuplets of the corpus (n%m rationals) with room to spare.
TICKS_PER_WHOLE = 2**14 * 3**4 * 5**2 * 7**2 * 11 * 13 * 17 * 19 * 23
TICKS_PER_QUARTER = TICKS_PER_WHOLE // 4
# Bounds that keep arithmetic in int64 and reject absurd tokens quickly.
_MAX_DURATION_DIGITS = 6
_MAX_WHOLES = 64

CONT_TICKS = 0  # duration code of a channel whose voice continues a note
EMPTY_TICKS = -1  # duration code of an unused channel

ACCEPTED_EXCLUSIVE = frozenset({"kern", "dynam", "text", "silbe"})
STRICT, LENIENT = "strict", "lenient"
POLICIES = (STRICT, LENIENT)
_PITCH_CLASS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_RATIONAL = re.compile(r"(\d+)%(\d+)")
_DIGITS = re.compile(r"(\d+)")
_LETTERS = re.compile(r"([a-gA-G]+)")
_SHARPS = re.compile(r"(#+)")
_FLATS = re.compile(r"(-+)")
_NUMBERS = re.compile(r"\d+")


class KernParseError(ValueError):
    """A ``**kern`` file violates SPEC §1.2; carries file, 1-based line and reason."""

    def __init__(self, filename: str, line: int, reason: str):
        super().__init__(f"{filename}:{line}: {reason}")
        self.filename = filename
        self.line = line
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class KernScore:
    """A parsed score.

    Frames (one per data record with at least one note or rest onset):
      durations: int64 [F, 6] onset duration in ticks, ``CONT_TICKS`` (0) for a
        continuing voice, ``EMPTY_TICKS`` (-1) for an unused channel.
      reference_durations: float64 [F, 6] the same durations in quarter notes as
        the reference pipeline computed them in floating point (0 / -4 for the
        specials); used only for reference-compatible locations.
      flows: int8 [F, 6, 6], ``flows[j, src, dst] = 1`` if the spine at channel
        ``dst`` in frame j came from channel ``src`` of the previous record.
      note_frame, note_channel, note_pitch: int32 [N] the onset bits (MIDI pitch).
    Part events (single-voice task), one per note/rest token of a kern spine:
      part_names: instrument name per part; event_part, event_onset,
      event_duration (ticks), and event notes as (event_note_event, event_note_pitch);
      event_reference_onset: the onset in whole notes as the reference's float
      frontiers had it (its sort of a part's events follows these bits).
    """

    name: str
    durations: np.ndarray
    reference_durations: np.ndarray
    flows: np.ndarray
    note_frame: np.ndarray
    note_channel: np.ndarray
    note_pitch: np.ndarray
    pickup: int
    reference_pickup: float
    part_names: tuple[str, ...]
    event_part: np.ndarray
    event_onset: np.ndarray
    event_reference_onset: np.ndarray
    event_duration: np.ndarray
    event_note_event: np.ndarray
    event_note_pitch: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.durations.shape[0])

    def onset_bits(self) -> np.ndarray:
        """Dense bool [F, 6, 128] onset bits."""
        bits = np.zeros((self.num_frames, MAX_VOICES, NUM_MIDI), dtype=bool)
        bits[self.note_frame, self.note_channel, self.note_pitch] = True
        return bits


@dataclasses.dataclass
class _Token:
    """Memoised meaning of one kern data token (chord, note or rest)."""

    ticks: int
    reference_wholes: float
    pitches: tuple[int, ...]


def _parse_item(item: str, mensural: bool) -> tuple[int, float, Optional[int]]:
    """One chord item -> (ticks, reference float whole notes, midi pitch or None)."""
    rational = _RATIONAL.search(item)
    if rational:
        num_text, den_text = rational.group(1), rational.group(2)
        if len(num_text) > _MAX_DURATION_DIGITS or len(den_text) > _MAX_DURATION_DIGITS:
            raise ValueError(f"duration out of range in {item!r}")
        numerator, denominator = int(num_text), int(den_text)
        if numerator == 0 or denominator == 0:
            raise ValueError(f"zero in rational duration {item!r}")
        wholes_num, wholes_den = denominator, numerator  # N%M means M/N whole notes
        reference_base = denominator / numerator
    else:
        digits = _DIGITS.search(item)
        if not digits:
            raise ValueError(f"note with unspecified duration {item!r}")
        text = digits.group(1)
        if len(text) > _MAX_DURATION_DIGITS:
            raise ValueError(f"duration out of range in {item!r}")
        value = int(text)
        if value == 0:  # breve, longa, maxima: 0, 00, 000
            wholes_num, wholes_den = 2 ** len(text), 1
            reference_base = 2 ** len(text)
        else:
            wholes_num, wholes_den = 1, value
            reference_base = 1 / float(value)
    if wholes_num > _MAX_WHOLES * wholes_den:
        raise ValueError(f"duration out of range in {item!r}")
    if mensural:
        wholes_den *= 4
        reference_base /= 4
    dots = item.count(".")
    if dots > 8:
        raise ValueError(f"too many dots in {item!r}")
    # base * (2 - 2^-dots) whole notes
    total_num = wholes_num * (2 ** (dots + 1) - 1)
    total_den = wholes_den * 2**dots
    ticks, remainder = divmod(total_num * TICKS_PER_WHOLE, total_den)
    if remainder:
        raise ValueError(f"duration {item!r} is not a multiple of the tick resolution")
    reference = reference_base
    for d in range(dots):
        reference += reference_base / (2 ** (d + 1))
    if "r" in item:
        return ticks, reference, None
    letters = _LETTERS.search(item)
    if not letters:
        raise ValueError(f"unhandled non-note non-rest item {item!r}")
    letters = letters.group(1)
    pitch_class = _PITCH_CLASS[letters[0].lower()]
    octave = 3 + len(letters) if letters[0].islower() else 4 - len(letters)
    sharps = _SHARPS.search(item)
    flats = _FLATS.search(item)
    if sharps and flats:
        raise ValueError(f"note cannot be sharp and flat {item!r}")
    midi = 60 + 12 * (octave - 4) + pitch_class
    midi += len(sharps.group(1)) if sharps else 0
    midi -= len(flats.group(1)) if flats else 0
    if not 0 <= midi < NUM_MIDI:
        raise ValueError(f"pitch out of MIDI range {item!r}")
    return ticks, reference, midi


def _parse_token(token: str, mensural: bool) -> _Token:
    ticks = None
    reference = 0.0
    pitches = []
    for item in token.split(" "):
        item_ticks, item_reference, midi = _parse_item(item, mensural)
        if ticks is not None and item_ticks != ticks:
            raise ValueError("chord specified with inconsistent durations")
        ticks, reference = item_ticks, item_reference
        if midi is not None:
            pitches.append(midi)
    return _Token(ticks, reference, tuple(pitches))


class _Spine:
    __slots__ = ("exclusive", "frontier", "reference_frontier", "source", "instrument", "staff")

    def __init__(self, frontier: int = 0, reference_frontier: float = 0.0):
        self.exclusive: Optional[str] = None
        self.frontier = frontier
        self.reference_frontier = reference_frontier
        self.source: list[int] = []
        self.instrument: Optional[str] = None
        self.staff: Optional[str] = None

    def copy(self) -> "_Spine":
        other = _Spine(self.frontier, self.reference_frontier)
        other.exclusive = self.exclusive
        other.source = list(self.source)
        other.instrument = self.instrument
        other.staff = self.staff
        return other


def _split_lines(text: str) -> list[str]:
    # Universal newlines, but not str.splitlines: Latin-1 \x85 etc. are data.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def parse_kern(
    text: str,
    filename: str = "<string>",
    *,
    mensural: bool = False,
    default_instrument: Optional[str] = None,
    instruments: Optional[Iterable[str]] = None,
    policy: str = STRICT,
    warnings: Optional[list[str]] = None,
) -> KernScore:
    """Parse ``**kern`` text into a :class:`KernScore`.

    Args:
      text: the file contents (decoded from Latin-1 by the caller).
      filename: used in error messages.
      mensural: divide every duration by 4 (the ``jrp/`` corpora).
      default_instrument: instrument of kern spines that declare none.
      instruments: recognised instrument names (digits removed, stripped);
        defaults to the reference table shipped with the package.
      policy: ``"strict"`` (SPEC §1.2, the reference's rules; the paper's numbers
        depend on them) or ``"lenient"`` for other Humdrum collections: spines of
        any exclusive interpretation other than ``**kern`` (``**fb``, ``**fing``,
        ``**harm``, ...) are ignored instead of fatal, and a barline at which the
        kern spines disagree (mensural sources) is a warning instead of an error.
        More kern spines than the 6 channels is an error under both.
      warnings: under the lenient policy, ``"file:line: reason"`` of every
        tolerated irregularity is appended here (if given).
    Raises:
      KernParseError: with file, 1-based line number and reason.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown Humdrum policy {policy!r}; expected one of {POLICIES}")
    lenient = policy == LENIENT
    if instruments is None:
        from voicecomp.data import tables

        instruments = tables.instrument_names()
    known_instruments = frozenset(instruments)
    token_cache: dict[str, _Token] = {}

    def fail(lineno: int, reason: str) -> None:
        raise KernParseError(filename, lineno + 1, reason)

    spines: list[_Spine] = []
    channel_map: dict[int, int] = {}
    layout_changed = True
    record_flow: list[tuple[int, int]] = []
    pickup = 0
    reference_pickup = 0.0
    saw_record = False

    frame_durations: list[list[int]] = []
    frame_reference: list[list[float]] = []
    frame_flows: list[list[tuple[int, int]]] = []
    note_frame: list[int] = []
    note_channel: list[int] = []
    note_pitch: list[int] = []
    part_index: dict[str, int] = {}
    event_part: list[int] = []
    event_onset: list[int] = []
    event_reference_onset: list[float] = []
    event_duration: list[int] = []
    event_note_event: list[int] = []
    event_note_pitch: list[int] = []

    for lineno, line in enumerate(_split_lines(text)):
        if not line:
            fail(lineno, "blank line")
        kind = line[0]
        if kind == "!":
            continue
        tokens = line.split("\t")
        if not saw_record:
            saw_record = True
            spines = [_Spine() for _ in tokens]
        if len(tokens) != len(spines):
            fail(lineno, f"record has {len(tokens)} tokens for {len(spines)} spines")
        num_kern = sum(1 for s in spines if s.exclusive == "kern")
        if num_kern > MAX_VOICES:
            fail(lineno, f"too many kern spines ({num_kern} voices; the model has {MAX_VOICES} channels)")

        if kind == "*":
            for token in tokens:
                if not token.startswith("*"):
                    fail(lineno, "interpretation record mixes other token types")
            if any(len(t) > 1 and t[1] == "*" for t in tokens):
                for i, token in enumerate(tokens):
                    if token == "*":
                        continue
                    if not token.startswith("**"):
                        fail(lineno, "record mixes exclusive and tandem interpretations")
                    name = token[2:]
                    if not name:
                        continue
                    if spines[i].exclusive:
                        fail(lineno, "spine already has an exclusive interpretation")
                    if name not in ACCEPTED_EXCLUSIVE and not lenient:
                        fail(lineno, f"unrecognized exclusive interpretation **{name}")
                    spines[i].exclusive = name
                    layout_changed = True  # a new kern spine needs a channel
                continue
            ops = [t[1:] for t in tokens]
            if any(op in ("v", "^", "-", "+", "x") for op in ops):
                new_spines: list[_Spine] = []
                merging = False
                for i, op in enumerate(ops):
                    if op == "":
                        new_spines.append(spines[i].copy())
                        merging = False
                    elif op == "^":
                        new_spines.append(spines[i].copy())
                        new_spines.append(spines[i].copy())
                        merging = False
                    elif op == "v":
                        if not merging:
                            if i + 1 >= len(spines) or ops[i + 1] != "v":
                                fail(lineno, "spine merge *v without an adjacent *v")
                            merged = spines[i].copy()
                            # Reference-compatible: a merge records the sources of the
                            # first two spines only.
                            merged.source.extend(spines[i + 1].source)
                            new_spines.append(merged)
                        else:
                            if new_spines[-1].exclusive != spines[i].exclusive:
                                fail(lineno, "merging spines with different interpretations")
                            if spines[i].exclusive == "kern" and new_spines[-1].frontier != spines[i].frontier:
                                fail(lineno, "merging spines with inconsistent frontiers")
                        merging = True
                    elif op == "-":
                        merging = False
                    elif op == "+":
                        new_spines.append(spines[i].copy())
                        new_spines.append(_Spine(spines[i].frontier, spines[i].reference_frontier))
                        merging = False
                    elif op == "x":
                        fail(lineno, "spine exchange *x is not supported")
                    else:
                        fail(lineno, f"spine manipulator combined with interpretation *{op}")
                spines = new_spines
                layout_changed = True
            else:
                for i, op in enumerate(ops):
                    if op.startswith("*"):
                        fail(lineno, "record mixes tandem and exclusive interpretations")
                    instrument = None
                    if op.startswith('I":'):
                        instrument = op[3:]
                    elif op.startswith('I"') or op.startswith("I:"):
                        instrument = op[2:]
                    elif op.startswith("I"):
                        instrument = op[1:]
                    elif op.startswith("staff"):
                        spines[i].staff = op[5:]
                    if instrument is not None and _NUMBERS.sub("", instrument).strip() in known_instruments:
                        spines[i].instrument = instrument
            continue

        # Data or barline record: spine flow from the previous such record.
        if layout_changed:
            record_flow = []
            new_channel_map: dict[int, int] = {}
            channel = 0
            for i, spine in enumerate(spines):
                if spine.exclusive != "kern":
                    continue
                for src in spine.source:
                    if src in channel_map:
                        record_flow.append((channel_map[src], channel))
                spine.source = [i]
                new_channel_map[i] = channel
                channel += 1
            channel_map = new_channel_map
            layout_changed = False
            changed_flow = record_flow
            # Until the layout changes again, every record flows identically.
            record_flow = [(c, c) for c in channel_map.values()]
        else:
            changed_flow = record_flow

        if kind == "=":
            first_kern = None
            misaligned = False
            for i, token in enumerate(tokens):
                if not token.startswith("="):
                    fail(lineno, "barline record mixes other token types")
                if spines[i].exclusive == "kern":
                    if first_kern is None:
                        first_kern = spines[i]
                    elif spines[i].frontier != first_kern.frontier and not misaligned:
                        misaligned = True
                        if not lenient:
                            fail(lineno, "spines out of alignment at barline")
                        if warnings is not None:
                            warnings.append(f"{filename}:{lineno + 1}: kern spines out of alignment at barline")
            if line.startswith("=1\t") and first_kern is not None:
                pickup = first_kern.frontier
                reference_pickup = first_kern.reference_frontier
            continue

        durations = [EMPTY_TICKS] * MAX_VOICES
        reference = [-4.0] * MAX_VOICES
        record_time = None
        record_reference_time = 0.0
        frame_index = len(frame_durations)
        for i, token in enumerate(tokens):
            spine = spines[i]
            if spine.exclusive != "kern":
                continue
            if spine.instrument is None:
                if default_instrument is None:
                    fail(lineno, f"data record in spine {i + 1} with no associated instrument")
                spine.instrument = default_instrument
            channel = channel_map[i]
            if token == "." or "q" in token or "Q" in token:
                durations[channel] = CONT_TICKS
                reference[channel] = 0.0
                continue
            if record_time is None:
                record_time = spine.frontier
            elif spine.frontier != record_time:
                fail(lineno, "inconsistent frontier: tokens of a record start at different times")
            record_reference_time = spine.reference_frontier
            parsed = token_cache.get(token)
            if parsed is None:
                try:
                    parsed = _parse_token(token, mensural)
                except ValueError as err:
                    fail(lineno, str(err))
                token_cache[token] = parsed
            part_name = spine.instrument if spine.staff is None else spine.instrument + spine.staff
            if "piano" in part_name:
                part_name = "piano"
            part = part_index.setdefault(part_name, len(part_index))
            event = len(event_part)
            event_part.append(part)
            event_onset.append(spine.frontier)
            event_reference_onset.append(spine.reference_frontier)
            event_duration.append(parsed.ticks)
            for pitch in parsed.pitches:
                note_frame.append(frame_index)
                note_channel.append(channel)
                note_pitch.append(pitch)
                event_note_event.append(event)
                event_note_pitch.append(pitch)
            spine.frontier += parsed.ticks
            spine.reference_frontier += parsed.reference_wholes
            durations[channel] = parsed.ticks
            reference[channel] = 4 * parsed.reference_wholes
        if record_time is None:
            continue
        # Reference-compatible: this check compares the reference's float frontiers,
        # whose rounding lets a null through right where a tuplet run ended.
        for i, token in enumerate(tokens):
            if token == "." and spines[i].exclusive == "kern" and spines[i].reference_frontier <= record_reference_time:
                fail(lineno, f"missing a note in spine {i + 1}")
        frame_durations.append(durations)
        frame_reference.append(reference)
        frame_flows.append(changed_flow if frame_index else [(c, c) for c in range(MAX_VOICES)])

    num_frames = len(frame_durations)
    flows = np.zeros((num_frames, MAX_VOICES, MAX_VOICES), dtype=np.int8)
    for j, pairs in enumerate(frame_flows):
        for src, dst in pairs:
            flows[j, src, dst] = 1
    return KernScore(
        name=filename,
        durations=np.asarray(frame_durations, dtype=np.int64).reshape(num_frames, MAX_VOICES),
        reference_durations=np.asarray(frame_reference, dtype=np.float64).reshape(num_frames, MAX_VOICES),
        flows=flows,
        note_frame=np.asarray(note_frame, dtype=np.int32),
        note_channel=np.asarray(note_channel, dtype=np.int32),
        note_pitch=np.asarray(note_pitch, dtype=np.int32),
        pickup=int(pickup),
        reference_pickup=4 * reference_pickup,
        part_names=tuple(part_index),
        event_part=np.asarray(event_part, dtype=np.int32),
        event_onset=np.asarray(event_onset, dtype=np.int64),
        event_reference_onset=np.asarray(event_reference_onset, dtype=np.float64),
        event_duration=np.asarray(event_duration, dtype=np.int64),
        event_note_event=np.asarray(event_note_event, dtype=np.int32),
        event_note_pitch=np.asarray(event_note_pitch, dtype=np.int32),
    )
