"""MIDI reader built on music21, producing voicecomp's score type (:class:`KernScore`).

Every MIDI channel of every track is a part: the file is first rewritten (with mido) as a type-1
file with one track per (track, channel), because music21 reads one part per track and would
merge the channels of a type-0 file, even a drum note with a pitched note that starts with it.
Notes of the percussion channel (10) are unpitched and dropped there (and counted in the
warnings).  music21 then reads the parts at exact times: onsets and durations are the file's
ticks divided by its ticks per quarter note, without music21's quantization
(``quantizePost=False``), so tuplets written by notation programs stay exact.  From there the
MusicXML rules of :mod:`voicecomp.data.musicxml` apply: a part that plays chords or overlapping
notes is split into voices (notes that start and end together stay one chord), voices are
numbered by mean pitch, the lowest first (a MIDI file's tracks have no order), more voices than the 6 channels pack the busiest parts first,
tie chains that music21 writes across its barlines read back as one note.  A file whose times are
performed rather than notated (durations that are no note value of the model) reads fine but
cannot be encoded; quantize it in a notation program first.
"""

from __future__ import annotations

import os
import tempfile
import warnings as warnings_module
from typing import Optional

from voicecomp.data.humdrum import KernScore
from voicecomp.data.musicxml import _describe, import_music21, score_from_music21
from voicecomp.data.errors import ScoreReadError

PERCUSSION_CHANNEL = 9  # MIDI channel 10, counted from 0


def read_midi(
    path: str | os.PathLike,
    *,
    chords: str = "keep",
    ties: str = "vocabulary",
    warnings: Optional[list[str]] = None,
    name: Optional[str] = None,
) -> KernScore:
    """The score of a Standard MIDI File (``.mid``/``.midi``); options as
    :func:`voicecomp.data.musicxml.read_musicxml`.

    Raises:
      ScoreReadError: not a readable MIDI file, no pitched notes, more voices than channels.
    """
    name = name or os.fspath(path)
    music21 = import_music21(name)
    with tempfile.TemporaryDirectory() as tmp:
        source = _one_track_per_channel(os.fspath(path), os.path.join(tmp, "parts.mid"), name, warnings)
        with warnings_module.catch_warnings(record=True) as caught:
            warnings_module.simplefilter("always")
            try:
                parsed = music21.converter.parse(source, format="midi", forceSource=True, storePickle=False,
                                                 quantizePost=False)
            except Exception as err:  # music21 raises many types for bad input; all mean "unreadable"
                raise ScoreReadError(name, f"unreadable MIDI: {_describe(err)}") from None
    if warnings is not None:
        for item in caught:
            warnings.append(f"{name}: music21: {' '.join(str(item.message).split())}")
    return score_from_music21(parsed, name, chords=chords, ties=ties, warnings=warnings, voice_order="pitch")


def _one_track_per_channel(path: str, target: str, name: str, warnings: Optional[list[str]]) -> str:
    """Rewrite ``path`` as a type-1 file at ``target``: a conductor track with every meta message,
    then one track per (track, channel) that plays pitched notes.  Returns ``target``."""
    try:
        import mido
    except ImportError:
        raise ScoreReadError(name, "reading MIDI needs mido: pip install 'voicecomp[corpus]'") from None
    try:
        midi = mido.MidiFile(path)
    except Exception as err:  # mido raises OSError, EOFError, ValueError, ... for damaged files
        raise ScoreReadError(name, f"unreadable MIDI: {_describe(err)}") from None
    if midi.type == 2:
        raise ScoreReadError(name, "MIDI type 2 (independent sequences) is not supported")
    meta: list[tuple[int, object]] = []
    channels: dict[tuple[int, int], list[tuple[int, object]]] = {}
    drums = 0
    for t, track in enumerate(midi.tracks):
        now = 0
        for message in track:
            now += message.time
            if message.is_meta:
                if message.type != "end_of_track":
                    meta.append((now, message))
            elif hasattr(message, "channel"):
                if message.channel == PERCUSSION_CHANNEL:
                    drums += message.type == "note_on" and message.velocity > 0
                else:
                    channels.setdefault((t, message.channel), []).append((now, message))
    if drums and warnings is not None:
        warnings.append(f"{name}: {drums} unpitched (percussion) note(s) dropped")
    out = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat)
    for events in [meta] + [channels[k] for k in sorted(channels)]:
        track = mido.MidiTrack()
        now = 0
        for tick, message in sorted(events, key=lambda e: e[0]):  # stable: same-tick order kept
            track.append(message.copy(time=tick - now))
            now = tick
        out.tracks.append(track)
    out.save(target)
    return target
