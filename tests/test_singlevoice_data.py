"""Single-voice dataset (SPEC §1.5, voicecomp.data.parts): voice-parts, histories r(m) and r~(m)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from voicecomp.data import parts as sv
from voicecomp.data.humdrum import TICKS_PER_QUARTER
from voicecomp.encoding import NUM_SPECIAL, PITCH_RANGE, START, gather_examples
from voicecomp.vocab import SINGLE_VOICE_EVENTS_PER_BEAT


@pytest.fixture(scope="module")
def parts(kernscores_corpus):
    return {
        "train": sv.build_parts(kernscores_corpus, "train"),
        "test": sv.build_parts(kernscores_corpus, "test", arithmetic="exact"),
        "test_reference": sv.build_parts(kernscores_corpus, "test"),
    }


@pytest.fixture(scope="module")
def voice_frames(kernscores_corpus):
    return sv.build_voice_frame_table(kernscores_corpus, "test")


def test_split_counts(parts):
    train, test, test_ref = parts["train"], parts["test"], parts["test_reference"]
    # Reference: 6,623 train parts / 2,012,819 events; 648 test parts / 214,404 events.
    assert (train.num_parts, train.num_events) == (6623, 2012819)
    assert (test_ref.num_parts, test_ref.num_events) == (648, 214404)
    # Exact arithmetic differs only in one part (float onsets reorder its chain).
    assert (test.num_parts, test.num_events) == (648, 214689)
    diff = [p for p in test.part_ids if test.part(p)["onset"].shape != test_ref.part(p)["onset"].shape]
    assert diff == ["haydn.quartets.op09n3-01:Violino I"]
    assert test.part(diff[0])["onset"].shape[0] == 596 and test_ref.part(diff[0])["onset"].shape[0] == 311
    assert test.stats.raw_events == 214885  # = non-piano test multi-voice examples (SPEC §1.4)
    assert (train.stats.merged_events, train.stats.dropped_events) == (453, 1181)


def test_reference_arithmetic_agrees_on_train(kernscores_corpus, parts):
    exact = sv.build_parts(kernscores_corpus, "train", arithmetic="exact")
    train = parts["train"]
    assert exact.part_ids == train.part_ids
    for key in ("part_start", "notes", "durations", "location_class", "onset"):
        np.testing.assert_array_equal(getattr(exact, key), getattr(train, key))


def test_vocabulary_pitch_and_location(parts):
    for table in parts.values():
        n = table.num_events
        assert table.notes.shape == (n, PITCH_RANGE) and table.notes.dtype == np.int8
        assert table.stats.dropped_notes == 0 and table.stats.unknown_durations == ()
        assert table.durations.min() >= NUM_SPECIAL and table.durations.max() <= 54
        assert table.location_class.min() >= 0 and table.location_class.max() <= 47
        assert set(np.unique(table.notes).tolist()) <= {0, 1}
        assert table.part_start[0] == 0 and table.part_start[-1] == n and np.all(np.diff(table.part_start) > 0)
        assert list(table.part_ids) == sorted(table.part_ids) and all(":" in p for p in table.part_ids)
    # pitch window 24..101 covers every note; the bits in use span MIDI 34..101
    used = np.nonzero((parts["train"].notes.any(0)) | (parts["test"].notes.any(0)))[0] + 24
    assert used.min() >= 24 and used.max() <= 101
    train_values = set(sv.distinct_note_values(parts["train"]))
    test_values = set(sv.distinct_note_values(parts["test_reference"]))
    # 33 distinct note values over the whole parts data set (the reference's duration
    # map: 33 values + its 0 padding symbol); all in train, 25 of them in test.
    assert len(train_values | test_values) == 33 and len(train_values) == 33 and len(test_values) == 25


def test_location_class_exact(kernscores_corpus, parts):
    table = parts["test"]
    rng = np.random.default_rng(1)
    for i in rng.integers(0, table.num_events, 300).tolist():
        part_id = table.part_ids[int(table.part_of_event(np.array([i]))[0])]
        score = kernscores_corpus.scores[part_id.rsplit(":", 1)[0]]
        onset = Fraction(int(table.onset[i]), TICKS_PER_QUARTER)
        frac_pickup = Fraction(score.pickup % TICKS_PER_QUARTER, TICKS_PER_QUARTER)
        assert round(48 * (onset - frac_pickup)) % 48 == table.location_class[i]


def test_events_per_beat(parts):
    train, test = parts["train"], parts["test_reference"]
    assert train.events_per_beat == pytest.approx(1.2164, abs=1e-4)
    # the reference's fixed 1.219 is the rate of the whole parts data set (train + test)
    total = (train.num_events + test.num_events) / (train.beats + test.beats)
    assert total == pytest.approx(SINGLE_VOICE_EVENTS_PER_BEAT, abs=5e-4)


@pytest.mark.parametrize("history_m", [1, 5, 10])
def test_gather_part_examples_matches_loop(parts, history_m):
    table = parts["test"]
    rng = np.random.default_rng(history_m)
    # random events plus every first event of a few parts (full padding)
    idx = np.concatenate([rng.integers(0, table.num_events, 64), table.part_start[:8], table.part_start[1:9] - 1])
    batch = sv.gather_part_examples(table, idx, history_m)
    b = idx.shape[0]
    assert batch["e"].shape == (b, history_m, PITCH_RANGE) and batch["t"].shape == (b, history_m)
    assert batch["loc"].shape == (b,) and batch["y"].shape == (b, PITCH_RANGE) and batch["yt"].shape == (b,)
    for row, i in enumerate(idx.tolist()):
        p = int(np.searchsorted(table.part_start, i, side="right") - 1)
        first = int(table.part_start[p])
        for k in range(history_m):
            j = i - history_m + k
            if j < first:
                assert batch["t"][row, k] == START and not batch["e"][row, k].any()
            else:
                assert batch["t"][row, k] == table.durations[j]
                np.testing.assert_array_equal(batch["e"][row, k], table.notes[j])
        np.testing.assert_array_equal(batch["y"][row], table.notes[i])
        assert batch["yt"][row] == table.durations[i]
        assert batch["duration_target"][row] == table.durations[i] - NUM_SPECIAL
        assert batch["loc"][row] == table.location_class[i]
    firsts = np.isin(idx, table.part_start[:-1])
    assert np.all(batch["t"][firsts] == START) and not batch["e"][firsts].any()


def test_frame_history_examples(voice_frames):
    ft = voice_frames
    assert ft.num_examples == 214885 and len(ft.score_ids) == 163
    rng = np.random.default_rng(7)
    ex = rng.integers(0, ft.num_examples, 200)
    batch = sv.gather_frame_history_examples(ft, ex, 10)
    # the reference sliced channel 0 of the swapped multi-voice example
    multi = gather_examples(ft, ex, 10)
    np.testing.assert_array_equal(batch["e"], multi["e"][:, :, 0])
    np.testing.assert_array_equal(batch["t"], multi["t"][:, :, 0])
    np.testing.assert_array_equal(batch["loc"], multi["loc"])
    np.testing.assert_array_equal(batch["notes_target"], multi["notes_target"])
    np.testing.assert_array_equal(batch["duration_target"], multi["duration_target"])
    for row, i in enumerate(ex[:40].tolist()):
        j, v = int(ft.example_frame[i]), int(ft.example_voice[i])
        for k in range(10):
            f = j - 10 + k
            if f < ft.first_frame[j]:
                assert batch["t"][row, k] == START and not batch["e"][row, k].any()
            else:
                assert batch["t"][row, k] == ft.durations[f, v]
                np.testing.assert_array_equal(batch["e"][row, k], ft.notes[f, v])


def test_part_frame_history(parts, voice_frames):
    table, ft = parts["test"], voice_frames
    frames = sv.event_global_frames(table, ft)
    token_notes = ft.notes[frames, table.event_channel]
    # a part event is its first note token, with the notes of merged tokens added
    assert np.all(table.notes >= token_notes)
    np.testing.assert_array_equal(ft.durations[frames, table.event_channel], table.durations)
    rng = np.random.default_rng(3)
    idx = np.concatenate([rng.integers(0, table.num_events, 40), table.part_start[:4]])
    batch = sv.gather_part_frame_history(table, ft, idx, 5, frames)
    for row, i in enumerate(idx.tolist()):
        f0, c = int(frames[i]), int(table.event_channel[i])
        for k in range(5):
            f = f0 - 5 + k
            if f < ft.first_frame[f0]:
                assert batch["t"][row, k] == START and not batch["e"][row, k].any()
            else:
                assert batch["t"][row, k] == ft.durations[f, c]
                np.testing.assert_array_equal(batch["e"][row, k], ft.notes[f, c])
        np.testing.assert_array_equal(batch["y"][row], table.notes[i])
        assert batch["loc"][row] == table.location_class[i]
