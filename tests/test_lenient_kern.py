"""The lenient Humdrum policy (issue 13): extra spines, misaligned barlines, too many voices.

Small kern snippets written for the purpose, one irregularity each, read under both policies;
plus the one KernScores file whose barlines disagree (a mensural Dufay chanson), read in place.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from voicecomp.data import tables
from voicecomp.data.corpus import CorpusError, load_corpus
from voicecomp.data.humdrum import MAX_VOICES, KernParseError, KernScore, parse_kern


def kern(*rows) -> str:
    return "".join(("\t".join(r) if isinstance(r, (list, tuple)) else r) + "\n" for r in rows)


def same_score(a: KernScore, b: KernScore) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f)) if isinstance(getattr(a, f), np.ndarray)
        else getattr(a, f) == getattr(b, f)
        for f in a.__dataclass_fields__ if f != "name"
    )


# Two voices with a figured bass, fingering, lyrics, dynamics, a modern text and a harmony spine.
EXTRA_SPINES = kern(
    ["**kern", "**fb", "**fing", "**kern", "**text", "**dynam", "**mod-text", "**harm"],
    ['*I"Bass', "*", "*", '*I"Soprano', "*", "*", "*", "*"],
    ["*M3/4"] * 8,
    ["4C", "6", "1", "4e", "Ky-", "p", "Ky-", "I"],
    ["4D", "6 4", "2", "8f", "ri-", ".", "ri-", "V"],
    [".", ".", ".", "8g", "e", "f", "e", "."],
    ["=1"] * 8,
    ["2E", "5", "3", "2g", "_", ".", "_", "I6"],
    ["*-"] * 8,
)
# The same music without the non-kern spines.
KERN_ONLY = kern(
    ["**kern", "**kern"],
    ['*I"Bass', '*I"Soprano'],
    ["*M3/4"] * 2,
    ["4C", "4e"],
    ["4D", "8f"],
    [".", "8g"],
    ["=1"] * 2,
    ["2E", "2g"],
    ["*-"] * 2,
)


@pytest.mark.parametrize("spine", ["fb", "fing", "harm", "mod-text"])
def test_strict_refuses_other_spines(spine):
    text = kern(["**kern", f"**{spine}"], ['*I"Bass', "*"], ["4C", "6"], ["*-", "*-"])
    with pytest.raises(KernParseError, match=rf"\*\*{spine}") as info:
        parse_kern(text, "extra.krn")
    assert info.value.line == 1
    assert parse_kern(text, "extra.krn", policy="lenient").note_pitch.tolist() == [48]


def test_lenient_ignores_other_spines():
    warnings: list[str] = []
    score = parse_kern(EXTRA_SPINES, "extra.krn", policy="lenient", warnings=warnings)
    assert same_score(score, parse_kern(KERN_ONLY, "kern-only.krn"))
    assert score.part_names == ("Bass", "Soprano")
    assert warnings == []  # ignoring a spine is by design, not an irregularity


# The barline falls inside the tenor's half note but after the cantus' first quarter (a
# mensural source barred per voice): the spines disagree there, not at =2.
MISALIGNED = kern(
    ["**kern", "**kern"],
    ['*I"Tenor', '*I"Cantus'],
    ["2c", "4e"],
    ["=1", "=1"],
    [".", "4f"],
    ["4d", "4g"],
    ["=2", "=2"],
    ["2e", "2a"],
    ["*-", "*-"],
)


def test_strict_refuses_misaligned_barlines():
    with pytest.raises(KernParseError, match="alignment") as info:
        parse_kern(MISALIGNED, "mensural.krn")
    assert info.value.line == 4


def test_lenient_warns_at_misaligned_barlines_and_keeps_the_notes():
    warnings: list[str] = []
    score = parse_kern(MISALIGNED, "mensural.krn", policy="lenient", warnings=warnings)
    assert warnings == ["mensural.krn:4: kern spines out of alignment at barline"]  # =2 is aligned
    q = score.durations[0, 1]  # one quarter note in ticks
    # frames at 0, 1, 2 and 3 quarters (0: the tenor continues its half note)
    assert (score.durations[:, :2] // q).tolist() == [[2, 1], [0, 1], [1, 1], [2, 2]]
    assert sorted(zip(score.note_frame.tolist(), score.note_channel.tolist(), score.note_pitch.tolist())) == [
        (0, 0, 60), (0, 1, 64), (1, 1, 65), (2, 0, 62), (2, 1, 67), (3, 0, 64), (3, 1, 69)]
    assert score.pickup == 2 * q  # =1 follows the first (tenor) spine, as the strict policy does


SEVEN = kern(["**kern"] * 7, ["4c"] * 7, ["*-"] * 7)


@pytest.mark.parametrize("policy", ["strict", "lenient"])
def test_more_voices_than_channels_is_reported_under_both(policy):
    with pytest.raises(KernParseError, match=rf"7 voices; the model has {MAX_VOICES} channels"):
        parse_kern(SEVEN, "seven.krn", default_instrument="voice", policy=policy)


def test_strict_is_the_default_and_unknown_policies_are_refused():
    with pytest.raises(KernParseError):
        parse_kern(MISALIGNED, "mensural.krn")
    with pytest.raises(ValueError, match="policy"):
        parse_kern(KERN_ONLY, "x.krn", policy="relaxed")


def test_lenient_reads_every_strict_file_identically(kernscores_corpus, kernscores_dir):
    # A sample of real files across corpora: the lenient policy only adds tolerance.
    ids = sorted(kernscores_corpus.scores)[::97]
    for score_id in ids:
        strict = kernscores_corpus.scores[score_id]
        text = Path(strict.name).read_text(encoding="latin-1")
        corpus = kernscores_corpus.corpus_of[score_id]
        lenient = parse_kern(text, strict.name, mensural="/jrp/" in strict.name,
                             default_instrument=tables.kernscores()["default_instruments"].get(corpus),
                             policy="lenient")
        assert same_score(strict, lenient), score_id


def test_real_mensural_source_with_misaligned_barlines(kernscores_dir):
    # Dufay's "Belle vueillez moy vengier" is barred per voice; the paper's table rejects it.
    path = Path(kernscores_dir) / "jrp" / "Duf" / "Duf3022-Belle_vueillez_moy_vengier.krn"
    if not path.is_file():
        pytest.skip(f"{path} not in this KernScores copy")
    text = path.read_text(encoding="latin-1")
    with pytest.raises(KernParseError, match="alignment"):
        parse_kern(text, str(path), mensural=True, default_instrument="voice")
    warnings: list[str] = []
    score = parse_kern(text, str(path), mensural=True, default_instrument="voice", policy="lenient",
                       warnings=warnings)
    assert len(warnings) == 3 and all("out of alignment at barline" in w for w in warnings)
    assert score.num_frames == 179 and score.note_pitch.size == 350


def test_folder_corpus_policy_cache_key_and_report(tmp_path):
    folder = tmp_path / "collection"
    folder.mkdir()
    (folder / "extra.krn").write_text(EXTRA_SPINES, encoding="latin-1")
    (folder / "mensural.krn").write_text(MISALIGNED, encoding="latin-1")
    (folder / "seven.krn").write_text(SEVEN, encoding="latin-1")
    cache = tmp_path / "cache"
    with pytest.raises(CorpusError, match="none of the 3 score files could be read"):
        load_corpus(f"dir:{folder}", cache_dir=cache, policy="strict", progress=False, workers=1)
    lenient = load_corpus(f"dir:{folder}", cache_dir=cache, progress=False, workers=1)  # folders: lenient
    assert sorted(lenient.scores) == ["extra.krn", "mensural.krn"]
    assert {f.score_id for f in lenient.failures} == {"seven.krn"}
    assert len(list((cache / "files").glob("*.pkl"))) == 6  # one entry per file and policy
    report = json.loads(Path(lenient.report).read_text())
    assert report["policy"] == "lenient" and report["files"] == 3 and report["scores"] == 2
    assert report["skipped"] == [{"file": "seven.krn", "line": 2, "reason": lenient.failures[0].reason}]
    assert report["warnings"] == [f"{folder / 'mensural.krn'}:4: kern spines out of alignment at barline"]
