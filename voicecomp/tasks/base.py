"""The task interface: what the training loop and evaluation need from a factorisation."""

from __future__ import annotations

import abc
from typing import Any

import jax
import numpy as np

from voicecomp.config import TrainConfig


def sample_examples(num_examples: int, size: int, seed: int) -> np.ndarray:
    """A fixed seeded sample of example indices (all of them if the split is small)."""
    if size <= 0 or size >= num_examples:
        return np.arange(num_examples)
    return np.sort(np.random.default_rng(seed).choice(num_examples, size, replace=False))


class Task(abc.ABC):
    """What the training loop needs from a factorisation: its model, batches and losses.

    Subclasses: :class:`voicecomp.tasks.multivoice.MultiVoiceTask`,
    :class:`voicecomp.tasks.streaming.StreamingTask` and the single-voice task in
    :mod:`voicecomp.singlevoice`.  Batchers yield dicts whose arrays carry a
    leading shard axis and a ``weight`` per example slot; ``shard_outputs`` maps
    one shard to per-example ``(time_ce, note_ce, duration_logits, note_logits)``
    and carries ``duration_target`` / ``notes_target``.
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
        """What :meth:`shard_step` carries into a pass's first batch, with a leading shard axis."""
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
