"""The task registry: a task name (``TrainConfig.task``, stored in every ``config.json``) -> its model
configuration class, its task class and its presets.

Each factorisation is one module holding its batcher, its task and its presets:
:mod:`voicecomp.tasks.multivoice` (windowed coupled models, Table 4), :mod:`voicecomp.tasks.streaming`
(the same cells with full history, selected by the model's ``history="full"``) and
:mod:`voicecomp.tasks.singlevoice` (Table 6).  Everything that turns a configuration into code
-- training, evaluation, checkpoint loading, ``--experiment`` and ``--list_experiments`` -- goes
through :func:`make_task`, :func:`config_from_dict` and :data:`TASKS`; adding a family is one
module plus one entry here.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping, Optional

from voicecomp.config import TrainConfig
from voicecomp.models.multivoice import MultiVoiceConfig
from voicecomp.models.singlevoice import SingleVoiceConfig
from voicecomp.tasks import multivoice, singlevoice, streaming
from voicecomp.tasks.base import Preset, Task


@dataclasses.dataclass(frozen=True)
class TaskEntry:
    """One factorisation: how to read its configuration, which task trains it, its presets."""

    model_config: type  # the dataclass of ``TrainConfig.model`` (``config.json``'s "model")
    task: type[Task]
    presets: Mapping[str, Preset]
    # the task of a model configured with ``history="full"`` (carried states, SPEC §3.1)
    full_history_task: Optional[type[Task]] = None

    def task_class(self, model: Any) -> type[Task]:
        if self.full_history_task is not None and model.history == "full":
            return self.full_history_task
        return self.task


TASKS: dict[str, TaskEntry] = {
    "multivoice": TaskEntry(model_config=MultiVoiceConfig, task=multivoice.MultiVoiceTask,
                            full_history_task=streaming.StreamingTask,
                            presets={**multivoice.PRESETS, **streaming.PRESETS}),
    "singlevoice": TaskEntry(model_config=SingleVoiceConfig, task=singlevoice.SingleVoiceTask,
                             presets=singlevoice.PRESETS),
}


def entry(name: str) -> TaskEntry:
    """The registry entry of task ``name``; a ValueError naming the known ones otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None


def make_task(config: TrainConfig, **kwargs: Any) -> Task:
    """The task of a configuration (``config.task``, and for multi-voice models ``model.history``);
    ``kwargs`` go to its constructor (``data=``, ``splits=``, ``progress=``)."""
    return entry(config.task).task_class(config.model)(config, **kwargs)


def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """A :class:`TrainConfig` from its dict form (as ``config.json`` holds it), the model read
    with its task's configuration class."""
    return TrainConfig.from_dict(data, entry(data.get("task", "multivoice")).model_config)


def config_from_json(text: str) -> TrainConfig:
    """:func:`config_from_dict` of a JSON text (``TrainConfig.to_json``'s output)."""
    return config_from_dict(json.loads(text))


def all_presets() -> dict[str, Preset]:
    """Every task's presets by name (names are unique across tasks)."""
    merged: dict[str, Preset] = {}
    for name, task_entry in TASKS.items():
        clash = sorted(set(merged) & set(task_entry.presets))
        if clash:
            raise ValueError(f"preset names {clash} of task {name!r} are already taken")
        merged.update(task_entry.presets)
    return merged
