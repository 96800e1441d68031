"""Voice-leading statistics of a harmonized melody, over SPEC §1.3 frame arrays (pure numpy).

A score is ``notes[F, V, M]`` and ``durations[F, V]`` as :func:`voicecomp.encoding.encode_score`
and :func:`voicecomp.sample.sample` give them (a ``CONT`` cell repeats the channel's notes, so
``notes[j, c]`` is what channel ``c`` sounds during frame ``j``).  ``voices`` lists the channels
from the lowest voice to the highest (a four-part chorale: ``(0, 1, 2, 3)``, bass to soprano) and
``melody`` is the channel of the given melody; the other voices are the *harmony voices*, and
every figure is counted over their onsets, so real chorales and sampled harmonizations of the
same melodies are measured alike.

Conventions (what each count means):
* an *onset* is a frame where a harmony voice starts a note (a rest is not counted);
* a voice's *pitch* in a frame is its highest sounding note (chorale voices hold one note; a
  sampled voice may hold a chord, counted in ``chord_onsets``; ``rests`` counts the rests the
  harmony voices start);
* *dissonant*: one of the onset's notes forms a second, seventh or tritone (interval mod 12 in
  :data:`DISSONANT_INTERVALS`) with a note of the melody sounding in that frame; onsets while the
  melody rests are not judged (``judged_onsets``);
* *crossing*: at the onset the voice's pitch is above that of a higher voice or below that of a
  lower voice sounding then (one per onset, however many voices it crosses);
* *out of range*: one of the onset's notes lies outside the voice's range (``ranges``: the lowest
  and highest pitch index of each harmony voice, e.g. :func:`voice_ranges` of real chorales);
* *parallel fifth / octave*: two voices (any pair, melody included) both start a note in frame
  ``j``, both sounded in frame ``j - 1``, move in the same direction, and their interval mod 12 is
  7 (fifth) / 0 (octave or unison) in both frames; each pair and frame counts once.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from voicecomp.vocab import NUM_SPECIAL

# Interval classes (semitones mod 12) of seconds, sevenths and the tritone.
DISSONANT_INTERVALS = (1, 2, 6, 10, 11)
PERFECT_FIFTH, OCTAVE = 7, 0


@dataclasses.dataclass(frozen=True)
class VoiceLeadingCounts:
    """Counts of one or more scores (they add); :meth:`rates` turns them into the reported figures."""

    onsets: int = 0  # note onsets of the harmony voices
    judged_onsets: int = 0  # ... of them while the melody sounds
    dissonant: int = 0
    crossings: int = 0
    out_of_range: int = 0
    parallel_fifths: int = 0
    parallel_octaves: int = 0
    chord_onsets: int = 0  # onsets of more than one note
    rests: int = 0  # rests the harmony voices start

    def __add__(self, other: "VoiceLeadingCounts") -> "VoiceLeadingCounts":
        return VoiceLeadingCounts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def rates(self) -> dict[str, float]:
        """Percent of judged onsets that are dissonant; the others per 100 harmony onsets."""
        per_100 = lambda count: 100.0 * count / self.onsets if self.onsets else float("nan")  # noqa: E731
        return {
            "dissonant_percent": 100.0 * self.dissonant / self.judged_onsets if self.judged_onsets else float("nan"),
            "crossings_per_100": per_100(self.crossings),
            "out_of_range_per_100": per_100(self.out_of_range),
            "parallel_fifths_per_100": per_100(self.parallel_fifths),
            "parallel_octaves_per_100": per_100(self.parallel_octaves),
            "chord_onsets_per_100": per_100(self.chord_onsets),
            "rests_per_100": per_100(self.rests),
        }


def top_pitches(notes: np.ndarray) -> np.ndarray:
    """int [F, V]: the highest sounding pitch index of every frame and channel (-1: silent)."""
    notes = np.asarray(notes) > 0
    highest = notes.shape[-1] - 1 - np.argmax(notes[..., ::-1], axis=-1)
    return np.where(notes.any(axis=-1), highest, -1)


def note_onsets(notes: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """bool [F, V]: the channel starts a note (not a rest) in this frame."""
    return (np.asarray(durations) >= NUM_SPECIAL) & (np.asarray(notes) > 0).any(axis=-1)


def voice_ranges(scores: Iterable[tuple[np.ndarray, np.ndarray]], channels: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Lowest and highest pitch index each channel starts a note on, over ``(notes, durations)`` pairs."""
    low = {c: None for c in channels}
    high = dict(low)
    for notes, durations in scores:
        onset = note_onsets(notes, durations)
        for c in channels:
            pitches = np.flatnonzero(np.asarray(notes)[onset[:, c], c].any(axis=0))
            if pitches.size:
                low[c] = int(pitches[0]) if low[c] is None else min(low[c], int(pitches[0]))
                high[c] = int(pitches[-1]) if high[c] is None else max(high[c], int(pitches[-1]))
    missing = [c for c in channels if low[c] is None]
    if missing:
        raise ValueError(f"channels {missing} start no note in these scores")
    return {c: (low[c], high[c]) for c in channels}


def count_voice_leading(
    notes: np.ndarray,
    durations: np.ndarray,
    voices: Sequence[int],
    melody: int,
    ranges: Optional[Mapping[int, tuple[int, int]]] = None,
) -> VoiceLeadingCounts:
    """The counts of the module docstring for one score (``ranges`` None: no range count)."""
    notes = np.asarray(notes) > 0
    durations = np.asarray(durations)
    if notes.ndim != 3 or durations.shape != notes.shape[:2]:
        raise ValueError(f"expected notes [F, V, M] and durations [F, V], got {notes.shape} and {durations.shape}")
    voices = list(voices)
    if melody not in voices:
        raise ValueError(f"the melody channel {melody} is not one of the voices {voices}")
    onset = note_onsets(notes, durations)
    pitch = top_pitches(notes)
    sounding = pitch >= 0
    melody_sounds = sounding[:, melody]
    harmony = [c for c in voices if c != melody]

    judged = dissonant = crossings = out_of_range = chords = 0
    pitch_class_gaps = np.arange(notes.shape[-1])[:, None] - np.arange(notes.shape[-1])[None, :]
    dissonant_gap = np.isin(np.abs(pitch_class_gaps) % 12, DISSONANT_INTERVALS)  # [M, M]
    for rank, c in enumerate(voices):
        if c == melody:
            continue
        frames = np.flatnonzero(onset[:, c])
        chords += int((notes[frames, c].sum(axis=-1) > 1).sum())
        heard = frames[melody_sounds[frames]]
        judged += heard.size
        # any (voice note, melody note) pair at a dissonant interval
        clash = np.einsum("fm,mn,fn->f", notes[heard, c].astype(np.int32), dissonant_gap.astype(np.int32),
                          notes[heard, melody].astype(np.int32))
        dissonant += int((clash > 0).sum())
        lower, higher = voices[:rank], voices[rank + 1:]
        p = pitch[frames, c][:, None]
        above_higher = (sounding[frames][:, higher] & (pitch[frames][:, higher] < p)).any(axis=1) if higher else False
        below_lower = (sounding[frames][:, lower] & (pitch[frames][:, lower] > p)).any(axis=1) if lower else False
        crossings += int(np.count_nonzero(np.logical_or(above_higher, below_lower)))
        if ranges is not None:
            lo, hi = ranges[c]
            outside = np.zeros(notes.shape[-1], bool)
            outside[:lo], outside[hi + 1:] = True, True
            out_of_range += int(notes[frames, c][:, outside].any(axis=-1).sum())

    fifths = octaves = 0
    for i, a in enumerate(voices):
        for b in voices[i + 1:]:
            both = onset[1:, a] & onset[1:, b] & sounding[:-1, a] & sounding[:-1, b]
            step_a = np.sign(pitch[1:, a] - pitch[:-1, a])
            step_b = np.sign(pitch[1:, b] - pitch[:-1, b])
            moving = both & (step_a != 0) & (step_a == step_b)
            before = np.abs(pitch[:-1, b] - pitch[:-1, a]) % 12
            after = np.abs(pitch[1:, b] - pitch[1:, a]) % 12
            fifths += int((moving & (before == PERFECT_FIFTH) & (after == PERFECT_FIFTH)).sum())
            octaves += int((moving & (before == OCTAVE) & (after == OCTAVE)).sum())

    return VoiceLeadingCounts(
        onsets=int(onset[:, harmony].sum()), judged_onsets=judged, dissonant=dissonant, crossings=crossings,
        out_of_range=out_of_range, parallel_fifths=fifths, parallel_octaves=octaves, chord_onsets=chords,
        rests=int(((durations[:, harmony] >= NUM_SPECIAL) & ~onset[:, harmony]).sum()))
