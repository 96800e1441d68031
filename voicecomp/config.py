"""One frozen configuration object for a training run, built from flags.

``TrainConfig`` holds the model architecture (:class:`MultiVoiceConfig`), the data,
the optimiser recipe (SPEC §5) and the run's bookkeeping.  It round-trips
through JSON so every checkpoint carries the exact configuration it was trained
with, and evaluation/sampling rebuild the model from it (the task registry,
:mod:`voicecomp.tasks`, knows each task's model configuration class).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

import jax.numpy as jnp

from voicecomp.models.multivoice import MultiVoiceConfig

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (defaults: the published exp. 6 recipe)."""

    task: str = "multivoice"  # a name of the task registry (voicecomp.tasks.TASKS): multivoice | singlevoice
    model: Any = MultiVoiceConfig()
    # data
    corpus: str = "kernscores"
    kernscores_dir: Optional[str] = None
    humdrum_policy: str = ""  # strict | lenient; empty: strict for kernscores/palestrina, lenient for dir:PATH
    corpora: tuple[str, ...] = ()  # restrict training scores to these corpus names (empty: all)
    # hold a fixed 5% of the training scores out of training; their non-piano ones are the
    # ``valid`` split, evaluated beside the train/test samples (choose recipes on it, not on test)
    holdout_validation: bool = False
    # optimisation (SPEC §5)
    optimizer: str = "sgd"  # sgd | adam
    learning_rate: float = 0.003
    lr_schedule: str = ""  # "value@step,value@step,...": piecewise constant; empty: constant
    momentum: float = 0.95
    fresh_momentum: bool = False  # restart the momentum trace at every lr_schedule stage (the reference's recipes)
    l2: float = 1e-4  # added to the gradient, as the reference's weight_decay
    ema_decay: float = 0.999
    batch_size: int = 100
    max_frames: int = 0  # distinct frames per batch (0: half the batch size; frames share history)
    batch_shards: int = 0  # packs per batch, spread over devices (0: the device count)
    num_steps: int = 10_000
    seed: int = 0
    # full-history models (SPEC §3.1): a batch is ``lanes`` streams of ``chunk_frames``
    # consecutive frames each; states are carried across chunks (truncated BPTT).
    lanes: int = 16
    chunk_frames: int = 64
    init_from: str = ""  # warm start: a checkpoint directory (or reference weights .npz) whose parameters start the run
    # The loss is the reference's: bits per beat at the training split's rate
    # (events_per_beat / ln 2 times nats), which sets the effective learning rate.
    loss_events_per_beat: float = 0.0  # 0: measured from the training split
    # bookkeeping
    log_every: int = 100
    eval_every: int = 5000
    eval_examples: int = 50_000
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    experiment: str = ""

    def to_json(self) -> str:
        """JSON of every field (read back with :func:`voicecomp.tasks.config_from_json`)."""
        data = dataclasses.asdict(self)
        if "compute_dtype" in data["model"]:
            data["model"]["compute_dtype"] = jnp.dtype(self.model.compute_dtype).name
        return json.dumps(data, indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], model_class: type) -> "TrainConfig":
        """The configuration of ``data`` (``to_json``'s fields), its model built by ``model_class``
        (the task's, from the registry: :func:`voicecomp.tasks.config_from_dict`)."""
        data = dict(data)
        model = dict(data.pop("model", {}))
        if "compute_dtype" in model:
            model["compute_dtype"] = _DTYPES[str(model["compute_dtype"])]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown configuration keys {sorted(unknown)}")
        if "corpora" in data:
            data["corpora"] = tuple(data["corpora"])
        return cls(model=model_class(**model), **data)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def parse_schedule(text: str, default: float) -> list[tuple[int, float]]:
    """``"0.003@0,0.001@200000"`` -> [(0, 0.003), (200000, 0.001)] sorted by step."""
    if not text:
        return [(0, default)]
    points = []
    for item in text.split(","):
        value, _, step = item.strip().partition("@")
        if not step:
            raise ValueError(f"schedule item {item!r} is not value@step")
        points.append((int(step), float(value)))
    points.sort()
    if points[0][0] != 0:
        points.insert(0, (0, default))
    return points


def dtype_name(name: str):
    if name not in _DTYPES:
        raise ValueError(f"compute dtype must be one of {sorted(_DTYPES)}, got {name!r}")
    return _DTYPES[name]
