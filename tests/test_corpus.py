"""KernScores conformance: per-score counts and hashes, splits, golden examples (issue: data)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from voicecomp import encoding
from voicecomp.data import tables


@pytest.fixture(scope="module")
def corpus_stats(shared_dir):
    return json.loads((shared_dir / "reference" / "corpus_stats.json").read_text())


def test_package_tables_match_reference(shared_dir):
    reference = json.loads((shared_dir / "reference" / "split.json").read_text())
    shipped = tables.kernscores()
    for key in ("corpora", "piano_corpora", "string_corpora", "default_instruments", "rejected", "test"):
        assert shipped[key] == reference[key], key
    instruments = json.loads((shared_dir / "reference" / "instruments.json").read_text())
    assert tables.instrument_names() == frozenset(instruments)


def test_every_non_rejected_score_parses(kernscores_corpus, corpus_stats):
    assert [str(f) for f in kernscores_corpus.failures] == []
    assert len(kernscores_corpus.scores) == 2317
    assert set(kernscores_corpus.scores) == set(corpus_stats["scores"])


def test_per_score_counts_and_hashes(encoded_kernscores, corpus_stats):
    mismatches = {}
    for score_id, expected in corpus_stats["scores"].items():
        score = encoded_kernscores[score_id]
        onsets = score.onsets()
        got = {
            "frames": score.notes.shape[0],
            "voice_events": onsets.sum(axis=0).tolist(),
            "notes": int((score.notes * onsets[:, :, None]).sum()),
            "beats": score.beats(),
            "sha256": score.sha256(),
        }
        wrong = [k for k in got if got[k] != expected[k]]
        if wrong:
            mismatches[score_id] = wrong
    assert mismatches == {}


def test_locations_match_reference(kernscores_corpus, encoded_kernscores, corpus_stats):
    first = {k: int(e.locations[0]) for k, e in encoded_kernscores.items()}
    assert first == {k: v["first_location"] for k, v in corpus_stats["scores"].items()}
    # Exact arithmetic differs from the reference's float accumulation in a few
    # scores; both stay within the 1% tolerance, the reference one is exact.
    same = total = 0
    for score_id, score in kernscores_corpus.scores.items():
        onsets = encoded_kernscores[score_id].onsets()
        exact = np.mod(encoding.frame_locations(score, "exact"), 48)
        reference = encoded_kernscores[score_id].location_classes
        per_onset = onsets.sum(axis=1)
        same += int(per_onset[exact == reference].sum())
        total += int(per_onset.sum())
    assert same / total > 0.99


def test_summary(kernscores_corpus, corpus_stats):
    summary = corpus_stats["summary"]
    assert (encoding.PITCH_OFFSET, encoding.PITCH_RANGE) == (summary["pitch_offset"], summary["pitch_range"])
    assert [str(v) for v in encoding.NOTE_VALUES] == summary["durations"]
    pitches = np.concatenate([s.note_pitch for s in kernscores_corpus.scores.values()])
    assert (pitches.min(), pitches.max() - pitches.min() + 1) == (24, 78)
    from voicecomp.data.humdrum import TICKS_PER_QUARTER
    from fractions import Fraction

    values = set()
    for score in kernscores_corpus.scores.values():
        values.update(np.unique(score.durations[score.durations > 0]).tolist())
    assert sorted(Fraction(v, TICKS_PER_QUARTER) for v in values) == list(encoding.NOTE_VALUES)


def test_split_sizes(frame_tables):
    expected = {"train": (2556772, 4.7575), "test": (258810, 4.9277), "test_nonpiano": (214885, 5.0905)}
    got = {k: (t.num_examples, round(t.events_per_beat, 4)) for k, t in frame_tables.items()}
    assert got == expected
    assert len(frame_tables["test"].score_ids) == 199 and len(frame_tables["test_nonpiano"].score_ids) == 163


def _one_hot(indices, depth):
    out = np.zeros(indices.shape + (depth,), np.int8)
    valid = indices >= 0
    out[valid, indices[valid]] = 1
    return out


def test_golden_examples(shared_dir, frame_tables):
    golden = np.load(shared_dir / "reference" / "golden_multipart6.npz")
    table = frame_tables["test_nonpiano"]
    index = np.array(
        [table.example_index(s, int(v), int(i)) for s, v, i in zip(golden["score_id"], golden["voice"], golden["voice_event"])]
    )
    frame_in_score = table.example_frame[index] - table.score_start[table.score_of_example(index)]
    np.testing.assert_array_equal(frame_in_score, golden["frame"])
    batch = encoding.gather_examples(table, index, history=10)
    assert batch["e"].shape == (256, 10, 6, 78) and batch["t"].dtype == np.int8
    for key in ("e", "f", "y", "yf"):
        np.testing.assert_array_equal(batch[key], golden[key], err_msg=key)
    np.testing.assert_array_equal(_one_hot(batch["t"].astype(int), 55), golden["t"])
    np.testing.assert_array_equal(_one_hot(batch["yt"].astype(int), 55), golden["yt"])
    locations_equal = (_one_hot(batch["loc"], 48) == golden["loc"]).all(axis=1)
    assert locations_equal.sum() >= 254
    # targets are channel 0 of the current frame
    np.testing.assert_array_equal(batch["notes_target"], golden["y"][:, 0])
    np.testing.assert_array_equal(batch["duration_target"] + 3, golden["yt"][:, 0].argmax(-1))


def test_frame_batch_equals_examples(frame_tables):
    table = frame_tables["test"]
    rng = np.random.default_rng(0)
    index = rng.integers(0, table.num_examples, 64)
    per_example = encoding.gather_examples(table, index, history=10)
    shared = encoding.gather_frame_batch(table, index, history=10)
    for key in ("y", "yt", "yf", "duration_target", "notes_target"):
        np.testing.assert_array_equal(per_example[key], shared[key])
    # un-swapping the per-example history recovers the shared history rows
    history = encoding.gather_history(table, table.example_frame[index], 10)
    for key in ("e", "t", "f", "loc"):
        np.testing.assert_array_equal(history[key], shared[key][shared["frame"]])


def test_stats_cli_json(kernscores_dir, cache_dir):
    out = subprocess.run(
        [sys.executable, "-m", "voicecomp.data", "stats", f"--kernscores_dir={kernscores_dir}", f"--cache_dir={cache_dir}", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["scores"] == 2317
    assert figures["splits"]["test_nonpiano"]["examples"] == 214885
    assert figures["pitch_range"] == [24, 101] and len(figures["durations"]) == 52
