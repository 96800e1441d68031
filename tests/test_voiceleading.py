"""voicecomp.voiceleading on hand-made kern fixtures; every expected count is derived in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from voicecomp.data.humdrum import parse_kern
from voicecomp.encoding import encode_score
from voicecomp.vocab import PITCH_OFFSET
from voicecomp.voiceleading import VoiceLeadingCounts, count_voice_leading, top_pitches, voice_ranges


def _frames(body: str) -> tuple[np.ndarray, np.ndarray]:
    columns = len(body.strip().splitlines()[0].split("\t"))
    text = "\t".join(["**kern"] * columns) + "\n" + body.strip() + "\n" + "\t".join(["*-"] * columns) + "\n"
    encoded = encode_score(parse_kern(text, default_instrument="voice"))
    return encoded.notes, encoded.durations


def _index(midi: int) -> int:
    return midi - PITCH_OFFSET


# Bass, tenor, alto, soprano (channels 0..3; the soprano is the melody), one quarter per frame.
#   frame 0: C2=48  c=60   e=64       g=67
#   frame 1: D=50   b=71   f=65       a=69    (the tenor's b is a half note)
#   frame 2: rest   (b)    g=67       b=71
#   frame 3: C=48   c=60   {A=57 e=64} rest
FOUR_PART = """
4C\t4c\t4e\t4g
4D\t2b\t4f\t4a
4r\t.\t4g\t4b
4C\t4c\t4A 4e\t4r
"""


@pytest.fixture(scope="module")
def four_part():
    return _frames(FOUR_PART)


def test_top_pitches_take_the_highest_note_and_mark_silence(four_part):
    notes, _ = four_part
    pitches = top_pitches(notes)
    assert pitches[3, 2] == _index(64)  # the alto's chord A/e: its e
    assert pitches[1, 1] == pitches[2, 1] == _index(71)  # the tenor's b sounds on through frame 2
    assert pitches[2, 0] == -1 and pitches[3, 3] == -1  # bass and soprano rests


def test_four_part_counts(four_part):
    notes, durations = four_part
    # ranges given by hand: bass 48..50 (all in), tenor 60..69 (its b=71 is out), alto 64..67
    # (the chord's A=57 is out)
    ranges = {0: (_index(48), _index(50)), 1: (_index(60), _index(69)), 2: (_index(64), _index(67))}
    counts = count_voice_leading(notes, durations, voices=(0, 1, 2, 3), melody=3, ranges=ranges)
    assert counts == VoiceLeadingCounts(
        # note onsets of bass (frames 0, 1, 3), tenor (0, 1, 3) and alto (0..3); the bass rest is none
        onsets=10,
        # the soprano sounds in frames 0..2: bass 2, tenor 2, alto 3
        judged_onsets=7,
        # only the tenor's b against the soprano's a (2 semitones); e.g. the bass D against a is a
        # compound fifth (19 = 7 mod 12), the alto f against a a third
        dissonant=1,
        # frame 1: the tenor b=71 lies above the alto f=65 (and the soprano), so the alto lies below
        # a lower voice: 2; frame 2: the alto g=67 below the sounding tenor b=71: 1; frame 3: the
        # alto's highest note e=64 is above the tenor c=60 (its A below is not its pitch): none
        crossings=3,
        out_of_range=2,
        # frame 0 -> 1: bass and soprano, both up, a compound fifth (19) in both; other pairs: bass-tenor
        # 12 -> 21, tenor-soprano 7 -> 2; frame 2 -> 3: the bass rested in frame 2, alto-tenor 4 -> 4
        parallel_fifths=1,
        parallel_octaves=0,
        chord_onsets=1,  # the alto in frame 3
        rests=1,  # the bass in frame 2 (the soprano's rest in frame 3 is the melody's)
    )
    rates = counts.rates()
    assert rates["dissonant_percent"] == pytest.approx(100 / 7)
    assert rates["crossings_per_100"] == pytest.approx(30.0)
    assert rates["out_of_range_per_100"] == pytest.approx(20.0)


def test_without_ranges_nothing_is_out_of_range(four_part):
    notes, durations = four_part
    assert count_voice_leading(notes, durations, voices=(0, 1, 2, 3), melody=3).out_of_range == 0


def test_voice_ranges(four_part):
    # bass 48..50, tenor 60..71, alto 57..67 (the chord included), soprano 67..71
    assert voice_ranges([four_part], (0, 1, 2, 3)) == {
        0: (_index(48), _index(50)), 1: (_index(60), _index(71)), 2: (_index(57), _index(67)),
        3: (_index(67), _index(71))}
    with pytest.raises(ValueError, match="start no note"):
        voice_ranges([four_part], (4,))


# Two voices, the upper one the melody:
#   0: C=48 c=60 | 1: D=50 d=62 (octaves, both up: parallel) | 2: E=52 e=64 (again) |
#   3: E=52 f=65 (the bass repeats its note: no motion) | 4: G=55 d=62 (contrary) |
#   5: c=60 g=67 (fifths 7 -> 7, both up: parallel) | 6: d=62 (half) a=69 (again) |
#   7: (d) b=71 (the bass holds: no onset) | 8: e=64 cc=72 (9 -> 8)
TWO_VOICES = """
4C\t4c
4D\t4d
4E\t4e
4E\t4f
4G\t4d
4c\t4g
2d\t4a
.\t4b
4e\t4cc
"""


def test_parallels():
    notes, durations = _frames(TWO_VOICES)
    counts = count_voice_leading(notes, durations, voices=(0, 1), melody=1)
    assert (counts.parallel_octaves, counts.parallel_fifths) == (2, 2)
    assert counts.onsets == 8  # the bass starts a note in every frame but 7
    assert counts.crossings == 0 and counts.chord_onsets == 0 and counts.rests == 0


def test_counts_add_and_validate(four_part):
    notes, durations = four_part
    one = count_voice_leading(notes, durations, voices=(0, 1, 2, 3), melody=3)
    two = one + one
    assert two.onsets == 2 * one.onsets and two.dissonant == 2 * one.dissonant
    assert two.rates() == pytest.approx(one.rates())
    with pytest.raises(ValueError, match="melody"):
        count_voice_leading(notes, durations, voices=(0, 1, 2), melody=3)
