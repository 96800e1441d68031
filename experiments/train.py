"""Train a coupled multi-voice model (resumes automatically from --workdir).

  python experiments/train.py --workdir=runs/exp6 --kernscores_dir=../shared/kernscores
  python experiments/train.py --workdir=runs/small --corpus=palestrina --voice_history=3 --notes_hidden=32
  python experiments/train.py --experiment=multi_6 --workdir=runs/exp6 --num_steps=100000  # preset + overrides
  python experiments/train.py --list_experiments
  python experiments/train.py --experiment=multi_3 --print_config  # the resolved configuration, nothing run

Progress lines show step, examples/s, losses and ETA; metrics go to
WORKDIR/metrics.jsonl and WORKDIR/learning_curves.png; Ctrl-C (or --max_minutes running
out) saves a checkpoint.
"""

from __future__ import annotations

from voicecomp.runtime import use_all_cpu_cores

use_all_cpu_cores()  # one XLA device per core; must precede the first JAX import

from absl import flags, logging

from voicecomp import cli
from voicecomp import flags as vc_flags

vc_flags.define_train_flags()
flags.adopt_module_key_flags(vc_flags)
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for multi-host runs.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (hosts) in a multi-host run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in a multi-host run.")
_MAX_MINUTES = flags.DEFINE_float("max_minutes", 0.0, "Wall-clock limit of this invocation (0: none): checkpoint and "
                                  "exit when reached; rerun to continue. Single-host runs only.")
_MAX_TRAIN_MINUTES = flags.DEFINE_float("max_train_minutes", 0.0, "Budget of the run's training wall time (all "
                                        "invocations, evaluations excluded; 0: none): checkpoint, evaluate and stop "
                                        "when it is spent; rerunning resumes towards it. Single-host runs only.")
_PRINT_CONFIG = flags.DEFINE_bool("print_config", False, "Print the resolved configuration (preset and flags) as "
                                  "JSON and its learning-rate stages, then exit; needs no --workdir.")


def resolve_config():
    """The TrainConfig of the flags (``--experiment`` preset + explicit flags); usage errors named."""
    try:
        return vc_flags.config_from_flags()
    except KeyError as err:  # an unknown --experiment
        raise cli.UsageError(f"--experiment={flags.FLAGS.experiment}: {err.args[0]}") from None
    except ValueError as err:  # a flag that does not fit the preset's model, or an invalid model
        raise cli.UsageError(str(err)) from None


def stage_summary(config) -> str:
    """``learning-rate stages: 0.0001 from step 0, 3e-05 from step 505,792, ...``."""
    from voicecomp.config import parse_schedule

    stages = ", ".join(f"{rate:g} from step {step:,}" for step, rate in
                       parse_schedule(config.lr_schedule, config.learning_rate))
    momentum = "momentum restarted at each stage" if config.fresh_momentum else "momentum carried across stages"
    return f"learning-rate stages: {stages}; {momentum}; {config.num_steps:,} steps"


def main(argv):
    logging.set_verbosity(logging.WARNING)  # orbax logs every file operation at INFO
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    if flags.FLAGS.list_experiments:
        from voicecomp import presets

        print(presets.list_experiments())
        return 0
    config = resolve_config()
    if _PRINT_CONFIG.value:
        print(config.to_json())
        print(stage_summary(config))
        return 0
    if not flags.FLAGS.workdir:
        raise cli.UsageError("--workdir is required (or --list_experiments / --print_config)")
    if _COORDINATOR.value and (_MAX_MINUTES.value or _MAX_TRAIN_MINUTES.value):
        raise cli.UsageError("--max_minutes / --max_train_minutes would stop hosts at different steps; not available "
                             "with multi-host runs")
    if _COORDINATOR.value:
        import jax

        # Every host runs this same command; each reads its own shards of the data order.
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    cli.positive("max_minutes", _MAX_MINUTES.value, zero=True)
    cli.positive("max_train_minutes", _MAX_TRAIN_MINUTES.value, zero=True)
    cli.check_train_config(config, flags.FLAGS.workdir)
    from voicecomp import train as train_lib
    from voicecomp.data.humdrum import KernParseError

    try:
        train_lib.train(config, flags.FLAGS.workdir, max_seconds=60 * _MAX_MINUTES.value,
                        max_train_seconds=60 * _MAX_TRAIN_MINUTES.value)
    except train_lib.NonFiniteLoss as err:
        print(f"error: {err}")
        return 3
    except ValueError as err:  # settings train() rejects (a kern file's error is bad data, not usage)
        if isinstance(err, KernParseError):
            raise
        raise cli.UsageError(str(err)) from None
    print(f"done: checkpoints and metrics in {flags.FLAGS.workdir}")
    return 0


if __name__ == "__main__":
    cli.run(main)
