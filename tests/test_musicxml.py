"""MusicXML and MIDI readers, the MusicXML writer (issue 13).

One small fixture per reading rule (written here, a few notes each); the writer's round trip on
real KernScores scores; and every MusicXML score that ships with music21 (at most 6 parts) read
with voicecomp's reader against music21's own note count (parsed once, then cached by content).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import pickle
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from voicecomp.data.humdrum import EMPTY_TICKS, TICKS_PER_QUARTER
from voicecomp.data.musicxml import READER_VERSION, read_musicxml, score_from_music21
from voicecomp.data.scorefile import ScoreReadError, read_score
from voicecomp.encoding import encode_score
from voicecomp.export import Voices, export_score, to_musicxml, verovio_messages, voices_from_score

music21 = pytest.importorskip("music21")
Q = TICKS_PER_QUARTER


# ---------------------------------------------------------------------------
# Fixture builder: a partwise MusicXML file from note snippets


def n(pitch: str | None, duration: int, kind: str = "quarter", *, voice: int = 1, chord: bool = False,
      tie: str | None = None, dots: int = 0, tuplet: tuple[int, int] | None = None, grace: bool = False,
      hidden: bool = False, whole_measure: bool = False) -> str:
    """One <note>: pitch like "C4", "F#3", "Bb2" (None: a rest); duration in divisions."""
    parts = ["<note" + (' print-object="no"' if hidden else "") + ">"]
    if grace:
        parts.append("<grace/>")
    if chord:
        parts.append("<chord/>")
    if pitch is None:
        parts.append('<rest measure="yes"/>' if whole_measure else "<rest/>")
    else:
        step, octave, alter = pitch[0], pitch[-1], {"#": 1, "b": -1}.get(pitch[1:-1], 0)
        parts.append(f"<pitch><step>{step}</step>" + (f"<alter>{alter}</alter>" if alter else "")
                     + f"<octave>{octave}</octave></pitch>")
    if not grace:
        parts.append(f"<duration>{duration}</duration>")
    for t in (tie or "").split():
        parts.append(f'<tie type="{t}"/>')
    parts.append(f"<voice>{voice}</voice><type>{kind}</type>" + "<dot/>" * dots)
    if tuplet:
        parts.append(f"<time-modification><actual-notes>{tuplet[0]}</actual-notes>"
                     f"<normal-notes>{tuplet[1]}</normal-notes></time-modification>")
    if tie:
        parts.append("<notations>" + "".join(f'<tied type="{t}"/>' for t in tie.split()) + "</notations>")
    return "".join(parts) + "</note>"


def backup(duration: int) -> str:
    return f"<backup><duration>{duration}</duration></backup>"


def musicxml(*parts: list[str], divisions: int = 4, time: str = "4/4", names=None, implicit_first=False,
             first_extra: str = "") -> str:
    """Parts are lists of measure contents; every part's first measure carries the attributes."""
    beats, beat_type = time.split("/")
    names = names or [f"Part {i + 1}" for i in range(len(parts))]
    head = "".join(f'<score-part id="P{i + 1}"><part-name>{name}</part-name></score-part>'
                   for i, name in enumerate(names))
    body = []
    for i, measures in enumerate(parts):
        xml = []
        for k, content in enumerate(measures):
            attrs = ""
            if k == 0:
                attrs = (f"<attributes><divisions>{divisions}</divisions><key><fifths>0</fifths></key>"
                         f"<time><beats>{beats}</beats><beat-type>{beat_type}</beat-type></time>"
                         f"<clef><sign>G</sign><line>2</line></clef>{first_extra}</attributes>")
            number = k if implicit_first else k + 1
            implicit = ' implicit="yes"' if implicit_first and k == 0 else ""
            xml.append(f'<measure number="{number}"{implicit}>{attrs}{content}</measure>')
        body.append(f'<part id="P{i + 1}">{"".join(xml)}</part>')
    return ('<?xml version="1.0" encoding="UTF-8"?><score-partwise version="4.0">'
            f"<part-list>{head}</part-list>{''.join(body)}</score-partwise>")


def read(tmp_path: Path, text: str, name: str = "x.musicxml", **kwargs):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    warnings: list[str] = []
    score = read_musicxml(path, warnings=warnings, **kwargs)
    return score, warnings


def events(score) -> list[list[tuple]]:
    """Per channel: (onset, duration, pitches) in quarter notes, rests included (pitches ())."""
    return [[(n.onset, n.duration, n.pitches) for n in v] for v in voices_from_score(score).voices]


def notes_only(score) -> list[list[tuple]]:
    return [[e for e in voice if e[2]] for voice in events(score)]


F = Fraction


# ---------------------------------------------------------------------------
# Reading rules


def test_parts_and_voices_become_channels_from_the_bottom_up(tmp_path):
    soprano = [n("E5", 8, "half") + n("D5", 8, "half") + backup(16) + n("C5", 16, "whole", voice=2)]
    bass = [n("C3", 16, "whole")]
    score, warnings = read(tmp_path, musicxml(soprano, bass, names=["Soprano", "Bass"]))
    assert notes_only(score) == [
        [(0, 4, (48,))],  # channel 0: the bass, the lowest part
        [(0, 4, (72,))],  # the soprano's second (lower) voice
        [(0, 2, (76,)), (2, 2, (74,))],  # the soprano's first voice
    ]
    assert score.part_names == ("Bass", "Soprano")
    assert (score.durations[:, 3:] == EMPTY_TICKS).all() and warnings == []
    assert np.array_equal(score.flows[1], np.diag([1, 1, 1, 0, 0, 0]).astype(np.int8))


def test_equal_chord_notes_are_one_event(tmp_path):
    measure = n("C4", 4) + n("E4", 4, chord=True) + n("G4", 4, chord=True) + n(None, 4) + n("D4", 8, "half")
    score, _ = read(tmp_path, musicxml([measure]))
    assert events(score) == [[(0, 1, (60, 64, 67)), (1, 1, ()), (2, 2, (62,))]]


def test_overlapping_notes_of_a_voice_are_split_into_voices(tmp_path):
    # One notated voice plays a half note under two quarters (as a MIDI track would).
    measure = n("C4", 8, "half") + backup(8) + n("E4", 4) + n("F4", 4) + n("G4", 8, "half")
    score, _ = read(tmp_path, musicxml([measure]))
    assert notes_only(score) == [[(0, 2, (60,))], [(0, 1, (64,)), (1, 1, (65,)), (2, 2, (67,))]]
    assert events(score)[0][-1] == (2, 2, ())  # the lower voice rests while the upper one plays on


def test_chords_split_rule(tmp_path):
    measure = n("C4", 16, "whole") + n("E4", 16, "whole", chord=True) + n("G4", 16, "whole", chord=True)
    score, _ = read(tmp_path, musicxml([measure]), chords="split")
    assert notes_only(score) == [[(0, 4, (60,))], [(0, 4, (64,))], [(0, 4, (67,))]]


def test_tuplets_are_exact(tmp_path):
    # 15 divisions per quarter: a triplet eighth is 5, a quintuplet 16th 3
    triplet = "".join(n(p, 5, "eighth", tuplet=(3, 2)) for p in ("C4", "D4", "E4"))
    quintuplet = "".join(n(p, 3, "16th", tuplet=(5, 4)) for p in ("F4", "G4", "A4", "B4", "C5"))
    measure = triplet + quintuplet + n("D5", 15)
    score, _ = read(tmp_path, musicxml([measure], divisions=15, time="3/4"))
    got = [(o, d) for o, d, _ in notes_only(score)[0]]
    third, fifth = F(1, 3), F(1, 5)
    assert got[:3] == [(0, third), (third, third), (2 * third, third)]
    assert got[3:8] == [(1 + k * fifth, fifth) for k in range(5)]
    assert score.durations[score.durations > 0].min() == Q // 5
    encode_score(score)  # every value is in the model's vocabulary


def test_ties_across_a_barline_read_as_one_note(tmp_path):
    m1 = n("C4", 8, "half") + n("E4", 8, "half", tie="start")
    m2 = n("E4", 8, "half", tie="stop") + n("D4", 8, "half")
    score, _ = read(tmp_path, musicxml([m1, m2]))
    assert notes_only(score) == [[(0, 2, (60,)), (2, 4, (64,)), (6, 2, (62,))]]


def test_tie_chains_outside_the_vocabulary_stay_separate(tmp_path):
    # whole tied to a quarter: 5 quarters is no note value of the model
    m1 = n("G4", 16, "whole", tie="start")
    m2 = n("G4", 4, tie="stop") + n("A4", 12, "half", dots=1)
    text = musicxml([m1, m2])
    score, _ = read(tmp_path, text)
    assert notes_only(score) == [[(0, 4, (67,)), (4, 1, (67,)), (5, 3, (69,))]]
    merged, _ = read(tmp_path, text, ties="merge")
    assert notes_only(merged) == [[(0, 5, (67,)), (5, 3, (69,))]]


def test_grace_notes_are_dropped(tmp_path):
    measure = n("D4", 0, "eighth", grace=True) + n("C4", 16, "whole")
    score, warnings = read(tmp_path, musicxml([measure]))
    assert notes_only(score) == [[(0, 4, (60,))]]
    assert any("1 grace note(s) dropped" in w for w in warnings)


def test_multi_measure_rest_is_one_rest_per_measure(tmp_path):
    style = "<measure-style><multiple-rest>3</multiple-rest></measure-style>"
    measures = [n("C4", 16, "whole"), n(None, 16, "whole", whole_measure=True),
                n(None, 16, "whole", whole_measure=True), n(None, 16, "whole", whole_measure=True),
                n("D4", 16, "whole")]
    text = musicxml(measures).replace("<measure number=\"2\">",
                                      f'<measure number="2"><attributes>{style}</attributes>')
    score, _ = read(tmp_path, text)
    assert events(score) == [[(0, 4, (60,)), (4, 4, ()), (8, 4, ()), (12, 4, ()), (16, 4, (62,))]]


def test_hidden_rests_and_forward_are_gaps_filled_at_barlines(tmp_path):
    upper = [n("E5", 16, "whole") + backup(16) + n("C5", 8, "half", voice=2) + n(None, 8, "half", voice=2, hidden=True),
             n("F5", 16, "whole") + backup(16) + "<forward><duration>12</duration><voice>2</voice></forward>"
             + n("A4", 4, voice=2)]
    score, _ = read(tmp_path, musicxml(upper))
    # voice 2: C5, then a gap of 2 + 3 quarters: one rest up to the barline, one after
    assert events(score)[0] == [(0, 2, (72,)), (2, 2, ()), (4, 3, ()), (7, 1, (69,))]


def test_pickup_measure(tmp_path):
    measures = [n("G4", 4), n("C5", 16, "whole"), n("B4", 12, "half", dots=1)]
    score, _ = read(tmp_path, musicxml(measures, implicit_first=True))
    assert score.pickup == Q
    assert notes_only(score) == [[(0, 1, (67,)), (1, 4, (72,)), (5, 3, (71,))]]
    full, _ = read(tmp_path, musicxml([n("C5", 16, "whole"), n("B4", 12, "half", dots=1)]))
    assert full.pickup == 0  # a complete first measure is no pickup


def test_too_many_voices_pack_the_busiest_part(tmp_path):
    # A quartet whose first violin writes double stops as a second voice, and whose viola and cello
    # each have a second voice too: 7 notated voices for 6 channels.
    violin = [n("E5", 8, "half") + n("D5", 8, "half") + backup(16) + n("C5", 8, "half", voice=2) + n("B4", 8, "half", voice=2)]
    second = [n("G4", 16, "whole")]
    viola = [n("E4", 16, "whole") + backup(16) + n("C4", 4, voice=2) + n("D4", 12, "half", dots=1, voice=2)]
    cello = [n("C3", 16, "whole") + backup(16) + n("G2", 8, "half", voice=2) + n("A2", 8, "half", voice=2)]
    score, warnings = read(tmp_path, musicxml(violin, second, viola, cello, names=["Vl1", "Vl2", "Va", "Vc"]))
    assert notes_only(score)[-1] == [(0, 2, (72, 76)), (2, 2, (71, 74))]  # the first violin's double stops
    assert len(notes_only(score)) == 6 and score.part_names == ("Vc", "Va", "Vl2", "Vl1")
    assert any("7 voices (Vl1: 2, Vl2: 1, Va: 2, Vc: 2), more than the 6 channels: packed the notated voices "
               "of Vl1 (6 voices now)" in w for w in warnings)


def test_too_many_independent_voices_make_the_busiest_parts_single_voices(tmp_path):
    # Four parts of two voices in different rhythms each: packing cannot help, so the two top
    # parts become one voice each (a chord per onset, cut at the next one).
    def part(upper: str, lower: str) -> list[str]:
        return [n(upper, 8, "half") + n(upper, 8, "half") + backup(16)
                + n(lower, 4, voice=2) + n(lower, 12, "half", dots=1, voice=2)]

    parts = [part("E5", "C5"), part("C5", "G4"), part("G4", "E4"), part("C4", "C3")]
    score, warnings = read(tmp_path, musicxml(*parts, names=["S", "A", "T", "B"]))
    got = notes_only(score)
    assert len(got) == 6
    # the soprano: a chord at 0 cut at the lower voice's next onset (1), then its own notes
    assert got[-1] == [(0, 1, (72, 76)), (1, 1, (72,)), (2, 2, (76,))]
    assert sum(len(e[2]) for voice in got for e in voice) == 4 * 4  # every onset kept
    assert any(w.endswith("8 voices (S: 2, A: 2, T: 2, B: 2), more than the 6 channels: packed the notated "
                          "voices of S, A, T, B; made one voice of S, A (6 voices now)") for w in warnings)


def test_more_voices_than_channels_is_an_error(tmp_path):
    parts = [[n(p, 16, "whole")] for p in ("C5", "A4", "F4", "D4", "B3", "G3", "E3")]
    with pytest.raises(ScoreReadError, match=r"^.*seven\.musicxml: 7 voices \(Part 1: 1, .*Part 7: 1\), more "
                                             r"than the 6 channels$"):
        read(tmp_path, musicxml(*parts), "seven.musicxml")


def test_unreadable_and_empty_files(tmp_path):
    (tmp_path / "broken.musicxml").write_text("<score-partwise><part-list>", encoding="utf-8")
    with pytest.raises(ScoreReadError, match=r"broken\.musicxml: unreadable MusicXML") as info:
        read_score(tmp_path / "broken.musicxml")
    assert "\n" not in str(info.value)
    with pytest.raises(ScoreReadError, match=r"rests\.musicxml: no notes"):
        read(tmp_path, musicxml([n(None, 16, "whole")]), "rests.musicxml")
    with pytest.raises(ScoreReadError, match="unknown score file type"):
        read_score(tmp_path / "notes.txt")


# ---------------------------------------------------------------------------
# MIDI


def write_midi(path: Path, tracks: list[list[tuple[int, int, int]]], *, channel_of=None, ticks_per_beat: int = 480):
    """Tracks of (start tick, end tick, pitch) notes; channel_of(track) gives the MIDI channel."""
    import mido

    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_beat)
    for t, notes in enumerate(tracks):
        track = mido.MidiTrack()
        channel = channel_of(t) if channel_of else t
        messages = sorted([(a, 1, p) for a, _, p in notes] + [(b, 0, p) for _, b, p in notes])
        now = 0
        for tick, on, p in messages:
            track.append(mido.Message("note_on" if on else "note_off", note=p, velocity=64 if on else 0,
                                      channel=channel, time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(str(path))


def test_midi_tracks_overlaps_and_triplets(tmp_path):
    path = tmp_path / "song.mid"
    melody = [(0, 160, 72), (160, 320, 74), (320, 480, 76), (480, 1920, 77)]  # triplet eighths, then 3 quarters
    accompaniment = [(0, 1920, 48), (0, 960, 55), (0, 960, 64), (960, 1920, 57)]  # a held bass under a chord
    write_midi(path, [melody, accompaniment])
    score = read_score(path)
    third = F(1, 3)
    assert notes_only(score) == [
        [(0, 4, (48,))],
        [(0, 2, (55, 64)), (2, 2, (57,))],
        [(0, third, (72,)), (third, third, (74,)), (2 * third, third, (76,)), (1, 3, (77,))],
    ]


def test_midi_type0_channels_are_parts_and_drums_are_dropped(tmp_path):
    import mido

    # One track, three channels; the drum (channel 10) starts with the upper voice's first note.
    midi = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    notes = [(0, 960, 60, 0), (0, 480, 72, 1), (480, 960, 74, 1), (0, 480, 36, 9)]
    messages = sorted([(a, 1, p, c) for a, _, p, c in notes] + [(b, 0, p, c) for _, b, p, c in notes])
    now = 0
    for tick, on, p, c in messages:
        track.append(mido.Message("note_on", note=p, velocity=64 * on, channel=c, time=tick - now))
        now = tick
    midi.tracks.append(track)
    midi.save(str(tmp_path / "type0.mid"))
    warnings: list[str] = []
    score = read_score(tmp_path / "type0.mid", warnings=warnings)
    assert notes_only(score) == [[(0, 2, (60,))], [(0, 1, (72,)), (1, 1, (74,))]]
    assert any("1 unpitched (percussion) note(s) dropped" in w for w in warnings)


def test_midi_without_notes_and_percussion(tmp_path):
    write_midi(tmp_path / "empty.mid", [[]])
    with pytest.raises(ScoreReadError, match=r"empty\.mid: .*no notes"):
        read_score(tmp_path / "empty.mid")
    write_midi(tmp_path / "drums.mid", [[(0, 480, 36), (480, 960, 38)]], channel_of=lambda t: 9)
    with pytest.raises(ScoreReadError, match=r"drums\.mid: .*no notes"):
        read_score(tmp_path / "drums.mid")
    (tmp_path / "bad.mid").write_bytes(b"MThd this is not midi")
    with pytest.raises(ScoreReadError, match=r"bad\.mid: unreadable MIDI"):
        read_score(tmp_path / "bad.mid")


# ---------------------------------------------------------------------------
# Writer


def test_writer_ties_clefs_meter_and_pickup(tmp_path):
    voices = Voices.from_lists([
        [(0, 1, [43]), (1, 5, [41]), (6, 2, [36])],  # bass: a 5-quarter note across the barline
        [(0, 1, [55]), (1, F(2, 3), [57]), (F(5, 3), F(1, 3), [59]), (2, 6, [60])],  # tenor, triplets
        [(0, 1, [74]), (1, 6, [72, 76]), (7, 1, [74])],  # soprano: a chord across two barlines
    ], pickup=1)
    text = to_musicxml(voices, tmp_path / "w.musicxml", meter=(3, 4), header={"OTL": "Test", "COM": "Nobody"})
    assert '<measure number="0" implicit="yes">' in text and "<beats>3</beats>" in text
    assert text.count("<sign>F</sign>") == 1 and "<clef-octave-change>-1</clef-octave-change>" in text
    assert "<work-title>Test</work-title>" in text and '<creator type="composer">Nobody</creator>' in text
    assert "<actual-notes>3</actual-notes>" in text and '<tuplet type="start"' in text
    back = read_musicxml(tmp_path / "w.musicxml", ties="merge")
    assert notes_only(back) == [[(n.onset, n.duration, n.pitches) for n in v] for v in voices.voices]
    assert back.pickup == Q
    # the default reader keeps the 5-quarter chain apart (no such note value), the rest is identical
    default = notes_only(read_musicxml(tmp_path / "w.musicxml"))
    assert default[0][:3] == [(0, 1, (43,)), (1, 3, (41,)), (4, 2, (41,))]  # cut at the barline at 4
    assert default[1:] == notes_only(back)[1:]
    assert [m for m in verovio_messages(text, "musicxml") if "rror" in m] == []


def test_note_values_and_tied_pieces():
    from voicecomp.encoding import NOTE_VALUES
    from voicecomp.export import XmlNoteValue, musicxml_note_value, split_note_value

    assert musicxml_note_value(F(1, 3)) == XmlNoteValue("eighth", 0, 3, 2)
    assert musicxml_note_value(F(7, 12)) == XmlNoteValue("eighth", 2, 3, 2)  # double-dotted triplet eighth
    assert musicxml_note_value(F(2, 17)) == XmlNoteValue("32nd", 0, 17, 16)
    assert musicxml_note_value(12) == XmlNoteValue("breve", 1, 1, 1)
    assert musicxml_note_value(F(1, 528)) == XmlNoteValue("1024th", 0, 33, 16)  # below the shortest type
    assert split_note_value(F(5)) == [4, 1] and split_note_value(F(9, 2)) == [4, F(1, 2)]
    for value in NOTE_VALUES + (F(11, 24), F(1, 1000), F(37, 7)):
        pieces = split_note_value(value)
        assert sum(pieces) == value and all(musicxml_note_value(p) is not None for p in pieces)
    assert [v for v in NOTE_VALUES if len(split_note_value(v)) > 1] == [F(9, 8), F(9, 2), 9]  # 1 + 1/8, 4 + 1/2, 8 + 1


def test_export_score_writes_musicxml(tmp_path, kernscores_corpus):
    score = kernscores_corpus.scores["bach.chorales.chor041"]
    paths = export_score(voices_from_score(score), tmp_path, "chor041", formats=("musicxml",))
    assert paths == {"musicxml": str(tmp_path / "chor041.musicxml")}
    assert notes_only(read_score(paths["musicxml"])) == notes_only(score)


# A handful of real scores from the non-piano test split: a chorale, a string quartet movement,
# mensural masses and chansons with triplets and breves (experiments/bench_interop.py: all of it).
ROUND_TRIP = ["bach.chorales.chor006", "haydn.quartets.op33n4-02", "josquin.Jos1312-Crucifixus",
              "busnoys.Bus3039-Maintes_femmes", "mozart.quartets.k421-03"]


@pytest.mark.parametrize("score_id", ROUND_TRIP)
def test_round_trip_of_real_scores(tmp_path, kernscores_corpus, score_id):
    if score_id not in kernscores_corpus.scores or score_id not in kernscores_corpus.split_ids("test_nonpiano"):
        pytest.fail(f"{score_id} is not a non-piano test score")
    score = kernscores_corpus.scores[score_id]
    voices = voices_from_score(score)
    path = tmp_path / "score.musicxml"
    text = to_musicxml(voices, path)
    back = read_musicxml(path)
    assert notes_only(back) == notes_only(score)  # same notes, onsets, durations and voices
    assert back.pickup % Q == score.pickup % Q
    parsed = music21.converter.parse(str(path), forceSource=True, storePickle=False)
    assert music21_note_count(parsed) == voices.num_notes()
    assert [m for m in verovio_messages(text, "musicxml") if "rror" in m] == []


# ---------------------------------------------------------------------------
# Every MusicXML score bundled with music21


def music21_note_count(parsed) -> int:
    """music21's own count of the sounding notes: every pitch of every note and chord that its
    ties do not mark as the continuation of an earlier note, leaving out grace notes, chord
    symbols and unpitched (percussion) notes."""
    return sum(1 for *_, tie in music21_heads(parsed) if tie not in ("stop", "continue"))


def music21_heads(parsed) -> list[tuple]:
    """(part, onset, end, pitch, tie type) of every pitched note head, from music21's offsets."""
    heads = []
    for p, part in enumerate(parsed.parts):
        for element in part.flatten().notes:
            if element.duration.isGrace or isinstance(element, music21.harmony.Harmony):
                continue
            onset = Fraction(element.offset)
            end = onset + Fraction(element.quarterLength)
            notes = element.notes if element.isChord else (element,)
            # A chord's own tie stands for its notes only when none of them has one.
            shared = element.tie if element.isChord and all(h.tie is None for h in notes) else None
            for head in notes:
                if hasattr(head, "pitch"):
                    tie = head.tie or shared
                    heads.append((p, onset, end, round(head.pitch.ps), tie.type if tie is not None else None))
    return heads


def dangling_ties(heads: list[tuple]) -> int:
    """Heads marked as continuing a tie although no note of their pitch in their part ends where
    they start (a tie across other notes, or from nowhere, in the source): new notes, in fact."""
    ends = {(p, end, pitch) for p, _, end, pitch, tie in heads if tie in ("start", "continue")}
    return sum(1 for p, onset, _, pitch, tie in heads if tie in ("stop", "continue") and (p, onset, pitch) not in ends)


CHECK_VERSION = 3  # bump when check_bundled changes (it keys the cache with the reader's version)


def bundled_musicxml() -> list[Path]:
    root = Path(music21.__file__).parent / "corpus"
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mxl", ".xml", ".musicxml"))


def check_bundled(path: str) -> dict:
    """One bundled file: its part count; for at most 6 parts voicecomp's note count (every tie chain
    merged, as music21 counts; and the default reader's) and warnings, music21's own count and
    its dangling ties."""
    parsed = music21.converter.parse(path, forceSource=True, storePickle=False)
    out = {"parts": len(parsed.parts)}
    if out["parts"] > 6:
        return out
    for ties in ("merge", "vocabulary"):
        warnings: list[str] = []
        try:
            score = score_from_music21(parsed, path, ties=ties, warnings=warnings)
            out[ties] = int(score.note_pitch.size)
        except ScoreReadError as err:
            out[ties] = err.reason
        out[f"{ties}_warnings"] = warnings
    heads = music21_heads(parsed)
    out["music21"] = sum(1 for *_, tie in heads if tie not in ("stop", "continue"))
    out["dangling"] = dangling_ties(heads)
    # Sounding notes that start together on one pitch in one part: a channel holds them once.
    ends = {(p, end, pitch) for p, _, end, pitch, tie in heads if tie in ("start", "continue")}
    out["distinct"] = len({(p, onset, pitch) for p, onset, _, pitch, tie in heads
                           if tie not in ("stop", "continue") or (p, onset, pitch) not in ends})
    return out


def _check_task(item: tuple[str, str]) -> tuple[str, dict]:
    key, path = item
    return key, check_bundled(path)


@pytest.fixture(scope="session")
def bundled_results(cache_dir) -> dict[str, dict]:
    """check_bundled for every bundled file, cached by file content and reader version (a cold
    run parses 654 files with music21: minutes; later sessions read the cache)."""
    cache_path = Path(cache_dir) / f"music21-musicxml-reader{READER_VERSION}-check{CHECK_VERSION}.pkl"
    cached: dict = {}
    if cache_path.is_file():
        try:
            cached = pickle.loads(cache_path.read_bytes())
        except Exception:
            cached = {}
    root = Path(music21.__file__).parent / "corpus"
    keys = {}
    for path in bundled_musicxml():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        keys[str(path.relative_to(root))] = (digest, str(path))
    missing = [(f"{name}|{digest}", path) for name, (digest, path) in keys.items() if f"{name}|{digest}" not in cached]
    if missing:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        if workers > 1:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                cached.update(pool.imap_unordered(_check_task, missing, chunksize=1))
        else:
            cached.update(map(_check_task, missing))
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(cached))
        os.replace(tmp, cache_path)
    return {name: cached[f"{name}|{digest}"] for name, (digest, _) in keys.items()}


def test_every_bundled_musicxml_score_reads_with_music21s_note_count(bundled_results):
    small = {k: v for k, v in bundled_results.items() if v["parts"] <= 6}
    assert len(bundled_results) >= 650 and len(small) >= 600
    # A percussion-only score has no pitched note: the reader says so.
    drums = {k for k, v in small.items() if v["music21"] == 0}
    assert all(small[k]["merge"] == "no notes" for k in drums)
    pitched = {k: v for k, v in small.items() if k not in drums}
    assert all(isinstance(v["merge"], int) and isinstance(v["vocabulary"], int) for v in pitched.values())
    # music21's count, plus the notes its ties would join to a note that does not end there; a
    # note that starts with another of its pitch in its part (a unison, a duplicate) may be read
    # once, and is when voices had to be reduced: between the distinct sounding notes and that.
    wrong = {k: (v["distinct"], v["merge"], v["music21"] + v["dangling"]) for k, v in pitched.items()
             if not v["distinct"] <= v["merge"] <= v["music21"] + v["dangling"]}
    assert wrong == {}
    reduced = [k for k, v in pitched.items() if any("more than the 6 channels" in w for w in v["merge_warnings"])]
    exact = sum(1 for v in pitched.values() if v["merge"] == v["music21"])
    print(f"\n{len(pitched)} bundled scores with <= 6 parts read; {exact} with music21's note count exactly, "
          f"{sum(1 for v in pitched.values() if v['dangling'])} with ties music21 marks across other notes, "
          f"{sum(1 for v in pitched.values() if v['merge'] < v['music21'] + v['dangling'])} with unisons read once, "
          f"{len(reduced)} with more voices than channels reduced; {len(drums)} percussion only")
    # The default reader keeps tie chains that are no note value apart: never fewer notes.
    assert all(v["vocabulary"] >= v["merge"] for v in pitched.values())
