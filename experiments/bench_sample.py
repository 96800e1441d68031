r"""Sampling throughput and validity with a trained checkpoint (default: the published exp.-6 weights).

    python experiments/import_reference.py --weights=../shared/reference/multipart6_weights.npz \
        --workdir=/tmp/published6          # once
    python experiments/bench_sample.py --checkpoint=/tmp/published6 [--num_scores=100 --frames=150]

Prints seconds per event-step (one frame of every score in the batch), the total for the batch
(compile excluded, reported apart), then checks every sampled score: written with
``voicecomp.export.to_kern`` it re-parses with ``parse_kern``, re-encodes to the same arrays, and
verovio renders it without error messages.  The original PyTorch sampler takes about 75 s per
event-step for 100 four-voice scores on this 2-core CPU (about 3 hours for 150 events).
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np
from absl import flags, logging

from voicecomp import cli

from voicecomp import export as export_lib
from voicecomp import sample as sample_lib
from voicecomp import train as train_lib

_CHECKPOINT = flags.DEFINE_string("checkpoint", "/tmp/published6", "Work directory of a multi-voice run.")
_NUM_SCORES = flags.DEFINE_integer("num_scores", 100, "Scores sampled in one batch.")
_FRAMES = flags.DEFINE_integer("frames", 150, "Frames (event-steps) per score.")
_VOICES = flags.DEFINE_integer("voices", 4, "Voices per score.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Sampling temperature.")
_CHUNK = flags.DEFINE_integer("chunk_frames", 25, "Frames per jit call.")
_VALIDATE = flags.DEFINE_bool("validate", True, "Re-parse and engrave every sampled score.")
ORIGINAL_SECONDS_PER_STEP = 75.0


def validate(scores) -> dict:
    """Counts of scores that fail to re-parse, to re-encode to their frames, or to engrave
    without verovio messages (kern of ``score.voices(close=True)``, as experiments/sample.py writes)."""
    from voicecomp.data.humdrum import parse_kern
    from voicecomp.encoding import encode_score
    from voicecomp.export import to_kern

    try:
        import verovio  # noqa: F401
        have_verovio = True
    except ImportError:  # pragma: no cover
        have_verovio = False
    failures = {"parse": 0, "roundtrip": 0, "render": 0, "warnings": 0, "verovio": have_verovio, "messages": []}
    for i, score in enumerate(scores):
        f = score.num_frames
        exact_pitches = None
        for close in (False, True):
            text = to_kern(score.voices(close=close))
            try:
                parsed = parse_kern(text, f"sample{i}")
                encoded = encode_score(parse_kern(text, f"sample{i}")) if not close else None
            except Exception as err:  # noqa: BLE001 - counted and shown
                failures["parse"] += 1
                failures["messages"].append(f"score {i} (close={close}): {err}")
                continue
            if close:
                same = parsed.num_frames >= f and exact_pitches == parsed.note_pitch.tolist()
            else:
                exact_pitches = parsed.note_pitch.tolist()
                same = np.array_equal(encoded.notes, score.notes) and np.array_equal(
                    encoded.durations, score.durations)
            if not same:
                failures["roundtrip"] += 1
        if have_verovio:
            messages = export_lib.verovio_messages(text)
            if any("rror" in line for line in messages):
                failures["render"] += 1
                failures["messages"].append(f"score {i}: verovio: {' | '.join(messages)[:300]}")
            elif messages:  # layout warnings (e.g. a very dense measure compressed)
                failures["warnings"] += 1
    return failures


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    for name, flag in (("num_scores", _NUM_SCORES), ("frames", _FRAMES), ("chunk_frames", _CHUNK)):
        cli.positive(name, flag.value)
    cli.check(1 <= _VOICES.value <= 6, f"--voices={_VOICES.value}: must be 1..6")
    cli.positive("temperature", _TEMPERATURE.value, zero=True)
    if not os.path.isdir(_CHECKPOINT.value):
        raise cli.DataError(f"--checkpoint={_CHECKPOINT.value}: no such directory "
                            f"(experiments/import_reference.py makes one from the published weights)")
    logging.set_verbosity(logging.WARNING)
    _, task, state, step = train_lib.load_checkpoint(_CHECKPOINT.value)
    model, params = task.model, state.ema_params
    print(f"checkpoint {_CHECKPOINT.value} (step {step}), {model.config.architecture}, devices {jax.devices()}")
    kwargs = dict(num_scores=_NUM_SCORES.value, voices=_VOICES.value, temperature=_TEMPERATURE.value,
                  chunk_frames=_CHUNK.value)
    # Compile (and warm up) with the same chunk shape.
    start = time.perf_counter()
    sample_lib.sample(model, params, frames=min(_CHUNK.value, _FRAMES.value), seed=_SEED.value + 1, **kwargs)
    compile_s = time.perf_counter() - start
    times = []

    def progress(done, total):
        times.append((done, time.perf_counter()))
        print(f"\r  {done}/{total} frames  {times[-1][1] - start:.1f} s", end="", flush=True)

    start = time.perf_counter()
    scores = sample_lib.sample(model, params, frames=_FRAMES.value, seed=_SEED.value, progress=progress, **kwargs)
    total = time.perf_counter() - start
    print()
    per_step = total / _FRAMES.value
    events = sum(int((s.durations >= 3).sum()) for s in scores)
    print(f"compile + first chunk: {compile_s:.1f} s")
    print(f"{_NUM_SCORES.value} scores x {_FRAMES.value} frames, {_VOICES.value} voices: {total:.1f} s total, "
          f"{per_step:.3f} s per event-step ({events} voice onsets, {events / total:.0f} onsets/s); "
          f"original ~{ORIGINAL_SECONDS_PER_STEP:.0f} s per event-step -> {ORIGINAL_SECONDS_PER_STEP / per_step:.0f}x")
    beats = [float(s.times[-1]) for s in scores]
    notes = [int(s.notes[s.durations >= 3].sum()) for s in scores]
    print(f"score length: {np.mean(beats):.1f} beats on average (min {min(beats):.1f}, max {max(beats):.1f}); "
          f"{np.mean(notes):.0f} sounding pitches per score")
    if _VALIDATE.value:
        start = time.perf_counter()
        result = validate(scores)
        print(f"validity ({time.perf_counter() - start:.1f} s): {len(scores)} scores, parse failures "
              f"{result['parse']}, round-trip mismatches {result['roundtrip']}, "
              + (f"verovio: scores with error messages {result['render']}, with layout warnings only "
                 f"{result['warnings']}" if result["verovio"] else "verovio not installed"))
        for line in result["messages"][:10]:
            print("  " + line)


if __name__ == "__main__":
    cli.run(main)
