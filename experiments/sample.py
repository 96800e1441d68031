r"""Sample scores from a trained multi-voice checkpoint (SPEC §6) and write them out.

  python experiments/sample.py --checkpoint=runs/published6 --num_scores=4 --voices=4 --frames=150 \
      --temperature=1 --seed=0 --out_dir=samples --formats=kern,mid,wav,png,svg

Continue a score from its first N frames (the voices are those of the prompt's last frame):

  python experiments/sample.py --checkpoint=... --prompt=chor001.krn --prompt_frames=16 --frames=64

Harmonize: clamp voices to a score's voices (channel = kern spine, 0 = leftmost) and sample the others.
Clamped voices are teacher-forced at their turn: they follow the given notes exactly and do not
react to the sampled voices; the sampled voices condition on them as in training.  With a prompt
too, clamping starts after the prompt (give the same file to continue a harmonization):

  python experiments/sample.py --checkpoint=... --clamp_score=chor001.krn --clamp_voices=3 --beats=32

``--frames`` counts frames (events) sampled after the prompt; ``--beats`` instead stops every
score at that many quarter notes.  The same seed gives the same scores.  The published weights
become a checkpoint with experiments/import_reference.py.
"""

from __future__ import annotations

import os
import time

from absl import app, flags, logging

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Work directory of a multi-voice run (experiments/train.py "
                                  "or experiments/import_reference.py).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
_NUM_SCORES = flags.DEFINE_integer("num_scores", 4, "Number of scores, sampled as one batch.")
_VOICES = flags.DEFINE_integer("voices", 4, "Number of voices (1-6); with --prompt, the prompt's decide.")
_FRAMES = flags.DEFINE_integer("frames", 150, "Frames (events) to sample after the prompt.")
_BEATS = flags.DEFINE_float("beats", None, "Length in quarter notes instead of --frames.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Softmax/sigmoid temperature; 0 = greedy.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed (scores are deterministic given the seed).")
_OUT_DIR = flags.DEFINE_string("out_dir", "samples", "Output folder.")
_FORMATS = flags.DEFINE_list("formats", ["kern", "mid", "wav", "png", "svg"], "Any of kern, mid, wav, png, svg, npz.")
_PROMPT = flags.DEFINE_string("prompt", None, "A **kern file to continue.")
_PROMPT_FRAMES = flags.DEFINE_integer("prompt_frames", 16, "Frames of --prompt kept before sampling.")
_CLAMP_VOICES = flags.DEFINE_list("clamp_voices", [], "Channels (0-based kern spines) taken from --clamp_score.")
_CLAMP_SCORE = flags.DEFINE_string("clamp_score", None, "A **kern file whose voices are clamped.")
_CHUNK = flags.DEFINE_integer("chunk_frames", 25, "Frames per compiled call (progress granularity).")
_METER = flags.DEFINE_string("meter", "4/4", "Meter written into the kern files (barlines).")
_TEMPO = flags.DEFINE_float("tempo", 100, "Tempo (quarter notes per minute) of MIDI/WAV.")
_STEM = flags.DEFINE_string("stem", "sample", "File name stem: <stem><index>.<ext> (<stem>.<ext> for one score).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if not _CHECKPOINT.value:
        raise app.UsageError("--checkpoint is required")
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
    import numpy as np
    from tqdm import tqdm

    from voicecomp import export
    from voicecomp import sample as sample_lib
    from voicecomp import train as train_lib

    formats = [f.strip() for f in _FORMATS.value if f.strip()]
    unknown = [f for f in formats if f not in export.EXPORT_FORMATS + ("npz",)]
    if unknown:
        raise app.UsageError(f"unknown formats {unknown}; choose from {export.EXPORT_FORMATS + ('npz',)}")
    num, den = (int(x) for x in _METER.value.split("/"))

    config, task, state, step = train_lib.load_checkpoint(_CHECKPOINT.value, _STEP.value)
    model, params = task.model, state.ema_params
    print(f"checkpoint {_CHECKPOINT.value} step {step}: {config.model.architecture} model "
          f"(history {config.model.voice_history})")

    prompt = clamp = clamp_pickup = None
    voices = _VOICES.value
    if _PROMPT.value:
        prompt = sample_lib.load_prompt(_PROMPT.value, _PROMPT_FRAMES.value)
        voices = prompt.voices
        print(f"prompt: {prompt.num_frames} frames of {_PROMPT.value}, {voices} voices")
    if _CLAMP_VOICES.value:
        if not _CLAMP_SCORE.value:
            raise app.UsageError("--clamp_voices needs --clamp_score")
        encoded, clamp_pickup = sample_lib.load_score(_CLAMP_SCORE.value)
        start = 0
        if prompt is not None:
            if os.path.abspath(_CLAMP_SCORE.value) != os.path.abspath(_PROMPT.value):
                raise app.UsageError("with --prompt, --clamp_score must be the same file (clamping continues it)")
            start = prompt.num_frames
        channels = [int(c) for c in _CLAMP_VOICES.value]
        clamp = sample_lib.clamp_from_frames(encoded.notes, encoded.durations, channels, start_frame=start)
        if prompt is None:
            used = int((encoded.durations[0] != sample_lib.EMPTY).sum())
            if max(channels) >= voices:
                raise app.UsageError(f"clamped channel {max(channels)} needs --voices > {max(channels)} "
                                     f"(the clamp score starts with {used} voices)")
        print(f"clamped voices {channels} from {_CLAMP_SCORE.value}: {clamp.lengths().tolist()} notes")

    pickup = clamp_pickup if clamp is not None and prompt is None else None
    length = dict(beats=_BEATS.value) if _BEATS.value is not None else dict(frames=_FRAMES.value)
    bar = tqdm(total=_FRAMES.value if _BEATS.value is None else None, unit="frame", desc="sampling")

    def progress(done, total):
        if total is not None:
            bar.total = total
        bar.update(done - bar.n)

    start_time = time.perf_counter()
    scores = sample_lib.sample(
        model, params, num_scores=_NUM_SCORES.value, voices=voices, temperature=_TEMPERATURE.value,
        seed=_SEED.value, prompt=prompt, clamp=clamp, chunk_frames=_CHUNK.value, progress=progress, pickup=pickup,
        **length)
    bar.close()
    elapsed = time.perf_counter() - start_time
    print(f"sampled {len(scores)} scores in {elapsed:.1f} s (including compilation)")

    os.makedirs(_OUT_DIR.value, exist_ok=True)
    header_base = {"ENC": "voicecomp.sample", "model": f"{_CHECKPOINT.value} step {step}",
                   "temperature": _TEMPERATURE.value}
    written = []
    for i, score in enumerate(scores):
        stem = _STEM.value if len(scores) == 1 else f"{_STEM.value}{i}"
        voices_obj = score.voices(close=True)  # voices padded with rests to a common end
        header = dict(header_base, OTL=f"{stem} (seed {_SEED.value}, score {i})")
        paths = export.export_score(voices_obj, _OUT_DIR.value, stem, [f for f in formats if f != "npz"],
                                    meter=(num, den), header=header, tempo_bpm=_TEMPO.value)
        if "npz" in formats:
            target = os.path.join(_OUT_DIR.value, f"{stem}.npz")
            np.savez_compressed(target, notes=score.notes, durations=score.durations, flows=score.flows)
            paths["npz"] = target
        written.extend(paths.values())
        print(f"{stem}: {score.num_frames} frames, {float(voices_obj.end):.1f} beats, "
              f"{voices_obj.num_notes()} notes -> " + ", ".join(paths[f] for f in formats if f in paths))
    print(f"wrote {len(written)} files to {_OUT_DIR.value}")


if __name__ == "__main__":
    app.run(main)
