"""The task interface: what the training loop and evaluation need from a factorisation."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Mapping, Optional

import chex
import jax
import numpy as np

from voicecomp.config import TrainConfig
from voicecomp.vocab import NUM_NOTE_VALUES


def sample_examples(num_examples: int, size: int, seed: int) -> np.ndarray:
    """A fixed seeded sample of example indices (all of them if the split is small)."""
    if size <= 0 or size >= num_examples:
        return np.arange(num_examples)
    return np.sort(np.random.default_rng(seed).choice(num_examples, size, replace=False))


class Task(abc.ABC):
    """What the training loop and evaluation need from a factorisation: its model, batches and losses.

    Subclasses: :class:`voicecomp.tasks.multivoice.MultiVoiceTask`,
    :class:`voicecomp.tasks.streaming.StreamingTask` and
    :class:`voicecomp.tasks.singlevoice.SingleVoiceTask`, each registered in :mod:`voicecomp.tasks`.

    Shape conventions where batches cross into training and evaluation (:func:`check_outputs`
    asserts them when a step is traced): a batch is a dict of numpy arrays with a leading shard
    axis ``S`` (one pack per device) and ``B`` example slots per pack, at least

    * ``weight`` float32 [S, B]: 1 for a real example, 0 for a padding slot;
    * ``duration_target`` int32 [S, B]: the predicted note value (vocabulary index - NUM_SPECIAL);
    * ``notes_target`` int8 [S, B, M]: the predicted onset bits over the pitch window;

    beside the model inputs the task's batcher documents.  :meth:`shard_outputs` maps one shard
    (the arrays without ``S``) to per-example ``(time_ce [B], note_ce [B], duration_logits
    [B, NUM_NOTE_VALUES], note_logits [B, M])``.
    """

    def __init__(self, config: TrainConfig):
        self.config = config

    @abc.abstractmethod
    def init_params(self, rng: jax.Array, pack: dict[str, np.ndarray]) -> Any:
        """Initial parameters from one (shard) pack."""

    @abc.abstractmethod
    def shard_outputs(self, params: Any, batch: dict[str, jax.Array]):
        """Per-example ``(time_ce, note_ce, duration_logits, note_logits)`` of one shard."""

    def shard_step(self, params: Any, batch: dict[str, jax.Array], carry: Any) -> tuple[Any, Any]:
        """:meth:`shard_outputs` and the carry for the shard's next batch (tasks that carry
        recurrent states across batches override this; the others carry None)."""
        return self.shard_outputs(params, batch), carry

    def initial_carry(self, shards: int) -> Any:
        """What :meth:`shard_step` carries into a training run's first batch (leading shard axis)."""
        return None

    def fresh_carry(self, batch: dict[str, np.ndarray]) -> Any:
        """What :meth:`shard_step` carries into the first batch of an evaluation pass, shaped
        for that batch."""
        return None

    def eval_batcher(self, split: str, *, shards: int, batch_size: int, max_frames: int, size: int, seed: int):
        """Batches of a fixed seeded sample of about ``size`` examples of a split (0: all)."""
        examples = sample_examples(self.num_examples(split), size, seed)
        return self.batcher(split, shards=shards, batch_size=batch_size, max_frames=max_frames, examples=examples)

    @abc.abstractmethod
    def batcher(self, split: str, *, shards: int, batch_size: int, max_frames: int, examples=None):
        """Batches of a split: ``.training(seed, position)``, ``.sequential()``, ``.num_examples``, ``.shards``."""

    @abc.abstractmethod
    def num_examples(self, split: str) -> int:
        """Examples in a split."""

    @abc.abstractmethod
    def events_per_beat(self, split: str) -> float:
        """The split's events per beat (bits-per-beat conversion)."""

    @abc.abstractmethod
    def splits(self) -> tuple[str, ...]:
        """The splits this task has loaded."""

    @abc.abstractmethod
    def dummy_pack(self) -> dict[str, np.ndarray]:
        """A small pack of the right shapes, for initialising a model to restore into."""

    def describe(self) -> str:
        return ""


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named starting configuration (``--experiment=NAME``) with what is known about it."""

    config: TrainConfig
    description: str
    # The paper's figures for the row (bits per beat: total, time, notes; the split and
    # convention they were measured in); None for presets beyond the paper.
    paper: Optional[Mapping[str, Any]] = None
    measured: str = ""  # voicecomp's own measurement, for presets beyond the paper


def check_outputs(outputs: tuple[Any, Any, Any, Any], batch: Mapping[str, Any]) -> None:
    """Assert the shape conventions of :class:`Task` on shard-stacked ``outputs`` of ``batch``
    (at trace time inside a jitted step: shapes are static, nothing runs per step)."""
    time_ce, note_ce, duration_logits, note_logits = outputs
    shards, slots = batch["weight"].shape
    chex.assert_shape([time_ce, note_ce, batch["duration_target"]], (shards, slots))
    chex.assert_shape(duration_logits, (shards, slots, NUM_NOTE_VALUES))
    chex.assert_equal_shape([note_logits, batch["notes_target"]])
