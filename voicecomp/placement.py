"""Device placement: where batches and training state live (data parallelism over a 1-D mesh)."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where batches and state live: a 1-D ``data`` mesh over all devices.

    Batches are split along their leading shard axis (each process supplies its
    own shards in multi-host runs); parameters and optimiser state are replicated.
    """

    mesh: Optional[jax.sharding.Mesh]
    shards: int

    @classmethod
    def local(cls, shards: int = 0) -> "Placement":
        devices = jax.devices()
        shards = shards or len(devices)
        if shards % len(devices):
            return cls(mesh=None, shards=shards) if len(devices) == 1 else cls._error(shards, len(devices))
        mesh = jax.sharding.Mesh(np.array(devices), ("data",)) if len(devices) > 1 else None
        return cls(mesh=mesh, shards=shards)

    @staticmethod
    def _error(shards: int, devices: int):
        raise ValueError(f"{shards} batch shards cannot be spread over {devices} devices")

    def put(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        if self.mesh is None:
            return {k: jnp.asarray(v) for k, v in batch.items()}
        sharding = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("data"))
        per_process = self.shards // jax.process_count()
        lo = jax.process_index() * per_process
        return {
            k: jax.make_array_from_process_local_data(sharding, v[lo:lo + per_process], v.shape)
            for k, v in batch.items()
        }

    def replicate(self, tree: Any) -> Any:
        if self.mesh is None:
            return tree
        sharding = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
        return jax.device_put(tree, sharding)
