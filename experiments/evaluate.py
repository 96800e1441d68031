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

import json
import time

from absl import app, flags, logging

from voicecomp import train as train_lib

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Work directory of a run (or an imported checkpoint).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: newest readable).")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "test", "test_nonpiano"], "Split to evaluate.")
_KERNSCORES_DIR = flags.DEFINE_string("kernscores_dir", None, "KernScores root (default: $VOICECOMP_KERNSCORES).")
# Small batches keep each recurrent step's working set in cache: on a 2-core CPU 96/36
# evaluated ~35% faster than 256/96.
_BATCH = flags.DEFINE_integer("batch_size", 96, "Examples per evaluation batch.")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", 36, "Distinct frames per batch (their examples share history).")
_LIMIT = flags.DEFINE_integer("limit", 0, "Evaluate a fixed seeded sample of this many examples (0: all).")
_JSON = flags.DEFINE_bool("json", False, "End the output with one JSON line of the figures.")
flags.mark_flag_as_required("checkpoint")


def main(argv):
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    config, _, state, step = train_lib.load_checkpoint(_CHECKPOINT.value, _STEP.value)
    if _KERNSCORES_DIR.value:
        config = config.replace(kernscores_dir=_KERNSCORES_DIR.value)
    task = train_lib.make_task(config, splits=(_SPLIT.value,))
    examples = None
    if _LIMIT.value:
        examples = train_lib.sample_examples(task.num_examples(_SPLIT.value), _LIMIT.value, seed=999)
    placement = train_lib.Placement.local()
    batcher = task.batcher(_SPLIT.value, shards=placement.shards, batch_size=_BATCH.value,
                           max_frames=_MAX_FRAMES.value, examples=examples)
    start = time.perf_counter()
    result = train_lib.evaluate(
        train_lib.make_eval_step(task), state.ema_params, batcher,
        train_events_per_beat=config.loss_events_per_beat or task.events_per_beat("train"),
        split_events_per_beat=task.events_per_beat(_SPLIT.value), progress=True, placement=placement,
    )
    seconds = time.perf_counter() - start
    print(f"checkpoint {_CHECKPOINT.value} (step {step}), split {_SPLIT.value}: {result.examples:,} examples "
          f"in {seconds:.1f} s ({result.examples / seconds:,.0f} examples/s)")
    print(result.table())
    if _JSON.value:
        print(json.dumps({"checkpoint": _CHECKPOINT.value, "step": step, "split": _SPLIT.value,
                          "seconds": seconds, **result.as_dict()}, sort_keys=True))
    return 0


if __name__ == "__main__":
    app.run(main)
