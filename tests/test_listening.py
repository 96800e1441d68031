"""The listening-test kit (voicecomp.listening, experiments/listening_test.py): a kit made from the
published exp.-6 weights and two test chorales, its audio, the page driven in headless Chromium,
and Table 5 recomputed from real and synthetic answers."""

from __future__ import annotations

import functools
import http.server
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from conftest import under_ci
from voicecomp import listening
from voicecomp.encoding import EMPTY, NUM_SPECIAL
from voicecomp.export import Voices
from voicecomp.sample import frame_times

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "listening_test.py"
CHROMIUM = "/usr/bin/chromium"
# Two chorales of the published test split and one training chorale (never a source of real clips).
CHORALES = ("chor006", "chor027", "chor001")
LENGTHS = (10, 20)
PER_KIND = 3
PER_PARTICIPANT = 2
MODEL_OFFSET = 5  # model clips: windows starting at frame 0..5 of their samples
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def kit(tmp_path_factory, shared_dir, kernscores_dir) -> Path:
    """A kit from the published exp.-6 weights: 3 real and 3 model clips of 10 and 20 frames."""
    root = tmp_path_factory.mktemp("listening")
    folder = root / "kernscores" / "bach-js" / "bach-371-chorales" / "kern"
    folder.mkdir(parents=True)
    for name in CHORALES:
        shutil.copy(Path(kernscores_dir) / "bach-js" / "bach-371-chorales" / "kern" / f"{name}.krn", folder)
    env = dict(os.environ, VOICECOMP_CACHE=str(root / "cache"))
    result = _run(["make", f"--weights={shared_dir / 'reference' / 'multipart6_weights.npz'}",
                   f"--out_dir={root / 'kit'}", f"--kernscores_dir={root / 'kernscores'}",
                   f"--lengths={','.join(map(str, LENGTHS))}", f"--clips_per_length={PER_KIND}",
                   f"--per_participant={PER_PARTICIPANT}", "--seed=3", f"--model_offset={MODEL_OFFSET}"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "kit"


def _key(kit: Path) -> dict:
    return json.loads((kit / "key.json").read_text())


def _manifest(kit: Path) -> dict:
    text = (kit / "page" / "clips.js").read_text()
    return json.loads(text[text.index("=") + 1:].rstrip().rstrip(";"))


def _wav(path: Path):
    with wave.open(str(path), "rb") as handle:
        params = (handle.getnchannels(), handle.getsampwidth(), handle.getframerate())
        data = np.frombuffer(handle.readframes(handle.getnframes()), "<i2").astype(np.float64) / 32768
    return params, data


# ---------------------------------------------------------------------------
# The kit


def test_kit_holds_the_clips_and_hides_the_key(kit):
    key, manifest = _key(kit), _manifest(kit)
    settings = json.loads((kit / "kit.json").read_text())
    clips = key["clips"]
    assert settings["renderer"] == listening.resolve_synth("auto") == settings["render"]["synth"]
    assert key["kit_id"] == manifest["kit_id"] == settings["kit_id"]
    for length in LENGTHS:
        for kind in listening.KINDS:
            assert sum(1 for c in clips.values() if c["frames"] == length and c["kind"] == kind) == PER_KIND
    # Real windows come from the two test chorales only; model clips name their seed and score.
    for clip in clips.values():
        if clip["kind"] == "real":
            assert clip["source"]["score"] in {"bach.chorales.chor006", "bach.chorales.chor027"}
            assert clip["voices"] == 4
        else:
            assert {"sample_seed", "score_index"} <= set(clip["source"])
            assert 0 <= clip["source"]["start_frame"] <= MODEL_OFFSET
    real = [(c["source"]["score"], c["source"]["start_frame"], c["frames"])
            for c in clips.values() if c["kind"] == "real"]
    assert len(set(real)) == len(real)  # no window twice
    model = [c["source"] for c in clips.values() if c["kind"] == "model"]
    assert len({(m["sample_seed"], m["score_index"]) for m in model}) == len(model)  # each clip its own sample
    assert len({m["start_frame"] for m in model}) > 1

    # The page: anonymous ids and lengths only, no key, equal file times, no metadata chunks.
    page = kit / "page"
    assert sorted(p.name for p in page.iterdir()) == ["app.js", "audio", "clips.js", "index.html", "style.css"]
    assert manifest["per_participant"] == PER_PARTICIPANT and manifest["lengths"] == list(LENGTHS)
    assert [c["id"] for c in manifest["clips"]] == sorted(clips)
    for entry in manifest["clips"]:
        assert set(entry) == {"id", "frames", "file"} and entry["file"] == f"audio/{entry['id']}.wav"
        assert len(entry["id"]) == 8 and int(entry["id"], 16) >= 0
    assert sorted(p.name for p in (page / "audio").iterdir()) == sorted(f"{c}.wav" for c in clips)
    assert len({(page / "audio" / f"{c}.wav").stat().st_mtime for c in clips}) == 1
    for text in (page / name for name in ("clips.js", "index.html", "app.js")):
        content = text.read_text().lower()
        assert "key.json" not in content and "sample_seed" not in content and "chor0" not in content
    for clip_id in clips:
        (params, data) = _wav(page / "audio" / f"{clip_id}.wav")
        # 44-byte header + samples: RIFF/fmt/data only, nothing that could name the source.
        assert (page / "audio" / f"{clip_id}.wav").stat().st_size == 44 + 2 * data.size


def test_real_and_model_clips_sound_alike(kit):
    """Same format and sample rate, loudness within 1 dB RMS, overlapping durations, same fades."""
    key = _key(kit)
    render = json.loads((kit / "kit.json").read_text())["render"]
    target = render["loudness_dbfs"]
    for length in LENGTHS:
        measured = {kind: [] for kind in listening.KINDS}
        for clip_id, clip in key["clips"].items():
            if clip["frames"] != length:
                continue
            params, data = _wav(kit / "page" / "audio" / f"{clip_id}.wav")
            level = listening.rms_dbfs(data)
            seconds = data.size / params[2]
            expected = float(Fraction(clip["span_quarters"])) * 60 / render["tempo_bpm"] + render["tail_seconds"]
            assert seconds == pytest.approx(expected, abs=1.5 / params[2])
            assert abs(data[0]) < 1e-3 and np.abs(data[-10:]).max() < 1e-3  # faded in and out
            assert np.abs(data).max() < 0.999  # no clipping
            measured[clip["kind"]].append((params, level, seconds))
        formats = {m[0] for kind in measured for m in measured[kind]}
        assert formats == {(1, 2, render["sample_rate"])}
        levels = {kind: [m[1] for m in measured[kind]] for kind in measured}
        for kind in levels:
            assert max(abs(x - target) for x in levels[kind]) < 0.1
        assert abs(np.mean(levels["real"]) - np.mean(levels["model"])) < 1.0
        assert max(levels["real"] + levels["model"]) - min(levels["real"] + levels["model"]) < 1.0
        real, model = ([m[2] for m in measured[k]] for k in ("real", "model"))
        assert max(min(real), min(model)) <= min(max(real), max(model)), (real, model)


def test_renderers_share_format_fades_and_loudness(tmp_path):
    """The additive synthesiser always, FluidSynth where installed: the same post-processing."""
    music = Voices.from_lists([[(0, 1, [60]), (1, 1, [64]), (2, 2, [67])], [(0, 2, [48]), (Fraction(5, 2), 1, [43])]])
    clip = listening.Clip("real", 4, 2, listening.cut_window(music, Fraction(0), Fraction(7, 2)), Fraction(7, 2), {})
    synths = ["additive"] + (["fluidsynth"] if listening.resolve_synth("auto") == "fluidsynth" else [])
    for synth in synths:
        settings = listening.RenderSettings(synth=synth, tempo_bpm=100, sample_rate=16000, loudness_dbfs=-18)
        measured = listening.render_clip(clip, tmp_path / f"{synth}.wav", settings)
        params, data = _wav(tmp_path / f"{synth}.wav")
        assert params == (1, 2, 16000)
        assert data.size == round((3.5 * 60 / 100 + 0.5) * 16000)
        assert abs(listening.rms_dbfs(data) + 18) < 0.05 and abs(measured["rms_dbfs"] + 18) < 0.05
        assert abs(data[0]) < 1e-3 and abs(data[-1]) < 1e-3
    with pytest.raises(listening.KitError, match="soundfont|fluidsynth"):
        listening.resolve_synth("fluidsynth", tmp_path / "missing.sf2")


def test_normalisation_reaches_the_level_and_limits_peaks():
    """A quiet tone with loud clicks (crest factor beyond the -20 dBFS headroom): the clicks are
    limited below full scale and the RMS still lands on the target."""
    t = np.arange(32000) / 32000
    signal = 0.01 * np.sin(2 * np.pi * 440 * t)
    signal[::4000] = 0.5
    out = listening._normalise(signal, -20.0)
    assert listening.rms_dbfs(out) == pytest.approx(-20.0, abs=0.01)
    assert np.abs(out).max() <= 1.0
    assert np.abs(out[1:4000]).max() == pytest.approx(np.abs(out[4001:8000]).max())  # the tone keeps its shape
    quiet = signal[1:4000]
    gain = listening._normalise(quiet, -20.0) / quiet  # no click: a plain gain, no limiting
    assert np.allclose(gain, gain[0]) and listening.rms_dbfs(quiet * gain[0]) == pytest.approx(-20.0, abs=0.01)


def test_cut_window_clips_notes_to_the_window():
    music = Voices.from_lists([[(0, 2, [60]), (2, 2, [62]), (4, 1, [64])], [(0, 4, [48]), (4, 1, ())]])
    cut = listening.cut_window(music, Fraction(1), Fraction(3))
    assert [list(v) for v in cut.voices] == [
        [(Fraction(0), Fraction(1), (60,)), (Fraction(1), Fraction(1), (62,))],
        [(Fraction(0), Fraction(2), (48,))],
    ]


def test_real_clips_are_windows_of_nonpiano_test_scores(kernscores_corpus, encoded_kernscores):
    corpus = kernscores_corpus
    clips = listening.real_clips(corpus, [30], 12, np.random.default_rng(1))
    allowed = set(corpus.split_ids("test_nonpiano"))
    assert len(clips) == 12 and len({c.source["score"] for c in clips}) == 12  # distinct while possible
    for clip in clips:
        score_id, start = clip.source["score"], clip.source["start_frame"]
        assert score_id in allowed and not corpus.is_piano(score_id)
        enc = encoded_kernscores[score_id]
        window = enc.durations[start:start + 30]
        assert clip.voices == int((window != EMPTY).sum(axis=1).max())
        times = frame_times(enc.durations)
        assert clip.span == times[start + 30] - times[start] > 0
        # Sounding at 0: every note of the first frame (onsets and notes tied in); later: the onsets
        # of the other 29 frames, at their frame times.
        pitches = lambda notes: sum(len(n.pitches) for v in clip.music.voices for n in v if n in notes)
        at_zero = [n for v in clip.music.voices for n in v if n.onset == 0]
        later = [n for v in clip.music.voices for n in v if n.onset > 0]
        assert pitches(at_zero) == int(enc.notes[start].sum())
        onset_cells = window[1:] >= NUM_SPECIAL
        assert pitches(later) == int(enc.notes[start + 1:start + 30][onset_cells].sum())
        starts = {times[j] - times[start] for j in range(start + 1, start + 30)}
        assert all(n.onset in starts for n in later)


# ---------------------------------------------------------------------------
# The page in a real browser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_page_in_headless_chromium(kit, tmp_path):
    try:
        from playwright import sync_api
    except ImportError:
        sync_api = None
    missing = [what for what, ok in ((CHROMIUM, Path(CHROMIUM).exists()), ("playwright", sync_api)) if not ok]
    if missing:  # .ci/run installs both: under CI this is a failure, not a skip
        message = f"{' and '.join(missing)} not installed (apt-get install chromium; pip install -e '.[dev]')"
        pytest.fail(message, pytrace=False) if under_ci() else pytest.skip(message)
    key = _key(kit)
    downloaded = tmp_path / "answers.json"
    with sync_api.sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            accept_downloads=True)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto((kit / "page" / "index.html").as_uri())
            page.fill("#participant", "test participant")
            page.click("#start")
            audio = "Array.from(document.querySelectorAll('audio'))"
            page.wait_for_function(f"{audio}.length > 0 && {audio}.every(a => a.readyState >= 1 && a.duration > 0)",
                                   timeout=30000)
            durations = dict(page.evaluate(f"{audio}.map(a => [a.dataset.clip, a.duration])"))
            assert len(durations) == PER_PARTICIPANT * len(LENGTHS)
            for clip_id, seconds in durations.items():
                assert seconds == pytest.approx(key["clips"][clip_id]["duration_seconds"], abs=0.01)
            # Every clip of the kit loads in the browser, not only this participant's.
            every = page.evaluate("""Promise.all(window.VOICECOMP_KIT.clips.map(c => new Promise(done => {
                const a = new Audio(); a.preload = "metadata";
                a.onloadedmetadata = () => done([c.id, a.duration]); a.onerror = () => done([c.id, -1]);
                a.src = c.file; })))""")
            assert sorted(dict(every)) == sorted(key["clips"]) and min(d for _, d in every) > 0
            for i in range(len(durations)):
                assert page.text_content("#progress-text") == f"Piece {i + 1} of {len(durations)}"
                assert page.is_disabled("#human")  # the piece must be played first
                page.click("#play")
                page.wait_for_function("!document.getElementById('human').disabled", timeout=10000)
                if i == 0:  # really playing: time advances
                    page.wait_for_function(f"{audio}.some(a => !a.paused && a.currentTime > 0.3)", timeout=15000)
                page.click("#computer" if i % 2 == 0 else "#human")
            assert page.is_visible("#download")
            with page.expect_download() as info:
                page.click("#download")
            info.value.save_as(downloaded)
            assert errors == []
            # The same page from a static web server.
            handler = functools.partial(_QuietHandler, directory=str(kit / "page"))
            with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
                threading.Thread(target=server.serve_forever, daemon=True).start()
                try:
                    page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
                    page.click("#start")
                    page.wait_for_function(f"{audio}.length > 0 && {audio}.every(a => a.duration > 0)", timeout=30000)
                    assert page.text_content("#progress-text") == f"Piece 1 of {len(durations)}"
                finally:
                    server.shutdown()
            assert errors == []
        finally:
            context.close()

    answers = json.loads(downloaded.read_text())
    assert answers["participant"] == "test participant" and answers["kit_id"] == key["kit_id"]
    assert [a["clip"] for a in answers["answers"]] == answers["order"] and len(answers["order"]) == len(durations)
    assert answers["answers"][0]["plays"] == 1 and answers["answers"][0]["listened_seconds"] > 0
    for length in LENGTHS:
        assert sum(1 for c in answers["order"] if key["clips"][c]["frames"] == length) == PER_PARTICIPANT

    out = tmp_path / "analysis"
    result = _run(["analyze", f"--kit={kit}", f"--out_dir={out}", str(downloaded)])
    assert result.returncode == 0, result.stderr
    figures = json.loads((out / "table5.json").read_text())
    assert (out / "table5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for row in figures["lengths"]:
        correct = sum(1 for a in answers["answers"] if key["clips"][a["clip"]]["frames"] == row["frames"]
                      and listening.ANSWERS[a["answer"]] == key["clips"][a["clip"]]["kind"])
        assert row["participants"] == 1 and row["answers"] == PER_PARTICIPANT and row["correct"] == correct
        assert row["mean_correct"] == pytest.approx(10 * correct / PER_PARTICIPANT)
        assert f"| {row['frames']} | 1 | {row['mean_correct']:.2f} |" in result.stdout


# ---------------------------------------------------------------------------
# Analysis


def _synthetic_kit(folder: Path, clips_per_length: int = 20) -> dict:
    """A key of DEFAULT_LENGTHS with half real, half model clips (analysis reads only the key)."""
    clips = {}
    for length in listening.DEFAULT_LENGTHS:
        for i in range(clips_per_length):
            clips[f"{length:02d}{i:06d}"] = {"kind": listening.KINDS[i % 2], "frames": length}
    key = {"format": listening.KEY_FORMAT, "kit_id": "synthetic", "clips": clips}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "key.json").write_text(json.dumps(key))
    return key


def _participant(key: dict, accuracy: float, rng: np.random.Generator, number: int) -> dict:
    """Answers of one simulated participant: 10 random clips per length, of which
    ``10 * accuracy + spread[number % 5]`` (0..10) are answered right, at random positions;
    over a multiple of 5 participants the mean is exactly ``10 * accuracy``."""
    spread = (-2, -1, 0, 1, 2)
    answers = []
    for length in listening.DEFAULT_LENGTHS:
        pool = [c for c, v in key["clips"].items() if v["frames"] == length]
        right_count = min(10, max(0, round(10 * accuracy) + spread[number % 5]))
        if accuracy == 1.0:
            right_count = 10
        rights = rng.permutation([True] * right_count + [False] * (10 - right_count))
        for clip_id, right in zip(rng.choice(pool, size=10, replace=False), rights):
            real = key["clips"][clip_id]["kind"] == "real"
            answers.append({"clip": str(clip_id), "answer": "human" if real == right else "computer"})
    order = [answers[i] for i in rng.permutation(len(answers))]
    return {"format": listening.ANSWERS_FORMAT, "version": 1, "kit_id": key["kit_id"], "participant": f"p{number}",
            "session": f"session-{accuracy}-{number}", "order": [a["clip"] for a in order], "answers": order}


@pytest.mark.parametrize("accuracy", [0.5, 0.7, 1.0])
def test_analyze_recovers_known_accuracies(tmp_path, accuracy):
    key = _synthetic_kit(tmp_path / "kit")
    rng = np.random.default_rng(2019)
    paths = []
    for number in range(20):
        path = tmp_path / f"answers-{number}.json"
        path.write_text(json.dumps(_participant(key, accuracy, rng, number)))
        paths.append(path)
    results = listening.analyze(key, listening.load_all_answers(paths, key))
    assert [r["frames"] for r in results["lengths"]] == list(listening.DEFAULT_LENGTHS)
    for row in results["lengths"]:
        low, high = row["ci95"]
        assert row["participants"] == 20 and row["answers"] == 200
        assert row["mean_correct"] == pytest.approx(10 * accuracy)
        assert low <= 10 * accuracy <= high, row
        # Counts spread -2..2, four participants each: sd^2 = 40 / 19 (none at 100%); the interval is
        # mean +- t(0.975, 19 df) * sd / sqrt(20), t = 2.093 from a t table.
        assert high - low == pytest.approx(0 if accuracy == 1.0 else 2 * 2.093 * math.sqrt(40 / 19 / 20), abs=0.01)
        assert row["paper"] == listening.PAPER_TABLE5[row["frames"]]
        if accuracy == 0.5:
            assert row["binomial_p"] > 0.001
        else:
            assert row["binomial_p"] < 1e-6
    if accuracy == 0.7:  # the command line prints the same figures and writes them
        result = _run(["analyze", f"--kit={tmp_path / 'kit'}", *map(str, paths)])
        assert result.returncode == 0, result.stderr
        written = json.loads((tmp_path / "kit" / "analysis" / "table5.json").read_text())
        assert written["lengths"] == json.loads(json.dumps(results["lengths"]))
        for row in results["lengths"]:
            assert f"| {row['frames']} | 20 | {row['mean_correct']:.2f} |" in result.stdout


def test_confidence_interval_covers_the_truth_95_percent_of_the_time():
    key = {"kit_id": "k", "clips": {f"c{i}": {"kind": listening.KINDS[i % 2], "frames": 10} for i in range(20)}}
    rng = np.random.default_rng(7)
    covered = 0
    studies = 400
    for _ in range(studies):
        people = []
        for p in range(20):
            chosen = rng.choice(20, size=10, replace=False)
            right = rng.random(10) < 0.7
            responses = tuple((f"c{i}", "human" if (i % 2 == 0) == r else "computer") for i, r in zip(chosen, right))
            people.append(listening.Answers("", "", str(p), responses))
        low, high = listening.analyze(key, people)["lengths"][0]["ci95"]
        covered += low <= 7.0 <= high
    assert 0.92 <= covered / studies <= 0.98


def _good(key: dict) -> dict:
    return _participant(key, 0.7, np.random.default_rng(0), 0)


MALFORMED = {
    "not_json": (lambda key: '{"format": ', "not valid JSON"),
    "not_an_answers_file": (lambda key: json.dumps({"answers": []}), "not a listening-test answers file"),
    "other_kit": (lambda key: json.dumps(dict(_good(key), kit_id="other")), "answers for kit 'other'"),
    "no_answers": (lambda key: json.dumps(dict(_good(key), answers=[])), "non-empty list"),
    "unknown_clip": (lambda key: json.dumps(dict(_good(key), answers=[{"clip": "zz", "answer": "human"}])),
                     "unknown clip 'zz'"),
    "bad_answer": (lambda key: json.dumps(dict(_good(key), answers=[dict(_good(key)["answers"][0], answer="maybe")])),
                   "is not \"human\" or \"computer\""),
    "twice": (lambda key: json.dumps(dict(_good(key), answers=_good(key)["answers"][:1] * 2)), "answered twice"),
    "no_session": (lambda key: json.dumps(dict(_good(key), session="")), "no \"session\""),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_answers_are_rejected_with_one_line(tmp_path, case):
    key = _synthetic_kit(tmp_path / "kit")
    make, reason = MALFORMED[case]
    path = tmp_path / "answers.json"
    path.write_text(make(key))
    with pytest.raises(listening.KitError) as err:
        listening.load_answers(path, key)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and reason in message and "\n" not in message


def test_analyze_command_errors(tmp_path):
    key = _synthetic_kit(tmp_path / "kit")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_good(key)))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(_good(key), answers=[{"clip": "zz", "answer": "human"}])))
    result = _run(["analyze", f"--kit={tmp_path / 'kit'}", str(good), str(bad)])
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == f"error: {bad}: answers[0]: unknown clip 'zz'"
    result = _run(["analyze", f"--kit={tmp_path / 'kit'}", str(good), str(good)])
    assert result.returncode == 1 and "the same session" in result.stderr and result.stderr.count("\n") == 1
    result = _run(["analyze", str(good)])
    assert result.returncode == 2 and "--kit" in result.stderr and result.stderr.count("\n") == 1
    result = _run(["analyze", f"--kit={tmp_path}", str(good)])
    assert result.returncode == 1 and "key.json" in result.stderr and result.stderr.count("\n") == 1
    result = _run(["make", "--weights=w.npz", "--out_dir=x", "--per_participant=30", "--clips_per_length=5"])
    assert result.returncode == 2 and "--per_participant" in result.stderr and result.stderr.count("\n") == 1


def test_embedded_table5_is_the_papers(shared_dir):
    table = json.loads((shared_dir / "reference" / "paper_tables.json").read_text())["table5_listening_test"]
    assert {int(k): v for k, v in table["clip_frames_to_avg_correct_of_10"].items()} == listening.PAPER_TABLE5
    assert table["chance"] == listening.CHANCE
    assert table["clips_per_participant"] == len(listening.DEFAULT_LENGTHS) * listening.OUT_OF
