"""The paper's listening test as a kit (Section 6, Table 5; Appendix E).

A kit is a folder:

* ``page/``: a self-contained static page (``index.html``, ``app.js``, ``style.css``, the clip
  list ``clips.js`` and ``audio/<id>.wav``).  It runs from ``file://`` or any static host, gives
  each participant ``per_participant`` clips of every length in an order randomised per
  participant (and recorded), and lets the participant download the answers as JSON.  The page
  only knows anonymous clip ids and their lengths in frames.
* ``key.json``: the answer key (id -> real/model, source score and window or sample seed,
  length).  The page never reads it; publish ``page/`` only.
* ``kit.json``: how the kit was made (model, renderer, tempo, sample rate, loudness, seed).

Real clips are random windows of ``L`` frames of non-piano test scores; model clips are the
first ``L`` frames of free samples (:func:`voicecomp.sample.sample`; or windows of longer samples,
``max_offset``) with the voice count of a paired real clip.  A clip spans from its first frame's start to the next frame's start (notes
still sounding there are cut), at a fixed tempo.  Both kinds are rendered by the same
synthesiser and instrument (:func:`voicecomp.export.to_wav`: FluidSynth with a General MIDI
soundfont, or the built-in additive synthesiser), mixed to mono at one sample rate, given the
same fades and normalised to the same RMS level.

:func:`analyze` recomputes Table 5 from downloaded answer files: per clip length, the mean
number of correct answers out of 10 per participant with a 95% confidence interval, and an
exact binomial test of the pooled answers against chance.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import random
import secrets
import shutil
import tempfile
import warnings
import wave
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from voicecomp import export
from voicecomp.encoding import EMPTY, EncodingError, encode_score
from voicecomp.export import Note, Voices

PathLike = Union[str, os.PathLike]

# Table 5 of the paper: average number of correct discriminations out of 10 per participant
# (20 participants, 50 clips each, clips of Table 4 exp. 6), keyed by clip length in frames.
PAPER_TABLE5: dict[int, float] = {10: 5.3, 20: 5.7, 30: 6.6, 40: 6.7, 50: 6.8}
CHANCE = 5.0
OUT_OF = 10  # Table 5 counts correct answers out of 10 clips per length
DEFAULT_LENGTHS = (10, 20, 30, 40, 50)
KINDS = ("real", "model")
ANSWERS = {"human": "real", "computer": "model"}
ANSWERS_FORMAT = "voicecomp-listening-answers"
KEY_FORMAT = "voicecomp-listening-key"
KIT_FORMAT = "voicecomp-listening-kit"
PAGE_ASSETS = ("index.html", "app.js", "style.css")
SYNTHS = ("auto", "fluidsynth", "additive")


class KitError(ValueError):
    """Bad input data for a kit or an analysis (a one-line message naming the file)."""


# ---------------------------------------------------------------------------
# Clips


@dataclasses.dataclass(frozen=True)
class Clip:
    """One clip before rendering: ``music`` starts at 0 and lasts ``span`` quarter notes."""

    kind: str  # "real" or "model"
    frames: int
    voices: int
    music: Voices
    span: Fraction
    source: Mapping[str, Any]

    def has_notes(self) -> bool:
        return any(note.pitches for voice in self.music.voices for note in voice)


def cut_window(voices: Voices, start: Fraction, end: Fraction) -> Voices:
    """The notes of ``voices`` sounding in ``[start, end)``, clipped to it and shifted to 0
    (a note tied in from before starts at 0; one sounding past ``end`` stops there)."""
    out = []
    for voice in voices.voices:
        kept = []
        for note in voice:
            if note.onset < end and note.end > start:
                onset = max(note.onset, start)
                kept.append(Note(onset - start, min(note.end, end) - onset, note.pitches))
        out.append(tuple(kept))
    return Voices(tuple(out))


def _frame_time(grid: export.FrameGrid, j: int) -> Fraction:
    return Fraction(grid.times[j], grid.unit)


def real_clips(corpus, lengths: Sequence[int], count: int, rng: np.random.Generator,
               split: str = "test_nonpiano") -> list[Clip]:
    """``count`` random windows of each length from the scores of ``split`` of ``corpus``
    (a :class:`voicecomp.data.corpus.Corpus`).

    Per clip a score is drawn uniformly among those long enough (distinct scores while there
    are enough), then a start frame uniformly; a window must hold at least one note and share
    no frame with another window of the kit (in a corpus too small for that, after many tries,
    it need only differ from the others).  The window spans from the start of frame ``j`` to the
    start of frame ``j + L``.
    """
    ids = corpus.split_ids(split)
    if not ids:
        raise KitError(f"the {split} split of the {corpus.name} corpus is empty")
    cache: dict[str, Any] = {}

    def encoded(score_id: str):
        """(encoded arrays, whole score as Voices) of a score; None if it cannot be encoded."""
        if score_id not in cache:
            try:
                enc = encode_score(corpus.scores[score_id])
                cache[score_id] = (enc, export.voices_from_frames(enc.notes, enc.durations))
            except EncodingError:
                cache[score_id] = None
        return cache[score_id]

    clips = []
    taken: dict[str, list[tuple[int, int]]] = {}  # score -> (start, stop) frames of its windows
    for length in lengths:
        eligible = [s for s in ids if corpus.scores[s].num_frames > length]
        if not eligible:
            raise KitError(f"no {split} score of the {corpus.name} corpus has more than {length} frames")
        order: list[str] = []
        made = 0
        attempts = 0
        while made < count:
            attempts += 1
            if attempts > 50 * count + 100:
                raise KitError(f"could not find {count} windows of {length} frames with notes in the {split} split")
            if not order:  # a fresh permutation: distinct scores until every one was used
                order = [eligible[i] for i in rng.permutation(len(eligible))]
            score_id = order.pop()
            found = encoded(score_id)
            if found is None:
                continue
            enc, whole = found
            num_frames = enc.durations.shape[0]
            start = int(rng.integers(0, num_frames - length))
            used = taken.get(score_id, [])
            strict = attempts <= 20 * count + 40
            if any(start < stop and begin < start + length if strict else (begin, stop) == (start, start + length)
                   for begin, stop in used):
                continue
            window = enc.durations[start:start + length]
            voices = int((window != EMPTY).sum(axis=1).max())
            t0, t1 = _frame_time(whole.grid, start), _frame_time(whole.grid, start + length)
            clip = Clip("real", length, voices, cut_window(whole, t0, t1), t1 - t0,
                        {"score": score_id, "start_frame": start, "start_quarters": str(t0)})
            if clip.has_notes():
                clips.append(clip)
                taken.setdefault(score_id, []).append((start, start + length))
                made += 1
    return clips


def model_clips(model, params, requests: Sequence[tuple[int, int]], *, seed: int, temperature: float = 1.0,
                max_offset: int = 0, spare: int = 2, progress: Optional[Callable[[str], None]] = None) -> list[Clip]:
    """Free samples of the model, one clip per ``(frames, voices)`` request (same order).

    Scores with the same voice count are sampled as one batch of ``max(frames) + max_offset + 1``
    frames (seed ``seed + 1000 * voices``, score ``b``: ``voicecomp.sample``'s per-score key), one
    score per clip.  A clip of ``L`` frames covers frames ``s .. s + L - 1`` of its score and
    spans to the start of frame ``s + L``; ``s`` is 0 (the sample's opening: the paper's
    setting) or, with ``max_offset``, uniform in ``0 .. max_offset`` (drawn from ``seed``), so
    that model clips are windows of longer samples as real clips are windows of scores.  A
    prefix of an autoregressive sample is a sample of that length, so one long batch serves
    every length.  ``spare`` extra scores per voice count replace windows holding no note.
    """
    from voicecomp import sample as sample_lib

    rng = np.random.default_rng([seed, 1])  # the offsets: independent of the real windows' draws
    offsets = [int(rng.integers(0, max_offset + 1)) for _ in requests]
    by_voices: dict[int, list[int]] = {}
    for index, (_, voices) in enumerate(requests):
        by_voices.setdefault(int(voices), []).append(index)
    clips: list[Optional[Clip]] = [None] * len(requests)
    for voices, indices in sorted(by_voices.items()):
        frames = max(requests[i][0] for i in indices) + max_offset + 1
        voice_seed = seed + 1000 * voices
        if progress:
            progress(f"sampling {len(indices)} scores of {frames} frames in {voices} voices")
        scores = sample_lib.sample(model, params, num_scores=len(indices) + spare, voices=voices, frames=frames,
                                   temperature=temperature, seed=voice_seed, chunk_frames=frames)
        pool = list(enumerate(scores))
        for i in indices:
            length, start = requests[i][0], offsets[i]
            while True:
                if not pool:
                    raise KitError(f"too many silent samples in {voices} voices; raise the spare count")
                b, score = pool.pop(0)
                t0, t1 = score.times[start], score.times[start + length]
                clip = Clip("model", length, voices, cut_window(score.voices(), t0, t1), t1 - t0,
                            {"sample_seed": voice_seed, "score_index": b, "voices": voices,
                             "temperature": temperature, "start_frame": start, "start_quarters": str(t0)})
                if clip.has_notes():
                    clips[i] = clip
                    break
    return [c for c in clips if c is not None]


# ---------------------------------------------------------------------------
# Rendering


@dataclasses.dataclass(frozen=True)
class RenderSettings:
    """How every clip becomes audio (the same for real and model clips)."""

    synth: str = "additive"  # "fluidsynth" or "additive" (see resolve_synth)
    soundfont: str = export.DEFAULT_SOUNDFONT
    program: int = 0  # General MIDI program (0: acoustic grand piano)
    tempo_bpm: float = 120.0  # quarter notes per minute
    sample_rate: int = 32000
    loudness_dbfs: float = -20.0  # RMS of every clip, dB relative to full scale
    fade_in_seconds: float = 0.02
    tail_seconds: float = 0.5  # after the clip's span: release, faded out to silence


def resolve_synth(requested: str, soundfont: PathLike = export.DEFAULT_SOUNDFONT) -> str:
    """``auto``: FluidSynth when its executable and ``soundfont`` exist, else ``additive``.
    ``fluidsynth`` when they are missing raises :class:`KitError`."""
    if requested not in SYNTHS:
        raise KitError(f"unknown synthesiser {requested!r}; choose from {', '.join(SYNTHS)}")
    available = shutil.which("fluidsynth") is not None and Path(soundfont).is_file()
    if requested == "auto":
        return "fluidsynth" if available else "additive"
    if requested == "fluidsynth" and not available:
        missing = "the fluidsynth executable" if shutil.which("fluidsynth") is None else f"the soundfont {soundfont}"
        raise KitError(f"--synth=fluidsynth: {missing} is not installed (Debian: fluidsynth, fluid-soundfont-gm)")
    return requested


def read_wav(path: PathLike) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV -> (float mono signal in [-1, 1], sample rate); channels are averaged."""
    with wave.open(os.fspath(path), "rb") as handle:
        if handle.getsampwidth() != 2:
            raise KitError(f"{path}: {8 * handle.getsampwidth()}-bit audio; expected 16-bit PCM")
        channels, rate = handle.getnchannels(), handle.getframerate()
        data = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    signal = data.astype(np.float64).reshape(-1, channels).mean(axis=1) / 32768.0
    return signal, rate


def rms_dbfs(signal: np.ndarray) -> float:
    """RMS level of a float signal in dB relative to full scale (-inf for silence)."""
    rms = float(np.sqrt(np.mean(np.square(signal)))) if signal.size else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def _fade(length: int, rate: int, fade_in: float, fade_out_from: int) -> np.ndarray:
    """Gain curve: raised-cosine fade-in over ``fade_in`` seconds, fade-out from sample
    ``fade_out_from`` to the end."""
    gain = np.ones(length)
    n_in = min(length, max(1, int(round(fade_in * rate))))
    gain[:n_in] = 0.5 - 0.5 * np.cos(np.pi * np.arange(n_in) / n_in)
    n_out = length - fade_out_from
    if n_out > 0:
        gain[fade_out_from:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(1, n_out + 1) / n_out)
    return gain


def _normalise(signal: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Scale to the target RMS; transients that would exceed 0.98 of full scale are softly
    limited and the RMS is restored (a few rounds; the limiter touches only the loudest peaks)."""
    target = 10 ** (target_dbfs / 20)
    knee = 0.9
    for _ in range(8):
        level = float(np.sqrt(np.mean(np.square(signal))))
        signal = signal * (target / level)
        peak = float(np.abs(signal).max())
        if peak <= 0.98:
            return signal
        over = np.abs(signal) > knee
        # tanh knee: continuous at the knee, never above knee + 0.08
        signal = np.where(over, np.sign(signal) * (knee + 0.08 * np.tanh((np.abs(signal) - knee) / 0.08)), signal)
    return signal * (target / float(np.sqrt(np.mean(np.square(signal)))))


def render_clip(clip: Clip, path: PathLike, settings: RenderSettings) -> dict[str, Any]:
    """Render ``clip`` to a 16-bit mono WAV at ``path``; returns its measured properties.

    The synthesiser renders the clip's notes (cut at the span's end) with
    :func:`voicecomp.export.to_wav`; the result is mixed to mono, cut or padded to the span plus
    ``tail_seconds``, faded in and out (the fade-out covers the tail) and normalised to
    ``loudness_dbfs`` RMS.
    """
    rate = settings.sample_rate
    span_seconds = float(clip.span) * 60.0 / settings.tempo_bpm
    length = int(round((span_seconds + settings.tail_seconds) * rate))
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a silent fallback would mix renderers within a kit
            try:
                used = export.to_wav(clip.music, raw, rate, settings.tempo_bpm, synth=settings.synth,
                                     soundfont=settings.soundfont, program=settings.program)
            except Warning as err:
                raise KitError(f"{settings.synth} could not render a clip: {err}") from None
        if used != settings.synth:
            raise KitError(f"rendered with {used}, not {settings.synth}")
        signal, raw_rate = read_wav(raw)
    if raw_rate != rate:
        raise KitError(f"{settings.synth} wrote {raw_rate} Hz audio, not {rate} Hz")
    signal = np.pad(signal[:length], (0, max(0, length - signal.shape[0])))
    signal = signal * _fade(length, rate, settings.fade_in_seconds, int(round(span_seconds * rate)))
    if not np.any(signal):
        raise KitError("a clip rendered to silence")
    signal = _normalise(signal, settings.loudness_dbfs)
    export._write_wav(path, signal, rate)  # 16-bit mono, the writer of voicecomp.export
    final, _ = read_wav(path)
    return {
        "duration_seconds": round(length / rate, 4),
        "span_quarters": str(clip.span),
        "rms_dbfs": round(rms_dbfs(final), 3),
        "peak": round(float(np.abs(final).max()), 4),
    }


# ---------------------------------------------------------------------------
# The kit


def page_asset(name: str) -> str:
    """Text of one file of the static page template (package data)."""
    return resources.files("voicecomp").joinpath("listening_page", name).read_text(encoding="utf-8")


def _new_id(taken: set) -> str:
    while True:
        clip_id = secrets.token_hex(4)  # random, so ids carry nothing about the clip
        if clip_id not in taken:
            taken.add(clip_id)
            return clip_id


def write_kit(out_dir: PathLike, clips: Sequence[Clip], settings: RenderSettings, *, per_participant: int,
              info: Optional[Mapping[str, Any]] = None, progress: Optional[Callable[[int, int], None]] = None
              ) -> dict[str, Any]:
    """Render ``clips`` and write the kit (``page/``, ``key.json``, ``kit.json``) to ``out_dir``.

    ``per_participant``: clips of each length a participant hears (the paper: 10).  ``info``
    (model, seed, corpus, ...) is recorded in ``kit.json``.  Returns the kit description.
    """
    out = Path(out_dir)
    if (out / "page").exists() or (out / "key.json").exists():
        raise KitError(f"{out} already holds a kit")
    # Built aside and moved in place at the end: an interrupted run leaves no half page behind.
    page = out / ".page-partial"
    if page.exists():
        shutil.rmtree(page)
    lengths = sorted({c.frames for c in clips})
    for length in lengths:
        pool = sum(1 for c in clips if c.frames == length)
        if pool < per_participant:
            raise KitError(f"{pool} clips of {length} frames, fewer than the {per_participant} per participant")
    audio = page / "audio"
    audio.mkdir(parents=True)
    kit_id = secrets.token_hex(8)
    taken: set = set()
    key: dict[str, Any] = {}
    # Rendered in a random order: file creation order (inode numbers, ctimes) says nothing either.
    order = list(clips)
    random.SystemRandom().shuffle(order)
    for i, clip in enumerate(order):
        clip_id = _new_id(taken)
        measured = render_clip(clip, audio / f"{clip_id}.wav", settings)
        key[clip_id] = {"kind": clip.kind, "frames": clip.frames, "voices": clip.voices,
                        "source": dict(clip.source), **measured}
        if progress:
            progress(i + 1, len(clips))
    # Equal modification times: a directory listing must not hint at the rendering order.
    stamp = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    for clip_id in key:
        os.utime(audio / f"{clip_id}.wav", (stamp.timestamp(), stamp.timestamp()))
    manifest = {
        "kit_id": kit_id,
        "per_participant": per_participant,
        "lengths": lengths,
        "clips": [{"id": c, "frames": key[c]["frames"], "file": f"audio/{c}.wav"} for c in sorted(key)],
    }
    for name in PAGE_ASSETS:
        (page / name).write_text(page_asset(name), encoding="utf-8")
    (page / "clips.js").write_text("// Clips of this kit (ids and lengths only).\nwindow.VOICECOMP_KIT = "
                                   + json.dumps(manifest, indent=1) + ";\n", encoding="utf-8")
    kit = {
        "format": KIT_FORMAT,
        "kit_id": kit_id,
        "created": stamp.isoformat(),
        "renderer": settings.synth,
        "render": dataclasses.asdict(settings) | ({} if settings.synth == "fluidsynth" else {"soundfont": None}),
        "lengths": lengths,
        "clips_per_length": {str(n): {k: sum(1 for c in clips if c.frames == n and c.kind == k) for k in KINDS}
                             for n in lengths},
        "per_participant": per_participant,
        **dict(info or {}),
    }
    _write_json(out / "kit.json", kit)
    _write_json(out / "key.json", {"format": KEY_FORMAT, "kit_id": kit_id, "clips": key})
    page.rename(out / "page")
    return kit


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------
# Answers and analysis


@dataclasses.dataclass(frozen=True)
class Answers:
    """One participant's answers file, validated against a kit's key."""

    path: str
    participant: str
    session: str
    responses: tuple[tuple[str, str], ...]  # (clip id, "human" | "computer")


def load_key(kit_dir: PathLike) -> dict[str, Any]:
    """The answer key of a kit folder (raises :class:`KitError` naming the file)."""
    path = Path(kit_dir) / "key.json"
    if not path.is_file():
        raise KitError(f"{path}: no answer key (is {kit_dir} a kit made by listening_test.py make?)")
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise KitError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT or not isinstance(key.get("clips"), dict):
        raise KitError(f"{path}: not a listening-test answer key")
    return key


def load_answers(path: PathLike, key: Mapping[str, Any]) -> Answers:
    """Read and check one answers file downloaded from the page (raises :class:`KitError`
    with a one-line ``path: reason``)."""
    name = os.fspath(path)

    def bad(reason: str) -> KitError:
        return KitError(f"{name}: {reason}")

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise bad(f"cannot read ({err.strerror})") from None
    except UnicodeDecodeError:
        raise bad("not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise bad(f"not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(data, dict) or data.get("format") != ANSWERS_FORMAT:
        raise bad(f"not a listening-test answers file (no \"format\": \"{ANSWERS_FORMAT}\")")
    if data.get("kit_id") != key["kit_id"]:
        raise bad(f"answers for kit {data.get('kit_id')!r}, not this kit ({key['kit_id']})")
    items = data.get("answers")
    if not isinstance(items, list) or not items:
        raise bad("\"answers\" must be a non-empty list")
    clips = key["clips"]
    seen: set = set()
    responses = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad(f"answers[{i}] is not an object")
        clip_id, answer = item.get("clip"), item.get("answer")
        if clip_id not in clips:
            raise bad(f"answers[{i}]: unknown clip {clip_id!r}")
        if answer not in ANSWERS:
            raise bad(f"answers[{i}]: answer {answer!r} is not \"human\" or \"computer\"")
        if clip_id in seen:
            raise bad(f"answers[{i}]: clip {clip_id} answered twice")
        seen.add(clip_id)
        responses.append((clip_id, answer))
    session = data.get("session")
    if not isinstance(session, str) or not session:
        raise bad("no \"session\" id")
    return Answers(name, str(data.get("participant") or ""), session, tuple(responses))


def load_all_answers(paths: Sequence[PathLike], key: Mapping[str, Any]) -> list[Answers]:
    """:func:`load_answers` of every file; the same session twice is an error."""
    out, sessions = [], {}
    for path in paths:
        answers = load_answers(path, key)
        if answers.session in sessions:
            raise KitError(f"{answers.path}: the same session as {sessions[answers.session]} (a duplicate file?)")
        sessions[answers.session] = answers.path
        out.append(answers)
    return out


def _t_quantile(p: float, df: int) -> float:
    from scipy import stats  # a dependency of jax

    return float(stats.t.ppf(p, df))


def _binomial_p(k: int, n: int) -> float:
    """Two-sided exact binomial test of ``k`` of ``n`` against 1/2."""
    from scipy import stats

    return float(stats.binomtest(k, n, 0.5).pvalue)


def _clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    from scipy import stats

    alpha = 1 - level
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def analyze(key: Mapping[str, Any], participants: Sequence[Answers], paper: Mapping[int, float] = PAPER_TABLE5
            ) -> dict[str, Any]:
    """Table 5 from answers: per clip length, every participant's number correct scaled to
    ``OUT_OF`` clips, their mean with a 95% Student-t interval over participants (with one
    participant: the Clopper-Pearson interval of the pooled answers), and the exact two-sided
    binomial test of all answers of that length against chance (p = 1/2)."""
    clips = key["clips"]
    lengths = sorted({int(c["frames"]) for c in clips.values()})
    rows = []
    for length in lengths:
        scores, correct_total, total = [], 0, 0
        said_human = {kind: [0, 0] for kind in KINDS}  # kind -> [answered "human", answered]
        for person in participants:
            correct = n = 0
            for clip_id, answer in person.responses:
                clip = clips[clip_id]
                if int(clip["frames"]) != length:
                    continue
                n += 1
                correct += ANSWERS[answer] == clip["kind"]
                said_human[clip["kind"]][0] += answer == "human"
                said_human[clip["kind"]][1] += 1
            if n:
                scores.append(OUT_OF * correct / n)
                correct_total += correct
                total += n
        row: dict[str, Any] = {"frames": length, "participants": len(scores), "answers": total,
                               "correct": correct_total, "paper": paper.get(length)}
        if scores:
            mean = float(np.mean(scores))
            if len(scores) >= 2:
                half = _t_quantile(0.975, len(scores) - 1) * float(np.std(scores, ddof=1)) / math.sqrt(len(scores))
                low, high, method = max(0.0, mean - half), min(float(OUT_OF), mean + half), "student-t"
            else:
                low, high = (OUT_OF * x for x in _clopper_pearson(correct_total, total))
                method = "clopper-pearson"
            row.update(mean_correct=round(mean, 4), ci95=[round(low, 4), round(high, 4)], ci_method=method,
                       sd=round(float(np.std(scores, ddof=1)), 4) if len(scores) >= 2 else None,
                       binomial_p=_binomial_p(correct_total, total))
        row["said_human"] = {kind: (round(h / n, 4) if n else None) for kind, (h, n) in said_human.items()}
        rows.append(row)
    return {"kit_id": key["kit_id"], "participants": len(participants), "chance": CHANCE, "out_of": OUT_OF,
            "lengths": rows, "files": [p.path for p in participants]}


def format_table(results: Mapping[str, Any]) -> str:
    """Markdown table of :func:`analyze`'s figures beside the paper's row."""
    lines = ["| frames | participants | mean correct of 10 | 95% CI | binomial p (vs chance) | paper |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in results["lengths"]:
        paper = "—" if row["paper"] is None else f"{row['paper']:.1f}"
        if "mean_correct" not in row:
            lines.append(f"| {row['frames']} | 0 | — | — | — | {paper} |")
            continue
        low, high = row["ci95"]
        lines.append(f"| {row['frames']} | {row['participants']} | {row['mean_correct']:.2f} | "
                     f"{low:.2f} – {high:.2f} | {row['binomial_p']:.3g} | {paper} |")
    return "\n".join(lines)


def plot(results: Mapping[str, Any], path: PathLike) -> str:
    """PNG of the mean number correct (of 10) against clip length, with the 95% intervals,
    the paper's Table 5 row and chance."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [r for r in results["lengths"] if "mean_correct" in r]
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if rows:
        x = np.array([r["frames"] for r in rows], dtype=float)
        y = np.array([r["mean_correct"] for r in rows])
        err = np.array([[r["mean_correct"] - r["ci95"][0] for r in rows],
                        [r["ci95"][1] - r["mean_correct"] for r in rows]])
        count = results["participants"]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=4,
                    label=f"this study ({count} participant{'s' if count != 1 else ''}, 95% CI)")
    paper = [(r["frames"], r["paper"]) for r in results["lengths"] if r["paper"] is not None]
    if paper:
        ax.plot(*zip(*paper), marker="s", linestyle="--", color="gray", label="paper (Table 5)")
    ax.axhline(results["chance"], color="black", linewidth=0.8, linestyle=":", label="chance")
    ax.set_xticks([r["frames"] for r in results["lengths"]])
    ax.set_ylim(0, results["out_of"])
    ax.set_xlabel("clip length (frames)")
    ax.set_ylabel(f"correct of {results['out_of']} (mean per participant)")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png", dpi=100)
    return os.fspath(path)
