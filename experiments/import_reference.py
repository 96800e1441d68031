r"""Turn the published reference weights into a voicecomp checkpoint.

  python experiments/import_reference.py --weights=../shared/reference/multipart6_weights.npz \
      --workdir=runs/published6

The result loads like any run of experiments/train.py (evaluate, sample, resume
training).  Names and shapes are mapped explicitly; any missing, extra or
mis-shaped array, or a vocabulary / pitch window that differs from voicecomp's,
stops the import with a message naming it.
"""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction

import numpy as np
from absl import flags, logging

from voicecomp import checkpoint as checkpoint_lib
from voicecomp import cli
from voicecomp import encoding, weights
from voicecomp import train as train_lib
from voicecomp.config import TrainConfig
from voicecomp.tasks import make_task

_WEIGHTS = flags.DEFINE_string("weights", None, "Reference .npz (e.g. multipart6_weights.npz).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output work directory (must not hold a run).")
_EVENTS_PER_BEAT = flags.DEFINE_float(
    "train_events_per_beat", 4.7575, "Training-split rate of the reference convention (KernScores train: 4.7575)."
)
flags.mark_flags_as_required(["weights", "workdir"])


def check_metadata(arrays) -> None:
    """The file's vocabulary and window must be voicecomp's canonical ones."""
    if "duration_numerator" in arrays:
        values = [Fraction(int(n), int(d)) for n, d in zip(arrays["duration_numerator"], arrays["duration_denominator"])]
        expected = [Fraction(0)] * encoding.NUM_SPECIAL + list(encoding.NOTE_VALUES)
        if values != expected:
            raise ValueError("the file's duration axis is not voicecomp's canonical 55-symbol vocabulary order")
    for key, expected in (("pitch_offset", encoding.PITCH_OFFSET), ("pitch_range", encoding.PITCH_RANGE)):
        if key in arrays and int(arrays[key]) != expected:
            raise ValueError(f"the file's {key} is {int(arrays[key])}, voicecomp uses {expected}")


def import_reference(weights_path: str, workdir: str, train_events_per_beat: float) -> TrainConfig:
    with np.load(weights_path) as data:
        arrays = {k: data[k] for k in data.files}
    check_metadata(arrays)
    history = int(arrays.get("history", 10))
    config = TrainConfig(loss_events_per_beat=train_events_per_beat, experiment="multi_6 (published weights)")
    config = config.replace(model=dataclasses.replace(config.model, voice_history=history, global_history=history))
    params = weights.params_from_reference(arrays, config.model)["params"]
    if os.path.isdir(os.path.join(workdir, checkpoint_lib.CHECKPOINTS)):
        raise ValueError(f"{workdir} already holds checkpoints")
    task = make_task(config)
    state = train_lib.init_state(config, task, task.dummy_pack())
    state = state.replace(params=params, ema_params=params)
    checkpoint_lib.write_config(workdir, config)
    checkpointer = checkpoint_lib.Checkpointer(workdir)
    checkpointer.save(0, state, {"position": {"epoch": 0, "batch": 0}, "step": 0, "imported_from": os.path.abspath(weights_path)})
    checkpointer.close()
    return config


def main(argv):
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    cli.positive("train_events_per_beat", _EVENTS_PER_BEAT.value)
    if not os.path.isfile(_WEIGHTS.value):
        raise cli.DataError(f"--weights={_WEIGHTS.value}: no such file")
    if os.path.isdir(os.path.join(_WORKDIR.value, checkpoint_lib.CHECKPOINTS)):
        raise cli.UsageError(f"--workdir={_WORKDIR.value} already holds checkpoints; choose a new one")
    try:
        config = import_reference(_WEIGHTS.value, _WORKDIR.value, _EVENTS_PER_BEAT.value)
    except (ValueError, KeyError) as err:  # names the array or the metadata that does not fit
        raise cli.DataError(f"--weights={_WEIGHTS.value}: {err}") from None
    print(f"imported {_WEIGHTS.value} as a {config.model.architecture} model (history {config.model.voice_history}) "
          f"into {_WORKDIR.value}")


if __name__ == "__main__":
    cli.run(main)
