"""Throughput of the multi-voice model on this machine (CPU by default).

Prints forward and forward+backward examples/s for per-example and frame-shared inputs:

    python experiments/bench_model.py [--batch 100] [--examples-per-frame 2.5] [--history 10] \
        [--channels 4]

Design notes measured with this kind of script (2-core AMD EPYC Zen 4, shared, noisy):
* python loop over the C static steps vs ``lax.scan``: forward within noise, forward+backward
  of the notes history ~650 ms (loop) vs ~840 ms (scan) for 40 frames -> the model uses the loop.
* fusing the 16->128 pitch projection into the recurrent matmul (K = 144) and the global
  state's two matmuls into one (K = 256) saved ~20-25% of the history time.
* bfloat16 matmul operands (``--bf16``) are slower than float32 under XLA on this CPU.
* ``--channels N`` adds frame-shared rows with the channels from N up left out as idle channels:
  without idle inputs (a window clear of the START padding: no recurrence for them, XLA's cost
  analysis counts the same flops as the previous constant-state form) and with them (their
  summed state runs the recurrence, as in START-padded windows and streams: about one channel).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from voicecomp import cli
from voicecomp.metrics import nats_per_event
from voicecomp.models import MultiVoiceConfig, MultiVoiceModel
from voicecomp.models.multivoice import ARCHITECTURES
from voicecomp.tasks.multivoice import keep_channels
from voicecomp.vocab import NUM_SPECIAL, START


def make_inputs(cfg: MultiVoiceConfig, batch: int, frames: int, seed: int = 0):
    """Random per-example and frame-shared batches of the same shapes as real data."""
    rng = np.random.default_rng(seed)
    c, v, m = cfg.voice_history, cfg.num_voices, cfg.pitch_range
    eye = np.eye(v, dtype=np.int8)
    frame = np.sort(rng.integers(0, frames, batch))
    frame[:frames] = np.arange(frames)  # every frame used
    frame.sort()
    voice = rng.integers(0, v, batch)

    def history(n):
        return dict(
            e=(rng.random((n, c, v, m)) < 0.04).astype(np.int8),
            t=rng.integers(0, cfg.num_durations, (n, c, v)).astype(np.int8),
            f=np.broadcast_to(eye, (n, c, v, v)).copy(),
        )

    current = dict(
        y=(rng.random((batch, v, m)) < 0.04).astype(np.int8),
        yt=rng.integers(NUM_SPECIAL, cfg.num_durations, (batch, v)).astype(np.int8),
        yf=np.broadcast_to(eye, (batch, v, v)).copy(),
    )
    per_example = dict(history(batch), loc=rng.integers(0, 48, batch), **current)
    shared = dict(history(frames), loc=rng.integers(0, 48, frames), frame=frame, voice=voice, **current)
    return per_example, shared


def time_call(fn, *args, repeats: int) -> tuple[float, float]:
    """(min, median) seconds per call after a warm-up (compile) call.  The minimum is the
    better estimate of the uncontended time on a shared machine."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return float(np.min(times)), float(np.median(times))


def main() -> None:
    parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--examples-per-frame", type=float, default=2.5)
    parser.add_argument("--history", type=int, default=10)
    parser.add_argument("--architecture", default="hierarchical")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 matmul operands")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--channels", type=int, default=6, help="frame-shared rows with the channels from this one "
                        "up left out as idle channels (hierarchical)")
    args = parser.parse_args()
    for name in ("batch", "history", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)}: must be >= 1")
    if args.examples_per_frame <= 0:
        parser.error(f"--examples-per-frame={args.examples_per_frame}: must be > 0")
    if args.architecture not in ARCHITECTURES:
        parser.error(f"--architecture={args.architecture}: choose from {', '.join(ARCHITECTURES)}")
    if not 1 <= args.channels <= 6 or (args.channels < 6 and args.architecture != "hierarchical"):
        parser.error(f"--channels={args.channels}: 1..6, fewer than 6 for the hierarchical architecture only")

    cfg = MultiVoiceConfig(
        architecture=args.architecture,
        voice_history=args.history,
        global_history=args.history,
        compute_dtype=jnp.bfloat16 if args.bf16 else jnp.float32,
    )
    frames = max(1, int(round(args.batch / args.examples_per_frame)))
    per_example, shared = make_inputs(cfg, args.batch, frames)
    model = MultiVoiceModel(cfg)
    variables = model.init(jax.random.PRNGKey(0), per_example)

    def forward(variables, inputs, method):
        return model.apply(variables, inputs, method=method)

    def loss(variables, inputs, method):
        duration_logits, note_logits = forward(variables, inputs, method)
        time_nats, note_nats = nats_per_event(
            duration_logits, note_logits, inputs["yt"][:, 0].astype(jnp.int32) - NUM_SPECIAL, inputs["y"][:, 0]
        )
        return time_nats + note_nats

    print(f"device={jax.devices()[0].device_kind} batch={args.batch} frames={frames} C={args.history} "
          f"arch={args.architecture} dtype={jnp.dtype(cfg.compute_dtype).name}")
    rows = [("per-example", per_example, None), ("frame-shared", shared, MultiVoiceModel.frame_shared)]
    if args.channels < cfg.num_voices:
        used = args.channels
        narrow = keep_channels(shared, used)
        steps = (frames, args.history + 1)  # START tokens, self-flow: their recurrence runs at every step
        idle = dict(narrow, idle_t=np.full(steps, START, np.int8), idle_f=np.ones(steps, np.int8))
        rows += [(f"idle {used}-", narrow, MultiVoiceModel.frame_shared),
                 (f"idle {used}- rec", idle, MultiVoiceModel.frame_shared)]
    for name, inputs, method in rows:
        fwd = jax.jit(lambda v, x, method=method: forward(v, x, method))
        grad = jax.jit(jax.value_and_grad(lambda v, x, method=method: loss(v, x, method)))
        t_fwd, m_fwd = time_call(fwd, variables, inputs, repeats=args.repeats)
        t_grad, m_grad = time_call(grad, variables, inputs, repeats=args.repeats)
        print(f"{name:>13}: forward {args.batch / t_fwd:6.0f} ex/s (min {t_fwd * 1e3:6.1f} ms, "
              f"median {m_fwd * 1e3:6.1f})   forward+backward {args.batch / t_grad:5.0f} ex/s "
              f"(min {t_grad * 1e3:6.1f} ms, median {m_grad * 1e3:6.1f})")


if __name__ == "__main__":
    cli.run_argparse(main)
