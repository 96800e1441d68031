r"""Sample scores from a trained multi-voice checkpoint (SPEC §6) and write them out.

  python experiments/sample.py --checkpoint=runs/published6 --num_scores=4 --voices=4 --frames=150 \
      --temperature=1 --seed=0 --out_dir=samples --formats=kern,mid,wav,png,svg

Continue a score from its first N frames (the voices are those of the prompt's last frame); scores
are read as **kern, MusicXML (.musicxml, .mxl, .xml) or MIDI (.mid, .midi) by their extension:

  python experiments/sample.py --checkpoint=... --prompt=chor001.krn --prompt_frames=16 --frames=64

Harmonize: clamp voices to a score's voices (channel = kern spine or voice, 0 = the lowest staff)
and sample the others.  Clamped voices are teacher-forced: they follow the given notes exactly and
do not react to the sampled voices.  By default every voice is decided at its own channel's turn
(lowest first, as in training); --clamped_first decides the clamped voices first in every frame,
so the sampled voices hear the clamped notes sounding with them, but models trained bottom-up then
place the sampled voices above them (experiments/bench_harmonize.py); the output keeps the
channels as given either way.  With a prompt too,
clamping starts after the prompt (give the same file to continue a harmonization):

  python experiments/sample.py --checkpoint=... --clamp_score=chor001.krn --clamp_voices=3 --beats=32

--harmonize=FILE is the shorthand for a melody (or any few voices): all of the file's voices are
clamped, as the highest of --voices voices, the others are sampled, for as long as the file lasts
(unless --frames or --beats says otherwise):

  python experiments/sample.py --checkpoint=... --harmonize=melody.musicxml --voices=4 --formats=musicxml

``--frames`` counts frames (events) sampled after the prompt; ``--beats`` instead stops every
score at that many quarter notes.  Durations and notes have their own temperatures
(--duration_temperature, --notes_temperature; --temperature sets both) and the duration softmax
can be cut to its nucleus (--top_p).  The same seed and options give the same scores.  The
published weights become a checkpoint with experiments/import_reference.py.
"""

from __future__ import annotations

import os
import time

from absl import flags, logging

from voicecomp import cli
from voicecomp.data.humdrum import MAX_VOICES

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Work directory of a multi-voice run (experiments/train.py "
                                  "or experiments/import_reference.py).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
_NUM_SCORES = flags.DEFINE_integer("num_scores", 4, "Number of scores, sampled as one batch.")
_VOICES = flags.DEFINE_integer("voices", 4, "Number of voices (1-6); with --prompt, the prompt's decide.")
_FRAMES = flags.DEFINE_integer("frames", 150, "Frames (events) to sample after the prompt.")
_BEATS = flags.DEFINE_float("beats", None, "Length in quarter notes instead of --frames.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Softmax/sigmoid temperature of durations and notes; 0 = greedy.")
_DURATION_TEMPERATURE = flags.DEFINE_float("duration_temperature", None, "Softmax temperature of the durations "
                                           "(default: --temperature; 0 = the most likely duration).")
_NOTES_TEMPERATURE = flags.DEFINE_float("notes_temperature", None, "Sigmoid temperature of the onset bits "
                                        "(default: --temperature; 0 = every pitch whose logit is > 0).")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Nucleus sampling of the durations: draw only among the most likely "
                            "note values whose probabilities reach this total (1 = off).")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed (scores are deterministic given the seed).")
_OUT_DIR = flags.DEFINE_string("out_dir", "samples", "Output folder.")
_FORMATS = flags.DEFINE_list("formats", ["kern", "mid", "wav", "png", "svg"], "Any of kern, mid, wav, png, svg, npz.")
_PROMPT = flags.DEFINE_string("prompt", None, "A score file to continue (kern, MusicXML or MIDI).")
_PROMPT_FRAMES = flags.DEFINE_integer("prompt_frames", 16, "Frames of --prompt kept before sampling.")
_CLAMP_VOICES = flags.DEFINE_list("clamp_voices", [], "Channels (0-based kern spines) taken from --clamp_score.")
_CLAMP_SCORE = flags.DEFINE_string("clamp_score", None, "A score file (kern, MusicXML or MIDI) whose voices are "
                                   "clamped.")
_HARMONIZE = flags.DEFINE_string("harmonize", None, "A score file (a melody, say) whose voices are all clamped, as the "
                                 "highest of --voices voices; the others are sampled.")
_CLAMPED_FIRST = flags.DEFINE_bool("clamped_first", False, "Decide clamped voices first in every frame, so the sampled "
                                   "voices hear their current notes (default: each at its own channel's turn, as in "
                                   "training; see experiments/bench_harmonize.py).")
_CHUNK = flags.DEFINE_integer("chunk_frames", 25, "Frames per compiled call (progress granularity).")
_METER = flags.DEFINE_string("meter", "4/4", "Meter written into the kern files (barlines).")
_TEMPO = flags.DEFINE_float("tempo", 100, "Tempo (quarter notes per minute) of MIDI/WAV.")
_STEM = flags.DEFINE_string("stem", "sample", "File name stem: <stem><index>.<ext> (<stem>.<ext> for one score).")


KERN_METER_DENOMINATORS = (1, 2, 4, 8, 16, 32, 64)


def parse_meter(text: str) -> tuple[int, int]:
    """``"3/4"`` -> (3, 4); a usage error naming --meter otherwise."""
    num, sep, den = text.partition("/")
    if not (sep and num.strip().isdigit() and den.strip().isdigit()):
        raise cli.UsageError(f"--meter={text}: expected NUMERATOR/DENOMINATOR, e.g. 3/4")
    num, den = int(num), int(den)
    if num < 1 or den not in KERN_METER_DENOMINATORS:
        raise cli.UsageError(f"--meter={text}: the numerator must be >= 1 and the denominator one of "
                             f"{', '.join(map(str, KERN_METER_DENOMINATORS))}")
    return num, den


def parse_channels(texts: list[str]) -> list[int]:
    """--clamp_voices as channel numbers 0..5 (a usage error otherwise)."""
    channels = []
    for text in texts:
        text = text.strip()
        if not text.isdigit() or int(text) >= MAX_VOICES:
            raise cli.UsageError(f"--clamp_voices={','.join(texts)}: {text!r} is not a channel 0..{MAX_VOICES - 1}")
        channels.append(int(text))
    if len(set(channels)) != len(channels):
        raise cli.UsageError(f"--clamp_voices={','.join(texts)}: a channel is given twice")
    return channels


def check_flags() -> tuple[list[str], tuple[int, int], list[int]]:
    """Every flag that can be checked without reading a file: (formats, meter, clamp channels)."""
    from voicecomp.export import EXPORT_FORMATS

    cli.check(_CHECKPOINT.value, "--checkpoint is required")
    cli.check(1 <= _VOICES.value <= MAX_VOICES, f"--voices={_VOICES.value}: must be 1..{MAX_VOICES}")
    cli.check(_TEMPERATURE.value >= 0, f"--temperature={_TEMPERATURE.value}: must be >= 0 (0: greedy)")
    for flag in (_DURATION_TEMPERATURE, _NOTES_TEMPERATURE):
        cli.check(flag.value is None or flag.value >= 0, f"--{flag.name}={flag.value}: must be >= 0 (0: greedy)")
    cli.check(0 < _TOP_P.value <= 1, f"--top_p={_TOP_P.value}: must be in (0, 1] (1: off)")
    cli.check(_NUM_SCORES.value >= 1, f"--num_scores={_NUM_SCORES.value}: must be >= 1")
    cli.check(_CHUNK.value >= 1, f"--chunk_frames={_CHUNK.value}: must be >= 1")
    cli.check(_TEMPO.value > 0, f"--tempo={_TEMPO.value}: must be > 0")
    if _BEATS.value is None:
        cli.check(_FRAMES.value >= 1, f"--frames={_FRAMES.value}: must be >= 1")
    else:
        cli.check(_BEATS.value > 0, f"--beats={_BEATS.value}: must be > 0")
    if _PROMPT.value:
        cli.check(_PROMPT_FRAMES.value >= 1, f"--prompt_frames={_PROMPT_FRAMES.value}: must be >= 1")
    formats = [f.strip() for f in _FORMATS.value if f.strip()]
    cli.check(formats, "--formats: give at least one of " + ", ".join(EXPORT_FORMATS + ("npz",)))
    unknown = [f for f in formats if f not in EXPORT_FORMATS + ("npz",)]
    cli.check(not unknown, f"--formats={','.join(_FORMATS.value)}: unknown {', '.join(unknown)}; choose from "
              + ", ".join(EXPORT_FORMATS + ("npz",)))
    meter = parse_meter(_METER.value)
    channels = parse_channels(_CLAMP_VOICES.value)
    cli.check(not channels or _CLAMP_SCORE.value, "--clamp_voices needs --clamp_score")
    cli.check(channels or not _CLAMP_SCORE.value, "--clamp_score needs --clamp_voices (the channels to clamp)")
    if _HARMONIZE.value:
        cli.check(not (_PROMPT.value or _CLAMP_SCORE.value or channels),
                  "--harmonize clamps all of its file's voices; give it without --prompt, --clamp_score and "
                  "--clamp_voices")
    if _PROMPT.value and _CLAMP_SCORE.value:
        cli.check(os.path.abspath(_CLAMP_SCORE.value) == os.path.abspath(_PROMPT.value),
                  "with --prompt, --clamp_score must be the same file (clamping continues it)")
    if channels and not _PROMPT.value:
        cli.check(max(channels) < _VOICES.value, f"--clamp_voices={','.join(_CLAMP_VOICES.value)}: channel "
                  f"{max(channels)} needs --voices > {max(channels)} (got --voices={_VOICES.value})")
    for name, path in (("prompt", _PROMPT.value), ("clamp_score", _CLAMP_SCORE.value), ("harmonize", _HARMONIZE.value)):
        if path and not os.path.isfile(path):
            raise cli.DataError(f"--{name}={path}: no such file")
    if not os.path.isdir(_CHECKPOINT.value):
        raise cli.DataError(f"--checkpoint={_CHECKPOINT.value}: no such directory")
    return formats, meter, channels


def harmonize_clamp(path: str, voices: int):
    """``(Clamp, pickup, beats)`` of --harmonize: every voice of the file, clamped as the highest of
    ``voices`` channels in the file's order, and the file's length in quarter notes.  A file with
    as many voices as ``voices`` or more is bad data (one line naming it)."""
    import dataclasses

    import numpy as np

    from voicecomp import encoding
    from voicecomp import sample as sample_lib

    encoded, pickup = sample_lib.load_score(path)  # a bad file: one line, exit 1
    used = np.flatnonzero((encoded.durations != encoding.EMPTY).any(axis=0)).tolist()
    if len(used) >= voices:
        raise cli.DataError(f"--harmonize={path}: {len(used)} voice(s) to clamp; --voices={voices} must be more "
                            f"(at least one voice is sampled)")
    try:
        clamp = sample_lib.clamp_from_frames(encoded.notes, encoded.durations, used)
    except ValueError as err:  # a voice that does not start with the score
        raise cli.DataError(f"--harmonize={path}: {err}") from None
    clamp = dataclasses.replace(clamp, channels=tuple(range(voices - len(used), voices)))
    beats = float(encoding.DURATION_QUARTERS[encoded.durations].sum(axis=0).max())
    return clamp, pickup, beats


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    formats, (num, den), channels = check_flags()  # before any file is read or JAX is imported
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
    import numpy as np
    from tqdm import tqdm

    from voicecomp import export
    from voicecomp import sample as sample_lib
    from voicecomp import train as train_lib

    # The stored configuration says what kind of model this is, before any weight is read.
    config = cli.read_run_config(_CHECKPOINT.value)
    if config.task != "multivoice" or config.model.architecture == "independent":
        kind = "a single-voice" if config.task != "multivoice" else "an independent-voices (exp. 8)"
        raise cli.UsageError(f"--checkpoint={_CHECKPOINT.value} holds {kind} model"
                             f"{f' ({config.experiment})' if config.experiment else ''}; sample.py samples the "
                             f"coupled multi-voice models (hierarchical, distributed)")

    prompt = clamp = clamp_pickup = None
    voices = _VOICES.value
    if _PROMPT.value:
        encoded, pickup = sample_lib.load_score(_PROMPT.value)  # a bad file: file:line, exit 1
        total = int(encoded.durations.shape[0])
        cli.check(_PROMPT_FRAMES.value <= total,
                  f"--prompt_frames={_PROMPT_FRAMES.value}: {_PROMPT.value} has only {total} frames")
        prompt = sample_lib.prompt_from_frames(encoded.notes, encoded.durations, encoded.flows,
                                               _PROMPT_FRAMES.value, pickup)
        voices = prompt.voices
        if not 1 <= voices <= config.model.num_voices:
            raise cli.DataError(f"--prompt={_PROMPT.value}: its frame {prompt.num_frames} has {voices} voices; "
                                f"the model samples 1..{config.model.num_voices}")
        print(f"prompt: {prompt.num_frames} frames of {_PROMPT.value}, {voices} voices")
    if channels:
        encoded, clamp_pickup = sample_lib.load_score(_CLAMP_SCORE.value)
        start = prompt.num_frames if prompt is not None else 0
        if prompt is not None:
            cli.check(max(channels) < voices, f"--clamp_voices={','.join(_CLAMP_VOICES.value)}: channel "
                      f"{max(channels)} is not one of the prompt's {voices} voices")
        try:
            clamp = sample_lib.clamp_from_frames(encoded.notes, encoded.durations, channels, start_frame=start)
        except ValueError as err:  # a channel without notes to clamp
            raise cli.UsageError(f"--clamp_voices={','.join(_CLAMP_VOICES.value)}: {err} of "
                                 f"{_CLAMP_SCORE.value}") from None
        print(f"clamped voices {channels} from {_CLAMP_SCORE.value}: {clamp.lengths().tolist()} notes")
    length = dict(beats=_BEATS.value) if _BEATS.value is not None else dict(frames=_FRAMES.value)
    if _HARMONIZE.value:
        clamp, clamp_pickup, file_beats = harmonize_clamp(_HARMONIZE.value, voices)
        if _BEATS.value is None and not _FRAMES.present:
            length = dict(beats=file_beats)
        print(f"harmonizing {_HARMONIZE.value}: its {len(clamp.channels)} voice(s) clamped as channel(s) "
              f"{list(clamp.channels)} of {voices}, {clamp.lengths().tolist()} notes, {file_beats:g} beats")

    cli.check_checkpoint_step(_CHECKPOINT.value, _STEP.value)
    config, task, state, step = train_lib.load_checkpoint(_CHECKPOINT.value, _STEP.value)
    model, params = task.model, state.ema_params
    print(f"checkpoint {_CHECKPOINT.value} step {step}: {config.model.architecture} model "
          f"(history {config.model.voice_history})")

    pickup = clamp_pickup if clamp is not None and prompt is None else None
    bar = tqdm(total=length.get("frames"), unit="frame", desc="sampling")

    def progress(done, total):
        if total is not None:
            bar.total = total
        bar.update(done - bar.n)

    start_time = time.perf_counter()
    scores = sample_lib.sample(
        model, params, num_scores=_NUM_SCORES.value, voices=voices, temperature=_TEMPERATURE.value,
        duration_temperature=_DURATION_TEMPERATURE.value, notes_temperature=_NOTES_TEMPERATURE.value,
        top_p=_TOP_P.value, seed=_SEED.value, prompt=prompt, clamp=clamp, clamped_first=_CLAMPED_FIRST.value,
        chunk_frames=_CHUNK.value, progress=progress, pickup=pickup, **length)
    bar.close()
    elapsed = time.perf_counter() - start_time
    print(f"sampled {len(scores)} scores in {elapsed:.1f} s (including compilation)")

    os.makedirs(_OUT_DIR.value, exist_ok=True)
    header_base = {"ENC": "voicecomp.sample", "model": f"{_CHECKPOINT.value} step {step}",
                   "temperature": _TEMPERATURE.value}
    for flag in (_DURATION_TEMPERATURE, _NOTES_TEMPERATURE):
        if flag.value is not None:
            header_base[flag.name] = flag.value
    if _TOP_P.value < 1:
        header_base["top_p"] = _TOP_P.value
    if clamp is not None:
        header_base["clamped_first"] = _CLAMPED_FIRST.value
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
    cli.run(main)
