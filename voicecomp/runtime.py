"""Process set-up shared by the command-line scripts (import before JAX).

On a CPU host XLA runs one computation at a time on one device, and its
intra-op threading leaves cores idle between the many mid-sized matrix products
of these models.  Exposing one host device per core and sharding batches over
them (the same data parallelism as on accelerators) measured 1.1x faster
training and 1.3-1.5x faster evaluation on 2 cores.  Accelerator hosts are
unaffected: the flag only sizes the host platform.
"""

from __future__ import annotations

import os
import sys

_FLAG = "--xla_force_host_platform_device_count"


def use_all_cpu_cores() -> None:
    """One XLA host device per CPU core, unless XLA_FLAGS already says otherwise."""
    if "jax" in sys.modules:
        raise RuntimeError("use_all_cpu_cores() must run before jax is imported")
    flags = os.environ.get("XLA_FLAGS", "")
    if _FLAG in flags:
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={cores}".strip()
