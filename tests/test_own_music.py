"""Your own music from the command line (issue 13): a folder of MusicXML files trains, evaluates
and samples through the scripts; bad input ends in one line naming the file and the reason."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from voicecomp.data.corpus import CorpusError, folder_test_ids, load_corpus
from voicecomp.data.musicxml import read_musicxml
from voicecomp.data.scorefile import read_score

music21 = pytest.importorskip("music21")
REPO = Path(__file__).resolve().parents[1]
# Eight short chorales that ship with music21 as compressed MusicXML.
CHORALES = ["bwv153.1", "bwv153.5", "bwv153.9", "bwv154.3", "bwv155.5", "bwv156.6", "bwv157.5", "bwv158.4"]
TINY = ["--voice_history=2", "--global_history=2", "--duration_hidden=8", "--notes_hidden=8", "--pitch_embedding=4"]


def script(name: str, *args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(REPO / "experiments" / name), *args], capture_output=True,
                            text=True, env=env, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The error a script printed: exactly one line on stderr, no traceback, exit status 1 or 2."""
    assert result.returncode in (1, 2), result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def chorale_folder(tmp_path_factory) -> Path:
    source = Path(music21.__file__).parent / "corpus" / "bach"
    folder = tmp_path_factory.mktemp("my-music") / "chorales"
    folder.mkdir()
    for name in CHORALES:
        shutil.copy(source / f"{name}.mxl", folder)
    return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    return dict(os.environ, VOICECOMP_CACHE=str(tmp_path_factory.mktemp("cache")), PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def trained(chorale_folder, env, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("run") / "run"
    script("train.py", f"--corpus=dir:{chorale_folder}", f"--workdir={workdir}", *TINY, "--batch_size=16",
           "--max_frames=8", "--num_steps=6", "--eval_every=3", "--eval_examples=64", "--log_every=3",
           "--checkpoint_every=6", env=env)
    return workdir


def test_folder_corpus_split_and_cache(chorale_folder, tmp_path):
    corpus = load_corpus(f"dir:{chorale_folder}", cache_dir=tmp_path, progress=False, workers=1)
    assert sorted(corpus.scores) == sorted(f"{c}.mxl" for c in CHORALES)
    test = corpus.split_ids("test")
    assert 1 <= len(test) < len(CHORALES) and corpus.split_ids("test_nonpiano") == test
    # the split follows the files' bytes: a renamed copy stays on its side
    digests = {k: __import__("hashlib").sha256(Path(chorale_folder, k).read_bytes()).hexdigest() for k in corpus.scores}
    assert corpus.test_ids == folder_test_ids(digests)
    assert all(s.num_frames > 10 for s in corpus.scores.values())
    again = load_corpus(f"dir:{chorale_folder}", cache_dir=tmp_path, progress=False, workers=1)
    assert again.test_ids == corpus.test_ids
    assert all((again.scores[k].durations == corpus.scores[k].durations).all() for k in corpus.scores)
    assert json.loads(Path(corpus.report).read_text())["skipped"] == []


def test_train_evaluate_sample_on_a_folder(trained, chorale_folder, env, tmp_path):
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "eval"] == [0, 3, 6]
    config = json.loads((trained / "config.json").read_text())
    assert config["corpus"] == f"dir:{chorale_folder}"

    result = script("evaluate.py", f"--checkpoint={trained}", "--split=test", "--json", env=env)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    corpus = load_corpus(f"dir:{chorale_folder}", cache_dir=env["VOICECOMP_CACHE"], progress=False, workers=1)
    from voicecomp import encoding

    encoded, _ = encoding.encode_corpus(corpus)
    test_table = encoding.split_tables(corpus, encoded, ["test"])["test"]
    assert figures["examples"] == test_table.num_examples > 0  # every example of the folder's test split
    # finite and below chance (a half for every pitch bit, a uniform duration) after 6 steps
    rate = figures["bits_per_beat_reference"]["events_per_beat"]
    assert 0 < figures["bits_per_beat_reference"]["total"] < (78 + math.log2(52)) * rate

    prompt = chorale_folder / f"{CHORALES[0]}.mxl"
    out = tmp_path / "samples"
    script("sample.py", f"--checkpoint={trained}", f"--prompt={prompt}", "--prompt_frames=6", "--frames=6",
           "--num_scores=1", f"--out_dir={out}", "--formats=musicxml,kern", "--stem=continued", env=env)
    written = read_musicxml(out / "continued.musicxml")
    original = read_score(prompt)
    # the continuation starts with the prompt's first frames
    assert (written.durations[:6] == original.durations[:6]).all()
    assert read_score(out / "continued.krn").num_frames == written.num_frames



def test_harmonize_a_melody(trained, chorale_folder, env, tmp_path):
    """--harmonize: a one-part MusicXML melody (a chorale's soprano) becomes the top voice of a
    three-voice score, note for note, for as long as the melody lasts; the two voices below it are
    sampled."""
    from voicecomp.export import Voices, to_musicxml, voices_from_score

    soprano = voices_from_score(read_score(chorale_folder / f"{CHORALES[0]}.mxl")).voices[-1]
    melody = tmp_path / "melody.musicxml"
    to_musicxml(Voices((soprano,), Fraction(0)), melody)
    out = tmp_path / "harmonized"
    script("sample.py", f"--checkpoint={trained}", f"--harmonize={melody}", "--voices=3", "--num_scores=1",
           f"--out_dir={out}", "--formats=kern", "--stem=harmonized", env=env)
    written = voices_from_score(read_score(out / "harmonized.krn"))
    assert len(written.voices) == 3 and all(written.voices)
    sounding = [note for note in written.voices[2] if note.pitches]
    assert sounding == [note for note in soprano if note.pitches]
    end = max(note.end for note in soprano)
    # sampling stops at the melody's end; the last sampled notes may sound beyond it
    assert all(note.onset < end for voice in written.voices for note in voice if note.pitches)


def test_bad_input_is_one_line(trained, chorale_folder, env, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no music here")
    result = subprocess.run([sys.executable, "-m", "voicecomp.data", "stats", f"--corpus=dir:{empty}"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert f"{empty}: no music" in one_line_error(result)

    broken = tmp_path / "broken.musicxml"
    broken.write_text("<score-partwise><part-list>")
    import mido

    silent = tmp_path / "silent.mid"
    mido.MidiFile(tracks=[mido.MidiTrack()]).save(str(silent))
    parts = "".join(f'<score-part id="P{i}"><part-name>V{i}</part-name></score-part>' for i in range(7))
    body = "".join(f'<part id="P{i}"><measure number="1"><attributes><divisions>1</divisions></attributes>'
                   f"<note><pitch><step>C</step><octave>{3 + i % 3}</octave></pitch><duration>4</duration>"
                   f"<type>whole</type></note></measure></part>" for i in range(7))
    seven = tmp_path / "seven.musicxml"
    seven.write_text(f"<score-partwise><part-list>{parts}</part-list>{body}</score-partwise>")
    cases = [(["--prompt", broken], "broken.musicxml: unreadable MusicXML"),
             (["--prompt", silent], "silent.mid: no notes"),
             (["--clamp_score", seven, "--clamp_voices=0"], "seven.musicxml: 7 voices"),
             (["--harmonize", chorale_folder / f"{CHORALES[0]}.mxl", "--voices=4"],
              f"{CHORALES[0]}.mxl: 4 voice(s) to clamp; --voices=4 must be more")]
    for (flag, path, *more), expected in cases:
        result = script("sample.py", f"--checkpoint={trained}", f"{flag}={path}", *more, "--frames=4",
                        f"--out_dir={tmp_path / 'out'}", env=env, check=False)
        line = one_line_error(result)
        assert expected in line and result.returncode == 1, line


def test_folder_without_readable_music(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "broken.musicxml").write_text("<score-partwise>")
    with pytest.raises(CorpusError, match="none of the 1 score files could be read"):
        load_corpus(f"dir:{folder}", cache_dir=tmp_path / "cache", progress=False, workers=1)
    with pytest.raises(CorpusError, match="no such folder"):
        load_corpus(f"dir:{tmp_path / 'missing'}", cache_dir=tmp_path / "cache", progress=False)
