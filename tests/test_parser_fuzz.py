"""Robustness of the ``**kern`` parser and the corpus loader on damaged input.

The property: whatever the text, :func:`parse_kern` returns a :class:`KernScore`
or raises :class:`KernParseError` (with a sensible line) -- never any other
exception -- and it does so quickly.  Inputs are mutations of real KernScores
files (truncated to their first lines to keep every example fast).
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicecomp.data import corpus as corpus_module
from voicecomp.data import tables
from voicecomp.data.corpus import ScoreSource, load_corpus
from voicecomp.data.humdrum import MAX_VOICES, NUM_MIDI, KernParseError, KernScore, parse_kern

MAX_LINES = 300

# Relative to the kernscores folder: chorales, fugues, sonatas, quartets, rags,
# mazurkas, preludes and mensural (jrp) masses.
FUZZ_FILES = [
    "bach-js/bach-371-chorales/kern/chor001.krn",
    "bach-js/bach-371-chorales/kern/chor041.krn",
    "bach-js/bach-371-chorales/kern/chor151.krn",
    "bach-js/bach-371-chorales/kern/chor300.krn",
    "bach-js/bach-wtc/kern/wtc1f01.krn",
    "bach-js/bach-wtc/kern/wtc1f02.krn",
    "beethoven/beethoven-piano-sonatas/kern/sonata01-1.krn",
    "beethoven/beethoven-string-quartets/kern/quartet01-1.krn",
    "chopin/chopin-mazurkas/kern/mazurka-50.krn",
    "chopin/chopin-preludes/kern/prelude28-01.krn",
    "haydn/humdrum-haydn-quartets/kern/op01n0-01.krn",
    "hummel/hummel-preludes/kern/prelude67-01.krn",
    "joplin/joplin-rags/kern/antoinette.krn",
    "jrp/Jos/Jos0301a-Missa_Ave_maris_stella-Kyrie.krn",
    "jrp/Ock/Ock1001a-Kyrie_Gloria_Credo_Sine_nomine-Kyrie.krn",
    "jrp/Duf/Duf1002a-Missa_Ave_regina_celorum-Kyrie.krn",
    "mozart/mozart-piano-sonatas/kern/sonata01-1.krn",
    "mozart/humdrum-mozart-quartets/kern/k080-01.krn",
    "scarlatti-d/scarlatti-keyboard-sonatas/kern/L001K514.krn",
    "scarlatti-d/scarlatti-keyboard-sonatas/kern/L002K384.krn",
]


def _corpus_of(relpath: str) -> tuple[str, str]:
    """(corpus name, folder) of a file path relative to the kernscores folder."""
    for name, folder in tables.kernscores()["corpora"].items():
        if relpath.startswith(folder + "/"):
            return name, folder
    raise KeyError(relpath)


def _source_options(relpath: str) -> dict:
    name, folder = _corpus_of(relpath)
    return {
        "mensural": folder.startswith("jrp/"),
        "default_instrument": tables.kernscores()["default_instruments"].get(name),
    }


@pytest.fixture(scope="module")
def seeds(kernscores_dir) -> list[tuple[str, str, dict]]:
    """(name, text truncated to MAX_LINES lines, parse options) of the seed files."""
    out = []
    for relpath in FUZZ_FILES:
        path = os.path.join(kernscores_dir, relpath)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="latin-1", newline="") as handle:
            lines = handle.read().splitlines(keepends=True)
        out.append((relpath, "".join(lines[:MAX_LINES]), _source_options(relpath)))
    if len(out) < 10:
        pytest.skip(f"too few seed files found under {kernscores_dir}")
    return out


def check_parse(text: str, name: str = "fuzz.krn", **options) -> KernScore | KernParseError:
    """Parse, asserting the robustness property and the output invariants."""
    try:
        score = parse_kern(text, name, **options)
    except KernParseError as err:
        num_lines = len(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
        assert err.filename == name
        assert 1 <= err.line <= num_lines, (err.line, num_lines)
        assert isinstance(err.reason, str) and err.reason
        assert str(err).startswith(f"{name}:{err.line}:")
        return err
    assert isinstance(score, KernScore)
    frames = score.num_frames
    assert score.durations.shape == (frames, MAX_VOICES)
    assert score.reference_durations.shape == (frames, MAX_VOICES)
    assert score.flows.shape == (frames, MAX_VOICES, MAX_VOICES)
    assert (score.durations >= -1).all()
    assert set(np.unique(score.flows).tolist()) <= {0, 1}
    n = score.note_frame.shape[0]
    assert score.note_channel.shape == (n,) and score.note_pitch.shape == (n,)
    if n:
        assert 0 <= score.note_frame.min() and score.note_frame.max() < frames
        assert 0 <= score.note_pitch.min() and score.note_pitch.max() < NUM_MIDI
        assert 0 <= score.note_channel.min() and score.note_channel.max() < MAX_VOICES
        # an onset only in a channel that starts a note there
        assert (score.durations[score.note_frame, score.note_channel] > 0).all()
    events = score.event_part.shape[0]
    assert score.event_onset.shape == (events,) and score.event_duration.shape == (events,)
    assert (score.event_duration > 0).all()
    assert (score.event_onset >= 0).all()
    if events:
        assert score.event_part.max() < len(score.part_names)
    assert score.event_note_event.shape == score.event_note_pitch.shape
    if score.event_note_event.size:
        assert score.event_note_event.max() < events
    assert score.pickup >= 0
    return score


# --------------------------------------------------------------------------- mutations

HUGE_NUMBERS = [
    "99999999999999999999",
    "999999",
    "1000000",
    "0",
    "00000",
    "000000000000",
    "7",
    "29",
    "1%0",
    "0%1",
    "999999%1",
    "1%999999",
    "3%99999999999999999999",
    "%",
    "",
    "-1",
    "4" * 5000,
]
# Inserted text: kern metacharacters, specials and non-Latin-1 characters.
SPECIAL_TEXT = st.sampled_from(
    ["\t", "\n", "\r", "\r\n", "\n\n", "*", "**", "*^", "*v", "*-", "*+", "*x", "=", "=1\t", ".", "!", "q", " ",
     "**kern", "**mens", '*I"', "*staff", "[", "]", "%", "#", "-", "r", "\x00", "\x85", "\u2028", "\ufeff"]
)
NON_LATIN1 = st.text(alphabet=st.characters(min_codepoint=0x100), max_size=8)
LATIN1_BYTES = st.binary(max_size=16).map(lambda b: b.decode("latin-1"))


def _mutate(data, text: str) -> str:
    kind = data.draw(
        st.sampled_from(
            [
                "truncate",
                "delete_line",
                "duplicate_line",
                "delete_token",
                "duplicate_token",
                "insert_bytes",
                "insert_unicode",
                "insert_special",
                "number",
                "remove_tab",
                "remove_newline",
                "replace_char",
            ]
        ),
        label="mutation",
    )
    if kind == "truncate":
        return text[: data.draw(st.integers(0, len(text)), label="cut")]
    if kind in ("insert_bytes", "insert_unicode", "insert_special"):
        strategy = {"insert_bytes": LATIN1_BYTES, "insert_unicode": NON_LATIN1, "insert_special": SPECIAL_TEXT}[kind]
        at = data.draw(st.integers(0, len(text)), label="at")
        return text[:at] + data.draw(strategy, label="inserted") + text[at:]
    if kind == "replace_char":
        if not text:
            return text
        at = data.draw(st.integers(0, len(text) - 1), label="at")
        char = data.draw(st.one_of(st.characters(), st.sampled_from(["\t", "\n", "."])), label="char")
        return text[:at] + char + text[at + 1 :]
    if kind == "number":
        numbers = list(re.finditer(r"\d+", text))
        if not numbers:
            return text
        match = data.draw(st.sampled_from(numbers), label="number")
        value = data.draw(st.sampled_from(HUGE_NUMBERS), label="value")
        return text[: match.start()] + value + text[match.end() :]
    if kind in ("remove_tab", "remove_newline"):
        sep = "\t" if kind == "remove_tab" else "\n"
        positions = [m.start() for m in re.finditer(sep, text)]
        if not positions:
            return text
        at = data.draw(st.sampled_from(positions), label="position")
        replacement = data.draw(st.sampled_from(["", " ", "\t" if sep == "\n" else "\n"]), label="replacement")
        return text[:at] + replacement + text[at + 1 :]
    lines = text.split("\n")
    i = data.draw(st.integers(0, len(lines) - 1), label="line")
    if kind == "delete_line":
        del lines[i]
    elif kind == "duplicate_line":
        lines.insert(i, lines[i])
    else:
        tokens = lines[i].split("\t")
        j = data.draw(st.integers(0, len(tokens) - 1), label="token")
        if kind == "delete_token":
            del tokens[j]
        else:
            tokens.insert(j, tokens[j])
        lines[i] = "\t".join(tokens)
    return "\n".join(lines)


@settings(
    max_examples=150,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_mutated_real_files_parse_or_raise_kern_parse_error(seeds, data):
    name, text, options = data.draw(st.sampled_from(seeds), label="seed")
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        text = _mutate(data, text)
    check_parse(text, name, **options)


@settings(max_examples=60, deadline=2000)
@given(raw=st.binary(max_size=2000), mensural=st.booleans(), default=st.sampled_from([None, "voice", "piano"]))
def test_arbitrary_bytes_decoded_as_latin1(raw, mensural, default):
    check_parse(raw.decode("latin-1"), "bytes.krn", mensural=mensural, default_instrument=default)


@settings(max_examples=60, deadline=2000)
@given(text=st.text(max_size=500))
def test_arbitrary_unicode_text(text):
    check_parse(text, "text.krn", default_instrument="voice")


@settings(max_examples=80, deadline=2000)
@given(
    tokens=st.lists(
        st.lists(
            st.one_of(
                st.sampled_from(["4c", "8dd#", "2.G", "3%2e", ".", "4r", "8cq", "*", "*^", "*v", "*-", "*+", "=", "=1",
                                 "**kern", '*I"Tenor', "*staff1", "0c", "4c 4e", "!"]),
                st.text(alphabet="0123456789%.rqabcdefgABCDEFG#-[]_ *=!^v+", max_size=6),
            ),
            min_size=1,
            max_size=4,
        ),
        max_size=30,
    )
)
def test_random_token_grids(tokens):
    """Structured noise: records built from kern-like tokens, after a valid header."""
    header = "**kern\t**kern\n*I\"Soprano\t*I\"Alto\n"
    body = "".join("\t".join(record) + "\n" for record in tokens)
    check_parse(header + body, "grid.krn")


def test_empty_and_degenerate_files():
    for text in ["", "\n", "\r\n", "\t", "!", "!!!COM: x\n", "*", "=", ".", "**", "**kern", "**kern\n", "**kern\n*-\n",
                 "\x00", "\ufeff**kern\n"]:
        check_parse(text, "degenerate.krn")
    empty = parse_kern("", "empty.krn")
    assert empty.num_frames == 0 and empty.part_names == ()
    with pytest.raises(KernParseError) as info:
        parse_kern("\n", "blank.krn")
    assert info.value.line == 1


@pytest.mark.parametrize(
    "huge",
    ["99999999999999999999", "9" * 5000, "1%" + "9" * 40, "9" * 40 + "%1", "1%0", "0%1", "1234567"],
    ids=["20-digits", "5000-digits", "huge-rational-denominator", "huge-rational-numerator", "zero-denominator",
         "zero-numerator", "7-digits"],
)
def test_huge_durations_are_parse_errors(seeds, huge):
    name, text, options = seeds[0]
    lines = text.split("\n")
    # replace the duration of the first note record's first token
    for i, line in enumerate(lines):
        if line and line[0] not in "!*=" and re.match(r"\d", line):
            lines[i] = re.sub(r"^\d+", huge, line, count=1)
            break
    else:
        pytest.skip("no data record starting with a duration")
    err = check_parse("\n".join(lines), name, **options)
    assert isinstance(err, KernParseError)
    assert err.line == i + 1
    assert "duration" in err.reason or "zero" in err.reason


def test_seed_files_parse(seeds):
    """The unmutated seeds are valid scores (else the fuzzing starts from errors)."""
    parsed = [check_parse(text, name, **options) for name, text, options in seeds]
    failures = [f"{name}: {p}" for (name, _, _), p in zip(seeds, parsed) if isinstance(p, KernParseError)]
    assert failures == []
    assert sum(p.num_frames for p in parsed if isinstance(p, KernScore)) > 1000


def _move_first_record_above_header(text: str) -> str:
    lines = text.split("\n")
    header = next(i for i, line in enumerate(lines) if line.startswith("**"))
    first = next(i for i, line in enumerate(lines) if i > header and line and line[0] in "=" + "0123456789")
    moved = lines.pop(first)
    lines.insert(header, moved)
    return "\n".join(lines)


def test_record_moved_above_exclusive_interpretation(seeds):
    for name, text, options in seeds:
        check_parse(_move_first_record_above_header(text), name, **options)


# --------------------------------------------------------------------------- corpus loading


def _score_fields_equal(a: KernScore, b: KernScore) -> bool:
    for field in a.__dataclass_fields__:
        x, y = getattr(a, field), getattr(b, field)
        if isinstance(x, np.ndarray):
            if x.dtype != y.dtype or not np.array_equal(x, y):
                return False
        elif x != y:
            return False
    return True


def _assert_corpora_equal(a, b) -> None:
    assert list(a.scores) == list(b.scores)
    for key in a.scores:
        assert _score_fields_equal(a.scores[key], b.scores[key]), key
    assert a.failures == b.failures
    assert a.corpus_of == b.corpus_of


@pytest.fixture
def broken_corpus(kernscores_dir, tmp_path) -> tuple[list[ScoreSource], dict[str, int]]:
    """Sources in a temporary folder: good chorales and damaged files.

    Returns the sources and, per broken score id, the expected failure line.
    """
    chorales = Path(kernscores_dir) / "bach-js/bach-371-chorales/kern"
    if not chorales.is_dir():
        pytest.skip("chorales not found")
    folder = tmp_path / "scores"
    folder.mkdir()
    good = ["chor001", "chor002", "chor003"]
    for stem in good:
        shutil.copy(chorales / f"{stem}.krn", folder / f"{stem}.krn")
    text = (chorales / "chor004.krn").read_text(encoding="latin-1")
    lines = text.split("\n")
    # truncated in the middle of a data record: too few tokens on the last line
    data_line = next(i for i, line in enumerate(lines) if i > 20 and line[:1].isdigit())
    (folder / "truncated.krn").write_text("\n".join(lines[:data_line]) + "\n" + lines[data_line].split("\t")[0],
                                          encoding="latin-1")
    # binary garbage (fixed bytes: reproducible), starting with a blank line
    rng = np.random.default_rng(1234)
    (folder / "garbage.krn").write_bytes(b"\n" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    # a blank line in the middle
    (folder / "blank.krn").write_text("\n".join(lines[:30] + [""] + lines[30:]), encoding="latin-1")
    # an empty file is a valid, empty score
    (folder / "empty.krn").write_bytes(b"")
    expected_failures = {"bach.chorales.truncated": data_line + 1, "bach.chorales.garbage": 1, "bach.chorales.blank": 31}
    stems = good + ["truncated", "garbage", "blank", "empty"]
    sources = [
        ScoreSource(f"bach.chorales.{stem}", "bach.chorales", str(folder / f"{stem}.krn"), False, None)
        for stem in sorted(stems)
    ]
    return sources, expected_failures


def test_load_corpus_reports_broken_files_and_caches(broken_corpus, tmp_path, monkeypatch):
    sources, expected = broken_corpus
    cache = tmp_path / "cache"
    first = load_corpus("kernscores", sources=sources, cache_dir=cache, workers=1, progress=False)

    assert sorted(first.scores) == [
        "bach.chorales.chor001",
        "bach.chorales.chor002",
        "bach.chorales.chor003",
        "bach.chorales.empty",
    ]
    assert first.scores["bach.chorales.empty"].num_frames == 0
    assert all(first.scores[f"bach.chorales.chor00{i}"].num_frames > 10 for i in (1, 2, 3))
    assert {f.score_id: f.line for f in first.failures} == expected
    for failure in first.failures:
        assert failure.reason
        assert failure.path.endswith(failure.score_id.split(".")[-1] + ".krn")
        assert failure.score_id in str(failure)
    by_id = {f.score_id: f for f in first.failures}
    assert "blank" in by_id["bach.chorales.blank"].reason
    assert "tokens" in by_id["bach.chorales.truncated"].reason

    pickles = list(cache.glob("kernscores-*.pkl"))
    assert len(pickles) == 1

    # The second load must come from the cache: parsing is forbidden.
    def no_parse(*args, **kwargs):
        raise AssertionError("parsed again despite a valid cache")

    monkeypatch.setattr(corpus_module, "parse_sources", no_parse)
    second = load_corpus("kernscores", sources=sources, cache_dir=cache, workers=1, progress=False)
    _assert_corpora_equal(first, second)


@pytest.mark.parametrize(
    "damage",
    [
        b"this is not a pickle",
        b"",
        pickle.dumps(42),
        pickle.dumps(("only", "three", "items")),
        "truncate",
    ],
)
def test_corrupted_cache_is_ignored_and_rebuilt(broken_corpus, tmp_path, capsys, damage):
    sources, _ = broken_corpus
    cache = tmp_path / "cache"
    first = load_corpus("kernscores", sources=sources, cache_dir=cache, workers=1, progress=False)
    (pkl,) = cache.glob("kernscores-*.pkl")
    good_bytes = pkl.read_bytes()
    pkl.write_bytes(good_bytes[: len(good_bytes) // 2] if damage == "truncate" else damage)
    capsys.readouterr()

    rebuilt = load_corpus("kernscores", sources=sources, cache_dir=cache, workers=1, progress=False)
    _assert_corpora_equal(first, rebuilt)
    assert "ignoring unreadable cache" in capsys.readouterr().err
    # the cache file was rewritten and loads again
    with open(pkl, "rb") as handle:
        scores, failures = pickle.load(handle)
    assert sorted(scores) == sorted(first.scores)
    assert list(failures) == list(first.failures)
    again = load_corpus("kernscores", sources=sources, cache_dir=cache, workers=1, progress=False)
    _assert_corpora_equal(first, again)
    assert not list(cache.glob("*.tmp"))


def test_cache_key_changes_with_file_content(broken_corpus, tmp_path):
    sources, _ = broken_corpus
    cache = tmp_path / "cache"
    load_corpus("kernscores", sources=sources, cache_dir=cache, workers=1, progress=False)
    empty = next(s for s in sources if s.score_id.endswith(".empty"))
    Path(empty.path).write_bytes(b"**kern\n4c\n")  # no instrument: now a failure
    changed = load_corpus("kernscores", sources=sources, cache_dir=cache, workers=1, progress=False)
    assert "bach.chorales.empty" in {f.score_id for f in changed.failures}
    assert len(list(cache.glob("kernscores-*.pkl"))) == 2


def test_unreadable_source_without_cache_is_a_failure(broken_corpus, tmp_path):
    sources, _ = broken_corpus
    missing = ScoreSource("bach.chorales.missing", "bach.chorales", str(tmp_path / "nope.krn"), False, None)
    loaded = load_corpus("kernscores", sources=sources + [missing], use_cache=False, workers=1, progress=False)
    failure = next(f for f in loaded.failures if f.score_id == "bach.chorales.missing")
    assert failure.line == 0
    assert "cannot read" in failure.reason
