r"""Full-history (streaming) against windowed exp.-6 models, measured in one run (prints numbers; not a test).

    python experiments/bench_stream.py --kernscores_dir=../shared/kernscores \
        --weights=../shared/reference/multipart6_weights.npz --out=docs/results/bench_stream.json

Three measures, each for the windowed exp.-6 model (C = 10, the published recipe's batches of 100)
and its full-history counterpart (the same cells and parameters, states carried; batches of
``--lanes`` x ``--chunk_frames`` frames), with the ratio:

* training examples/s: compute only, batches prebuilt from the real training split, after two
  warm-up steps (compilation);
* the whole non-piano test split evaluated with the published weights, data included (the
  streaming figure is the one the issue targets; the windowed one is taken from the same run);
  for the streaming pass also the recurrence alone (the same batches through
  ``MultiVoiceModel.advance``: the carried states, no per-frame outputs, no readouts), which
  says how much of the pass the per-frame recurrence over ``[lanes, 6, 78, 128]`` states costs;
* 100 four-voice scores of 150 event-steps sampled from the published weights (compilation
  excluded: a warm-up call of the same shapes runs first).
"""

from __future__ import annotations

from voicecomp.runtime import use_all_cpu_cores

use_all_cpu_cores()  # one XLA device per core; must precede the first JAX import

import dataclasses
import json
import os
import sys
import time

from absl import flags, logging

from voicecomp import cli

_KERNSCORES_DIR = flags.DEFINE_string("kernscores_dir", None, "KernScores root (default: $VOICECOMP_KERNSCORES).")
_WEIGHTS = flags.DEFINE_string("weights", None, "Published weights (.npz) for the evaluation and sampling measures.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed training steps of each variant (after 2 warm-up steps).")
_LANES = flags.DEFINE_integer("lanes", 16, "Full history: streams per training batch.")
_CHUNK = flags.DEFINE_integer("chunk_frames", 16, "Full history: frames per lane per training batch.")
_EVAL = flags.DEFINE_bool("evaluate", True, "Time the whole non-piano evaluation (windowed and streaming).")
_EVAL_WINDOWED = flags.DEFINE_bool("evaluate_windowed", True, "With --evaluate, also the windowed whole-split "
                                   "evaluation (about 6x the streaming one's time) and the ratio.")
_SAMPLE = flags.DEFINE_bool("sample", True, "Time sampling (windowed and streaming).")
_NUM_SCORES = flags.DEFINE_integer("num_scores", 100, "Scores sampled in one batch.")
_FRAMES = flags.DEFINE_integer("frames", 150, "Event-steps per sampled score.")
_OUT = flags.DEFINE_string("out", None, "Write the figures as JSON here.")
flags.mark_flags_as_required(["weights"])


def _timed_training(config, task, steps: int) -> dict:
    import jax

    from voicecomp import encoding
    from voicecomp import train as train_lib
    from voicecomp.optim import make_optimizer
    from voicecomp.placement import Placement

    placement = Placement.local(config.batch_shards)
    batcher = task.batcher("train", shards=placement.shards, batch_size=config.batch_size, max_frames=config.max_frames)
    stream = batcher.training(config.seed, encoding.BatchPosition())
    batches = [next(stream)[1] for _ in range(steps + 2)]
    state = placement.replicate(train_lib.init_state(config, task, {k: v[0] for k, v in batches[0].items()}))
    train_step = train_lib.make_train_step(task, make_optimizer(config),
                                           config.loss_events_per_beat / 0.6931471805599453, config.ema_decay)
    for batch in batches[:2]:
        state, metrics = train_step(state, placement.put(batch))
    jax.block_until_ready(metrics)
    timed = [placement.put(b) for b in batches[2:]]
    examples = sum(int(b["weight"].sum()) for b in batches[2:])
    tick = time.perf_counter()
    for batch in timed:
        state, metrics = train_step(state, batch)
    jax.block_until_ready((state, metrics))
    seconds = time.perf_counter() - tick
    return {"examples_per_s": examples / seconds, "examples_per_step": examples / steps, "steps": steps}


def _timed_evaluation(config, task, params) -> dict:
    from voicecomp import evaluation

    tick = time.perf_counter()
    result = evaluation.evaluate(task, params, "test_nonpiano", keep_predictions=False)
    seconds = time.perf_counter() - tick
    return {"seconds": seconds, "examples": result.examples, "examples_per_s": result.examples / seconds,
            "bits_per_beat_reference": result.bits(config.loss_events_per_beat),
            "bits_per_beat_split_rate": result.bits(task.events_per_beat("test_nonpiano"))}


def _timed_recurrence(task, params) -> dict:
    """The streaming pass over the whole non-piano split with the readouts left out: the carried
    states only (``MultiVoiceModel.advance``), batches prebuilt, compilation excluded."""
    import jax

    from voicecomp.placement import Placement

    placement = Placement.local()
    batcher = task.eval_batcher("test_nonpiano", shards=placement.shards)
    batches = [placement.put(b) for b in batcher.sequential()]

    @jax.jit
    def advance(params, batch, carry):
        def one_shard(shard_batch, shard_carry):
            return task.model.apply({"params": params}, shard_carry, shard_batch, method=task.model.advance)

        return jax.vmap(one_shard)(batch, carry)

    params = placement.replicate(params)
    jax.block_until_ready(advance(params, batches[0], task.fresh_carry(batches[0])))
    carry = task.fresh_carry(batches[0])
    tick = time.perf_counter()
    for batch in batches:
        carry = advance(params, batch, carry)
    jax.block_until_ready(carry)
    return {"seconds": time.perf_counter() - tick, "batches": len(batches),
            "lanes": int(batches[0]["t"].shape[0] * batches[0]["t"].shape[1])}


def _timed_sampling(model_config, params) -> dict:
    from voicecomp import sample as sample_lib
    from voicecomp.models.multivoice import MultiVoiceModel

    model = MultiVoiceModel(model_config)
    options = dict(num_scores=_NUM_SCORES.value, voices=4, frames=_FRAMES.value, seed=0)
    sample_lib.sample(model, params, **options)  # compiles the chunk program of these shapes
    tick = time.perf_counter()
    sample_lib.sample(model, params, **options)
    seconds = time.perf_counter() - tick
    return {"seconds": seconds, "seconds_per_event_step": seconds / _FRAMES.value}


def bench() -> dict:
    import jax

    from voicecomp.presets import PRESETS
    from voicecomp.tasks import make_task
    from voicecomp.weights import load_reference_weights

    windowed = PRESETS["multi_6"].replace(kernscores_dir=_KERNSCORES_DIR.value, batch_shards=jax.device_count())
    streaming = windowed.replace(model=dataclasses.replace(windowed.model, history="full"), lanes=_LANES.value,
                                 chunk_frames=_CHUNK.value)
    results: dict = {"devices": jax.device_count(), "backend": jax.default_backend(), "cpu_count": os.cpu_count(),
                     "lanes": _LANES.value, "chunk_frames": _CHUNK.value}
    splits = ("train", "test_nonpiano")
    base_task = make_task(windowed, splits=splits, progress=False)
    rate = round(base_task.events_per_beat("train"), 6)
    windowed, streaming = windowed.replace(loss_events_per_beat=rate), streaming.replace(loss_events_per_beat=rate)
    tasks = {"windowed": base_task,
             "streaming": make_task(streaming, data=base_task.data, splits=splits, progress=False)}
    configs = {"windowed": windowed, "streaming": streaming}
    for name in ("windowed", "streaming"):
        tasks[name].config = configs[name]
        results[f"train_{name}"] = _timed_training(configs[name], tasks[name], _STEPS.value)
        print(f"training, {name}: {results[f'train_{name}']['examples_per_s']:.1f} examples/s", flush=True)
    results["train_ratio"] = results["train_streaming"]["examples_per_s"] / results["train_windowed"]["examples_per_s"]
    print(f"training ratio streaming / windowed: {results['train_ratio']:.2f}x", flush=True)
    params = load_reference_weights(_WEIGHTS.value, windowed.model)["params"]
    if _EVAL.value:
        for name in ("streaming", "windowed") if _EVAL_WINDOWED.value else ("streaming",):
            results[f"eval_{name}"] = r = _timed_evaluation(configs[name], tasks[name], params)
            print(f"whole non-piano evaluation, {name}: {r['seconds']:.1f} s ({r['examples_per_s']:,.0f} ex/s), "
                  f"{r['bits_per_beat_reference']['total']:.3f} bits/beat (reference convention)", flush=True)
        if _EVAL_WINDOWED.value:
            results["eval_ratio"] = results["eval_windowed"]["seconds"] / results["eval_streaming"]["seconds"]
        results["eval_streaming_recurrence"] = r = _timed_recurrence(tasks["streaming"], params)
        print(f"whole non-piano streaming pass, recurrence alone (no readouts): {r['seconds']:.1f} s "
              f"({r['batches']} batches of {r['lanes']} lanes)", flush=True)
    if _SAMPLE.value:
        for name in ("windowed", "streaming"):
            results[f"sample_{name}"] = r = _timed_sampling(configs[name].model, params)
            print(f"sampling {_NUM_SCORES.value} x {_FRAMES.value} steps, {name}: {r['seconds']:.1f} s", flush=True)
        results["sample_time_ratio"] = results["sample_streaming"]["seconds"] / results["sample_windowed"]["seconds"]
        print(f"sampling time streaming / windowed: {results['sample_time_ratio']:.2f}", flush=True)
    return results


def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    for name, flag in (("steps", _STEPS), ("lanes", _LANES), ("chunk_frames", _CHUNK), ("num_scores", _NUM_SCORES),
                       ("frames", _FRAMES)):
        cli.positive(name, flag.value)
    if not os.path.isfile(_WEIGHTS.value):
        raise cli.DataError(f"--weights={_WEIGHTS.value}: no such file")
    cli.check_kernscores_dir(_KERNSCORES_DIR.value or os.environ.get("VOICECOMP_KERNSCORES"))
    results = bench()
    if _OUT.value:
        os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
        with open(_OUT.value, "w") as handle:
            json.dump({"command": " ".join(["python3"] + sys.argv), "date": time.strftime("%Y-%m-%d"), **results},
                      handle, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    cli.run(main)
