"""Writers for voice-level scores: ``**kern``, MusicXML, MIDI, WAV, piano-roll PNG and SVG.

A :class:`Voices` holds, per channel (at most 6), the channel's onsets (notes,
chords or rests) with their times and durations in quarter notes.  Build one from
the frame arrays of the encoding (:func:`voices_from_frames`; corpus scores and
sampled scores have the same arrays) or by hand.

``**kern`` export is exact for frame arrays: :func:`to_kern` writes one data
record per frame, one ``**kern`` spine per channel (channel order = spine order,
``.`` where a channel continues), so that ``parse_kern`` + ``encode_score`` give
back the same ``notes`` and ``durations`` (SPEC §1.2-1.3).  Where a channel's
onsets are not consistent on their own (in the corpus the voice moved between
spines through ``*^``/``*v``/``*-``, or the channel's number changed when a spine
to its left was split or ended), the writer inserts spine manipulations that give
the channel a spine with the right frontier (a copy of a spine whose note ends at
that time), and, where the original relied on the parser accepting a grace note
as a null at the very end of a note, a grace note.  The frame times are those
implied by the written file and equal the original score's frame times.

The other writers only need the notes: :func:`to_musicxml` (one part per voice, ties across
barlines; :func:`voicecomp.data.musicxml.read_musicxml` reads it back), :func:`to_midi` (mido), :func:`to_wav`
(numpy additive synthesis or the ``fluidsynth`` executable),
:func:`to_pianoroll_png` (matplotlib, Agg) and :func:`to_svg` (verovio, optional
``voicecomp[render]`` extra).  :func:`export_score` writes several at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import shutil
import subprocess
import sys
import tempfile
import wave
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np

from voicecomp.vocab import CONT, EMPTY, MAX_VOICES, NOTE_VALUE_TICKS_PER_QUARTER, NOTE_VALUES, NUM_SPECIAL
from voicecomp.vocab import PITCH_OFFSET, START

PathLike = Union[str, os.PathLike]
MIDI_TICKS_PER_QUARTER = 480
DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
RENDER_EXTRA_HINT = "pip install 'voicecomp[render]'"
_VOCAB_TICKS = [0] * NUM_SPECIAL + [int(v * NOTE_VALUE_TICKS_PER_QUARTER) for v in NOTE_VALUES]

# Cell codes of a frame grid (>= 0: index of the event starting there).
_GRID_EMPTY = -2
_GRID_CONT = -1


class ExportError(ValueError):
    """A score cannot be written in the requested form."""


class Note(NamedTuple):
    """One onset of a voice: a note, a chord or (no pitches) a rest."""

    onset: Fraction  # quarter notes from the start
    duration: Fraction  # quarter notes
    pitches: tuple[int, ...]  # MIDI numbers, ascending; () is a rest

    @property
    def end(self) -> Fraction:
        return self.onset + self.duration

    @property
    def is_rest(self) -> bool:
        return not self.pitches


@dataclasses.dataclass(frozen=True)
class FrameGrid:
    """Exact frame layout of a score (kept by :func:`voices_from_frames`).

    ``cells[j][c]`` is ``-2`` (channel unused), ``-1`` (the channel's note
    continues) or the index in ``Voices.voices[c]`` of the event starting at
    frame ``j``.  ``times`` are the frame times in ``unit`` ticks per quarter.
    ``repairs`` maps a frame to the spine-manipulation records written before
    it; ``grace`` lists the (frame, channel) continuations written as grace
    notes; ``aligned`` maps a frame to the common frontier of all spines after
    it (where a barline may go).
    """

    unit: int
    times: tuple[int, ...]
    cells: tuple[tuple[int, ...], ...]
    repairs: Mapping[int, tuple[tuple[str, ...], ...]]
    grace: frozenset
    aligned: Mapping[int, int]

    @property
    def num_frames(self) -> int:
        return len(self.times)


@dataclasses.dataclass(frozen=True)
class Voices:
    """Voice-level score: per channel the list of its onsets, in time order.

    ``pickup`` (quarter notes) places the first barline; ``grid`` (optional)
    is the exact frame layout used by :func:`to_kern` for a faithful file.
    """

    voices: tuple[tuple[Note, ...], ...]
    pickup: Fraction = Fraction(0)
    grid: Optional[FrameGrid] = None

    def __post_init__(self):
        if len(self.voices) > MAX_VOICES:
            raise ExportError(f"{len(self.voices)} voices; a kern score holds at most {MAX_VOICES}")

    @classmethod
    def from_lists(cls, voices: Sequence[Iterable], pickup=0) -> "Voices":
        """Build from per-voice sequences of ``(onset, duration, pitches)``."""
        out = []
        for voice in voices:
            notes = [Note(Fraction(o), Fraction(d), tuple(sorted(int(p) for p in ps))) for o, d, ps in voice]
            notes.sort(key=lambda n: n.onset)
            out.append(tuple(notes))
        return cls(tuple(out), Fraction(pickup))

    @property
    def num_voices(self) -> int:
        """Number of channels with at least one onset."""
        return sum(1 for v in self.voices if v)

    @property
    def end(self) -> Fraction:
        """Time (quarters) at which the last note ends."""
        return max((n.end for v in self.voices for n in v), default=Fraction(0))

    def onset_counts(self) -> list[int]:
        return [len(v) for v in self.voices]

    def num_notes(self) -> int:
        """Number of sounding pitches over all onsets (rests count 0)."""
        return sum(len(n.pitches) for v in self.voices for n in v)


# ---------------------------------------------------------------------------
# Frame arrays -> Voices


def voices_from_frames(
    notes: np.ndarray,
    durations: np.ndarray,
    pitch_offset: int = PITCH_OFFSET,
    *,
    pickup: Union[Fraction, int, float] = 0,
) -> Voices:
    """Voices of encoded frame arrays (SPEC §1.3), one voice per channel.

    Args:
      notes: int [F, V, M] onset bits (pitch index + ``pitch_offset`` = MIDI).
      durations: int [F, V] vocabulary indices (``CONT``, ``EMPTY``, note values;
        padding rows of only ``START``/``EMPTY`` are skipped).
      pickup: quarter notes before the first barline (for barlines only).
    Flows are not needed: a channel is one voice, ``CONT`` extends it, ``EMPTY``
    means the channel is unused in that frame.  Frame times follow from the
    durations (the earliest end among the channels' notes), with the spine
    repairs described in the module docstring where a channel is inconsistent.
    """
    notes = np.asarray(notes)
    durations = np.asarray(durations).astype(np.int64)
    if durations.ndim != 2 or notes.shape[:2] != durations.shape:
        raise ExportError(f"notes {notes.shape} and durations {durations.shape} do not match")
    start = durations == START
    keep = ~(start.any(axis=1) & (start | (durations == EMPTY)).all(axis=1))  # padding rows
    if not keep.all():
        notes, durations = notes[keep], durations[keep]
    num_frames, num_channels = durations.shape
    if num_channels > MAX_VOICES:
        raise ExportError(f"{num_channels} channels; at most {MAX_VOICES}")
    if ((durations < 0) | (durations == START) | (durations >= len(_VOCAB_TICKS))).any():
        raise ExportError("durations must be vocabulary indices (CONT, EMPTY or a note value)")
    onset = durations >= NUM_SPECIAL
    if num_frames and not onset.any(axis=1).all():
        raise ExportError("every frame needs at least one onset")
    empty = durations == EMPTY
    if (empty[:, :-1] & ~empty[:, 1:]).any():
        raise ExportError("unused (EMPTY) channels must follow the used ones in every frame")
    if num_frames and (durations[0] == CONT).any():
        raise ExportError("the first frame continues a note")

    # Per-frame kinds (1 onset, 0 continue) of the used channels and onset ticks.
    ticks_table = np.asarray(_VOCAB_TICKS, dtype=np.int64)
    ticks = ticks_table[durations]
    used = (~empty).sum(axis=1).tolist()
    kinds = [row[:n] for row, n in zip(onset.tolist(), used)]
    plan = _plan_frames(kinds, ticks.tolist())
    if plan is None:  # cannot happen: a copy of the latest spine always fits
        raise ExportError("no spine layout reproduces these frames")
    times, repairs, grace, aligned = plan

    # Events: onset cells in frame order per channel, pitches from the bits.
    jj, cc = np.nonzero(onset)
    rows, pitch_idx = np.nonzero(notes[jj, cc])
    pitch_list = (pitch_idx + pitch_offset).tolist()
    bounds = np.searchsorted(rows, np.arange(jj.shape[0] + 1)).tolist()
    index_list = durations[jj, cc].tolist()
    cells = np.where(empty, _GRID_EMPTY, _GRID_CONT).astype(np.int64)
    voices: list[list[Note]] = [[] for _ in range(num_channels)]
    unit = NOTE_VALUE_TICKS_PER_QUARTER
    frame_time = [Fraction(t, unit) for t in times]
    values = (None,) * NUM_SPECIAL + NOTE_VALUES
    for i, (j, c) in enumerate(zip(jj.tolist(), cc.tolist())):
        voice = voices[c]
        cells[j, c] = len(voice)
        voice.append(Note(frame_time[j], values[index_list[i]], tuple(pitch_list[bounds[i] : bounds[i + 1]])))
    grid = FrameGrid(
        unit=unit,
        times=tuple(times),
        cells=tuple(map(tuple, cells.tolist())),
        repairs=repairs,
        grace=frozenset(grace),
        aligned=aligned,
    )
    return Voices(tuple(tuple(v) for v in voices), Fraction(pickup), grid)


def voices_from_score(score) -> Voices:
    """Voices of a parsed score (a :class:`~voicecomp.data.humdrum.KernScore` from any reader),
    one per channel, straight from its ticks: note values need not be in the model's
    vocabulary (no encoding involved).  Frame times are the onsets of the frame's events."""
    from voicecomp.data.humdrum import TICKS_PER_QUARTER

    durations = np.asarray(score.durations)
    onset = durations > 0
    # Events were recorded frame by frame, channel by channel: the first of each frame's
    # events carries the frame's time.
    per_frame = onset.sum(axis=1)
    first_event = np.concatenate([[0], np.cumsum(per_frame)[:-1]]).astype(np.int64)
    times = np.asarray(score.event_onset, dtype=np.int64)[first_event] if durations.shape[0] else np.zeros(0, np.int64)
    pitches: dict[tuple[int, int], list[int]] = {}
    for j, c, p in zip(score.note_frame.tolist(), score.note_channel.tolist(), score.note_pitch.tolist()):
        pitches.setdefault((j, c), []).append(p)
    voices: list[list[Note]] = [[] for _ in range(durations.shape[1] if durations.ndim == 2 else 0)]
    for j, c in zip(*np.nonzero(onset)):
        j, c = int(j), int(c)
        voices[c].append(Note(Fraction(int(times[j]), TICKS_PER_QUARTER),
                              Fraction(int(durations[j, c]), TICKS_PER_QUARTER),
                              tuple(sorted(pitches.get((j, c), ())))))
    while voices and not voices[-1]:
        voices.pop()
    return Voices(tuple(tuple(sorted(v, key=lambda n: n.onset)) for v in voices),
                  Fraction(int(score.pickup), TICKS_PER_QUARTER))


def _plan_frames(kinds: list[list[int]], ticks: list[list[int]]):
    """Frame times and spine manipulations of a one-record-per-frame kern file.

    Each kern spine has a frontier (the time its last note ends).  At a frame,
    the onset channels' spines must all be at the frame time T and the continuing
    ones beyond it (or exactly at it, written as a grace note, which the parser
    treats as a null without the check).  Where the spines carried over from
    the previous frame do not fit, choose an order-preserving copy of them
    (``*^`` duplicates, ``*-`` ends) that does, with as few moved channels as
    possible (copies of the spine with the latest frontier always fit, so a
    layout exists for any arrays; None only if that invariant breaks).
    """
    if not kinds:
        return [], {}, [], {}
    frontier = [ticks[0][c] for c in range(len(kinds[0]))]
    times = [0]
    repairs: dict[int, tuple[tuple[str, ...], ...]] = {}
    grace: list[tuple[int, int]] = []
    aligned: dict[int, int] = {}
    if len(set(frontier)) == 1:
        aligned[0] = frontier[0]
    for j in range(1, len(kinds)):
        kind = kinds[j]
        n, m = len(kind), len(frontier)
        current = frontier if n == m else frontier[:n]
        T = min(current) if n <= m else None
        # Consistent: exactly the onset channels are at the earliest frontier.
        if T is not None and [f == T for f in current] == kind:
            if n < m:
                repairs[j] = (tuple(["*"] * n + ["*-"] * (m - n)),)
                frontier = current
        else:
            best = _best_sources(frontier, kind)
            if best is None:
                return None
            T, sources = best
            repairs[j] = _manipulations(sources, m)
            frontier = [frontier[s] for s in sources]
            for c, k in enumerate(kind):
                if not k and frontier[c] == T:
                    grace.append((j, c))
        times.append(T)
        frontier = [T + d if k else f for f, k, d in zip(frontier, kind, ticks[j])]
        if frontier.count(frontier[0]) == n:
            aligned[j] = frontier[0]
    return times, repairs, grace, aligned


def _best_sources(frontier: list[int], kind: list[int]):
    """(T, sources) minimising moved channels (+2 per grace continuation)."""
    m = len(frontier)
    best = None
    for T in sorted(set(frontier)):
        # DP over channels; state: source spine of the previous channel.
        prev = {-1: (0, ())}
        for c, k in enumerate(kind):
            cur: dict[int, tuple[int, tuple[int, ...]]] = {}
            floor = min(prev)
            for s in range(floor, m):
                f = frontier[s]
                if k:
                    if f != T:
                        continue
                    extra = 0
                elif f > T:
                    extra = 0
                elif f == T:
                    extra = 2
                else:
                    continue
                options = [v for p, v in prev.items() if p <= s]
                if not options:
                    continue
                cost, path = min(options)
                cur[s] = (cost + extra + (s != c), path + (s,))
            prev = cur
            if not prev:
                break
        if prev:
            cost, path = min(prev.values())
            if best is None or cost < best[0]:
                best = (cost, T, path)
    return None if best is None else (best[1], list(best[2]))


def _manipulations(sources: Sequence[int], num_spines: int) -> tuple[tuple[str, ...], ...]:
    """Interpretation records turning ``num_spines`` spines into copies ``sources``."""
    counts = [0] * num_spines
    for s in sources:
        counts[s] += 1
    records = []
    while any(k != 1 for k in counts):
        record, new = [], []
        for k in counts:
            if k == 0:
                record.append("*-")
            elif k == 1:
                record.append("*")
                new.append(1)
            else:
                record.append("*^")
                new += [1, k - 1]
        records.append(tuple(record))
        counts = new
    return tuple(records)


def _grid_from_voices(voices: Voices):
    """Frame grid of hand-built voices: each non-empty voice one spine, gaps
    filled with rests, overlaps cut, every voice padded to the common end."""
    channels = [list(v) for v in voices.voices if v]
    if not channels:
        raise ExportError("no notes to write")
    end = max(n.end for v in channels for n in v)
    filled: list[list[Note]] = []
    for voice in channels:
        voice = sorted(voice, key=lambda n: n.onset)
        out: list[Note] = []
        t = Fraction(0)
        for i, note in enumerate(voice):
            if note.onset > t:
                out.append(Note(t, note.onset - t, ()))
            elif note.onset < t:
                raise ExportError(f"voice has overlapping notes at {note.onset} quarters")
            stop = voice[i + 1].onset if i + 1 < len(voice) else end
            duration = min(note.duration, stop - note.onset)
            if duration > 0:
                out.append(Note(note.onset, duration, note.pitches))
                t = note.onset + duration
        if t < end:
            out.append(Note(t, end - t, ()))
        filled.append(out)
    unit = math.lcm(*(x.denominator for v in filled for n in v for x in (n.onset, n.duration)))
    times = sorted({int(n.onset * unit) for v in filled for n in v})
    index = {t: j for j, t in enumerate(times)}
    cells = [[_GRID_CONT] * len(filled) for _ in times]
    for c, voice in enumerate(filled):
        for e, note in enumerate(voice):
            cells[index[int(note.onset * unit)]][c] = e
    kinds = [[x >= 0 for x in row] for row in cells]
    ticks = [[int(filled[c][x].duration * unit) if x >= 0 else 0 for c, x in enumerate(row)] for row in cells]
    plan = _plan_frames(kinds, ticks)
    if plan is None or plan[0] != times:  # cannot happen for contiguous voices
        raise ExportError("internal error: inconsistent voices")
    _, repairs, grace, aligned = plan
    grid = FrameGrid(unit, tuple(times), tuple(map(tuple, cells)), repairs, frozenset(grace), aligned)
    return tuple(tuple(v) for v in filled), grid


# ---------------------------------------------------------------------------
# **kern


_PITCH_NAMES = ("c", "c#", "d", "d#", "e", "f", "f#", "g", "g#", "a", "a#", "b")


def kern_pitch(midi: int) -> str:
    """MIDI number -> kern pitch (c = 60, cc = 72, C = 48, CC = 36; sharps ``#``)."""
    octave, pc = divmod(int(midi), 12)
    octave -= 1
    name = _PITCH_NAMES[pc]
    if octave >= 4:
        return name[0] * (octave - 3) + name[1:]
    return name[0].upper() * (4 - octave) + name[1:]


_KERN_PITCH = tuple(kern_pitch(p) for p in range(128))


def kern_duration(quarters: Union[Fraction, int, str]) -> str:
    """Kern duration of a note value in quarter notes.

    Plain reciprocals (``4`` quarter, ``12`` triplet eighth, ``34`` = 2/17
    quarter), dotted ones (``4.`` = 3/2, ``48..`` = 7/48, ``3..`` = 7/3),
    breves/longas ``0``, ``00``, ``000`` (dotted too), else ``N%M`` (M/N whole notes).
    """
    q = Fraction(quarters)
    if q <= 0:
        raise ExportError(f"note value must be positive, got {q}")
    whole = q / 4
    if whole.numerator == 1:
        return str(whole.denominator)
    for dots in range(1, 4):
        base = whole * 2**dots / (2 ** (dots + 1) - 1)
        if base.numerator == 1:
            return str(base.denominator) + "." * dots
    for dots in range(0, 4):
        base = whole * 2**dots / (2 ** (dots + 1) - 1)
        if base.denominator == 1 and base.numerator in (2, 4, 8):
            return "0" * {2: 1, 4: 2, 8: 3}[base.numerator] + "." * dots
    return f"{whole.denominator}%{whole.numerator}"


def _token(note: Note, duration_cache: dict, token_cache: dict) -> str:
    # Fraction hashing is slow: cache duration spellings by object identity.
    entry = duration_cache.get(id(note.duration))
    if entry is None or entry[0] is not note.duration:
        entry = duration_cache[id(note.duration)] = (note.duration, kern_duration(note.duration))
    key = (entry[1], note.pitches)
    token = token_cache.get(key)
    if token is None:
        d = entry[1]
        token = token_cache[key] = " ".join(d + _KERN_PITCH[p] for p in note.pitches) if note.pitches else d + "r"
    return token


def to_kern(
    voices: Voices,
    meter: tuple[int, int] = (4, 4),
    header: Optional[Mapping[str, object]] = None,
    *,
    instrument: str = "voice",
) -> str:
    """``**kern`` text of ``voices`` (one spine per channel, one record per frame).

    ``header`` items become reference records ``!!!KEY: value`` (e.g. ``COM``,
    ``OTL``, ``model``, ``seed``).  Barlines ``=k`` are written from ``meter``
    and ``voices.pickup`` where every spine reaches the bar line together; a
    note across a barline is not split (ties would be re-read as new onsets).
    The text re-parses with ``parse_kern(text, mensural=False)``; for voices
    from :func:`voices_from_frames` it re-encodes to the same notes and durations.
    """
    if voices.grid is not None:
        events, grid = voices.voices, voices.grid
    else:
        events, grid = _grid_from_voices(voices)
    if grid.num_frames == 0:
        raise ExportError("no frames to write")
    num, den = meter
    measure = Fraction(4 * num, den)
    pickup = Fraction(voices.pickup) % measure if measure else Fraction(0)
    unit = grid.unit
    measure_ticks = measure * unit
    pickup_ticks = pickup * unit
    if measure_ticks.denominator == 1 and pickup_ticks.denominator == 1:
        measure_ticks, pickup_ticks = int(measure_ticks), int(pickup_ticks)

    lines: list[str] = []
    for key, value in (header or {}).items():
        for i, text in enumerate(str(value).splitlines() or [""]):
            lines.append(f"!!!{key}: {text}" if i == 0 else f"!!! {text}")
    n0 = sum(1 for x in grid.cells[0] if x != _GRID_EMPTY)
    clefs = []
    for c in range(n0):
        pitches = [p for note in events[c] for p in note.pitches]
        clefs.append("*clefG2" if not pitches or float(np.median(pitches)) >= 60 else "*clefF4")
    tab = "\t"
    lines.append(tab.join(["**kern"] * n0))
    lines.append(tab.join([f'*I"{instrument}'] * n0))
    lines.append(tab.join(clefs))
    lines.append(tab.join([f"*M{num}/{den}"] * n0))

    duration_cache: dict = {}
    token_cache: dict = {}
    repairs, grace, aligned = grid.repairs, grid.grace, grid.aligned
    width = n0
    for j, row in enumerate(grid.cells):
        for record in repairs.get(j, ()):
            lines.append(tab.join(record))
        tokens = []
        for c, cell in enumerate(row):
            if cell >= 0:
                tokens.append(_token(events[c][cell], duration_cache, token_cache))
            elif cell == _GRID_CONT:
                if grace and (j, c) in grace:
                    last = _last_event(events[c], grid, j, c)
                    tokens.append("8" + (kern_pitch(last.pitches[0]) if last and last.pitches else "r") + "q")
                else:
                    tokens.append(".")
        width = len(tokens)
        lines.append(tab.join(tokens))
        t = aligned.get(j)
        if t is not None and measure_ticks and j + 1 < grid.num_frames:
            offset = t - pickup_ticks
            if offset >= 0 and t > 0 and offset % measure_ticks == 0:
                number = int(offset // measure_ticks) + 1
                lines.append(tab.join([f"={number}"] * width))
    if grid.num_frames - 1 in aligned:
        lines.append(tab.join(["=="] * width))
    lines.append(tab.join(["*-"] * width))
    return "\n".join(lines) + "\n"


def _last_event(voice: Sequence[Note], grid: FrameGrid, j: int, c: int) -> Optional[Note]:
    for k in range(j - 1, -1, -1):
        cell = grid.cells[k][c]
        if cell >= 0:
            return voice[cell]
        if cell == _GRID_EMPTY:
            return None
    return None


# ---------------------------------------------------------------------------
# MIDI


def to_midi(
    voices: Voices,
    path: Optional[PathLike] = None,
    tempo_bpm: float = 100,
    *,
    program: int = 52,
    velocity: int = 80,
):
    """Type-1 MIDI file: a tempo track and one track per non-empty voice
    (General MIDI ``program``, 52 = choir aahs; 0 = piano), 480 ticks per quarter.
    Writes ``path`` if given and returns the ``mido.MidiFile``."""
    import mido

    midi = mido.MidiFile(type=1, ticks_per_beat=MIDI_TICKS_PER_QUARTER)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    conductor.append(mido.MetaMessage("end_of_track", time=0))
    midi.tracks.append(conductor)
    track_no = 0
    for c, voice in enumerate(voices.voices):
        if not voice:
            continue
        channel = track_no if track_no < 9 else track_no + 1  # skip percussion
        track_no += 1
        track = mido.MidiTrack()
        track.append(mido.MetaMessage("track_name", name=f"voice {c + 1}", time=0))
        track.append(mido.Message("program_change", program=program, channel=channel, time=0))
        events = []
        for note in voice:
            on = int(round(note.onset * MIDI_TICKS_PER_QUARTER))
            off = max(on + 1, int(round(note.end * MIDI_TICKS_PER_QUARTER)))
            for p in note.pitches:
                events.append((on, 1, p))
                events.append((off, 0, p))
        events.sort()  # note_off before note_on at the same tick
        now = 0
        for tick, is_on, p in events:
            kind = "note_on" if is_on else "note_off"
            track.append(mido.Message(kind, note=p, velocity=velocity if is_on else 0, channel=channel, time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        midi.tracks.append(track)
    if path is not None:
        midi.save(os.fspath(path))
    return midi


# ---------------------------------------------------------------------------
# WAV

WAV_RELEASE_SECONDS = 0.25
_HARMONICS = np.array([1.0, 0.5, 0.3, 0.15, 0.08])


def synthesize(voices: Voices, sample_rate: int = 22050, tempo_bpm: float = 100) -> np.ndarray:
    """Float mono signal (peak 0.9) of an additive synthesizer: a few harmonics
    per pitch, 10 ms attack, gentle decay and a release tail of
    ``WAV_RELEASE_SECONDS``.  Length: ``ceil(end_seconds * rate) + release``."""
    seconds_per_quarter = 60.0 / tempo_bpm
    end_seconds = float(voices.end) * seconds_per_quarter
    release = int(WAV_RELEASE_SECONDS * sample_rate)
    total = int(math.ceil(end_seconds * sample_rate)) + release
    out = np.zeros(total, dtype=np.float64)
    attack = max(1, int(0.01 * sample_rate))
    cache: dict[tuple[int, int], np.ndarray] = {}
    for voice in voices.voices:
        for note in voice:
            if not note.pitches:
                continue
            start = int(round(float(note.onset) * seconds_per_quarter * sample_rate))
            length = max(1, int(round(float(note.duration) * seconds_per_quarter * sample_rate)))
            for p in note.pitches:
                key = (p, length)
                tone = cache.get(key)
                if tone is None:
                    tone = cache[key] = _tone(p, length, release, attack, sample_rate)
                stop = min(total, start + tone.shape[0])
                out[start:stop] += tone[: stop - start]
    peak = np.abs(out).max() if out.size else 0.0
    if peak > 0:
        out *= 0.9 / peak
    return out


def _tone(pitch: int, length: int, release: int, attack: int, sample_rate: int) -> np.ndarray:
    frequency = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    n = length + release
    t = np.arange(n) / sample_rate
    harmonics = _HARMONICS[: max(1, min(len(_HARMONICS), int(sample_rate / 2 / frequency)))]
    phase = 2 * np.pi * frequency * t
    signal = sum(a * np.sin((k + 1) * phase) for k, a in enumerate(harmonics))
    envelope = np.exp(-1.5 * t)
    envelope[:attack] *= np.linspace(0.0, 1.0, attack, endpoint=False)
    tail = np.linspace(1.0, 0.0, release) if release else np.zeros(0)
    envelope[length:] *= tail
    return signal * envelope


def _write_wav(path: PathLike, signal: np.ndarray, sample_rate: int) -> None:
    data = np.clip(np.round(signal * 32767), -32768, 32767).astype("<i2")
    with wave.open(os.fspath(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(sample_rate)
        handle.writeframes(data.tobytes())


def to_wav(
    voices: Voices,
    path: PathLike,
    sample_rate: int = 22050,
    tempo_bpm: float = 100,
    *,
    synth: str = "additive",
    soundfont: PathLike = DEFAULT_SOUNDFONT,
    program: int = 52,
) -> str:
    """16-bit mono WAV of ``voices``.  ``synth='additive'`` (numpy, default) or
    ``'fluidsynth'`` (renders :func:`to_midi` through the ``fluidsynth``
    executable and ``soundfont``; falls back to additive with a warning when
    either is missing or rendering fails).  Returns the synth actually used."""
    if synth not in ("additive", "fluidsynth"):
        raise ValueError(f"unknown synth {synth!r}; expected 'additive' or 'fluidsynth'")
    if synth == "fluidsynth":
        executable = shutil.which("fluidsynth")
        if executable is None or not Path(soundfont).is_file():
            missing = "fluidsynth executable" if executable is None else f"soundfont {soundfont}"
            warnings.warn(f"{missing} not found; using the additive synthesizer", stacklevel=2)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                midi_path = Path(tmp) / "score.mid"
                to_midi(voices, midi_path, tempo_bpm, program=program)
                command = [executable, "-ni", "-g", "0.8", "-r", str(sample_rate), "-F", os.fspath(path),
                           os.fspath(soundfont), os.fspath(midi_path)]
                result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode == 0 and Path(path).is_file() and Path(path).stat().st_size > 44:
                return "fluidsynth"
            warnings.warn(f"fluidsynth failed ({result.returncode}): {result.stderr.strip()[:200]}; "
                          "using the additive synthesizer", stacklevel=2)
    _write_wav(path, synthesize(voices, sample_rate, tempo_bpm), sample_rate)
    return "additive"


# ---------------------------------------------------------------------------
# Piano roll

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


def to_pianoroll_png(voices: Voices, path: PathLike, *, title: Optional[str] = None, dpi: int = 100) -> str:
    """Piano roll: time in beats (quarter notes) against MIDI pitch, one colour
    per voice.  Uses matplotlib's Agg canvas without touching the global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    end = float(voices.end) or 1.0
    fig = Figure(figsize=(min(40.0, max(6.0, end / 8)), 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    low, high = 127, 0
    for c, voice in enumerate(voices.voices):
        items = [(float(n.onset), float(n.duration), p) for n in voice for p in n.pitches]
        if not items:
            continue
        onset, width, pitch = (np.array(x) for x in zip(*items))
        low, high = min(low, int(pitch.min())), max(high, int(pitch.max()))
        ax.barh(pitch, width, left=onset, height=0.8, color=_COLOURS[c % len(_COLOURS)],
                edgecolor="black", linewidth=0.2, label=f"voice {c + 1}")
    if high >= low:
        ax.set_ylim(low - 2, high + 2)
        ax.legend(loc="upper right", fontsize="small")
    ax.set_xlim(0, end)
    ax.set_xlabel("time (beats)")
    ax.set_ylabel("MIDI pitch")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png", dpi=dpi)
    return os.fspath(path)


# ---------------------------------------------------------------------------
# SVG (verovio)


@dataclasses.dataclass(frozen=True)
class SvgRender:
    """Result of :func:`to_svg`: written pages and verovio's log."""

    paths: tuple[str, ...]
    log: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.log.splitlines() if "rror" in line]


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Collect what native code writes to file descriptor 2 (verovio's Python wheel
    prints its messages there, not to ``toolkit.getLog()``)."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(line for line in sink.read().decode("utf-8", "replace").splitlines() if line.strip())


def _verovio_toolkit(options: Optional[Mapping[str, object]] = None):
    try:
        import verovio
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"SVG export needs verovio: {RENDER_EXTRA_HINT}") from err
    verovio.enableLog(verovio.LOG_WARNING)
    toolkit = verovio.toolkit()
    settings = {"inputFrom": "humdrum", "scale": 40, "adjustPageHeight": True, "footer": "none"}
    settings.update(options or {})
    toolkit.setOptions(settings)
    return toolkit


def to_svg(kern_text: str, path: PathLike, *, options: Optional[Mapping[str, object]] = None,
           all_pages: bool = True) -> SvgRender:
    """Engrave ``**kern`` text with verovio.  Page 1 goes to ``path``, further
    pages (``all_pages``) to ``<stem>-<page>.svg`` beside it.  Returns the pages
    and verovio's messages (check ``.errors``).  Raises ImportError without verovio
    and ExportError when verovio cannot load the data."""
    toolkit = _verovio_toolkit(options)
    path = Path(path)
    written = []
    with _captured_stderr() as messages:
        ok = toolkit.loadData(kern_text)
        if ok:
            pages = toolkit.getPageCount() if all_pages else 1
            for page in range(1, max(1, pages) + 1):
                target = path if page == 1 else path.with_name(f"{path.stem}-{page}{path.suffix}")
                target.write_text(toolkit.renderToSVG(page), encoding="utf-8")
                written.append(os.fspath(target))
    log = "\n".join(messages + [(toolkit.getLog() or "").strip()]).strip()
    if not ok:
        raise ExportError(f"verovio could not load the kern data: {log[:500]}")
    return SvgRender(tuple(written), log)


def verovio_messages(kern_text: str, input_from: str = "humdrum") -> list[str]:
    """Messages verovio prints while loading and engraving page 1 of ``kern_text``
    (a failed load is reported as a message).  ``input_from="musicxml"`` engraves
    MusicXML text instead.  Raises ImportError without verovio."""
    toolkit = _verovio_toolkit({"inputFrom": input_from})
    with _captured_stderr() as messages:
        ok = toolkit.loadData(kern_text)
        svg = toolkit.renderToSVG(1) if ok else ""
    messages += [line for line in (toolkit.getLog() or "").splitlines() if line.strip()]
    if not ok or not svg:
        messages.append("verovio could not load or render the data")
    return messages


# ---------------------------------------------------------------------------
# MusicXML

MUSICXML_DOCTYPE = ('<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 4.0 Partwise//EN" '
                    '"http://www.musicxml.org/dtds/partwise.dtd">')
_XML_TYPES = {1: "whole", 2: "half", 4: "quarter", 8: "eighth", 16: "16th", 32: "32nd", 64: "64th",
              128: "128th", 256: "256th", 512: "512th", 1024: "1024th"}
_XML_LONG_TYPES = {2: "breve", 4: "long", 8: "maxima"}
# (step, alter) of each pitch class: sharps for C#, F#, G#, flats for Eb, Bb.
_XML_SPELLING = (("C", 0), ("C", 1), ("D", 0), ("E", -1), ("E", 0), ("F", 0), ("F", 1), ("G", 0), ("G", 1),
                 ("A", 0), ("B", -1), ("B", 0))
_XML_ACCIDENTALS = {-1: "flat", 0: "natural", 1: "sharp"}


class XmlNoteValue(NamedTuple):
    """How a duration is written: ``type`` with ``dots``, in an ``actual:normal`` tuplet (1:1: none)."""

    type: str
    dots: int
    actual: int
    normal: int

    @property
    def base_quarters(self) -> Fraction:
        """Written length of the undotted type in quarter notes (outside any tuplet)."""
        for n, name in _XML_TYPES.items():
            if name == self.type:
                return Fraction(4, n)
        return Fraction(4 * next(n for n, name in _XML_LONG_TYPES.items() if name == self.type))


def musicxml_note_value(quarters: Union[Fraction, int, str]) -> Optional[XmlNoteValue]:
    """The single written note value of a duration (quarter notes), or None if it needs ties.

    ``1/N`` of a whole note (times a dot factor, up to 3 dots) is the largest power-of-two type
    ``p <= N`` (at most a 1024th) in an ``N:p`` tuplet (reduced): 1/3 quarter = triplet eighth
    (3:2), 2/17 quarter = 32nd in 17:16; breve, long and maxima for 2, 4 and 8 whole notes."""
    whole = Fraction(quarters) / 4
    if whole <= 0:
        return None
    for dots in range(4):
        base = whole * 2**dots / (2 ** (dots + 1) - 1)
        if base.numerator == 1:
            n = base.denominator
            # The largest power-of-two type <= n; below the shortest type (1024th), a tuplet of it.
            p = min(1 << (n.bit_length() - 1), max(_XML_TYPES))
            ratio = Fraction(n, p)
            return XmlNoteValue(_XML_TYPES[p], dots, ratio.numerator, ratio.denominator)
        elif base.denominator == 1 and base.numerator in _XML_LONG_TYPES:
            return XmlNoteValue(_XML_LONG_TYPES[base.numerator], dots, 1, 1)
    return None


_cached_note_value = functools.lru_cache(maxsize=4096)(musicxml_note_value)
_PLAIN_VALUES = tuple(sorted((Fraction(4 * 2**k) * Fraction(2 ** (d + 1) - 1, 2**d)
                              for k in range(-6, 3) for d in range(2)), reverse=True))


def split_note_value(quarters: Fraction) -> list[Fraction]:
    """Pieces (tied for a note) that write ``quarters``: itself if it has a note value, else
    a plain (dotted) value and a remainder that has one, else plain values first and unit
    fractions of a whole note for what is left (always terminates)."""
    quarters = Fraction(quarters)
    if quarters <= 0:
        raise ExportError(f"note value must be positive, got {quarters}")
    if musicxml_note_value(quarters) is not None:
        return [quarters]
    for a in _PLAIN_VALUES:
        if a < quarters and musicxml_note_value(quarters - a) is not None:
            return [a, quarters - a]
    a = next((v for v in _PLAIN_VALUES if v < quarters), None)
    if a is None:
        a = Fraction(4, math.ceil(4 / quarters))  # 1/N whole note <= quarters
    return [a] + split_note_value(quarters - a)


def _clef(pitches: Sequence[int]) -> tuple[str, int, int]:
    """(sign, line, octave change) from a voice's median pitch: treble, treble 8vb, bass."""
    if not pitches:
        return "G", 2, 0
    median = float(np.median(pitches))
    if median >= 60:
        return "G", 2, 0
    if median >= 52:
        return "G", 2, -1
    return "F", 4, 0


def _measure_bounds(end: Fraction, measure: Fraction, pickup: Fraction) -> list[Fraction]:
    bounds = [Fraction(0)]
    t = pickup if 0 < pickup < end else measure
    while t < end:
        bounds.append(t)
        t += measure
    return bounds + [end]


def _layers(voice: Sequence[Note]) -> list[list[Note]]:
    """Notes of a channel in layers without overlaps (a channel that hosted two kern spines at
    once, or hand-built voices, can overlap): each note to the first free layer."""
    layers: list[list[Note]] = []
    for note in sorted(voice, key=lambda n: (n.onset, -(n.pitches[-1] if n.pitches else -1))):
        for layer in layers:
            if layer[-1].end <= note.onset:
                layer.append(note)
                break
        else:
            layers.append([note])
    return layers


class _Written(NamedTuple):
    """One written note/chord/rest/forward of a layer inside a measure."""

    duration: Fraction
    pitches: Optional[tuple[int, ...]]  # None: a gap (rest in layer 0, <forward> above)
    tie_stop: bool
    tie_start: bool


def _layer_measures(layer: Sequence[Note], bounds: Sequence[Fraction]) -> list[list[_Written]]:
    """What a layer writes in each measure ``bounds[k]..bounds[k+1]``: its notes cut at the
    barlines (tied) and gaps, each in written note values."""
    out: list[list[_Written]] = []
    first = 0  # first note not yet ended before the current measure
    for start, stop in zip(bounds, bounds[1:]):
        items: list[_Written] = []
        t = start
        while first < len(layer) and layer[first].end <= start:
            first += 1
        i = first
        while i < len(layer) and layer[i].onset < stop:
            note = layer[i]
            a, b = max(note.onset, start), min(note.end, stop)
            if a > t:
                items.extend(_Written(d, None, False, False) for d in _note_values_of(a - t))
            pieces = _note_values_of(b - a)
            tied = bool(note.pitches)
            for k, d in enumerate(pieces):
                items.append(_Written(d, note.pitches, tied and (k > 0 or a > note.onset),
                                      tied and (k < len(pieces) - 1 or b < note.end)))
            t = b
            i += 1
        if stop > t:
            items.extend(_Written(d, None, False, False) for d in _note_values_of(stop - t))
        out.append(items)
    return out


@functools.lru_cache(maxsize=4096)
def _note_values_of(quarters: Fraction) -> tuple[Fraction, ...]:
    return tuple(split_note_value(quarters))


def to_musicxml(
    voices: Voices,
    path: Optional[PathLike] = None,
    *,
    meter: tuple[int, int] = (4, 4),
    header: Optional[Mapping[str, object]] = None,
) -> str:
    """MusicXML (4.0, partwise) text of ``voices``; writes ``path`` if given.

    Every non-empty voice becomes a part (channel 0, the lowest kern spine, is the bottom
    staff) named ``Voice k``, with a treble, octave-treble or bass clef chosen from its median
    pitch.  Barlines follow ``meter`` and ``voices.pickup`` as in :func:`to_kern` (a pickup
    measure is numbered 0); notes that cross a barline, or whose length needs several written
    values (5 quarters = whole + quarter), are tied, and
    :func:`voicecomp.data.musicxml.read_musicxml` reads such ties back as one note.  Tuplets
    are written exactly (``<time-modification>`` with brackets).  Gaps in a voice are rests;
    where a voice overlaps itself (it hosted two spines at once) the overlapping notes go to a
    second notated voice of the part.  ``header`` items: ``OTL`` is the title, ``COM`` the
    composer, the rest become ``<miscellaneous-field>`` entries."""
    import xml.etree.ElementTree as ET

    channels = [(c, v) for c, v in enumerate(voices.voices) if v]
    if not channels:
        raise ExportError("no notes to write")
    end = voices.end
    num, den = meter
    measure = Fraction(4 * num, den)
    if measure <= 0:
        raise ExportError(f"bad meter {meter}")
    pickup = Fraction(voices.pickup) % measure
    bounds = _measure_bounds(end, measure, pickup)
    has_pickup = 0 < pickup < end

    # Written content per part (top staff first) and measure, to choose the divisions.
    parts = []
    for c, voice in reversed(channels):
        layers = [_layer_measures(layer, bounds) for layer in _layers(voice)]
        written = [[layer[k] for layer in layers] for k in range(len(bounds) - 1)]
        parts.append((c, voice, written))
    denominators = {w.duration.denominator for _, _, ms in parts for m in ms for layer in m for w in layer}
    divisions = math.lcm(*denominators) if denominators else 1

    root = ET.Element("score-partwise", version="4.0")
    header = dict(header or {})
    if "OTL" in header:
        ET.SubElement(ET.SubElement(root, "work"), "work-title").text = str(header.pop("OTL"))
    ident = ET.SubElement(root, "identification")
    if "COM" in header:
        ET.SubElement(ident, "creator", type="composer").text = str(header.pop("COM"))
    encoding = ET.SubElement(ident, "encoding")
    ET.SubElement(encoding, "software").text = "voicecomp"
    if header:
        misc = ET.SubElement(ident, "miscellaneous")
        for key, value in header.items():
            ET.SubElement(misc, "miscellaneous-field", name=str(key)).text = str(value)
    part_list = ET.SubElement(root, "part-list")
    for c, _, _ in parts:
        score_part = ET.SubElement(part_list, "score-part", id=f"P{c + 1}")
        ET.SubElement(score_part, "part-name").text = f"Voice {c + 1}"

    for c, voice, measures in parts:
        part = ET.SubElement(root, "part", id=f"P{c + 1}")
        sign, line, octave_change = _clef([p for n in voice for p in n.pitches])
        for k, layers in enumerate(measures):
            number = k if has_pickup else k + 1
            m = ET.SubElement(part, "measure", number=str(number))
            if has_pickup and k == 0:
                m.set("implicit", "yes")
            if k == 0:
                attributes = ET.SubElement(m, "attributes")
                ET.SubElement(attributes, "divisions").text = str(divisions)
                ET.SubElement(ET.SubElement(attributes, "key"), "fifths").text = "0"
                time = ET.SubElement(attributes, "time")
                ET.SubElement(time, "beats").text = str(num)
                ET.SubElement(time, "beat-type").text = str(den)
                clef = ET.SubElement(attributes, "clef")
                ET.SubElement(clef, "sign").text = sign
                ET.SubElement(clef, "line").text = str(line)
                if octave_change:
                    ET.SubElement(clef, "clef-octave-change").text = str(octave_change)
            length = bounds[k + 1] - bounds[k]
            alteration: dict[tuple[str, int], int] = {}  # accidentals in force in this measure
            for v, layer in enumerate(layers):
                if v:
                    ET.SubElement(ET.SubElement(m, "backup"), "duration").text = str(int(length * divisions))
                _write_layer(ET, m, layer, v + 1, divisions, alteration)
            if k == len(measures) - 1:
                barline = ET.SubElement(m, "barline", location="right")
                ET.SubElement(barline, "bar-style").text = "light-heavy"
    ET.indent(root, space=" ")
    text = ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' + MUSICXML_DOCTYPE + "\n"
            + ET.tostring(root, encoding="unicode") + "\n")
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text


def _write_layer(ET, measure, layer: Sequence[_Written], voice: int, divisions: int, alteration: dict) -> None:
    # Tuplet brackets: runs of equal ratios, closed when they fill the span of `normal` notes
    # of the first note's type (or when the run ends).
    values = [_cached_note_value(w.duration) for w in layer]
    brackets: list[tuple[bool, bool]] = [(False, False)] * len(layer)
    i = 0
    while i < len(layer):
        value = values[i]
        if layer[i].pitches is None and voice > 1 or value.actual == 1 and value.normal == 1:
            i += 1
            continue
        span = value.normal * value.base_quarters  # `actual` notes sound as long as `normal` plain ones
        j, total = i, Fraction(0)
        while j < len(layer) and (values[j].actual, values[j].normal) == (value.actual, value.normal) \
                and not (layer[j].pitches is None and voice > 1):
            total += layer[j].duration
            j += 1
            if total >= span:
                break
        if j - 1 > i:
            brackets[i] = (True, brackets[i][1])
            brackets[j - 1] = (brackets[j - 1][0], True)
        i = j
    for w, value, (open_bracket, close_bracket) in zip(layer, values, brackets):
        duration = str(int(w.duration * divisions))
        if w.pitches is None and voice > 1:
            forward = ET.SubElement(measure, "forward")
            ET.SubElement(forward, "duration").text = duration
            ET.SubElement(forward, "voice").text = str(voice)
            continue
        heads = w.pitches if w.pitches else (None,)
        for h, pitch in enumerate(heads):
            note = ET.SubElement(measure, "note")
            if h:
                ET.SubElement(note, "chord")
            if pitch is None:
                ET.SubElement(note, "rest")
            else:
                step, alter = _XML_SPELLING[pitch % 12]
                octave = pitch // 12 - 1
                element = ET.SubElement(note, "pitch")
                ET.SubElement(element, "step").text = step
                if alter:
                    ET.SubElement(element, "alter").text = str(alter)
                ET.SubElement(element, "octave").text = str(octave)
            ET.SubElement(note, "duration").text = duration
            if pitch is not None and w.tie_stop:
                ET.SubElement(note, "tie", type="stop")
            if pitch is not None and w.tie_start:
                ET.SubElement(note, "tie", type="start")
            ET.SubElement(note, "voice").text = str(voice)
            ET.SubElement(note, "type").text = value.type
            for _ in range(value.dots):
                ET.SubElement(note, "dot")
            if pitch is not None and not w.tie_stop and alteration.get((step, octave), 0) != alter:
                ET.SubElement(note, "accidental").text = _XML_ACCIDENTALS[alter]
            if pitch is not None:
                alteration[(step, octave)] = alter
            if value.actual != 1 or value.normal != 1:
                modification = ET.SubElement(note, "time-modification")
                ET.SubElement(modification, "actual-notes").text = str(value.actual)
                ET.SubElement(modification, "normal-notes").text = str(value.normal)
            ties = pitch is not None and (w.tie_stop or w.tie_start)
            if ties or (h == 0 and (open_bracket or close_bracket)):
                notations = ET.SubElement(note, "notations")
                if pitch is not None and w.tie_stop:
                    ET.SubElement(notations, "tied", type="stop")
                if pitch is not None and w.tie_start:
                    ET.SubElement(notations, "tied", type="start")
                if h == 0 and open_bracket:
                    ET.SubElement(notations, "tuplet", type="start", bracket="yes")
                if h == 0 and close_bracket:
                    ET.SubElement(notations, "tuplet", type="stop")


# ---------------------------------------------------------------------------
# All at once

@dataclasses.dataclass
class _Score:
    """One score being written in several formats, with what they share."""

    voices: Voices
    stem: str
    meter: tuple[int, int]
    header: Optional[Mapping[str, object]]
    tempo_bpm: float
    sample_rate: int
    synth: str

    @functools.cached_property
    def kern(self) -> str:  # written as .krn and engraved as .svg: built once
        return to_kern(self.voices, meter=self.meter, header=self.header)


@dataclasses.dataclass(frozen=True)
class OutputFormat:
    """A file :func:`export_score` can write: its suffix and its writer."""

    suffix: str
    write: Callable[[_Score, Path], object]
    optional: bool = False  # skipped with a warning when its library is not installed


# The output formats: ``--formats`` name -> suffix and writer.
OUTPUT_FORMATS: dict[str, OutputFormat] = {
    "kern": OutputFormat(".krn", lambda s, path: path.write_text(s.kern, encoding="latin-1", errors="replace")),
    "mid": OutputFormat(".mid", lambda s, path: to_midi(s.voices, path, s.tempo_bpm)),
    "wav": OutputFormat(".wav", lambda s, path: to_wav(s.voices, path, s.sample_rate, s.tempo_bpm, synth=s.synth)),
    "png": OutputFormat(".png", lambda s, path: to_pianoroll_png(s.voices, path, title=s.stem)),
    "svg": OutputFormat(".svg", lambda s, path: to_svg(s.kern, path), optional=True),
    "musicxml": OutputFormat(".musicxml", lambda s, path: to_musicxml(s.voices, path, meter=s.meter,
                                                                       header=s.header)),
}
EXPORT_FORMATS = tuple(OUTPUT_FORMATS)


def export_score(
    voices: Voices,
    out_dir: PathLike,
    stem: str,
    formats: Sequence[str] = EXPORT_FORMATS,
    *,
    meter: tuple[int, int] = (4, 4),
    header: Optional[Mapping[str, object]] = None,
    tempo_bpm: float = 100,
    sample_rate: int = 22050,
    synth: str = "additive",
) -> dict[str, str]:
    """Write ``out_dir/stem.{krn,mid,wav,png,svg,musicxml}`` for the requested formats
    (:data:`OUTPUT_FORMATS`) and return format -> path.  SVG is skipped with a warning when
    verovio is not installed (``pip install 'voicecomp[render]'``)."""
    unknown = [f for f in formats if f not in OUTPUT_FORMATS]
    if unknown:
        raise ValueError(f"unknown formats {unknown}; choose from {EXPORT_FORMATS}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    score = _Score(voices, stem, meter, header, tempo_bpm, sample_rate, synth)
    paths: dict[str, str] = {}
    for fmt in formats:
        output = OUTPUT_FORMATS[fmt]
        target = out / f"{stem}{output.suffix}"
        try:
            output.write(score, target)
        except ImportError as err:
            if not output.optional:
                raise
            warnings.warn(str(err), stacklevel=2)
            continue
        paths[fmt] = os.fspath(target)
    return paths
