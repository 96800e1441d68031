"""The main job: parse a corpus, train a small coupled model on CPU, evaluate it, compose.

  python experiments/main.py                        # Palestrina masses (ship with music21), ./voicecomp-main
  python experiments/main.py --out_dir=/tmp/demo --num_steps=500 --samples=2

Steps (each prints progress lines):
  1. parse the corpus (``--corpus=palestrina``: music21's Palestrina masses; or ``kernscores``);
  2. train a small hierarchical coupled model (history 5/5, hidden 32/32, batch 64, Adam) -- a few
     minutes on 2 CPU cores; rerunning resumes from / reuses OUT_DIR/model (delete it to retrain);
  3. evaluate the iterate average in bits per beat on the whole test split (both conventions of
     SPEC §2) -> OUT_DIR/evaluation.json;
  4. sample ``--samples`` scores and write each as kern, MIDI, WAV and piano-roll PNG into
     OUT_DIR/samples/.
The output folder is named at the end.
"""

from __future__ import annotations

from voicecomp.runtime import use_all_cpu_cores

use_all_cpu_cores()  # one XLA device per core; must precede the first JAX import

import json
import time
from pathlib import Path

from absl import flags, logging

from voicecomp import cli

_OUT_DIR = flags.DEFINE_string("out_dir", "./voicecomp-main", "Output folder (model, evaluation, samples).")
_CORPUS = flags.DEFINE_enum("corpus", "palestrina", ["palestrina", "kernscores"],
                            "Corpus: palestrina (embedded in music21, no download) or kernscores (--kernscores_dir).")
_KERNSCORES_DIR = flags.DEFINE_string("kernscores_dir", None, "KernScores root for --corpus=kernscores "
                                      "(default: $VOICECOMP_KERNSCORES).")
_STEPS = flags.DEFINE_integer("num_steps", 2000, "Training steps.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Examples per training step.")
_HISTORY = flags.DEFINE_integer("history", 5, "Voice and global history C.")
_HIDDEN = flags.DEFINE_integer("hidden", 32, "Width of the duration and notes networks.")
_LR = flags.DEFINE_float("learning_rate", 0.003, "Adam learning rate (halved for the last quarter of the steps).")
_EVAL_EXAMPLES = flags.DEFINE_integer("eval_limit", 0, "Evaluate a fixed sample of this many test examples (0: all).")
_SAMPLES = flags.DEFINE_integer("samples", 3, "Scores to compose.")
_VOICES = flags.DEFINE_integer("voices", 4, "Voices per composed score (1..6).")
_BEATS = flags.DEFINE_float("beats", 48, "Length of each composed score in quarter notes.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Sampling temperature (0: greedy).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of training and sampling.")
_FORMATS = flags.DEFINE_list("formats", ["kern", "mid", "wav", "png"], "Files written per composed score.")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def train_config():
    """The main job's preset (``main``, :func:`voicecomp.tasks.multivoice.main_job_config`) at these flags."""
    from voicecomp.tasks.multivoice import main_job_config

    return main_job_config(corpus=_CORPUS.value, kernscores_dir=_KERNSCORES_DIR.value, num_steps=_STEPS.value,
                           batch_size=_BATCH.value, history=_HISTORY.value, hidden=_HIDDEN.value,
                           learning_rate=_LR.value, seed=_SEED.value)


def parse_corpus(config) -> None:
    from voicecomp.data.corpus import load_corpus

    start = time.perf_counter()
    corpus = load_corpus(config.corpus, kernscores_dir=config.kernscores_dir, progress=True)
    split = {s: len(corpus.split_ids(s)) for s in ("train", "test")}
    log(f"parsed {config.corpus}: {len(corpus.scores):,} scores (train {split['train']}, test {split['test']}) "
        f"in {time.perf_counter() - start:.1f} s")


def check_flags() -> None:
    """Every flag, before the corpus is parsed or anything is trained."""
    from voicecomp.data.humdrum import MAX_VOICES
    from voicecomp.export import EXPORT_FORMATS

    for name, value, zero in (("num_steps", _STEPS.value, False), ("batch_size", _BATCH.value, False),
                              ("history", _HISTORY.value, False), ("hidden", _HIDDEN.value, False),
                              ("learning_rate", _LR.value, False), ("eval_limit", _EVAL_EXAMPLES.value, True),
                              ("samples", _SAMPLES.value, True), ("beats", _BEATS.value, False),
                              ("temperature", _TEMPERATURE.value, True)):
        cli.positive(name, value, zero=zero)
    cli.check(1 <= _VOICES.value <= MAX_VOICES, f"--voices={_VOICES.value}: must be 1..{MAX_VOICES}")
    formats = [f.strip() for f in _FORMATS.value if f.strip()]
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    cli.check(formats and not unknown, f"--formats={','.join(_FORMATS.value)}: "
              f"{'unknown ' + ', '.join(unknown) if unknown else 'give at least one'}; choose from "
              f"{', '.join(EXPORT_FORMATS)}")
    out_dir = Path(_OUT_DIR.value)
    if out_dir.exists() and not out_dir.is_dir():
        raise cli.DataError(f"--out_dir={out_dir}: exists and is not a directory")
    if _CORPUS.value == "kernscores":
        cli.check_kernscores_dir(_KERNSCORES_DIR.value)


def check_stored_model(config, workdir: Path) -> None:
    """A model already in ``workdir`` must have been trained with these settings (it is reused)."""
    from voicecomp import checkpoint as checkpoint_lib

    if (workdir / checkpoint_lib.CONFIG_FILE).is_file():
        stored = checkpoint_lib.read_config(str(workdir))
        differs = checkpoint_lib.settings_that_differ(stored, config)
        if differs:
            raise cli.UsageError(f"--out_dir={workdir.parent} holds a model trained with other settings "
                                 f"({', '.join(differs)}); delete {workdir} or choose another --out_dir")


def train_model(config, workdir: Path) -> None:
    from voicecomp import train as train_lib

    start = time.perf_counter()
    log(f"training: hierarchical {config.model.voice_history}/{config.model.global_history}, hidden "
        f"{config.model.duration_hidden}/{config.model.notes_hidden}, batch {config.batch_size}, "
        f"{config.num_steps} steps (Adam {config.learning_rate}) -> {workdir}")
    train_lib.train(config, str(workdir))
    log(f"training finished in {time.perf_counter() - start:.0f} s")


def evaluate_model(workdir: Path) -> dict:
    from voicecomp import evaluation
    from voicecomp import train as train_lib
    from voicecomp.tasks import make_task

    start = time.perf_counter()
    config, _, state, step = train_lib.load_checkpoint(str(workdir))
    split = "test" if config.corpus == "palestrina" else "test_nonpiano"  # the paper's split on KernScores
    task = make_task(config, splits=(split,), progress=False)
    examples = task.num_examples(split)
    log(f"evaluating step {step} on the {split} split: {min(_EVAL_EXAMPLES.value or examples, examples):,} examples")
    result = evaluation.evaluate(task, state.ema_params, split, size=_EVAL_EXAMPLES.value, progress=True)
    seconds = time.perf_counter() - start
    print(result.table(), flush=True)
    figures = {"split": split, "step": step, "seconds": seconds, **result.as_dict()}
    log(f"evaluation took {seconds:.0f} s")
    return figures


# --------------------------------------------------------------------------------------------------
# Sampling: the one place that talks to voicecomp.sample.


def compose(workdir: Path, num_scores: int, voices: int, beats: float, temperature: float, seed: int) -> list:
    """``num_scores`` composed scores as :class:`voicecomp.export.Voices`."""
    from voicecomp import sample as sample_lib
    from voicecomp import train as train_lib

    config, task, state, _ = train_lib.load_checkpoint(str(workdir))

    def progress(done: int, total: int) -> None:
        log(f"  sampling: {done} frames")

    scores = sample_lib.sample(task.model, state.ema_params, num_scores=num_scores, voices=voices, beats=beats,
                               temperature=temperature, seed=seed, progress=progress)
    return [score.voices() for score in scores]


def write_samples(voices_list: list, out_dir: Path, formats: list[str]) -> list[dict]:
    from voicecomp.export import export_score

    written = []
    for i, voices in enumerate(voices_list):
        stem = f"sample_{i + 1:02d}"
        paths = export_score(voices, out_dir, stem, formats=formats,
                             header={"COM": "voicecomp (coupled recurrent model)", "OTL": stem})
        written.append(paths)
        log(f"  {stem}: {voices.num_notes()} notes in {sum(1 for v in voices.voices if v)} voices -> "
            + ", ".join(Path(p).name for p in paths.values()))
    return written


def main(argv):
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    check_flags()
    job_start = time.perf_counter()
    out_dir = Path(_OUT_DIR.value).resolve()
    workdir = out_dir / "model"
    config = train_config()
    check_stored_model(config, workdir)
    out_dir.mkdir(parents=True, exist_ok=True)

    log(f"step 1/4: parse the {config.corpus} corpus")
    parse_corpus(config)
    log("step 2/4: train")
    train_model(config, workdir)
    log("step 3/4: evaluate in bits per beat")
    figures = evaluate_model(workdir)
    (out_dir / "evaluation.json").write_text(json.dumps(figures, indent=1, sort_keys=True))
    ref = figures["bits_per_beat_reference"]
    log(f"step 4/4: compose {_SAMPLES.value} score(s) of {_BEATS.value:g} beats, {_VOICES.value} voices")
    start = time.perf_counter()
    voices_list = compose(workdir, _SAMPLES.value, _VOICES.value, _BEATS.value, _TEMPERATURE.value, _SEED.value)
    written = write_samples(voices_list, out_dir / "samples", _FORMATS.value)
    log(f"composition took {time.perf_counter() - start:.0f} s")

    total = time.perf_counter() - job_start
    summary = {"corpus": config.corpus, "num_steps": config.num_steps, "test_bits_per_beat": ref,
               "test_bits_per_beat_split_rate": figures["bits_per_beat_split_rate"], "samples": written,
               "seconds": total}
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    print()
    print(f"test split ({figures['examples']:,} examples): {ref['total']:.3f} bits/beat = {ref['time']:.3f} time "
          f"+ {ref['notes']:.3f} notes (training split's rate; split rate: "
          f"{figures['bits_per_beat_split_rate']['total']:.3f})")
    print(f"composed {len(written)} score(s) in {out_dir / 'samples'}")
    print(f"main job finished in {total / 60:.1f} min; output folder: {out_dir}")
    return 0


if __name__ == "__main__":
    cli.run(main)
