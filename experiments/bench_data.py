"""Data-layer benchmark: cold parse, cache reload, example assembly (prints numbers).

  python experiments/bench_data.py --kernscores_dir=../shared/kernscores

Targets (2-core CPU): cold parse <= 15 s (original pipeline ~85 s), cache reload
<= 1 s, example assembly >= 200,000 examples/s at history 10 (original ~2,700/s
per loader worker).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time

import numpy as np
from absl import flags

from voicecomp import cli

from voicecomp import encoding
from voicecomp.data import corpus as corpus_lib

_KERNSCORES_DIR = flags.DEFINE_string("kernscores_dir", None, "KernScores root (default: $VOICECOMP_KERNSCORES).")
_WORKERS = flags.DEFINE_integer("workers", None, "Parse processes (default: all cores).")
_HISTORY = flags.DEFINE_integer("history", 10, "History length C.")
_BATCH = flags.DEFINE_integer("batch_size", 1000, "Examples per assembled batch.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timing repeats (best is reported).")


def _best(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv):
    if len(argv) > 1:
        raise cli.UsageError(f"unexpected arguments {argv[1:]}")
    cli.check_kernscores_dir(_KERNSCORES_DIR.value)
    for name, flag in (("history", _HISTORY), ("batch_size", _BATCH), ("repeats", _REPEATS), ("workers", _WORKERS)):
        cli.positive(name, flag.value)
    root = _KERNSCORES_DIR.value or corpus_lib.default_kernscores_dir()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; numpy {np.__version__}")
    with tempfile.TemporaryDirectory() as cache:
        def cold():
            for f in os.listdir(cache):
                os.unlink(os.path.join(cache, f))
            return corpus_lib.load_corpus("kernscores", kernscores_dir=root, cache_dir=cache, workers=_WORKERS.value, progress=False)

        cold_s, corpus = _best(cold, 1)
        reload_s, _ = _best(
            lambda: corpus_lib.load_corpus("kernscores", kernscores_dir=root, cache_dir=cache, progress=False),
            _REPEATS.value,
        )
    encode_s, (encoded, _) = _best(lambda: encoding.encode_corpus(corpus), 1)
    table = encoding.split_tables(corpus, encoded, ["train"])["train"]
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, table.num_examples, _BATCH.value) for _ in range(20)]

    def assemble(gather):
        for index in batches:
            gather(table, index, _HISTORY.value)

    per_example_s, _ = _best(lambda: assemble(encoding.gather_examples), _REPEATS.value)
    frame_s, _ = _best(lambda: assemble(encoding.gather_frame_batch), _REPEATS.value)
    n = len(batches) * _BATCH.value
    rows = [
        ("cold parse, whole corpus (s)", f"{cold_s:.2f}", "<= 15 (original ~85)"),
        ("cache reload (s)", f"{reload_s:.2f}", "<= 1"),
        ("encode all scores (s)", f"{encode_s:.2f}", ""),
        (f"example assembly, per-example tensors (ex/s, C={_HISTORY.value})", f"{n / per_example_s:,.0f}", ">= 200,000 (original ~2,700/worker)"),
        (f"example assembly, frame-shared batches (ex/s, C={_HISTORY.value})", f"{n / frame_s:,.0f}", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>10}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>10}  {target}")


if __name__ == "__main__":
    cli.run(main)
