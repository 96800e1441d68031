"""Training and evaluation throughput of the exp.-6 model on this machine (prints numbers; not a test).

  python experiments/bench_train.py --kernscores_dir=../shared/kernscores
  python experiments/bench_train.py --devices=1,2,4     # data-parallel scaling over forced host devices

Compute only: batches are built from the real KernScores training split *before* timing
(frame-packed, as training builds them), then the jitted train step and the forward-only
evaluation step run over them.  Prints training examples/s, forward-only evaluation examples/s and
the peak resident memory (``resource.getrusage``), beside the original implementation's figures on
this machine.  ``--devices`` re-launches this script once per device count N with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` and ``--batch_shards=N`` (on CPU the
devices share the same cores, so flat scaling is expected).
"""

from __future__ import annotations

from voicecomp.runtime import use_all_cpu_cores

use_all_cpu_cores()  # one XLA device per core; must precede the first JAX import

import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from absl import flags

from voicecomp import cli

_KERNSCORES_DIR = flags.DEFINE_string(
    "kernscores_dir", None, "KernScores root (default: $VOICECOMP_KERNSCORES, else ../shared/kernscores).")
_BATCH = flags.DEFINE_integer("batch_size", 100, "Training examples per step (the published recipe: 100).")
_EVAL_BATCH = flags.DEFINE_integer("eval_batch_size", 96, "Evaluation examples per batch (evaluate.py's default).")
_MAX_FRAMES = flags.DEFINE_integer("max_frames", 0, "Distinct frames per training batch (0: half the batch).")
_EVAL_FRAMES = flags.DEFINE_integer("eval_max_frames", 36, "Distinct frames per evaluation batch.")
_HISTORY = flags.DEFINE_integer("voice_history", 10, "History C (exp. 6: 10).")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed training steps (after 2 warm-up steps).")
_EVAL_BATCHES = flags.DEFINE_integer("eval_batches", 10, "Timed evaluation batches (after 1 warm-up).")
_SHARDS = flags.DEFINE_integer("batch_shards", 0, "Packs per batch (0: the device count).")
_DEVICES = flags.DEFINE_list("devices", [], "Device counts to compare, e.g. 1,2,4 (re-launches this script).")
_JSON = flags.DEFINE_bool("json", False, "End with one JSON line of the figures.")

REFERENCE = {"train_examples_per_s": 60.0, "eval_examples_per_s": 436.0, "peak_rss_gb": 4.1}


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def _kernscores_dir() -> str:
    if _KERNSCORES_DIR.value:
        return _KERNSCORES_DIR.value
    if os.environ.get("VOICECOMP_KERNSCORES"):
        return os.environ["VOICECOMP_KERNSCORES"]
    return str(Path(__file__).resolve().parents[1].parent / "shared" / "kernscores")


def bench() -> dict:
    import jax
    import numpy as np

    from voicecomp import encoding
    from voicecomp import train as train_lib
    from voicecomp.evaluation import make_eval_step
    from voicecomp.optim import make_optimizer
    from voicecomp.placement import Placement
    from voicecomp.presets import PRESETS
    from voicecomp.tasks import make_task

    base = PRESETS["multi_6"]
    model = dataclasses.replace(base.model, voice_history=_HISTORY.value, global_history=_HISTORY.value)
    config = base.replace(kernscores_dir=_kernscores_dir(), batch_size=_BATCH.value, model=model,
                          max_frames=_MAX_FRAMES.value)
    devices = jax.device_count()
    shards = _SHARDS.value or devices
    config = config.replace(batch_shards=shards)
    start = time.perf_counter()
    task = make_task(config, splits=("train",), progress=False)
    train_rate = task.events_per_beat("train")
    config = config.replace(loss_events_per_beat=round(train_rate, 6))
    task.config = config
    load_s = time.perf_counter() - start
    rss_data = _peak_rss_gb()
    placement = Placement.local(shards)

    # prebuilt batches (not timed)
    batcher = task.batcher("train", shards=shards, batch_size=config.batch_size, max_frames=config.max_frames)
    stream = batcher.training(config.seed, encoding.BatchPosition())
    train_batches = [next(stream)[1] for _ in range(_STEPS.value + 2)]
    eval_batcher = task.batcher("train", shards=shards, batch_size=_EVAL_BATCH.value, max_frames=_EVAL_FRAMES.value,
                                examples=np.arange(min(task.num_examples("train"), 200_000)))
    eval_stream = eval_batcher.sequential()
    eval_batches = [next(eval_stream) for _ in range(_EVAL_BATCHES.value + 1)]

    tx = make_optimizer(config)
    first_pack = {k: v[0] for k, v in train_batches[0].items()}
    state = placement.replicate(train_lib.init_state(config, task, first_pack))
    train_step = train_lib.make_train_step(task, tx, config.loss_events_per_beat / 0.6931471805599453, config.ema_decay)
    eval_step = make_eval_step(task)

    compile_start = time.perf_counter()
    for batch in train_batches[:2]:
        state, metrics = train_step(state, placement.put(batch))
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - compile_start
    timed = [placement.put(b) for b in train_batches[2:]]
    examples = sum(int(b["weight"].sum()) for b in train_batches[2:])
    tick = time.perf_counter()
    for batch in timed:
        state, metrics = train_step(state, batch)
    jax.block_until_ready((state, metrics))
    train_s = time.perf_counter() - tick

    jax.block_until_ready(eval_step(state.ema_params, placement.put(eval_batches[0]), None))
    timed = [placement.put(b) for b in eval_batches[1:]]
    eval_examples = sum(int(b["weight"].sum()) for b in eval_batches[1:])
    tick = time.perf_counter()
    outputs = None
    for batch in timed:
        outputs = eval_step(state.ema_params, batch, None)
    jax.block_until_ready(outputs)
    eval_s = time.perf_counter() - tick
    return {
        "devices": devices, "batch_shards": shards, "backend": jax.default_backend(),
        "batch_size": config.batch_size, "voice_history": config.model.voice_history,
        "parameters": train_lib.count_parameters(state.params), "data_load_s": load_s,
        "first_two_steps_s (compile)": compile_s, "train_steps": _STEPS.value,
        "train_examples_per_s": examples / train_s, "train_steps_per_s": _STEPS.value / train_s,
        "eval_examples_per_s": eval_examples / eval_s, "eval_batch_size": _EVAL_BATCH.value,
        "peak_rss_gb_after_data": rss_data, "peak_rss_gb": _peak_rss_gb(), "cpu_count": os.cpu_count(),
    }


def report(r: dict) -> None:
    print(f"exp.-6 architecture (hierarchical {r['voice_history']}/{r['voice_history']}, 64/128/16; "
          f"{r['parameters']:,} parameters), batch {r['batch_size']}, {r['devices']} {r['backend']} device(s), "
          f"{r['batch_shards']} shard(s), {r['cpu_count']} CPU(s)")
    print(f"  data load (parse cache + tables): {r['data_load_s']:.1f} s; first two steps (compile): "
          f"{r['first_two_steps_s (compile)']:.1f} s")
    rows = [("training examples/s", r["train_examples_per_s"], REFERENCE["train_examples_per_s"], "{:.1f}"),
            ("forward-only eval examples/s", r["eval_examples_per_s"], REFERENCE["eval_examples_per_s"], "{:.0f}"),
            ("peak RSS (GB)", r["peak_rss_gb"], REFERENCE["peak_rss_gb"], "{:.2f}")]
    print(f"  {'':<30}{'voicecomp':>12}{'original':>12}{'ratio':>8}")
    for label, ours, ref, fmt in rows:
        print(f"  {label:<30}{fmt.format(ours):>12}{fmt.format(ref):>12}{ours / ref:>7.2f}x")
    print(f"  (peak RSS once the training split was loaded: {r['peak_rss_gb_after_data']:.2f} GB; "
          f"original figures: the reference implementation on this machine)")


def scaling(counts: list[int]) -> list[dict]:
    results = []
    for count in counts:
        env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={count}", JAX_PLATFORMS="cpu")
        argv = [sys.executable, os.path.abspath(__file__), "--json", f"--batch_shards={count}",
                f"--kernscores_dir={_kernscores_dir()}", f"--batch_size={_BATCH.value}", f"--steps={_STEPS.value}",
                f"--eval_batches={_EVAL_BATCHES.value}", f"--eval_batch_size={_EVAL_BATCH.value}",
                f"--eval_max_frames={_EVAL_FRAMES.value}", f"--voice_history={_HISTORY.value}"]
        print(f"--- {count} device(s) ---", flush=True)
        out = subprocess.run(argv, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stdout[-2000:] + out.stderr[-2000:])
            continue
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  train {result['train_examples_per_s']:.1f} ex/s, eval {result['eval_examples_per_s']:.0f} ex/s, "
              f"peak RSS {result['peak_rss_gb']:.2f} GB", flush=True)
        results.append(result)
    if results:
        print(f"\n{'devices':>8}{'train ex/s':>12}{'per device':>12}{'eval ex/s':>12}")
        for r in results:
            print(f"{r['devices']:>8}{r['train_examples_per_s']:>12.1f}{r['train_examples_per_s'] / r['devices']:>12.1f}"
                  f"{r['eval_examples_per_s']:>12.0f}")
        print("(forced host devices share this machine's cores: flat total throughput is expected on CPU)")
    return results


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    for name, flag in (("batch_size", _BATCH), ("eval_batch_size", _EVAL_BATCH), ("eval_max_frames", _EVAL_FRAMES),
                       ("voice_history", _HISTORY), ("steps", _STEPS), ("eval_batches", _EVAL_BATCHES)):
        cli.positive(name, flag.value)
    cli.positive("max_frames", _MAX_FRAMES.value, zero=True)
    cli.positive("batch_shards", _SHARDS.value, zero=True)
    cli.check(all(c.strip().isdigit() and int(c) >= 1 for c in _DEVICES.value),
              f"--devices={','.join(_DEVICES.value)}: expected device counts >= 1, e.g. 1,2,4")
    cli.check_kernscores_dir(_kernscores_dir())
    if _DEVICES.value:
        results = scaling([int(c) for c in _DEVICES.value])
        if _JSON.value:
            print(json.dumps(results))
        return 0
    result = bench()
    report(result)
    if _JSON.value:
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    cli.run(main)
