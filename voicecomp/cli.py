"""Command-line plumbing shared by the scripts: bad input ends in one line, not a traceback.

Every script runs its ``main`` through :func:`run`.  A bad flag value, a missing flag or an
inconsistent combination is a usage error (exit status 2); a missing, unreadable or malformed
file (a kern file names its ``file:line``) is bad data (exit status 1).  Either prints one line,
``error: <what>: <why>``, on stderr.  ``--traceback`` shows the Python traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, NoReturn, Optional, Sequence

from absl import app, flags

USAGE_ERROR = 2
DATA_ERROR = 1

_TRACEBACK = flags.DEFINE_bool("traceback", False, "On an error, show the Python traceback instead of one line.")


class DataError(Exception):
    """Input data (a file or directory) that is missing, unreadable or malformed: exit status 1."""


UsageError = app.UsageError  # a flag or a combination of flags that cannot work: exit status 2


def fail(message: str, status: int = USAGE_ERROR) -> NoReturn:
    """Print ``error: message`` (one line) on stderr and exit with ``status``."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.exit(status)


def classify(err: BaseException) -> tuple[int, str]:
    """``(exit status, message)`` of an exception that reached the top of a script."""
    if isinstance(err, app.UsageError):
        return USAGE_ERROR, str(err)
    if isinstance(err, flags.Error):
        return USAGE_ERROR, str(err)
    if isinstance(err, DataError):
        return DATA_ERROR, str(err)
    if isinstance(err, OSError) and err.filename is not None:
        return DATA_ERROR, f"{err.filename}: {err.strerror or err}"
    if isinstance(err, (OSError, json.JSONDecodeError, UnicodeDecodeError)):
        return DATA_ERROR, str(err)
    from voicecomp.data.humdrum import KernParseError

    if isinstance(err, KernParseError):  # already "file:line: reason"
        return DATA_ERROR, str(err)
    # Anything else is unexpected: still one line, with the way to see where it came from.
    return DATA_ERROR, f"{type(err).__name__}: {err} (rerun with --traceback for details)"


def _parse_flags(argv: Sequence[str]) -> list[str]:
    try:
        return flags.FLAGS(list(argv))
    except flags.Error as err:
        fail(str(err), USAGE_ERROR)


def run(main: Callable[[list[str]], Optional[int]]) -> None:
    """``absl.app.run(main)`` with one-line errors and the exit statuses of this module."""

    def guarded(argv: list[str]) -> Optional[int]:
        try:
            return main(argv)
        except (SystemExit, KeyboardInterrupt):
            raise
        except Exception as err:  # noqa: BLE001 - every error becomes one line
            if _TRACEBACK.value:
                raise
            status, message = classify(err)
            fail(message, status)

    app.run(guarded, flags_parser=_parse_flags)


class ArgumentParser(argparse.ArgumentParser):
    """argparse for the scripts that use it: a usage error is one line (exit 2), and
    ``--traceback`` is understood by :func:`run_argparse`."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.add_argument("--traceback", action="store_true", help="on an error, show the Python traceback")

    def error(self, message: str) -> NoReturn:
        fail(message, USAGE_ERROR)


def run_argparse(main: Callable[[], Optional[int]]) -> None:
    """Run an argparse script's ``main()`` with the one-line errors of :func:`run`."""
    try:
        status = main()
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - every error becomes one line
        if "--traceback" in sys.argv[1:]:
            raise
        status, message = classify(err)
        fail(message, status)
    sys.exit(status or 0)


def check(condition: Any, message: str) -> None:
    """A usage error with ``message`` unless ``condition`` holds."""
    if not condition:
        raise app.UsageError(message)


def positive(name: str, value: Optional[float], *, zero: bool = False) -> None:
    """``--name`` must be > 0 (>= 0 with ``zero``); None (unset) passes."""
    if value is None:
        return
    if value < 0 or (value == 0 and not zero):
        raise app.UsageError(f"--{name}={value}: must be {'>= 0' if zero else '> 0'}")


def check_kernscores_dir(path: Optional[str], flag: str = "--kernscores_dir") -> str:
    """The KernScores root to read (``path`` or ``$VOICECOMP_KERNSCORES``), checked before parsing.

    A missing root is a usage error; a root that is not a directory, or holds none of the
    corpus folders of the corpus table, is bad data.  Returns the root."""
    from voicecomp.data import corpus, tables

    root = path or corpus.default_kernscores_dir()
    if not root:
        raise app.UsageError(f"the kernscores corpus needs --kernscores_dir or ${corpus.KERNSCORES_ENV}")
    name = flag if path else f"${corpus.KERNSCORES_ENV}"
    if not os.path.isdir(root):
        raise DataError(f"{name}={root}: no such directory")
    folders = sorted(set(tables.kernscores()["corpora"].values()))
    if not any(os.path.isdir(os.path.join(root, folder)) for folder in folders):
        raise DataError(f"{name}={root}: holds none of the KernScores corpus folders (e.g. {folders[0]}); "
                        f"python -m voicecomp.data download --dest=DIR fetches them")
    return root


def read_run_config(workdir: str, flag: str = "--checkpoint"):
    """The TrainConfig stored in a work directory; a missing or unreadable one is bad data
    named by ``flag``."""
    from voicecomp import checkpoint as checkpoint_lib

    try:
        return checkpoint_lib.read_config(workdir)
    except FileNotFoundError as err:
        raise DataError(f"{flag}={workdir}: {err}") from None
    except (ValueError, TypeError, KeyError) as err:  # not JSON, or not a TrainConfig
        raise DataError(f"{flag}={workdir}: its {checkpoint_lib.CONFIG_FILE} is unreadable ({err})") from None


def check_checkpoint_step(workdir: str, step: Optional[int], flag: str = "--checkpoint") -> None:
    """``workdir`` holds a checkpoint (``step`` if given), before any weight is read."""
    from voicecomp import checkpoint as checkpoint_lib

    steps = checkpoint_lib.Checkpointer(workdir).steps()
    if not steps:
        raise DataError(f"{flag}={workdir}: holds no checkpoint yet")
    check(step is None or step in steps, f"--step={step}: {workdir} has checkpoints at steps {', '.join(map(str, steps))}")


def check_train_config(config, workdir: Optional[str] = None, *, here: bool = True) -> None:
    """Everything about a training run that can be checked before the corpus is parsed or
    anything is written: value ranges, the schedule, the optimiser, and -- for a run on this
    host (``here``) -- its devices, the corpus folder and (with ``workdir``) a run already
    there.  Raises a usage error naming the flag, or a :class:`DataError` for a folder."""
    from voicecomp import checkpoint as checkpoint_lib
    from voicecomp.config import parse_schedule
    from voicecomp.optim import make_optimizer
    from voicecomp.placement import Placement

    for name, zero in (("batch_size", False), ("num_steps", True), ("max_frames", True), ("batch_shards", True),
                       ("log_every", False), ("eval_every", True), ("eval_examples", False),
                       ("checkpoint_every", True), ("keep_checkpoints", False), ("learning_rate", False),
                       ("l2", True), ("momentum", True)):
        positive(name, getattr(config, name), zero=zero)
    check(config.momentum < 1, f"--momentum={config.momentum}: must be < 1")
    check(0 <= config.ema_decay < 1, f"--ema_decay={config.ema_decay}: must be in [0, 1)")
    try:
        points = parse_schedule(config.lr_schedule, config.learning_rate)
    except ValueError as err:
        raise app.UsageError(f"--lr_schedule={config.lr_schedule}: {err}; expected value@step,...") from None
    check(all(rate > 0 for _, rate in points), f"--lr_schedule={config.lr_schedule}: every rate must be > 0")
    check(all(step >= 0 for step, _ in points), f"--lr_schedule={config.lr_schedule}: steps must be >= 0")
    make_optimizer(config)  # the optimiser is an enum flag; this builds nothing slow
    if not here:
        return
    try:
        Placement.local(config.batch_shards)
    except ValueError as err:
        raise app.UsageError(f"--batch_shards={config.batch_shards}: {err}") from None
    if config.corpus == "kernscores":
        check_kernscores_dir(config.kernscores_dir)
    if workdir is None:
        return
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise DataError(f"--workdir={workdir}: exists and is not a directory")
    if os.path.isfile(os.path.join(workdir, checkpoint_lib.CONFIG_FILE)):
        stored = read_run_config(workdir, "--workdir")
        differs = checkpoint_lib.settings_that_differ(stored, config)
        if differs:
            raise app.UsageError(f"--workdir={workdir} holds a run with different settings ({', '.join(differs)}); "
                                 f"rerun it with its own settings or use a new --workdir")
