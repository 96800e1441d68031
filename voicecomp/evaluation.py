"""Evaluation in bits per beat (SPEC §2): every example of a split, or a fixed seeded sample,
through a task's model.

:func:`evaluate` is the one entry point (a task, parameters from a checkpoint or a live training
state, a split and a sample size -> :class:`voicecomp.metrics.Evaluation`); ``experiments/
evaluate.py``, ``experiments/main.py``, sweeps (through ``evaluate.py``), the reproduction scripts
and the periodic evaluation of :func:`voicecomp.train.train` all call it.  The result is exact
whatever the batching: batches only decide which examples share a model call.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional

import jax
import numpy as np

from voicecomp import metrics
from voicecomp.placement import Placement
from voicecomp.tasks.base import Task, check_outputs
from voicecomp.vocab import MAX_VOICES

# Evaluation batches: 96 example slots over at most 36 distinct frames.  Small batches keep each
# recurrent step's working set in cache: on a 2-core CPU 96/36 evaluated the whole non-piano
# test split ~35% faster than 256/96.  (Full-history tasks batch whole streams and ignore both.)
EVAL_BATCH_SIZE = 96
EVAL_MAX_FRAMES = 36
# The seed of a sampled evaluation (``size`` > 0) unless the caller fixes its own.
SAMPLE_SEED = 999

EvalStep = Callable[[Any, dict[str, jax.Array], Any], tuple[Any, Any]]


def make_eval_step(task: Task) -> EvalStep:
    """Jitted ``eval_step(params, batch, carry)`` -> (per-example losses and logits, [shards,
    examples, ...]; the carry for the next batch of a full-history pass, else None).  Build it
    once per task and pass it to every :func:`evaluate` call: each new one compiles again."""

    @jax.jit
    def eval_step(params, batch, carry):
        outputs, carry = jax.vmap(lambda b, c: task.shard_step(params, b, c))(batch, carry)
        check_outputs(outputs, batch)
        return outputs, carry

    return eval_step


def evaluate(
    task: Task, params: Any, split: str, *, size: int = 0, seed: int = SAMPLE_SEED,
    placement: Optional[Placement] = None, eval_step: Optional[EvalStep] = None,
    batch_size: int = EVAL_BATCH_SIZE, max_frames: int = EVAL_MAX_FRAMES,
    keep_predictions: bool = True, progress: bool = False,
) -> metrics.Evaluation:
    """Bits per beat of ``params`` on ``split``: every example, or a fixed seeded sample of about
    ``size`` of them (``seed``; full-history tasks sample whole scores).

    The reference convention converts at the run's loss rate (``task.config.loss_events_per_beat``;
    unset: the training split's events per beat), the split rate at ``split``'s own.
    ``batch_size`` / ``max_frames`` are totals over ``placement``'s shards (default: all local
    devices), rounded up so every shard gets an equal pack of at least one frame's examples.
    """
    placement = placement or Placement.local()
    shards = placement.shards
    per_shard = max(-(-batch_size // shards), MAX_VOICES)
    batcher = task.eval_batcher(split, shards=shards, batch_size=per_shard * shards, max_frames=max_frames,
                                size=size, seed=seed)
    return evaluate_batches(
        eval_step or make_eval_step(task), params, batcher,
        train_events_per_beat=task.config.loss_events_per_beat or task.events_per_beat("train"),
        split_events_per_beat=task.events_per_beat(split), progress=progress,
        keep_predictions=keep_predictions, placement=placement, fresh_carry=task.fresh_carry)


def evaluate_batches(
    eval_step: EvalStep, params: Any, batcher, *, train_events_per_beat: float, split_events_per_beat: float,
    progress: bool = False, keep_predictions: bool = True, placement: Optional[Placement] = None,
    fresh_carry: Optional[Callable[[dict], Any]] = None,
) -> metrics.Evaluation:
    """Stream every example of ``batcher`` (its ``.sequential()`` batches, leading shard axis)
    through ``eval_step``; :func:`evaluate` builds the batcher, tests and benchmarks pass their own.
    ``fresh_carry(batch)`` (:meth:`Task.fresh_carry`): what the pass's first batch is given to
    carry, shaped for it (full-history tasks thread the carry through the batches; None: no carry)."""
    placement = placement or Placement.local(batcher.shards)
    params = placement.replicate(params)
    accumulator = metrics.EvaluationAccumulator(keep_predictions=keep_predictions)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=batcher.num_examples, unit="ex", desc="evaluating", file=sys.stderr, mininterval=1.0)
    def collect(batch, outputs) -> None:
        flat = lambda x: np.reshape(x, (-1,) + np.shape(x)[2:])  # noqa: E731 - shards x examples -> examples
        time_ce, note_ce, duration_logits, note_logits = map(flat, jax.device_get(outputs))
        accumulator.add(time_ce, note_ce, duration_logits, note_logits, flat(batch["duration_target"]),
                        flat(batch["notes_target"]), flat(batch["weight"]) > 0)
        if bar is not None:
            bar.update(int(batch["weight"].sum()))

    # One batch in flight: the next is gathered and dispatched before the last is fetched.
    pending, carry = None, None
    for batch in batcher.sequential():
        if pending is None and fresh_carry is not None:
            carry = fresh_carry(batch)
        outputs, carry = eval_step(params, placement.put(batch), carry)
        if pending is not None:
            collect(*pending)
        pending = (batch, outputs)
    if pending is not None:
        collect(*pending)
    if bar is not None:
        bar.close()
    return accumulator.result(train_events_per_beat, split_events_per_beat)
