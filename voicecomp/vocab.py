"""The encoding's vocabulary and fixed sizes (SPEC §1.3, §1.5, §2): defined here once.

Everything that encodes, models, samples or writes scores takes these numbers from this module,
so the data layer, the models and the sampler cannot disagree about them.  Pure Python: safe to
import from numpy data code and from JAX models alike.
"""

from __future__ import annotations

import math
from fractions import Fraction

# Duration vocabulary (55 symbols): three special indices, then the note values.
CONT = 0  # the voice continues a note begun in an earlier frame
EMPTY = 1  # unused channel
START = 2  # padding before a score's first frame
NUM_SPECIAL = 3  # vocabulary index of the first note value (duration targets are ``index - NUM_SPECIAL``)
# The 52 note values of the KernScores corpus in quarter notes, ascending (SPEC §1.3).
NOTE_VALUES: tuple[Fraction, ...] = tuple(
    Fraction(v)
    for v in (
        "1/48 1/44 1/32 1/28 1/24 1/22 1/20 1/16 1/14 1/12 1/10 1/9 2/17 1/8 2/15 1/7 7/48 1/6 2/11 "
        "3/16 1/5 1/4 3/10 1/3 3/8 2/5 1/2 7/12 3/5 2/3 3/4 4/5 7/8 1 9/8 7/6 4/3 3/2 7/4 2 7/3 5/2 "
        "3 7/2 15/4 4 9/2 6 8 9 12 15"
    ).split()
)
NUM_NOTE_VALUES = len(NOTE_VALUES)  # 52: the duration classes a model predicts
NUM_DURATIONS = NUM_SPECIAL + NUM_NOTE_VALUES  # 55: the one-hot width of a duration input
# The coarsest tick that expresses every note value exactly (ticks per quarter note).  The parser
# keeps a much finer grid (``voicecomp.data.humdrum.TICKS_PER_QUARTER``) for arbitrary kern input.
NOTE_VALUE_TICKS_PER_QUARTER = math.lcm(*(v.denominator for v in NOTE_VALUES))

# Onset location within the beat: 48 classes per quarter note.
NUM_LOCATIONS = 48

# Channels of a frame: at most 6 concurrent voices.
MAX_VOICES = 6

# The pitch window: MIDI 24..101 (the corpus extremes); pitch index n is MIDI n + PITCH_OFFSET.
PITCH_OFFSET = 24
PITCH_RANGE = 78

# The single-voice task converts nats per event to bits per beat at this fixed rate for every split
# (the reference's parts_model.py hard-codes it; SPEC §2).
SINGLE_VOICE_EVENTS_PER_BEAT = 1.219
