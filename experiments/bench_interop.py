r"""Interoperability benchmark (issue 13): MusicXML out and back in, on real data.

  python experiments/bench_interop.py --kernscores_dir=../shared/kernscores \
      --chorales_steps=600 --out=docs/results/interop.json

Round trip: every score of a KernScores split (default: the non-piano test split) is written as
MusicXML by voicecomp (``export.to_musicxml``), read back by voicecomp's reader
(``data.musicxml.read_musicxml``) and compared voice by voice with the parsed original: the
same notes (pitches), onsets and durations in the same voices (channels).  Rests are compared too
but reported apart (the writer splits rests at barlines and writes a voice's unused stretches as
rests).  The same files are read by music21 (no exception; its tie-aware note count is compared
with voicecomp's) and engraved by verovio from MusicXML (its messages are collected; an error is a
message containing "rror").  Exceptions are reported by class with their score ids.

``--chorales_steps=N`` also trains a small model for N steps on the Bach chorales that ship with
music21 as MusicXML (a ``--corpus=dir:`` folder), evaluates it and samples from it, all through
the command-line scripts, and records the times.
"""

from __future__ import annotations

import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

REPO = Path(__file__).resolve().parents[1]
_KERNSCORES_DIR = flags.DEFINE_string("kernscores_dir", None, "KernScores root (default: $VOICECOMP_KERNSCORES).")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "Parse cache (default: $VOICECOMP_CACHE or ~/.cache/voicecomp).")
_SPLIT = flags.DEFINE_string("split", "test_nonpiano", "Split of the KernScores corpus to round-trip.")
_LIMIT = flags.DEFINE_integer("limit", 0, "Only the first N scores of the split (0: all).")
_OUT = flags.DEFINE_string("out", None, "Write the JSON result here (e.g. docs/results/interop.json).")
_KEEP_DIR = flags.DEFINE_string("keep_dir", None, "Keep the written MusicXML files in this folder.")
_VEROVIO = flags.DEFINE_bool("verovio", True, "Engrave every written file with verovio.")
_CHORALES_STEPS = flags.DEFINE_integer("chorales_steps", 0, "Train on music21's bundled Bach chorales (MusicXML) "
                                       "for this many steps, evaluate and sample (0: skip).")


def channel_events(score):
    """Per channel: (notes, rests) as lists of (onset, duration, pitches) in quarter notes."""
    from voicecomp.export import voices_from_score

    out = []
    for voice in voices_from_score(score).voices:
        notes = [(n.onset, n.duration, n.pitches) for n in voice if n.pitches]
        rests = [(n.onset, n.duration) for n in voice if not n.pitches]
        out.append((notes, rests))
    return out


def kern_meter(path: str) -> tuple[int, int]:
    """The first ``*M`` meter of a kern file (4/4 without one): barlines as the source has them."""
    try:
        text = Path(path).read_text(encoding="latin-1")
    except OSError:
        return (4, 4)
    match = re.search(r"(?:^|\t)\*M(\d+)/(\d+)(?:\t|$)", text, re.MULTILINE)
    return (int(match.group(1)), int(match.group(2))) if match and int(match.group(1)) > 0 else (4, 4)


def rest_difference(original, again) -> str:
    """Why rests differ when the notes agree: a channel's unused stretches (the kern spine did not
    exist yet or any more) written as rests, and/or rests cut at barlines."""
    causes = set()
    for (notes, rests), (_, rests_again) in zip(original, again):
        covered = sorted([(o, o + d) for o, d, _ in notes] + [(o, o + d) for o, d in rests])
        extra = set(rests_again) - set(rests)
        for onset, length in extra:
            inside = any(a <= onset and onset + length <= b for a, b in covered)
            causes.add("cut at barlines" if inside else "unused stretches written as rests")
    if len(again) > len(original):
        causes.add("unused stretches written as rests")
    return " and ".join(sorted(causes)) or "rests differ"


def overlapping_channels(voices) -> list[int]:
    return [c for c, v in enumerate(voices.voices) if any(b.onset < a.end for a, b in zip(v, v[1:]))]


def round_trip(score_id: str, score, folder: Path, verovio: bool) -> dict:
    """Write, read back with voicecomp and music21, engrave; classify what differs."""
    import music21

    from voicecomp.data.musicxml import read_musicxml
    from voicecomp.data.scorefile import ScoreReadError
    from voicecomp.export import to_musicxml, verovio_messages, voices_from_score

    voices = voices_from_score(score)
    path = folder / f"{score_id}.musicxml"
    meter = kern_meter(score.name)
    start = time.perf_counter()
    text = to_musicxml(voices, path, meter=meter, header={"OTL": score_id})
    row = {"id": score_id, "write_s": time.perf_counter() - start, "notes": voices.num_notes(),
           "meter": f"{meter[0]}/{meter[1]}"}
    overlaps = overlapping_channels(voices)
    start = time.perf_counter()
    warnings: list[str] = []
    try:
        back = read_musicxml(path, warnings=warnings)
    except ScoreReadError as err:
        row["class"] = "unreadable by voicecomp: " + err.reason.split(" (")[0].split(":")[0]
        row["detail"] = err.reason
        if overlaps:
            row["class"] = "a voice overlaps itself (kern spine split): extra voices exceed 6 channels"
        back = None
    row["read_s"] = time.perf_counter() - start
    if back is not None:
        original, again = channel_events(score), channel_events(back)
        same_notes = [n for n, _ in original] == [n for n, _ in again]
        same_rests = [r for _, r in original] == [r for _, r in again]
        if same_notes:
            row["class"] = "exact" if same_rests else ("notes exact; rests differ: "
                                                       + rest_difference(original, again))
        elif overlaps:
            flat = lambda events: sorted(n for notes, _ in events for n in notes)
            reduced = [w for w in warnings if "more than the 6 channels" in w]
            if flat(original) == flat(again):
                row["class"] = "a voice overlaps itself (kern spine split): notes exact, voice assignment differs"
            elif reduced:
                row["class"] = ("a voice overlaps itself (kern spine split): read as more than 6 voices, which the "
                                "reader reduces (notes cut or merged)")
                row["detail"] = reduced[0].split(": ", 1)[1]
            else:
                row["class"] = "a voice overlaps itself: notes differ"
        else:
            row["class"] = "notes differ"
        row["voices"] = [len(original), len(again)]
    start = time.perf_counter()
    try:
        parsed = music21.converter.parse(str(path), format="musicxml", forceSource=True, storePickle=False)
        row["music21_notes"] = music21_note_count(parsed)
    except Exception as err:  # any exception is a music21 failure to report
        row["music21_error"] = f"{type(err).__name__}: {err}"[:300]
    row["music21_s"] = time.perf_counter() - start
    if verovio:
        start = time.perf_counter()
        messages = verovio_messages(text, "musicxml")
        row["verovio_s"] = time.perf_counter() - start
        row["verovio_errors"] = [m for m in messages if "rror" in m][:5]
        row["verovio_warnings"] = [m for m in messages if "rror" not in m][:5]
    return row


def music21_note_count(parsed) -> int:
    """Sounding notes as music21 has them: pitches of non-grace notes that do not continue a tie."""
    count = 0
    for element in parsed.recurse().notes:
        if element.duration.isGrace:
            continue
        for head in (element.notes if element.isChord else (element,)):
            if head.tie is None or head.tie.type not in ("stop", "continue"):
                count += 1
    return count


def summarize(rows: list[dict]) -> dict:
    classes = collections.defaultdict(list)
    details = {}
    for row in rows:
        classes[row["class"]].append(row["id"])
        if "detail" in row:
            details[row["id"]] = row["detail"]
    music21_errors = [r["id"] for r in rows if "music21_error" in r]
    count_differs = [r["id"] for r in rows if "music21_notes" in r and r["music21_notes"] != r["notes"]]
    verovio_rows = [r for r in rows if "verovio_errors" in r]
    total = lambda key: round(sum(r.get(key, 0.0) for r in rows), 2)
    return {
        "scores": len(rows),
        "notes": sum(r["notes"] for r in rows),
        "classes": {k: {"count": len(v), **({"ids": v} if k != "exact" else {}),
                        **({"details": {i: details[i] for i in v if i in details}} if any(i in details for i in v) else {})}
                    for k, v in sorted(classes.items(), key=lambda kv: -len(kv[1]))},
        "music21": {"read": len(rows) - len(music21_errors), "errors": music21_errors,
                    "note_count_differs": count_differs},
        "verovio": {"engraved": len(verovio_rows),
                    "with_errors": [r["id"] for r in verovio_rows if r["verovio_errors"]],
                    "with_warnings": [r["id"] for r in verovio_rows if r["verovio_warnings"]],
                    "first_messages": sorted({m for r in verovio_rows for m in r["verovio_errors"] + r["verovio_warnings"]})[:10]},
        "seconds": {"write": total("write_s"), "voicecomp_read": total("read_s"), "music21_read": total("music21_s"),
                    "verovio": total("verovio_s")},
    }


def chorales_run(steps: int, folder: Path) -> dict:
    """Train, evaluate and sample on music21's bundled Bach chorales through the scripts."""
    import music21

    source = Path(music21.__file__).parent / "corpus" / "bach"
    corpus_dir = folder / "chorales"
    corpus_dir.mkdir()
    for path in sorted(source.glob("*.mxl")):
        shutil.copy(path, corpus_dir)  # a user's folder of MusicXML files, outside the repository
    workdir, samples = folder / "run", folder / "samples"
    # The small CPU recipe of experiments/main.py.
    model = ["--voice_history=5", "--global_history=5", "--duration_hidden=32", "--notes_hidden=32",
             "--pitch_embedding=8", "--init_std=0.01"]
    recipe = ["--optimizer=adam", "--learning_rate=0.003", "--l2=0", "--ema_decay=0.99", "--batch_size=64"]
    commands = {
        "train": [sys.executable, str(REPO / "experiments" / "train.py"), f"--corpus=dir:{corpus_dir}",
                  f"--workdir={workdir}", *model, *recipe, f"--num_steps={steps}", f"--eval_every={steps}",
                  "--eval_examples=2000", "--log_every=50", f"--checkpoint_every={steps}"],
        "evaluate": [sys.executable, str(REPO / "experiments" / "evaluate.py"), f"--checkpoint={workdir}",
                     "--split=test", "--json"],
        "sample": [sys.executable, str(REPO / "experiments" / "sample.py"), f"--checkpoint={workdir}",
                   "--num_scores=2", "--voices=4", "--beats=16", f"--out_dir={samples}", "--formats=musicxml,kern"],
    }
    out = {"files": len(list(corpus_dir.iterdir())), "steps": steps}
    for name, command in commands.items():
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        out[f"{name}_s"] = round(time.perf_counter() - start, 1)
        out[f"{name}_rc"] = result.returncode
        if result.returncode:
            out[f"{name}_error"] = (result.stderr or result.stdout).strip().splitlines()[-1:]
        if name == "evaluate" and result.returncode == 0:
            figures = json.loads(result.stdout.strip().splitlines()[-1])
            figures.pop("checkpoint", None)  # a temporary folder
            out["evaluate"] = figures
    out["samples"] = sorted(p.name for p in samples.iterdir()) if samples.is_dir() else []
    return out


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from voicecomp.data.corpus import default_kernscores_dir, load_corpus

    root = _KERNSCORES_DIR.value or default_kernscores_dir()
    if not root:
        raise app.UsageError("give --kernscores_dir or set $VOICECOMP_KERNSCORES")
    corpus = load_corpus("kernscores", kernscores_dir=root, cache_dir=_CACHE_DIR.value, progress=False)
    ids = corpus.split_ids(_SPLIT.value)
    if _LIMIT.value:
        ids = ids[: _LIMIT.value]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(_KEEP_DIR.value or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        rows = []
        for i, score_id in enumerate(ids):
            rows.append(round_trip(score_id, corpus.scores[score_id], folder, _VEROVIO.value))
            if rows[-1]["class"] != "exact":
                print(f"{score_id}: {rows[-1]['class']}", file=sys.stderr)
            print(f"\r{i + 1}/{len(ids)}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        result = {"split": _SPLIT.value, "round_trip": summarize(rows),
                  "wall_s": round(time.perf_counter() - start, 1)}
        if _CHORALES_STEPS.value:
            result["chorales"] = chorales_run(_CHORALES_STEPS.value, Path(tmp))
    text = json.dumps(result, indent=1, sort_keys=True, default=str)
    if _OUT.value:
        Path(_OUT.value).parent.mkdir(parents=True, exist_ok=True)
        Path(_OUT.value).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    app.run(main)
