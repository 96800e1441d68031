"""A run's work directory: configuration, orbax checkpoints and the metrics log.

A work directory holds ``config.json`` (the run's :class:`TrainConfig`),
``checkpoints/<step>/`` (orbax; written to a temporary folder and renamed, so a
killed run never leaves a half-written step), ``metrics.jsonl`` (one JSON row per
log line or evaluation) and plots.  Restoring walks back from the newest step past
any that cannot be read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from voicecomp import tasks
from voicecomp.config import TrainConfig

CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"
METRICS_FILE = "metrics.jsonl"


# Settings a run may change when it is resumed: they do not change what a step computes.
RESUMABLE_CHANGES = frozenset({"num_steps", "kernscores_dir"})


def settings_that_differ(stored: TrainConfig, config: TrainConfig) -> list[str]:
    """The fields that make ``config`` another run than the ``stored`` one, beyond
    :data:`RESUMABLE_CHANGES`: the single "is this the same run?" rule (``train()``, the
    command-line pre-check and the main job all ask it).

    Settings resolved when a run starts compare as resolved: an unset ``batch_shards`` is the
    device count, an unset ``loss_events_per_beat`` the stored run's measured rate."""
    resolved = config.replace(batch_shards=config.batch_shards or jax.device_count(),
                              loss_events_per_beat=config.loss_events_per_beat or stored.loss_events_per_beat)
    return sorted(f.name for f in dataclasses.fields(resolved)
                  if f.name not in RESUMABLE_CHANGES and getattr(stored, f.name) != getattr(resolved, f.name))


def write_config(workdir: str, config: TrainConfig) -> None:
    os.makedirs(workdir, exist_ok=True)
    tmp = os.path.join(workdir, CONFIG_FILE + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(config.to_json())
    os.replace(tmp, os.path.join(workdir, CONFIG_FILE))


def read_config(workdir: str) -> TrainConfig:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{workdir} holds no {CONFIG_FILE}: not a voicecomp work directory")
    with open(path) as handle:
        return tasks.config_from_json(handle.read())


class Checkpointer:
    """Saves and restores ``(state pytree, metadata dict)`` pairs by step."""

    def __init__(self, workdir: str, keep: int = 3):
        self.directory = os.path.abspath(os.path.join(workdir, CHECKPOINTS))
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, create=True),
        )

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, metadata: dict[str, Any]) -> None:
        self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(metadata)),
            force=True,
        )
        self._manager.wait_until_finished()

    def restore(self, like: Any, step: Optional[int] = None, *, set_aside_damaged: bool = False
                ) -> Optional[tuple[int, Any, dict[str, Any]]]:
        """Newest readable checkpoint (or ``step``) as ``(step, state, metadata)``; None if none.

        An unreadable step is reported and skipped; with ``set_aside_damaged`` (a run about to
        continue, which will write that step again) its folder is renamed
        ``<step>.damaged[.N]`` beside the others, never deleted."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        candidates = [step] if step is not None else sorted(self.steps(), reverse=True)
        for candidate in candidates:
            try:
                restored = self._manager.restore(
                    candidate,
                    args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
                )
            except Exception as err:  # noqa: BLE001 - any unreadable step is skipped
                if step is not None:
                    raise
                logging.warning("checkpoint step %d is unreadable (%s); falling back to an older one", candidate, err)
                where = ""
                if set_aside_damaged:
                    where = f"; set aside as {self.set_aside(candidate)}"
                print(f"warning: checkpoint step {candidate} is unreadable ({type(err).__name__}){where}; "
                      f"trying an older one")
                continue
            return candidate, restored["state"], dict(restored["meta"])
        return None

    def set_aside(self, step: int) -> str:
        """Rename step ``step``'s folder out of the manager's sight; returns the new path."""
        source = os.path.join(self.directory, str(step))
        target = f"{source}.damaged"
        suffix = 1
        while os.path.exists(target):
            target = f"{source}.damaged.{suffix}"
            suffix += 1
        os.rename(source, target)
        self._manager.reload()
        return target

    def close(self) -> None:
        self._manager.close()


def read_metrics(workdir: str) -> list[dict[str, Any]]:
    """The rows of ``workdir``'s metrics log (none if it has none yet)."""
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a line cut by a kill: everything before it is intact
    return rows


def rewrite_metrics(workdir: str, rows: list[dict[str, Any]]) -> None:
    """Replace the metrics log by ``rows`` (atomically: a resumed run drops rows past its checkpoint)."""
    path = os.path.join(workdir, METRICS_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def append_metrics(workdir: str, row: dict[str, Any]) -> None:
    with open(os.path.join(workdir, METRICS_FILE), "a") as handle:
        handle.write(json.dumps(row) + "\n")
