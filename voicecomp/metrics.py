"""Cross-entropy in bits per beat, note average precision and duration accuracy (SPEC §2)."""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

LN2 = math.log(2.0)


def bits_per_beat(nats_per_event: float, events_per_beat: float) -> float:
    """``nats_per_event * events_per_beat / ln 2``."""
    return float(nats_per_event) * float(events_per_beat) / LN2


def per_example_nats(
    duration_logits: jax.Array, note_logits: jax.Array, duration_target: jax.Array, notes_target: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Per-example cross-entropies in nats: duration CE [B] and the sum over pitches of
    the onset-bit binary CEs [B].  ``duration_target`` indexes the predicted note
    values (vocabulary index - 3)."""
    log_probs = jax.nn.log_softmax(duration_logits.astype(jnp.float32), axis=-1)
    time_ce = -jnp.take_along_axis(log_probs, duration_target.astype(jnp.int32)[:, None], axis=-1)[:, 0]
    x = note_logits.astype(jnp.float32)
    z = notes_target.astype(jnp.float32)
    # BCE with logits = softplus(x) - x z; softplus keeps it stable and its gradient
    # (sigmoid(x) - z) right at x = 0, where max(x, 0) + log1p(exp(-|x|)) has a kink.
    note_ce = (jax.nn.softplus(x) - x * z).sum(axis=-1)
    return time_ce, note_ce


def nats_per_event(
    duration_logits: jax.Array,
    note_logits: jax.Array,
    duration_target: jax.Array,
    notes_target: jax.Array,
    weights: Optional[jax.Array] = None,
) -> tuple[jax.Array, jax.Array]:
    """Mean (optionally weighted) ``(time_nats, note_nats)`` over the batch."""
    time_ce, note_ce = per_example_nats(duration_logits, note_logits, duration_target, notes_target)
    if weights is None:
        return time_ce.mean(), note_ce.mean()
    weights = weights.astype(jnp.float32)
    total = jnp.maximum(weights.sum(), 1e-12)
    return (time_ce * weights).sum() / total, (note_ce * weights).sum() / total


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision of binary ``labels`` ranked by ``scores`` (all entries pooled).

    Ties are broken as scikit-learn does: precision is evaluated at each distinct
    score threshold.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    positives = int(labels.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    true_pos = np.cumsum(labels)
    # last index of each distinct threshold
    last = np.r_[np.nonzero(np.diff(scores))[0], scores.size - 1]
    tp = true_pos[last]
    precision = tp / (last + 1)
    recall_step = np.diff(np.r_[0, tp]) / positives
    return float((precision * recall_step).sum())


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Totals of one evaluation pass; every report states the events-per-beat factor used."""

    examples: int
    time_nats: float
    note_nats: float
    note_ap: float
    duration_accuracy: float
    train_events_per_beat: float
    split_events_per_beat: float
    # standard error of the mean of the per-example (time + notes) nats: the sampling error
    # of an evaluation on a random sample of a split's examples
    total_nats_stderr: float = float("nan")

    def bits(self, factor: float) -> dict[str, float]:
        time = bits_per_beat(self.time_nats, factor)
        notes = bits_per_beat(self.note_nats, factor)
        return {"total": time + notes, "time": time, "notes": notes}

    def as_dict(self) -> dict[str, object]:
        return {
            "examples": self.examples,
            "nats_per_event": {"time": self.time_nats, "notes": self.note_nats},
            "bits_per_beat_reference": {**self.bits(self.train_events_per_beat), "events_per_beat": self.train_events_per_beat},
            "bits_per_beat_split_rate": {**self.bits(self.split_events_per_beat), "events_per_beat": self.split_events_per_beat},
            "total_nats_stderr": self.total_nats_stderr,
            "note_ap_percent": 100 * self.note_ap,
            "duration_accuracy_percent": 100 * self.duration_accuracy,
        }

    def table(self) -> str:
        ref, own = self.bits(self.train_events_per_beat), self.bits(self.split_events_per_beat)
        rows = [
            f"{'':<34}{'total':>9}{'time':>9}{'notes':>9}",
            f"{'bits/beat, reference (x%.4f)' % self.train_events_per_beat:<34}{ref['total']:>9.3f}{ref['time']:>9.3f}{ref['notes']:>9.3f}",
            f"{'bits/beat, split rate (x%.4f)' % self.split_events_per_beat:<34}{own['total']:>9.3f}{own['time']:>9.3f}{own['notes']:>9.3f}",
            f"{'nats/event':<34}{self.time_nats + self.note_nats:>9.4f}{self.time_nats:>9.4f}{self.note_nats:>9.4f}",
            f"note AP {100 * self.note_ap:.2f}%   duration accuracy {100 * self.duration_accuracy:.2f}%   ({self.examples:,} examples)",
        ]
        return "\n".join(rows)


class EvaluationAccumulator:
    """Streams per-example losses and predictions into an :class:`Evaluation`."""

    def __init__(self, keep_predictions: bool = True):
        self._time: list[np.ndarray] = []
        self._notes: list[np.ndarray] = []
        self._correct: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._keep = keep_predictions

    def add(self, time_ce, note_ce, duration_logits, note_logits, duration_target, notes_target, valid) -> None:
        valid = np.asarray(valid, dtype=bool)
        self._time.append(np.asarray(time_ce, np.float64)[valid])
        self._notes.append(np.asarray(note_ce, np.float64)[valid])
        self._correct.append((np.asarray(duration_logits).argmax(-1) == np.asarray(duration_target))[valid])
        if self._keep:
            self._scores.append(np.asarray(note_logits, np.float32)[valid])
            self._labels.append(np.asarray(notes_target, np.int8)[valid])

    def result(self, train_events_per_beat: float, split_events_per_beat: float) -> Evaluation:
        time = np.concatenate(self._time)
        notes = np.concatenate(self._notes)
        ap = (
            average_precision(np.concatenate(self._scores), np.concatenate(self._labels))
            if self._keep
            else float("nan")
        )
        return Evaluation(
            examples=int(time.size),
            time_nats=float(time.mean()),
            note_nats=float(notes.mean()),
            note_ap=ap,
            duration_accuracy=float(np.concatenate(self._correct).mean()),
            train_events_per_beat=float(train_events_per_beat),
            split_events_per_beat=float(split_events_per_beat),
            total_nats_stderr=float((time + notes).std() / np.sqrt(time.size)) if time.size > 1 else float("nan"),
        )
