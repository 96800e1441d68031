"""MusicXML reader built on music21, producing voicecomp's score type (:class:`KernScore`).

:func:`read_musicxml` reads ``.musicxml``, ``.mxl`` and ``.xml`` files; :func:`score_from_music21`
converts any music21 score (the MIDI reader uses it too).  The rules, each tested on a small
fixture in ``tests/test_musicxml.py``:

Voices.  Every part (each staff of a multi-staff instrument is its own part, as music21 reads
it) and, within a part, every notated voice (``<voice>``) is read on its own.  Within a notated
voice, notes that start and end together form one event (a chord, as in a ``**kern`` spine);
notes that overlap otherwise (a part that plays chords of unequal notes, a MIDI track) are split
into voices by this rule: events in order of onset, and from the highest pitch down at equal
onsets, each go to the first of the notated voice's voices that is free at their onset (a new one
when none is).  With ``chords="split"`` every note of a chord is its own event, so a chord of n
notes spreads over n voices.  A voice without notes (only rests) is left out.

Channels.  Voices are numbered from the bottom of the system up, as kern spines are: the lowest
part is channel 0, and within a part the voice with the lowest mean pitch comes first.  When there
are more voices than the model's 6 channels, the busiest parts are reduced until they fit, in two
steps, each reported in the warnings.  First a part is packed: its notes that start and end
together become chords whatever their notated voice, and it is split into voices only where its
rhythms overlap (string quartets notate double stops as second voices).  If that is not enough,
a part becomes one voice: at each onset of its notes a chord of the notes that start there, lasting
as long as its longest note but cut at the part's next onset (every onset is kept, sustained notes
are shortened).  A score with more than 6 parts still has more voices than channels: a
:class:`ScoreReadError` names the voices of each part.

Time.  Onsets and durations are music21's exact fractions of a quarter note, converted to integer
ticks (``TICKS_PER_QUARTER``): tuplets are kept exactly.  A time that is not a whole number of
ticks is an error.

Ties.  A chain of tied notes (same pitch in the same part, each note starting where the previous
one ends) is read as one note when its total length is one of the model's note values
(:data:`voicecomp.encoding.NOTE_VALUES`), so a note that the writer tied across a barline reads
back as one note.  Otherwise its notes stay separate onsets, which is how the kern parser reads
every tied note, so that the score stays encodable (``ties="vocabulary"``, the default);
``ties="merge"`` makes every chain one note whatever its length.

Grace notes are dropped (the kern parser treats them as nulls), and so are unpitched
(percussion) notes; both are counted in the warnings.

Rests.  Visible rests are rest events of their voice.  Hidden rests (``print-object="no"``, and
the ``<forward>`` gaps music21 turns into hidden rests) are gaps.  Gaps, and each voice's time
before its first and after its last event up to the end of the score, are filled with rests split
at the barlines and into note values.  A multi-measure rest is stored by MusicXML as one rest per
measure and read as such.

Pickup.  A first measure shorter than its time signature is a pickup; its length is the score's
``pickup``.  Repeats are not expanded: the score is read as written.
"""

from __future__ import annotations

import dataclasses
import os
import warnings as warnings_module
from fractions import Fraction
from typing import Any, Optional

import numpy as np

from voicecomp.data.humdrum import CONT_TICKS, EMPTY_TICKS, MAX_VOICES, NUM_MIDI, TICKS_PER_QUARTER, KernScore
from voicecomp.data.errors import MUSIC21_HINT, ScoreReadError

# Bump whenever the rules above change what a file reads as (it keys the corpus parse cache).
READER_VERSION = 3
CHORD_RULES = ("keep", "split")
TIE_RULES = ("vocabulary", "merge")
_TICKS_PER_WHOLE = 4 * TICKS_PER_QUARTER


def _note_values() -> tuple[Fraction, ...]:
    from voicecomp.encoding import NOTE_VALUES

    return NOTE_VALUES


def import_music21(filename: str):
    """music21, or a :class:`ScoreReadError` naming the file and the install hint."""
    try:
        import music21
    except ImportError:
        raise ScoreReadError(filename, f"reading this file needs music21: {MUSIC21_HINT}") from None
    return music21


def read_musicxml(
    path: str | os.PathLike,
    *,
    chords: str = "keep",
    ties: str = "vocabulary",
    warnings: Optional[list[str]] = None,
    name: Optional[str] = None,
) -> KernScore:
    """The score of a MusicXML file (``.musicxml``, compressed ``.mxl`` or ``.xml``).

    Args:
      chords: ``keep`` (a chord of equal notes is one event of one voice) or ``split``
        (every chord note its own voice); see the module docstring for every rule.
      ties: ``vocabulary`` (a tie chain is one note if its length is a note value of the
        model, else its written notes) or ``merge`` (every tie chain one note).
      warnings: one-line ``file: reason`` notes are appended here (dropped grace notes,
        music21's own warnings, ...).
      name: the score's name and the file named in messages (default: ``path``).
    Raises:
      ScoreReadError: the file is not readable MusicXML, has no notes, more voices
        than channels, or times that are not whole ticks.
    """
    name = name or os.fspath(path)
    music21 = import_music21(name)
    with warnings_module.catch_warnings(record=True) as caught:
        warnings_module.simplefilter("always")
        try:
            parsed = music21.converter.parse(os.fspath(path), format="musicxml", forceSource=True,
                                             storePickle=False)
        except Exception as err:  # music21 raises many types for bad input; all mean "unreadable"
            raise ScoreReadError(name, f"unreadable MusicXML: {_describe(err)}") from None
    if warnings is not None:
        for item in caught:
            warnings.append(f"{name}: music21: {' '.join(str(item.message).split())}")
    return score_from_music21(parsed, name, chords=chords, ties=ties, warnings=warnings)


def _describe(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}" if text else type(err).__name__


# ---------------------------------------------------------------------------
# music21 stream -> notes per (part, notated voice)


@dataclasses.dataclass
class _Piece:
    """One written note head (a chord is several) or rest, in quarter notes from the start."""

    voice: str
    onset: Fraction
    end: Fraction
    pitch: Optional[int]  # None: rest
    tie: Optional[str]  # music21 tie type of a note: start, stop, continue (None: untied)


@dataclasses.dataclass
class _Event:
    """A note, chord or rest of one voice."""

    onset: Fraction
    end: Fraction
    pitches: tuple[int, ...]


@dataclasses.dataclass
class _PartContent:
    name: str
    pieces: list[_Piece]
    barlines: list[Fraction]  # measure starts
    end: Fraction
    first_measure: Optional[tuple[Fraction, Fraction]]  # (length, bar length) of measure 1
    grace: int = 0
    unpitched: int = 0


def _fraction(value: Any) -> Fraction:
    # music21 offsets are floats (exact binary values) or Fractions; both convert exactly.
    return Fraction(value)


def _part_content(part, index: int, music21) -> _PartContent:
    stream, note = music21.stream, music21.note
    name = str(part.partName or "").strip() or f"part {index + 1}"
    content = _PartContent(name, [], [], Fraction(0), None)
    measures = list(part.getElementsByClass(stream.Measure))
    containers: list[tuple[Fraction, Any]] = []
    if measures:
        for m in measures:
            start = _fraction(part.elementOffset(m))
            content.barlines.append(start)
            content.end = max(content.end, start + _fraction(m.duration.quarterLength))
            containers.append((start, m))
        first = measures[0]
        meter = first.timeSignature or first.getContextByClass(music21.meter.TimeSignature)
        if meter is not None:
            content.first_measure = (_fraction(first.duration.quarterLength),
                                     _fraction(meter.barDuration.quarterLength))
    else:
        containers.append((Fraction(0), part))
        content.end = _fraction(part.highestTime)
    for base, container in containers:
        layers = [("1", base, container)]
        for v in container.getElementsByClass(stream.Voice):
            layers.append((str(v.id), base + _fraction(container.elementOffset(v)), v))
        for voice, start, layer in layers:
            for element in layer.getElementsByClass(note.GeneralNote):
                onset = start + _fraction(layer.elementOffset(element))
                length = _fraction(element.duration.quarterLength)
                if element.duration.isGrace:
                    content.grace += len(element.pitches) if element.isChord else 1
                    continue
                if length <= 0:
                    continue
                end = onset + length
                content.end = max(content.end, end)
                if element.isRest:
                    if not element.style.hideObjectOnPrint:
                        content.pieces.append(_Piece(voice, onset, end, None, None))
                    continue
                if isinstance(element, music21.harmony.Harmony):  # chord symbols: annotations, not notes
                    continue
                # A percussion chord can hold pitched notes too (music21 merges a type-0 MIDI
                # file's channels): its unpitched heads are dropped below, one by one.
                several = element.isChord or isinstance(element, music21.percussion.PercussionChord)
                heads = element.notes if several else (element,)
                chord_tie = element.tie.type if several and element.tie is not None else None
                if several and any(h.tie is not None for h in heads):
                    chord_tie = None  # per-note ties are the truth when present
                for head in heads:
                    if isinstance(head, note.Unpitched):
                        content.unpitched += 1
                        continue
                    tie = head.tie.type if head.tie is not None else chord_tie
                    content.pieces.append(_Piece(voice, onset, end, int(round(head.pitch.ps)), tie))
    return content


def _voice_sort_key(voice: str):
    return (0, int(voice), "") if voice.isdigit() else (1, 0, voice)


def _merge_ties(pieces: list[_Piece], values: Optional[frozenset]) -> list[_Piece]:
    """Notes after tie merging: a chain is one note if its length is in ``values`` (None: always),
    else its pieces."""
    notes = sorted((p for p in pieces if p.pitch is not None), key=lambda p: (p.onset, p.voice, p.pitch))
    chains: list[list[_Piece]] = []
    open_chains: dict[tuple[str, int], list[_Piece]] = {}
    for piece in notes:
        chain = None
        if piece.tie in ("stop", "continue"):
            chain = open_chains.pop((piece.voice, piece.pitch), None)
            if chain is None or chain[-1].end != piece.onset:
                # A tie into another voice of the part (cross-voice ties exist in MusicXML).
                chain = next((c for (v, p), c in open_chains.items()
                              if p == piece.pitch and c[-1].end == piece.onset), None)
                if chain is not None:
                    del open_chains[(chain[0].voice, piece.pitch)]
            if chain is not None and chain[-1].end != piece.onset:
                chain = None
        if chain is None:
            chain = []
            chains.append(chain)
        chain.append(piece)
        if piece.tie in ("start", "continue"):
            open_chains[(chain[0].voice, piece.pitch)] = chain
    out = []
    for chain in chains:
        total = chain[-1].end - chain[0].onset
        if len(chain) == 1 or values is None or total in values:
            first = chain[0]
            out.append(_Piece(first.voice, first.onset, chain[-1].end, first.pitch, None))
        else:
            out.extend(chain)
    return out


def _voice_events(notes: list[_Piece], rests: list[_Piece], chords: str) -> list[list[_Event]]:
    """Events of one notated voice split into voices (lists of non-overlapping events)."""
    events: list[_Event] = []
    if chords == "split":
        events.extend(_Event(n.onset, n.end, (n.pitch,)) for n in notes)
    else:
        groups: dict[tuple[Fraction, Fraction], list[int]] = {}
        for n in notes:
            groups.setdefault((n.onset, n.end), []).append(n.pitch)
        events.extend(_Event(o, e, tuple(sorted(set(p)))) for (o, e), p in groups.items())
    events.extend(_Event(r.onset, r.end, ()) for r in rests)
    # Onset order; at equal onsets the highest pitch first, rests last.
    events.sort(key=lambda e: (e.onset, -(e.pitches[-1] if e.pitches else -1)))
    lanes: list[list[_Event]] = []
    for event in events:
        for lane in lanes:
            if lane[-1].end <= event.onset:
                lane.append(event)
                break
        else:
            lanes.append([event])
    return lanes


def _mean_pitch(lane: list[_Event]) -> float:
    pitches = [p for e in lane for p in e.pitches]
    return sum(pitches) / len(pitches)


def _part_lanes(content: _PartContent, values: Optional[frozenset], chords: str, *, mode: str = "voices"):
    """A part's voices, highest mean pitch first (MIDI tracks number their voices any way).

    ``mode``: ``voices`` reads each notated voice on its own; ``packed`` reads all of the part's
    notes as one notated voice (without its written rests: the gaps are filled later);
    ``single`` makes the part one voice, a chord at each onset of its notes that lasts as long
    as its longest note, up to the part's next onset.  Ties are merged over the whole part first,
    so a tie into another notated voice joins its note; the note stays in the first voice."""
    notes = _merge_ties([p for p in content.pieces if p.pitch is not None], values)
    if mode == "single":
        starts: dict[Fraction, tuple[set[int], Fraction]] = {}
        for n in notes:
            pitches, end = starts.get(n.onset, (set(), n.end))
            pitches.add(n.pitch)
            starts[n.onset] = (pitches, max(end, n.end))
        onsets = sorted(starts)
        lane = [_Event(t, min([starts[t][1]] + onsets[i + 1:i + 2]), tuple(sorted(starts[t][0])))
                for i, t in enumerate(onsets)]
        return [lane] if lane else []
    by_voice: dict[str, tuple[list[_Piece], list[_Piece]]] = {}
    for piece in notes:
        by_voice.setdefault("1" if mode == "packed" else piece.voice, ([], []))[0].append(piece)
    if mode == "voices":
        for piece in content.pieces:
            if piece.pitch is None:
                by_voice.setdefault(piece.voice, ([], []))[1].append(piece)
    lanes = []
    for voice in sorted(by_voice, key=_voice_sort_key):
        voice_notes, rests = by_voice[voice]
        if not voice_notes:
            continue
        for lane in _voice_events(voice_notes, rests, chords):
            if any(e.pitches for e in lane):
                lanes.append((-_mean_pitch(lane), len(lanes), lane))
    return [lane for _, _, lane in sorted(lanes, key=lambda x: x[:2])]


def _rest_pieces(start: Fraction, end: Fraction, barlines: list[Fraction], values: tuple[Fraction, ...]):
    """Rests filling ``start..end``: split at barlines, then each part into note values
    (largest first, keeping the remainder a multiple of a note value), else left whole."""
    cuts = [start] + [b for b in barlines if start < b < end] + [end]
    out = []
    for a, b in zip(cuts, cuts[1:]):
        remaining = b - a
        t = a
        while remaining > 0:
            if remaining in values:
                piece = remaining
            else:
                # Largest value whose denominator divides the remainder's, so what is left
                # stays expressible in the same grid.
                piece = next((v for v in reversed(values)
                              if v < remaining and remaining.denominator % v.denominator == 0), remaining)
            out.append(_Event(t, t + piece, ()))
            t += piece
            remaining -= piece
    return out


def score_from_music21(
    parsed,
    name: str,
    *,
    chords: str = "keep",
    ties: str = "vocabulary",
    warnings: Optional[list[str]] = None,
    voice_order: str = "score",
) -> KernScore:
    """:class:`KernScore` of a music21 score (see the module docstring for the rules).

    ``voice_order="score"`` numbers voices from the lowest part of the system up (MusicXML);
    ``"pitch"`` from the lowest mean pitch up across parts (MIDI, whose tracks have no order)."""
    if chords not in CHORD_RULES:
        raise ValueError(f"chords must be one of {CHORD_RULES}, got {chords!r}")
    if ties not in TIE_RULES:
        raise ValueError(f"ties must be one of {TIE_RULES}, got {ties!r}")
    music21 = import_music21(name)
    stream = music21.stream
    if isinstance(parsed, stream.Opus):
        scores = list(parsed.scores)
        if len(scores) != 1:
            raise ScoreReadError(name, f"holds {len(scores)} scores; give one score per file")
        parsed = scores[0]
    parts = list(parsed.parts) if isinstance(parsed, stream.Score) else [parsed]
    values = _note_values()
    value_set = frozenset(values) if ties == "vocabulary" else None
    contents = [_part_content(part, i, music21) for i, part in enumerate(parts)]
    grace = sum(c.grace for c in contents)
    unpitched = sum(c.unpitched for c in contents)
    notes_in = sum(1 for c in contents for p in c.pieces if p.pitch is not None)
    if warnings is not None:
        if grace:
            warnings.append(f"{name}: {grace} grace note(s) dropped")
        if unpitched:
            warnings.append(f"{name}: {unpitched} unpitched (percussion) note(s) dropped")
    if notes_in == 0:
        raise ScoreReadError(name, "no notes")

    # Voices top to bottom: parts in order, within a part the highest voice first.
    part_lanes = [_part_lanes(content, value_set, chords) for content in contents]
    empty = [c.name for c, lanes in zip(contents, part_lanes) if not lanes]
    if empty and warnings is not None:
        warnings.append(f"{name}: part(s) without notes left out: {', '.join(empty)}")
    listing = ", ".join(f"{c.name}: {len(lanes)}" for c, lanes in zip(contents, part_lanes) if lanes)
    total = sum(map(len, part_lanes))
    reduced: dict[str, list[int]] = {"packed": [], "single": []}
    for mode in ("packed", "single"):
        # Too many voices: first pack the busiest parts (their notated voices' notes that start
        # and end together become chords, split only where their rhythms overlap), then make the
        # busiest parts single voices of chords (notes cut at the part's next onset).
        while sum(map(len, part_lanes)) > MAX_VOICES:
            candidates = [p for p, lanes in enumerate(part_lanes) if len(lanes) > 1 and p not in reduced[mode]]
            if not candidates:
                break
            p = max(candidates, key=lambda q: (len(part_lanes[q]), -q))
            reduced[mode].append(p)
            part_lanes[p] = _part_lanes(contents[p], value_set, chords, mode=mode)
    if sum(map(len, part_lanes)) > MAX_VOICES:
        raise ScoreReadError(name, f"{total} voices ({listing}), more than the {MAX_VOICES} channels")
    if warnings is not None and (reduced["packed"] or reduced["single"]):
        how = [f"{what} {', '.join(contents[p].name for p in sorted(reduced[mode]))}"
               for mode, what in (("packed", "packed the notated voices of"), ("single", "made one voice of"))
               if reduced[mode]]
        warnings.append(f"{name}: {total} voices ({listing}), more than the {MAX_VOICES} channels: "
                        f"{'; '.join(how)} ({sum(map(len, part_lanes))} voices now)")
    top_down = [(p, lane) for p, lanes in enumerate(part_lanes) for lane in lanes]
    if voice_order == "pitch":
        top_down.sort(key=lambda item: -_mean_pitch(item[1]))  # stable: score order at equal means
    channels = top_down[::-1]  # kern order: lowest voice first

    barlines = sorted({b for c in contents for b in c.barlines})
    end = max([c.end for c in contents] + [e.end for _, lane in channels for e in lane])
    pickup = Fraction(0)
    first = contents[0].first_measure if contents else None
    if first is not None and 0 < first[0] < first[1] and len(barlines) > 1:
        pickup = first[0]
    filled: list[list[_Event]] = []
    for _, lane in channels:
        events: list[_Event] = []
        t = Fraction(0)
        for event in lane:
            if event.onset > t:
                events.extend(_rest_pieces(t, event.onset, barlines, values))
            events.append(event)
            t = event.end
        if t < end:
            events.extend(_rest_pieces(t, end, barlines, values))
        filled.append(events)
    part_names = []
    seen: dict[str, int] = {}
    for content in contents:
        count = seen[content.name] = seen.get(content.name, 0) + 1
        part_names.append(content.name if count == 1 else f"{content.name} {count}")
    return build_score(name, filled, [part_names[p] for p, _ in channels], pickup)


def _ticks(name: str, quarters: Fraction) -> int:
    value = quarters * TICKS_PER_QUARTER
    if value.denominator != 1:
        raise ScoreReadError(name, f"time {quarters} quarter notes is not a multiple of the tick resolution")
    return int(value)


def build_score(name: str, voices: list[list[_Event]], voice_parts: list[str], pickup: Fraction) -> KernScore:
    """KernScore of contiguous voices (each a gapless list of events from time 0 to a common
    end, channel order); flows are the identity, as for kern spines that never split."""
    if any(not 0 <= p < NUM_MIDI for v in voices for e in v for p in e.pitches):
        raise ScoreReadError(name, "pitch out of the MIDI range")
    onsets = sorted({_ticks(name, e.onset) for v in voices for e in v})
    index = {t: j for j, t in enumerate(onsets)}
    num_frames, num_voices = len(onsets), len(voices)
    durations = np.full((num_frames, MAX_VOICES), EMPTY_TICKS, dtype=np.int64)
    durations[:, :num_voices] = CONT_TICKS
    reference = np.full((num_frames, MAX_VOICES), -4.0)
    reference[:, :num_voices] = 0.0
    note_frame, note_channel, note_pitch = [], [], []
    cells: list[tuple[int, int, _Event]] = []
    for c, voice in enumerate(voices):
        for event in voice:
            j = index[_ticks(name, event.onset)]
            ticks = _ticks(name, event.end - event.onset)
            durations[j, c] = ticks
            reference[j, c] = float(event.end - event.onset)
            cells.append((j, c, event))
    cells.sort(key=lambda x: (x[0], x[1]))  # record order of a kern file: frame, then spine
    part_index: dict[str, int] = {}
    event_part, event_onset, event_reference_onset, event_duration = [], [], [], []
    event_note_event, event_note_pitch = [], []
    for j, c, event in cells:
        k = len(event_part)
        onset = _ticks(name, event.onset)
        event_part.append(part_index.setdefault(voice_parts[c], len(part_index)))
        event_onset.append(onset)
        event_reference_onset.append(onset / _TICKS_PER_WHOLE)
        event_duration.append(int(durations[j, c]))
        for pitch in event.pitches:
            note_frame.append(j)
            note_channel.append(c)
            note_pitch.append(pitch)
            event_note_event.append(k)
            event_note_pitch.append(pitch)
    flows = np.zeros((num_frames, MAX_VOICES, MAX_VOICES), dtype=np.int8)
    if num_frames:
        flows[0] = np.eye(MAX_VOICES, dtype=np.int8)  # the kern parser's first-frame identity
        flows[1:, np.arange(num_voices), np.arange(num_voices)] = 1
    return KernScore(
        name=name,
        durations=durations,
        reference_durations=reference,
        flows=flows,
        note_frame=np.asarray(note_frame, dtype=np.int32),
        note_channel=np.asarray(note_channel, dtype=np.int32),
        note_pitch=np.asarray(note_pitch, dtype=np.int32),
        pickup=_ticks(name, pickup),
        reference_pickup=float(pickup),
        part_names=tuple(part_index),
        event_part=np.asarray(event_part, dtype=np.int32),
        event_onset=np.asarray(event_onset, dtype=np.int64),
        event_reference_onset=np.asarray(event_reference_onset, dtype=np.float64),
        event_duration=np.asarray(event_duration, dtype=np.int64),
        event_note_event=np.asarray(event_note_event, dtype=np.int32),
        event_note_pitch=np.asarray(event_note_pitch, dtype=np.int32),
    )
