"""Optimisers of the multi-voice training (SPEC §5).

The reference notebooks trained in stages: each learning-rate stage started a new
``torch.optim.SGD``, so its momentum trace began at zero (``multipart_recipes.json``).
:func:`reset_at_steps` reproduces that inside one optax transformation: the state is reset
by the step count it carries, so ``train_step`` stays a pure jitted function and a resumed
run (whose optimiser state, count included, is in the checkpoint) continues exactly.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from voicecomp.config import TrainConfig, parse_schedule


def learning_rate_schedule(config: TrainConfig) -> optax.Schedule:
    """The piecewise-constant learning rate of ``config`` (``lr_schedule`` over ``learning_rate``)."""
    points = parse_schedule(config.lr_schedule, config.learning_rate)
    if len(points) == 1:
        return optax.constant_schedule(points[0][1])
    return optax.join_schedules(
        [optax.constant_schedule(v) for _, v in points], boundaries=[s for s, _ in points[1:]]
    )


def stage_starts(config: TrainConfig) -> list[int]:
    """Steps at which a learning-rate stage starts after the first (where fresh momentum resets)."""
    return [step for step, _ in parse_schedule(config.lr_schedule, config.learning_rate)[1:]]


class ResetState(NamedTuple):
    count: jax.Array  # updates applied so far (int32): the training step of the next update
    inner: Any


def reset_at_steps(inner: optax.GradientTransformation, steps: Sequence[int]) -> optax.GradientTransformation:
    """``inner`` whose state restarts from zeros before the update of every step in ``steps``.

    Zeros are the initial state of the transformations this wraps (a momentum trace, Adam's
    moments and count), so the update at such a step is that of a newly made optimiser.
    """
    starts = jnp.asarray(sorted(set(int(s) for s in steps)) or [-1], jnp.int32)

    def init(params):
        return ResetState(count=jnp.zeros([], jnp.int32), inner=inner.init(params))

    def update(updates, state, params=None):
        fresh = jnp.any(state.count == starts)
        inner_state = jax.tree.map(lambda x: jnp.where(fresh, jnp.zeros_like(x), x), state.inner)
        updates, inner_state = inner.update(updates, inner_state, params)
        return updates, ResetState(count=optax.safe_int32_increment(state.count), inner=inner_state)

    return optax.GradientTransformation(init, update)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """SPEC §5: L2 added to the gradient, then SGD with momentum (or Adam).

    With ``config.fresh_momentum`` the momentum trace (Adam: its moments) restarts at every
    learning-rate stage, as each stage of the reference's recipes was a new optimiser; the
    learning-rate schedule keeps its own count and is never reset.
    """
    schedule = learning_rate_schedule(config)
    if config.optimizer == "sgd":
        moments = optax.trace(decay=config.momentum) if config.momentum else None
    elif config.optimizer == "adam":
        moments = optax.scale_by_adam()
    else:
        raise ValueError(f"optimizer must be sgd or adam, got {config.optimizer!r}")
    if config.fresh_momentum:
        if moments is not None:
            moments = reset_at_steps(moments, stage_starts(config))
        core = optax.chain(moments or optax.identity(), optax.scale_by_learning_rate(schedule))
    elif config.optimizer == "sgd":
        # the same transformation as above without the reset: kept as optax.sgd so the optimiser
        # state of runs (and checkpoints) made before fresh momentum existed is unchanged
        core = optax.sgd(schedule, momentum=config.momentum or None)
    else:
        core = optax.adam(schedule)
    return optax.chain(optax.add_decayed_weights(config.l2), core) if config.l2 else core
