"""Writers of voicecomp.export: exact **kern round trip on the whole corpus, MIDI, WAV, PNG, SVG."""

from __future__ import annotations

import time
import wave
from fractions import Fraction

import numpy as np
import pytest

from voicecomp.data.humdrum import TICKS_PER_QUARTER, parse_kern
from voicecomp.encoding import NOTE_VALUES, NUM_SPECIAL, encode_score
from voicecomp.export import (
    ExportError,
    Voices,
    export_score,
    kern_duration,
    kern_pitch,
    to_kern,
    to_midi,
    to_pianoroll_png,
    to_svg,
    to_wav,
    voices_from_frames,
)

CHORALES = ("bach.chorales.chor041", "bach.chorales.chor100")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _pickup(score) -> Fraction:
    return Fraction(int(score.pickup), TICKS_PER_QUARTER)


@pytest.fixture(scope="module")
def chorale_voices(kernscores_corpus, encoded_kernscores):
    out = {}
    for score_id in CHORALES:
        e = encoded_kernscores[score_id]
        out[score_id] = voices_from_frames(e.notes, e.durations, pickup=_pickup(kernscores_corpus.scores[score_id]))
    return out


# ---------------------------------------------------------------------------
# Spelling


@pytest.mark.parametrize(
    "quarters, token",
    [
        (1, "4"), (2, "2"), (4, "1"), (Fraction(1, 2), "8"), (Fraction(1, 8), "32"),
        (Fraction(3, 2), "4."), (3, "2."), (6, "1."), (Fraction(7, 4), "4.."), (Fraction(15, 4), "2..."),
        (8, "0"), (12, "0."), (16, "00"), (15, "0..."),
        (Fraction(1, 3), "12"), (Fraction(2, 3), "6"), (Fraction(2, 17), "34"), (Fraction(1, 5), "20"),
        (Fraction(7, 48), "48.."), (Fraction(9, 2), "8%9"), (Fraction(7, 3), "3.."), (5, "4%5"),
    ],
)
def test_kern_duration_spelling(quarters, token):
    assert kern_duration(Fraction(quarters)) == token


def test_every_note_value_reparses_exactly():
    tokens = [kern_duration(v) + "c" for v in NOTE_VALUES]
    text = "**kern\n*I\"voice\n" + "\n".join(tokens) + "\n*-\n"
    score = parse_kern(text, mensural=False)
    expected = [int(v * TICKS_PER_QUARTER) for v in NOTE_VALUES]
    assert score.durations[:, 0].tolist() == expected


def test_kern_pitch():
    assert [kern_pitch(p) for p in (60, 72, 84, 48, 36, 24, 61, 59, 70, 101)] == [
        "c", "cc", "ccc", "C", "CC", "CCC", "c#", "B", "a#", "ffff",
    ]
    # every MIDI number survives the parser
    text = "**kern\n*I\"voice\n" + "\n".join(f"4{kern_pitch(p)}" for p in range(128)) + "\n*-\n"
    assert parse_kern(text).note_pitch.tolist() == list(range(128))


# ---------------------------------------------------------------------------
# Exact round trip


def test_kern_round_trip_whole_corpus(kernscores_corpus, encoded_kernscores):
    """to_kern(voices_from_frames(arrays)) re-parses and re-encodes to the same
    notes, durations and per-channel onsets for every score; frame times equal
    the original's (flows may differ: spine layouts are rewritten)."""
    start = time.perf_counter()
    failures, repaired, grace = [], 0, 0
    scale = TICKS_PER_QUARTER // 1884960
    for score_id, e in encoded_kernscores.items():
        original = kernscores_corpus.scores[score_id]
        voices = voices_from_frames(e.notes, e.durations, pickup=_pickup(original))
        text = to_kern(voices, header={"COM": score_id})
        again = encode_score(parse_kern(text, score_id, mensural=False))
        ok = (
            np.array_equal(again.notes, e.notes)
            and np.array_equal(again.durations, e.durations)
            and voices.onset_counts() == e.onsets().sum(axis=0).tolist()
        )
        # Frame times are those of the original file.
        onset_count = (original.durations > 0).sum(axis=1)
        first_event = np.concatenate([[0], np.cumsum(onset_count)[:-1]])
        times = original.event_onset[first_event]
        ok = ok and np.array_equal(np.asarray(voices.grid.times, dtype=np.int64) * scale, times - times[0])
        if not ok:
            failures.append(score_id)
        repaired += any("^" in "".join(r) for records in voices.grid.repairs.values() for r in records)
        grace += bool(voices.grid.grace)
    elapsed = time.perf_counter() - start
    print(f"\nround trip of {len(encoded_kernscores)} scores in {elapsed:.1f} s; "
          f"{repaired} need spine splits, {grace} grace-note continuations")
    assert len(encoded_kernscores) > 2000
    assert failures == []


def test_pickup_and_barlines(kernscores_corpus, chorale_voices):
    for score_id, voices in chorale_voices.items():
        text = to_kern(voices, meter=(4, 4))
        assert "\n=1\t" in text and "\n=2\t" in text
        reparsed = parse_kern(text)
        assert reparsed.pickup == kernscores_corpus.scores[score_id].pickup


def test_repairs_for_inconsistent_channels(encoded_kernscores):
    # WTC I fugue 18 splits a spine mid-piece: channel numbers shift.
    e = encoded_kernscores["bach.wtc.wtc1f18"]
    voices = voices_from_frames(e.notes, e.durations)
    text = to_kern(voices)
    assert "*^" in text
    again = encode_score(parse_kern(text))
    assert np.array_equal(again.durations, e.durations) and np.array_equal(again.notes, e.notes)


def test_header_and_instruments(chorale_voices):
    voices = chorale_voices[CHORALES[0]]
    text = to_kern(voices, header={"COM": "Bach", "model": "multipart6", "seed": 7})
    lines = text.splitlines()
    assert lines[:3] == ["!!!COM: Bach", "!!!model: multipart6", "!!!seed: 7"]
    assert lines[3].split("\t") == ["**kern"] * 4
    assert lines[4].split("\t") == ['*I"voice'] * 4
    assert lines[-1].split("\t") == ["*-"] * 4


def test_hand_built_voices_fill_gaps():
    voices = Voices.from_lists(
        [
            [(0, 1, [60, 64]), (1, Fraction(1, 3), [62]), (Fraction(5, 3), Fraction(1, 3), [])],
            [(Fraction(1, 2), 2, [48])],
            [],
        ]
    )
    text = to_kern(voices)
    score = parse_kern(text)
    assert score.num_frames == 6  # 0, 1/2, 1, 4/3 (gap rest), 5/3, 2 (padding rest)
    assert sorted(score.note_pitch.tolist()) == [48, 60, 62, 64]
    assert "12d" in text and "8r" in text


def test_sampled_like_arrays_with_start_padding():
    # two voices, START padding row, channel 1 holds a half note while channel 0 moves
    durations = np.full((4, 6), 1, dtype=np.int8)
    durations[0, :2] = 2  # START
    quarter = NUM_SPECIAL + NOTE_VALUES.index(Fraction(1))
    half = NUM_SPECIAL + NOTE_VALUES.index(Fraction(2))
    durations[1, :2] = (quarter, half)
    durations[2, :2] = (quarter, 0)
    durations[3, :2] = (half, quarter)
    notes = np.zeros((4, 6, 78), dtype=np.int8)
    notes[1, 0, 60 - 24] = notes[1, 1, 48 - 24] = 1
    notes[2, 0, 62 - 24] = 1
    notes[2, 1] = notes[1, 1]
    notes[3, 0, 64 - 24] = 1
    voices = voices_from_frames(notes, durations)
    assert voices.onset_counts() == [3, 2, 0, 0, 0, 0]
    assert voices.voices[1][1].onset == 2 and voices.voices[1][1].pitches == ()
    again = encode_score(parse_kern(to_kern(voices)))
    assert np.array_equal(again.durations, durations[1:]) and np.array_equal(again.notes, notes[1:])


def test_bad_arrays_rejected():
    durations = np.array([[0, 1, 1, 1, 1, 1]], dtype=np.int8)
    with pytest.raises(ExportError):
        voices_from_frames(np.zeros((1, 6, 78), np.int8), durations)


# ---------------------------------------------------------------------------
# MIDI / WAV / PNG / SVG


def test_midi(tmp_path, chorale_voices):
    import mido

    voices = chorale_voices[CHORALES[0]]
    path = tmp_path / "c.mid"
    to_midi(voices, path, tempo_bpm=120)
    midi = mido.MidiFile(path)
    assert midi.ticks_per_beat == 480 and len(midi.tracks) == 1 + voices.num_voices
    ons = [m for track in midi.tracks for m in track if m.type == "note_on" and m.velocity > 0]
    offs = [m for track in midi.tracks for m in track if m.type == "note_off"]
    assert len(ons) == len(offs) == voices.num_notes()
    # absolute note-on times of the first voice's track
    now, starts = 0, []
    for m in midi.tracks[1]:
        now += m.time
        if m.type == "note_on":
            starts.append(now)
    expected = sorted(int(n.onset * 480) for n in voices.voices[0] for _ in n.pitches)
    assert starts == expected
    assert midi.length == pytest.approx(float(voices.end) * 0.5, abs=1e-6)


def test_wav(tmp_path, chorale_voices):
    voices = chorale_voices[CHORALES[1]]
    path = tmp_path / "c.wav"
    assert to_wav(voices, path, sample_rate=8000, tempo_bpm=100) == "additive"
    with wave.open(str(path)) as handle:
        assert handle.getsampwidth() == 2 and handle.getnchannels() == 1 and handle.getframerate() == 8000
        frames = handle.getnframes()
        data = np.frombuffer(handle.readframes(frames), dtype="<i2")
    seconds = float(voices.end) * 60 / 100
    assert frames == int(np.ceil(seconds * 8000)) + int(0.25 * 8000)
    assert np.abs(data).max() > 20000
    # sound throughout: every second has energy
    per_second = np.abs(data[: int(seconds) * 8000]).reshape(-1, 8000).max(axis=1)
    assert (per_second > 1000).all()


def test_wav_fluidsynth_falls_back(tmp_path, chorale_voices, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.warns(UserWarning, match="fluidsynth"):
        used = to_wav(chorale_voices[CHORALES[0]], tmp_path / "f.wav", sample_rate=8000, synth="fluidsynth")
    assert used == "additive" and (tmp_path / "f.wav").stat().st_size > 1000


def test_pianoroll_png(tmp_path, chorale_voices):
    path = tmp_path / "roll.png"
    to_pianoroll_png(chorale_voices[CHORALES[0]], path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 5000


def test_svg(tmp_path, chorale_voices):
    pytest.importorskip("verovio")
    for score_id, voices in chorale_voices.items():
        result = to_svg(to_kern(voices), tmp_path / f"{score_id}.svg")
        assert result.errors == [], result.log
        svg = open(result.paths[0], encoding="utf-8").read()
        assert svg.lstrip().startswith("<") and "<svg" in svg and svg.count("class=\"note\"") > 50


def test_svg_missing_verovio_message(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "verovio":
            raise ImportError("no verovio")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install 'voicecomp\[render\]'"):
        to_svg("**kern\n*-\n", "/nonexistent/x.svg")


def test_export_score(tmp_path, chorale_voices):
    voices = chorale_voices[CHORALES[0]]
    formats = ("kern", "mid", "wav", "png")
    try:
        import verovio  # noqa: F401

        formats += ("svg",)
    except ImportError:
        pass
    paths = export_score(voices, tmp_path / "out", "chor041", formats=formats, header={"COM": "Bach"}, sample_rate=8000)
    assert set(paths) == set(formats)
    for fmt, path in paths.items():
        assert path.endswith({"kern": ".krn"}.get(fmt, "." + fmt))
        assert (tmp_path / "out" / path.split("/")[-1]).stat().st_size > 0
    text = open(paths["kern"], encoding="latin-1").read()
    assert encode_score(parse_kern(text)).durations.shape[0] == len(voices.grid.times)
    with pytest.raises(ValueError):
        export_score(voices, tmp_path, "x", formats=("pdf",))
