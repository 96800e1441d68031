"""Reproduce rows of Table 6 (single-voice models) and print measured vs published bits/beat.

  python experiments/reproduce_singlevoice.py --rows=1,2,3,4,8,9,10,16 --kernscores_dir=../shared/kernscores
  python experiments/reproduce_singlevoice.py --rows=6 --steps=3000 --hidden=300
  python experiments/reproduce_singlevoice.py --rows=12,18,21 --budget_minutes=10

Each row trains its preset (``voicecomp.tasks.singlevoice.PRESETS``: batch 300, SGD
momentum 0.95, the notebook's two learning-rate stages, iterate averaging 0.999) on the full
train parts for ``--steps`` steps (default: the row's preset count scaled by ``--scale``; the
learning rate drops at the same fraction of the run as in the preset), then evaluates the
iterate average on the full test parts at the fixed 1.219 events per beat.  Wall time covers
training and evaluation.  Not a test: minutes per linear row on a CPU.

With ``--budget_minutes`` each row instead trains for a fixed wall-clock budget (compilation
included): a short calibration run measures the row's step rate on this machine, the step
count is set to fill what is left of the budget (the learning rate still drops at the preset's
fraction of the run), and the run is cut off at the budget in any case.  Evaluation is not
part of the budget; it is reported separately.  A run shorter than five averaging horizons
(5 / (1 - ema_decay) = 5,000 steps) is evaluated at its last iterate, because its iterate
average still weighs the initial weights heavily (0.999^1000 = 37%); the table says which.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time

import jax
import numpy as np

from voicecomp import checkpoint as checkpoint_lib
from voicecomp import cli, evaluation, metrics
from voicecomp import train as train_lib
from voicecomp.config import parse_schedule
from voicecomp.data.parts import build_parts
from voicecomp.tasks import singlevoice as sv
from voicecomp.vocab import SINGLE_VOICE_EVENTS_PER_BEAT


def scaled_config(config, steps: int, hidden: int | None):
    points = parse_schedule(config.lr_schedule, config.learning_rate)
    schedule = ""
    if len(points) > 1:
        schedule = ",".join(f"{v}@{int(round(s * steps / config.num_steps))}" for s, v in points)
    model = config.model if hidden is None else dataclasses.replace(config.model, hidden=hidden)
    return config.replace(num_steps=steps, lr_schedule=schedule, model=model, eval_every=0,
                          checkpoint_every=0, log_every=max(steps // 5, 1), keep_checkpoints=1)


def calibrate(config, task, workdir: str, steps: int = 10) -> tuple[float, float]:
    """(seconds of fixed cost: compilation, first step, checkpoint; seconds per step) on this machine.

    The per-step time is the median over the logged steps after the first two, so compilation,
    checkpoint writes and stray load do not skew it.
    """
    shutil.rmtree(workdir, ignore_errors=True)
    tick = time.perf_counter()
    train_lib.train(config.replace(num_steps=steps, log_every=1, keep_checkpoints=1), workdir,
                    task=task, progress=False)
    total = time.perf_counter() - tick
    rates = [r["examples_per_s"] for r in checkpoint_lib.read_metrics(workdir) if r["kind"] == "train" and r["step"] > 2]
    shutil.rmtree(workdir, ignore_errors=True)
    per_step = config.batch_size / float(np.median(rates))
    return max(total - steps * per_step, 0.0), per_step


def main():
    parser = cli.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1,2,3,4,8,9,10,16", help="comma-separated Table 6 rows (1-22)")
    parser.add_argument("--steps", type=int, default=0, help="training steps per row (0: preset x --scale)")
    parser.add_argument("--scale", type=float, default=0.5, help="fraction of the preset's step count when --steps is 0")
    parser.add_argument("--budget_minutes", type=float, default=0.0,
                        help="train each row for this wall-clock budget instead of a step count (0: off)")
    parser.add_argument("--hidden", type=int, default=None, help="override the hidden size (default: preset, 300)")
    parser.add_argument("--kernscores_dir", default=None, help="KernScores root (default: $VOICECOMP_KERNSCORES)")
    parser.add_argument("--workdir", default="/tmp/voicecomp_singlevoice", help="run directories, one per row (replaced)")
    parser.add_argument("--eval_batch", type=int, default=3000, help="examples per evaluation batch")
    parser.add_argument("--eval_examples", type=int, default=0,
                        help="evaluate on this fixed random sample of the test examples (0: all of them); "
                             "the report gives the sample's standard error")
    parser.add_argument("--results", default="", help="append one JSON line per row to this file")
    args = parser.parse_args()
    try:
        row_numbers = [int(r) for r in args.rows.split(",") if r]
    except ValueError:
        parser.error(f"--rows must be comma-separated integers, got {args.rows!r}")
    unknown = [r for r in row_numbers if f"single_{r:02d}" not in sv.PRESETS]
    if unknown:
        parser.error(f"--rows: Table 6 has rows 1-22, got {unknown}")
    for name, zero in (("steps", True), ("scale", False), ("budget_minutes", True), ("eval_batch", False),
                       ("eval_examples", True)):
        value = getattr(args, name)
        if value < 0 or (value == 0 and not zero):
            parser.error(f"--{name}={value}: must be {'>= 0' if zero else '> 0'}")
    if args.hidden is not None and args.hidden < 1:
        parser.error(f"--hidden={args.hidden}: must be >= 1")
    cli.check_kernscores_dir(args.kernscores_dir)

    from voicecomp.data.corpus import load_corpus

    start = time.perf_counter()
    corpus = load_corpus("kernscores", kernscores_dir=args.kernscores_dir, progress=False)
    tables = {split: build_parts(corpus, split) for split in ("train", "test")}
    print(f"parts: train {tables['train'].num_examples:,} events, test {tables['test'].num_examples:,} "
          f"({time.perf_counter() - start:.1f} s)", flush=True)

    rows = []
    budget = 60 * args.budget_minutes
    for row in row_numbers:
        name = f"single_{row:02d}"
        preset = sv.PRESETS[name].config.replace(kernscores_dir=args.kernscores_dir)
        steps = args.steps or max(int(preset.num_steps * args.scale), 1)
        config = scaled_config(preset, steps, args.hidden)
        workdir = os.path.join(args.workdir, name)
        shutil.rmtree(workdir, ignore_errors=True)
        task = sv.SingleVoiceTask(config, data=tables, corpus=corpus)
        tick = time.perf_counter()
        if budget:
            fixed_s, step_s = calibrate(config, task, workdir + "_calibration")
            left = budget - (time.perf_counter() - tick)
            # The real run compiles again (a fresh step function); 2% slack for logging and checkpoints.
            steps = max(int((left - fixed_s) / step_s * 0.98), 1)
            config = scaled_config(preset, steps, args.hidden)
            print(f"calibration: {fixed_s:.1f} s fixed cost, {step_s * 1e3:.1f} ms/step; "
                  f"{left:.0f} s of the budget left", flush=True)
        print(f"== {name}: {config.model.describe()}; {steps} steps, lr {config.learning_rate} "
              f"schedule '{config.lr_schedule}'", flush=True)
        state = train_lib.train(config, workdir, task=task, progress=True,
                                max_seconds=budget - (time.perf_counter() - tick) if budget else 0.0)
        steps = int(state.step)
        train_s = time.perf_counter() - tick
        averaged = steps >= 5 / (1 - config.ema_decay)
        result = evaluation.evaluate(task, state.ema_params if averaged else state.params, "test",
                                     size=args.eval_examples, seed=2019, batch_size=args.eval_batch,
                                     keep_predictions=False)
        wall = time.perf_counter() - tick
        paper = sv.PRESETS[name].paper  # Table 6's figures for the row
        bits = result.bits(SINGLE_VOICE_EVENTS_PER_BEAT)
        stderr = metrics.bits_per_beat(result.total_nats_stderr, SINGLE_VOICE_EVENTS_PER_BEAT)
        entry = {"row": row, "name": name, "describe": config.model.describe(), "steps": steps,
                 "params": train_lib.count_parameters(state.params), "time": bits["time"],
                 "notes": bits["notes"], "total": bits["total"], "train_s": train_s, "wall_s": wall,
                 "budget_s": budget, "eval_examples": result.examples, "total_stderr": stderr, "evaluated": "average" if averaged else "last",
                 "paper": (paper["time"], paper["notes"])}
        rows.append(entry)
        print(f"-> {name}: time {bits['time']:.3f} notes {bits['notes']:.3f} total {bits['total']:.3f} "
              f"(+- {stderr:.3f}) bits/beat on {result.examples:,} test examples ({wall:.0f} s)", flush=True)
        if args.results:
            with open(args.results, "a") as handle:
                handle.write(json.dumps(entry) + "\n")
        jax.clear_caches()

    print()
    print(f"{'row':<10}{'steps':>8}{'params':>10}{'time':>8}{'notes':>8}{'total':>8}   "
          f"{'paper t':>8}{'paper n':>8}{'paper':>8}{'train s':>8}{'wall s':>8}  evaluated")
    for r in rows:
        paper = r["paper"]
        ref = f"{paper[0]:>8.2f}{paper[1]:>8.2f}{sum(paper):>8.2f}" if paper else f"{'-':>8}{'-':>8}{'-':>8}"
        print(f"{r['name']:<10}{r['steps']:>8}{r['params']:>10,}{r['time']:>8.3f}{r['notes']:>8.3f}"
              f"{r['total']:>8.3f}   {ref}{r['train_s']:>8.0f}{r['wall_s']:>8.0f}  {r['evaluated']}")


if __name__ == "__main__":
    cli.run_argparse(main)
