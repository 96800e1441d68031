"""Corpus figures: scores, voices, onsets, examples and events per beat per split."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np

from voicecomp import encoding
from voicecomp.data.humdrum import TICKS_PER_QUARTER

SPLITS = ("train", "test", "test_nonpiano")


def corpus_statistics(corpus) -> dict[str, Any]:
    """Figures of a parsed corpus, as a JSON-ready dict."""
    encoded, rejected = encoding.encode_corpus(corpus)
    tables = encoding.split_tables(corpus, encoded, SPLITS)
    values: dict[int, int] = {}
    pitches = [s.note_pitch for s in corpus.scores.values() if s.note_pitch.size]
    for score in corpus.scores.values():
        ticks, counts = np.unique(score.durations[score.durations > 0], return_counts=True)
        for t, c in zip(ticks.tolist(), counts.tolist()):
            values[t] = values.get(t, 0) + c
    vocabulary = set(encoding.NOTE_VALUES)
    note_values = sorted(Fraction(t, TICKS_PER_QUARTER) for t in values)
    all_pitches = np.concatenate(pitches) if pitches else np.zeros(0, np.int32)
    return {
        "corpus": corpus.name,
        "scores": len(encoded),
        "voices": int(sum(int(e.onsets().any(axis=0).sum()) for e in encoded.values())),
        "note_onsets": int(sum(int((e.notes * e.onsets()[:, :, None]).sum()) for e in encoded.values())),
        "frames": int(sum(e.notes.shape[0] for e in encoded.values())),
        "splits": {
            split: {
                "scores": len(table.score_ids),
                "examples": table.num_examples,
                "beats": table.beats,
                "events_per_beat": round(table.events_per_beat, 4) if table.beats else None,
            }
            for split, table in tables.items()
        },
        "durations": [str(v) for v in note_values],
        "durations_outside_vocabulary": [str(v) for v in note_values if v not in vocabulary],
        "pitch_range": [int(all_pitches.min()), int(all_pitches.max())] if all_pitches.size else None,
        "notes_outside_window": int(sum(e.dropped_notes for e in encoded.values())),
        "rejected_by_table": len(corpus.rejected),
        "skipped": [
            {"score_id": f.score_id, "line": f.line, "reason": f.reason} for f in corpus.failures
        ]
        + [{"score_id": k, "line": 0, "reason": v} for k, v in sorted(rejected.items())],
    }


def format_statistics(figures: dict[str, Any]) -> str:
    """Human-readable report of :func:`corpus_statistics`."""
    lines = [
        f"corpus            {figures['corpus']}",
        f"scores            {figures['scores']:,}  ({figures['voices']:,} voices, {figures['frames']:,} frames)",
        f"note onsets       {figures['note_onsets']:,}",
    ]
    for split, row in figures["splits"].items():
        epb = f"{row['events_per_beat']:.4f}" if row["events_per_beat"] is not None else "-"
        lines.append(
            f"{split:<17} {row['scores']:>5} scores {row['examples']:>10,} examples  {epb} events/beat"
        )
    lines.append(f"note values       {len(figures['durations'])}: {' '.join(figures['durations'])}")
    if figures["durations_outside_vocabulary"]:
        lines.append(f"  outside the vocabulary: {' '.join(figures['durations_outside_vocabulary'])}")
    if figures["pitch_range"]:
        lo, hi = figures["pitch_range"]
        lines.append(f"pitch range       MIDI {lo}..{hi} ({hi - lo + 1} pitches; window 24..101)")
    if figures["notes_outside_window"]:
        lines.append(f"  {figures['notes_outside_window']} onset bits outside the pitch window dropped")
    if figures["rejected_by_table"]:
        lines.append(f"rejected ids      {figures['rejected_by_table']} (corpus table; never parsed)")
    lines.append(f"skipped files     {len(figures['skipped'])}")
    for row in figures["skipped"]:
        lines.append(f"  {row['score_id']}: line {row['line']}: {row['reason']}")
    return "\n".join(lines)
