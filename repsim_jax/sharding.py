"""Mesh helpers: a 1-D "rows" mesh over every device, multi-host aware.

Kernels shard query rows over the mesh and replicate the reference points; `jax.distributed` is
the multi-host engine (initialised only when asked), there is no home-made scheduler.
"""
from __future__ import annotations

import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

ROWS = "rows"


def maybe_initialize_distributed(enabled: bool | None = None) -> None:
  """Calls `jax.distributed.initialize()` when asked (flag, or REPSIM_DISTRIBUTED=1).

  On TPU pods and SLURM/Open MPI GPU clusters the coordinator is discovered automatically.
  """
  if enabled is None:
    enabled = os.environ.get("REPSIM_DISTRIBUTED", "0") == "1"
  if enabled and not jax.distributed.is_initialized():
    jax.distributed.initialize()


def row_mesh(devices: list[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh named "rows" over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (ROWS,))


def replicate(x: np.ndarray, mesh: Mesh) -> jax.Array:
  """A global array holding the full `x` on every device (works on multi-host meshes too)."""
  sharding = NamedSharding(mesh, P())
  if isinstance(x, jax.Array) and x.sharding == sharding:
    return x
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def shard_rows(x: np.ndarray, mesh: Mesh) -> jax.Array:
  """A global array whose leading axis is split over the "rows" axis; len(x) % mesh.size == 0."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, NamedSharding(mesh, P(ROWS)), lambda i: x[i])


def to_host(x: jax.Array) -> np.ndarray:
  """The full value of a (possibly multi-host) global array as numpy, on every process."""
  if jax.process_count() > 1:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)
