"""Training (SPEC §5): the state, the jitted train step and the loop, for any task.

* :func:`make_train_step` builds the pure jitted ``train_step(state, batch) -> (state, metrics)``.
* Batches come from the task (:mod:`voicecomp.tasks`); their order is a pure
  function of (seed, epoch), so a resumed run sees exactly the batches an
  uninterrupted one would.
* :func:`train` is the loop: periodic evaluation of the iterate average on fixed
  samples (:func:`voicecomp.evaluation.evaluate`), orbax checkpoints (every N steps,
  at the end and on SIGINT/SIGTERM), exact resume, progress lines, a metrics JSONL
  and PNG learning curves.
* :func:`load_checkpoint` rebuilds a run's configuration, task and state.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import time
from typing import Any, Callable, Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from voicecomp import checkpoint as checkpoint_lib
from voicecomp import encoding, evaluation, metrics
from voicecomp.config import TrainConfig
from voicecomp.curves import plot_learning_curves
from voicecomp.optim import make_optimizer
from voicecomp.placement import Placement
from voicecomp.tasks import make_task
from voicecomp.tasks.base import Task, check_outputs

# The fixed evaluation samples of a run (split -> sample seed), in the order they are reported.
EVAL_SAMPLE_SEEDS = {"test": 999, "train": 1000, "valid": 1001}


# ---------------------------------------------------------------------------
# State, optimiser and steps


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any
    ema_params: Any  # Polyak iterate average: what is evaluated and exported
    carry: Any = None  # full-history tasks: the recurrent states entering the next chunk of every lane


def init_state(config: TrainConfig, task: "Task", batch: dict[str, np.ndarray]) -> TrainState:
    # one compiled init instead of ~170 small op-by-op compilations
    params = jax.jit(task.init_params)(jax.random.PRNGKey(config.seed), batch)
    tx = make_optimizer(config)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), ema_params=params,
                      carry=task.initial_carry(config.batch_shards or jax.device_count()))


def warm_start(state: TrainState, source: str, config: TrainConfig) -> TrainState:
    """``state`` with the parameters (and iterate average) of ``source``: a run directory (its
    iterate average, what it evaluates and exports) or reference weights (``.npz``).  The
    optimiser state starts fresh.  Raises ValueError naming every parameter whose shape differs."""
    if source.endswith(".npz"):
        from voicecomp.weights import load_reference_weights

        loaded = load_reference_weights(source, config.model)["params"]
    else:
        _, _, source_state, _ = load_checkpoint(source)
        loaded = source_state.ema_params
    flat_want = flax.traverse_util.flatten_dict(flax.core.unfreeze(state.params), sep="/")
    flat_got = flax.traverse_util.flatten_dict(flax.core.unfreeze(loaded), sep="/")
    problems = [f"{k}: missing" for k in flat_want if k not in flat_got]
    problems += [f"{k}: unexpected" for k in flat_got if k not in flat_want]
    problems += [f"{k}: {tuple(flat_got[k].shape)} vs {tuple(v.shape)} here" for k, v in flat_want.items()
                 if k in flat_got and tuple(flat_got[k].shape) != tuple(v.shape)]
    if problems:
        raise ValueError(f"--init_from={source} does not fit this model: " + "; ".join(problems))
    params = jax.tree.map(lambda want, got: jnp.asarray(got, want.dtype), state.params,
                          flax.traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat_got.items()}))
    return state.replace(params=params, ema_params=params)


def count_parameters(params: Any) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))


def make_train_step(
    task: "Task", tx: optax.GradientTransformation, loss_scale: float, ema_decay: float
) -> Callable[[TrainState, dict[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]:
    """Jitted ``train_step(state, batch)``; ``loss_scale`` turns nats into the training loss."""

    def loss_fn(params, batch, carry):
        # batch arrays (and the carry) have a leading shard axis (one slice per device); the loss
        # is the weighted mean over every example of the global batch.
        outputs, carry = jax.vmap(lambda b, c: task.shard_step(params, b, c))(batch, carry)
        check_outputs(outputs, batch)
        time_ce, note_ce, _, _ = outputs
        weight = batch["weight"]
        total = jnp.maximum(weight.sum(), 1.0)
        time_nats = (time_ce * weight).sum() / total
        note_nats = (note_ce * weight).sum() / total
        # truncated BPTT: the carried states enter the next chunk as constants
        return loss_scale * (time_nats + note_nats), (time_nats, note_nats, jax.lax.stop_gradient(carry))

    @jax.jit
    def train_step(state: TrainState, batch):
        (loss, (time_nats, note_nats, carry)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, state.carry)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = jax.tree.map(lambda a, p: ema_decay * a + (1.0 - ema_decay) * p, state.ema_params, params)
        new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema, carry=carry)
        finite = jnp.all(jnp.asarray([jnp.isfinite(x).all() for x in jax.tree.leaves((params, opt_state, ema))]))
        return new_state, {"loss": loss, "time_nats": time_nats, "note_nats": note_nats, "finite": finite}

    return train_step


# ---------------------------------------------------------------------------
# The loop


class _StopSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps."""

    def __init__(self):
        self.received: Optional[int] = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class NonFiniteLoss(RuntimeError):
    """Training produced a non-finite loss, parameter, iterate average or optimiser state."""


def first_nonfinite(state: TrainState) -> str:
    """Path of the first leaf of (params, iterate average, optimiser state) holding a non-finite value."""
    for name, tree in (("params", state.params), ("ema_params", state.ema_params), ("opt_state", state.opt_state)):
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            if not np.isfinite(np.asarray(leaf)).all():
                return name + jax.tree_util.keystr(path)
    return "no parameter"


def train(config: TrainConfig, workdir: str, *, data: Any = None, task: Optional[Task] = None,
          progress: bool = True, max_seconds: float = 0.0, max_train_seconds: float = 0.0) -> TrainState:
    """Train (or resume) the run in ``workdir``; returns the final state.

    ``data``: the task's data, already loaded (e.g. :class:`voicecomp.tasks.multivoice.Data`);
    ``task``: the task itself (its config is replaced by the resolved one).
    ``max_seconds`` (0: none) is a wall-clock limit on this call, counted from its start: when
    it is reached the run checkpoints and returns early, as on SIGTERM, and rerunning resumes.
    It is not part of the configuration because it does not change what a step computes.
    ``max_train_seconds`` (0: none) is a budget on the run's training wall time (every invocation,
    evaluations excluded, ``train_seconds`` in the metrics and checkpoints): the run stops, saves
    and evaluates once it is spent, and a rerun resumes towards the same budget.
    """
    deadline = time.perf_counter() + max_seconds if max_seconds > 0 else math.inf
    stored = None
    if os.path.isfile(os.path.join(workdir, checkpoint_lib.CONFIG_FILE)):
        stored = checkpoint_lib.read_config(workdir)
    if task is None:
        task = make_task(config, data=data, progress=progress) if data is not None else make_task(config, progress=progress)
    if not config.loss_events_per_beat:
        config = config.replace(loss_events_per_beat=round(task.events_per_beat("train"), 6))
    if not config.batch_shards:
        config = config.replace(batch_shards=jax.device_count())
    if stored is not None:
        differs = checkpoint_lib.settings_that_differ(stored, config)
        if differs:
            raise ValueError(f"{workdir} holds a run with different settings ({differs}); use a new --workdir")
    task.config = config

    tx = make_optimizer(config)
    placement = Placement.local(config.batch_shards)
    batcher = task.batcher("train", shards=placement.shards, batch_size=config.batch_size,
                           max_frames=config.max_frames)
    first_pack = {k: v[0] for k, v in next(batcher.sequential()).items()}
    state = init_state(config, task, first_pack)
    resuming = stored is not None and os.path.isdir(os.path.join(workdir, checkpoint_lib.CHECKPOINTS))
    if config.init_from and not resuming:
        state = warm_start(state, config.init_from, config)
    # Everything is validated: only now is the work directory written (a rejected command leaves it as it was).
    checkpoint_lib.write_config(workdir, config)
    state = placement.replicate(state)
    print(f"model: {task.describe()}, {count_parameters(state.params):,} parameters; "
          f"{placement.shards} batch shard(s) on {jax.device_count()} device(s); "
          f"train {batcher.num_examples:,} examples; loss = bits/beat at {config.loss_events_per_beat:.4f} events/beat")

    checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.keep_checkpoints)
    position = encoding.BatchPosition()
    restored = checkpointer.restore(state, set_aside_damaged=True)
    if restored is None and resuming and config.init_from:
        state = placement.replicate(warm_start(state, config.init_from, config))
    if restored is not None:
        step, state, meta = restored
        state = placement.replicate(state)
        position = encoding.BatchPosition(**meta["position"])
        checkpoint_lib.rewrite_metrics(workdir, [r for r in checkpoint_lib.read_metrics(workdir) if r["step"] <= step])
        print(f"resumed from step {step} (epoch {position.epoch}, batch {position.batch})")
    start_step = int(state.step)
    # Training wall time of the run (all invocations, evaluations excluded): the x axis of
    # time-budget comparisons, saved with every checkpoint so that a resumed run keeps counting.
    train_seconds = float(restored[2].get("train_seconds", 0.0)) if restored is not None else 0.0
    eval_seconds = 0.0
    loop_start = time.perf_counter()

    def elapsed() -> float:
        return train_seconds + time.perf_counter() - loop_start - eval_seconds

    def budget_spent() -> bool:
        return max_train_seconds > 0 and elapsed() >= max_train_seconds

    train_step = make_train_step(task, tx, config.loss_events_per_beat / metrics.LN2, config.ema_decay)
    eval_step = evaluation.make_eval_step(task)
    eval_splits = [split for split in EVAL_SAMPLE_SEEDS if split in task.splits()]

    def run_eval(step: int) -> None:
        nonlocal eval_seconds
        began = time.perf_counter()
        row: dict[str, Any] = {"kind": "eval", "step": step, "train_seconds": round(elapsed(), 1)}
        for split in eval_splits:
            result = evaluation.evaluate(task, state.ema_params, split, size=config.eval_examples,
                                         seed=EVAL_SAMPLE_SEEDS[split], placement=placement, eval_step=eval_step)
            row[split] = result.as_dict()
        checkpoint_lib.append_metrics(workdir, row)
        plot_learning_curves(workdir)
        summary = "  ".join(f"{s} {row[s]['bits_per_beat_reference']['total']:.3f}" for s in eval_splits)
        print(f"step {step:>8}  eval (iterate average, bits/beat at {config.loss_events_per_beat:.4f}): {summary}")
        eval_seconds += time.perf_counter() - began

    def save(step: int) -> None:
        checkpointer.save(step, state, {"position": dataclasses.asdict(position), "step": step,
                                        "train_seconds": elapsed()})

    if start_step == 0 and config.eval_every:
        run_eval(0)
    batches = batcher.training(config.seed, position)
    tick, tick_step, examples_seen = time.perf_counter(), start_step, 0
    with _StopSignal() as stop:
        step = start_step
        while step < config.num_steps and not budget_spent():
            position, batch = next(batches)
            state, step_metrics = train_step(state, placement.put(batch))
            step += 1
            examples_seen += int(batch["weight"].sum())
            loss = float(step_metrics["loss"])
            if not math.isfinite(loss) or not bool(step_metrics["finite"]):
                checkpointer.close()
                where = f"loss became {loss}" if not math.isfinite(loss) else f"{first_nonfinite(state)} became non-finite"
                raise NonFiniteLoss(
                    f"{where} at step {step}; stopping. The last finite checkpoint "
                    f"({checkpointer.steps()[-1] if checkpointer.steps() else 'none'}) is intact in {workdir}"
                )
            if step % config.log_every == 0 or step == config.num_steps:
                now = time.perf_counter()
                rate = examples_seen / max(now - tick, 1e-9)
                steps_per_s = (step - tick_step) / max(now - tick, 1e-9)
                eta = (config.num_steps - step) / max(steps_per_s, 1e-9)
                row = {"kind": "train", "step": step, "loss": loss,
                       "time_nats": float(step_metrics["time_nats"]), "note_nats": float(step_metrics["note_nats"]),
                       "examples_per_s": rate}
                checkpoint_lib.append_metrics(workdir, row)
                if progress:
                    print(f"step {step:>8}/{config.num_steps}  {rate:8.1f} ex/s  loss {loss:8.4f}  "
                          f"time {row['time_nats']:.4f}  notes {row['note_nats']:.4f} nats  ETA {_hms(eta)}", flush=True)
                tick, tick_step, examples_seen = now, step, 0
            if config.eval_every and step % config.eval_every == 0:
                run_eval(step)
            if stop.received is not None or time.perf_counter() >= deadline:
                save(step)
                reason = f"received signal {stop.received}" if stop.received is not None else \
                    f"reached the {max_seconds:.0f} s time limit"
                print(f"{reason}: saved checkpoint at step {step}; resume by rerunning")
                checkpointer.close()
                return state
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                save(step)
    if budget_spent():
        print(f"spent the {max_train_seconds:.0f} s training budget at step {step}")
    if not checkpointer.steps() or checkpointer.steps()[-1] != step:
        save(step)
    if config.eval_every and step % config.eval_every and step > start_step:  # a spent rerun evaluated already
        run_eval(step)
    checkpointer.close()
    return state


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def load_checkpoint(workdir: str, step: Optional[int] = None) -> tuple[TrainConfig, Task, TrainState, int]:
    """Config, task (its data loads lazily) and restored state of a work directory (newest readable step)."""
    config = checkpoint_lib.read_config(workdir)
    task = make_task(config)
    state = init_state(config, task, task.dummy_pack())
    checkpointer = checkpoint_lib.Checkpointer(workdir, keep=config.keep_checkpoints)
    restored = checkpointer.restore(state, step)
    checkpointer.close()
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {workdir}")
    found_step, state, _ = restored
    return config, task, state, found_step
