"""voicecomp.optim: fresh momentum at every learning-rate stage is a new SGD optimiser per stage
(the reference's recipes), inside one pure optax transformation; without it nothing changes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from voicecomp.config import TrainConfig
from voicecomp.optim import make_optimizer, reset_at_steps, stage_starts

STEPS = 12
CONFIG = TrainConfig(optimizer="sgd", learning_rate=0.1, lr_schedule="0.03@4,0.01@8", momentum=0.9, l2=0.01)


def _gradients(seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"w": rng.normal(size=(3, 2)).astype(np.float32), "b": rng.normal(size=(2,)).astype(np.float32)}
            for _ in range(STEPS)]


PARAMS = {"w": np.full((3, 2), 0.5, np.float32), "b": np.zeros((2,), np.float32)}


def _run(tx: optax.GradientTransformation, grads, params=PARAMS, state=None, jit=True):
    update = jax.jit(tx.update) if jit else tx.update
    state = tx.init(params) if state is None else state
    for g in grads:
        updates, state = update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def _torch_sgd_per_stage(grads, stages, momentum, l2):
    """torch.optim.SGD(lr, momentum, weight_decay=l2) made anew at every stage start (float64)."""
    params = {k: v.astype(np.float64) for k, v in PARAMS.items()}
    starts = [s for s, _ in stages]
    for step, g in enumerate(grads):
        lr = [rate for start, rate in stages if start <= step][-1]
        if step in starts:
            buffers = None  # a new optimiser: its momentum buffer is created by the first step
        d = {k: g[k] + l2 * params[k] for k in params}
        buffers = d if buffers is None else {k: momentum * buffers[k] + d[k] for k in params}
        params = {k: params[k] - lr * buffers[k] for k in params}
    return params


def test_fresh_momentum_is_a_new_sgd_per_stage():
    grads = _gradients()
    got, _ = _run(make_optimizer(CONFIG.replace(fresh_momentum=True)), grads)
    expected = _torch_sgd_per_stage(grads, [(0, 0.1), (4, 0.03), (8, 0.01)], 0.9, 0.01)
    for k in PARAMS:
        np.testing.assert_allclose(got[k], expected[k], rtol=1e-5, atol=1e-6)


def test_without_fresh_momentum_nothing_changes():
    """The default keeps optax.sgd (same state layout as checkpoints made before the option) and
    carries the momentum across stages, unlike a new optimiser per stage."""
    grads = _gradients()
    tx = make_optimizer(CONFIG)
    schedule = optax.join_schedules([optax.constant_schedule(v) for v in (0.1, 0.03, 0.01)], [4, 8])
    plain = optax.chain(optax.add_decayed_weights(0.01), optax.sgd(schedule, momentum=0.9))
    assert jax.tree.structure(tx.init(PARAMS)) == jax.tree.structure(plain.init(PARAMS))
    got, _ = _run(tx, grads)
    expected, _ = _run(plain, grads)
    jax.tree.map(np.testing.assert_array_equal, got, expected)
    fresh = _torch_sgd_per_stage(grads, [(0, 0.1), (4, 0.03), (8, 0.01)], 0.9, 0.01)
    assert not np.allclose(got["w"], fresh["w"], rtol=1e-3)  # the reset matters on this data


def test_one_stage_fresh_momentum_is_plain_sgd():
    grads = _gradients(1)
    config = CONFIG.replace(lr_schedule="", fresh_momentum=True)
    assert stage_starts(config) == []
    got, _ = _run(make_optimizer(config), grads)
    expected, _ = _run(make_optimizer(config.replace(fresh_momentum=False)), grads)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, expected)


def test_reset_is_pure_and_resumes_exactly():
    """The reset depends only on the count in the optimiser state: a run continued from a saved
    state with a newly built optimiser (as after a restart) matches one that never stopped."""
    grads = _gradients(2)
    config = CONFIG.replace(fresh_momentum=True)
    straight, _ = _run(make_optimizer(config), grads)
    half, state = _run(make_optimizer(config), grads[:6])
    state = jax.tree.map(lambda x: np.asarray(x).copy(), state)  # as restored from a checkpoint
    resumed, _ = _run(make_optimizer(config), grads[6:], params=half, state=state)
    jax.tree.map(np.testing.assert_array_equal, straight, resumed)
    eager, _ = _run(make_optimizer(config), grads, jit=False)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), straight, eager)


def test_adam_moments_restart():
    """With Adam the first update of a stage is that of a new Adam at the stage's rate."""
    grads = _gradients(3)
    config = TrainConfig(optimizer="adam", learning_rate=0.1, lr_schedule="0.01@5", l2=0.0, fresh_momentum=True)
    params, state = _run(make_optimizer(config), grads[:5])
    after, _ = _run(make_optimizer(config), grads[5:6], params=params, state=state)
    new, _ = _run(optax.adam(0.01), grads[5:6], params=params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), after, new)
    carried, _ = _run(make_optimizer(config.replace(fresh_momentum=False)), grads[:6])
    assert not np.allclose(carried["w"], after["w"], rtol=1e-4)


def test_reset_at_steps_counts_updates():
    inner = optax.trace(decay=0.5)
    tx = reset_at_steps(inner, [2])
    params = {"x": jnp.zeros(())}
    state = tx.init(params)
    traces = []
    for _ in range(4):
        _, state = tx.update({"x": jnp.ones(())}, state, params)
        traces.append(float(state.inner.trace["x"]))
    assert traces == [1.0, 1.5, 1.0, 1.5] and int(state.count) == 4


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_train_step_state_has_the_stage_count(optimizer):
    """Fresh-momentum state is a pytree of arrays (checkpointable), count starting at 0."""
    tx = make_optimizer(CONFIG.replace(optimizer=optimizer, fresh_momentum=True))
    state = tx.init(PARAMS)
    leaves = jax.tree.leaves(state)
    assert all(isinstance(x, jax.Array) for x in leaves)
    assert any(x.dtype == jnp.int32 and x.shape == () and int(x) == 0 for x in leaves)
