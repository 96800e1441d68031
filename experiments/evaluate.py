r"""Evaluate a checkpoint on a whole split, in bits per beat (both conventions of SPEC §2).

  python experiments/evaluate.py --checkpoint=runs/exp6 --split=test_nonpiano \
      --kernscores_dir=../shared/kernscores [--json]

Prints total/time/notes bits per beat at the training split's rate (the paper's
tables) and at the split's own rate, note AP and duration accuracy.  With --json
the last line of output is one JSON object with the same figures.
"""

from __future__ import annotations

from voicecomp.runtime import use_all_cpu_cores

use_all_cpu_cores()  # one XLA device per core; must precede the first JAX import

import dataclasses
import json
import os
import time

from absl import flags, logging

from voicecomp import cli

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Work directory of a run (or an imported checkpoint).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: newest readable).")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "test", "test_nonpiano", "valid"],
                           "Split to evaluate (valid: the held-out scores of a --holdout_validation run).")
_KERNSCORES_DIR = flags.DEFINE_string("kernscores_dir", None, "KernScores root (default: $VOICECOMP_KERNSCORES).")
_BATCH = flags.DEFINE_integer("batch_size", None, "Examples per evaluation batch (default: "
                              "voicecomp.evaluation.EVAL_BATCH_SIZE, small batches that stay in cache).")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", None, "Distinct frames per batch, their examples share history "
                                   "(default: voicecomp.evaluation.EVAL_MAX_FRAMES).")
_LIMIT = flags.DEFINE_integer("limit", 0, "Evaluate a fixed seeded sample of this many examples (0: all).")
_JSON = flags.DEFINE_bool("json", False, "End the output with one JSON line of the figures.")
_HISTORY = flags.DEFINE_enum("history", None, ["window", "full"], "Evaluate the checkpoint's cells with this history "
                             "instead of the run's own (full: states carried from each score's start, SPEC §3.1; the "
                             "same parameters, so a windowed run or the published weights can be evaluated so).")
_OUT = flags.DEFINE_string("out", None, "Also write the figures as JSON to this file.")
flags.mark_flag_as_required("checkpoint")


def check_flags() -> None:
    """Flags and paths, before JAX is imported or anything is read."""
    cli.positive("batch_size", _BATCH.value)
    cli.positive("max_frames", _MAX_FRAMES.value)
    cli.positive("limit", _LIMIT.value, zero=True)
    cli.positive("step", _STEP.value, zero=True)
    if not os.path.isdir(_CHECKPOINT.value):
        raise cli.DataError(f"--checkpoint={_CHECKPOINT.value}: no such directory")


def load(checkpoint: str, step, kernscores_dir):
    """``train.load_checkpoint`` with its failures (and a corpus it cannot read) as one-line errors."""
    from voicecomp import train as train_lib

    config = cli.read_run_config(checkpoint)
    cli.check_checkpoint_step(checkpoint, step)
    if config.corpus == "kernscores":  # the run's stored folder may be gone: say so before loading
        cli.check_kernscores_dir(kernscores_dir or config.kernscores_dir,
                                 flag="--kernscores_dir" if kernscores_dir else "the run's --kernscores_dir")
    return train_lib.load_checkpoint(checkpoint, step)


def main(argv):
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    check_flags()
    from voicecomp import evaluation
    from voicecomp.tasks import make_task

    config, _, state, step = load(_CHECKPOINT.value, _STEP.value, _KERNSCORES_DIR.value)
    if _KERNSCORES_DIR.value:
        config = config.replace(kernscores_dir=_KERNSCORES_DIR.value)
    if _HISTORY.value:
        try:
            config = config.replace(model=dataclasses.replace(config.model, history=_HISTORY.value))
        except (TypeError, ValueError) as err:  # a single-voice run, or cells with no full-history form
            raise cli.UsageError(f"--history={_HISTORY.value}: {err}") from None
    task = make_task(config, splits=(_SPLIT.value,))
    start = time.perf_counter()
    # --limit: a fixed seeded sample of examples (windowed) or of whole scores holding about as many
    result = evaluation.evaluate(task, state.ema_params, _SPLIT.value, size=_LIMIT.value,
                                 batch_size=_BATCH.value or evaluation.EVAL_BATCH_SIZE,
                                 max_frames=_MAX_FRAMES.value or evaluation.EVAL_MAX_FRAMES, progress=True)
    seconds = time.perf_counter() - start
    print(f"checkpoint {_CHECKPOINT.value} (step {step}), split {_SPLIT.value}: {result.examples:,} examples "
          f"in {seconds:.1f} s ({result.examples / seconds:,.0f} examples/s)")
    print(result.table())
    figures = {"checkpoint": _CHECKPOINT.value, "step": step, "split": _SPLIT.value, "history": config.model.history
               if hasattr(config.model, "history") else "window", "seconds": seconds, **result.as_dict()}
    if _OUT.value:
        with open(_OUT.value, "w") as handle:
            json.dump(figures, handle, indent=1, sort_keys=True)
    if _JSON.value:
        print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    cli.run(main)
