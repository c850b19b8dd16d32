"""The row-block engine shared by the kNN and rank kernels.

Query rows are split over the devices of a 1-D mesh (`shard_map`), and each device walks its rows
in blocks of `block_size` with `lax.map`, so memory per device is O(block_size * n) plus the
replicated points, never n x n. Results are gathered to the host in row order.
"""
from __future__ import annotations

import contextlib
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from repsim_jax import sharding

DEFAULT_MEMORY_BUDGET_BYTES = 1 << 30
_BYTES_PER_SCORE = 4 * 4  # the score block plus the temporaries XLA keeps around it


def choose_block_size(n_points: int, n_queries: int, n_devices: int, *, itemsize: int = 4,
                      memory_budget_bytes: int | None = None, block_size: int | None = None) -> int:
  """Rows per block so that a block's working set (~4 copies of [block, n]) fits the budget."""
  if block_size is not None:
    if block_size < 1:
      raise ValueError(f"block_size must be >= 1, got {block_size}")
    return int(block_size)
  budget = DEFAULT_MEMORY_BUDGET_BYTES if memory_budget_bytes is None else memory_budget_bytes
  rows = budget // max(1, n_points * _BYTES_PER_SCORE * itemsize // 4)
  # Above ~1k rows the [block, n] temporaries leave the cache and elementwise passes slow down,
  # while the matmul is already efficient.
  rows = int(max(8, min(1024, rows)))
  per_device = -(-n_queries // n_devices)
  if per_device <= rows:  # one block per device: no padding beyond a multiple of 8
    return max(1, -(-per_device // 8) * 8)
  n_blocks = -(-per_device // rows)  # equal blocks, so padding stays under 8 rows per block
  return -(-(-(-per_device // n_blocks)) // 8) * 8


def sparse_block_size(n_rows: int, n_devices: int) -> int:
  """Block size for passes over a varying subset of rows (re-ranking fallbacks): a power of two
  between 8 and 256, so that with `bucket=True` only a handful of programs are ever compiled."""
  per_device = max(1, -(-n_rows // n_devices))
  return int(min(256, max(8, 1 << (per_device // 4).bit_length())))


@functools.lru_cache(maxsize=64)
def _compiled(block_fn: Callable, static: tuple, mesh: Mesh, block_size: int, per_device: int,
              n_sharded: int, n_replicated: int):
  kwargs = dict(static)

  def device_fn(*args):
    sharded, replicated = args[:n_sharded], args[n_sharded:]
    n_blocks = per_device // block_size
    blocks = tuple(a.reshape(n_blocks, block_size, *a.shape[1:]) for a in sharded)
    out = jax.lax.map(lambda blk: block_fn(*blk, *replicated, **kwargs), blocks)
    # Per-row outputs [n_blocks, block_size, ...] -> [per_device, ...]; per-block outputs
    # [n_blocks, 1, ...] -> [n_blocks, ...].
    return jax.tree.map(lambda o: o.reshape(-1, *o.shape[2:]), out)

  specs = (P(sharding.ROWS),) * n_sharded + (P(),) * n_replicated
  return jax.jit(jax.shard_map(device_fn, mesh=mesh, in_specs=specs, out_specs=P(sharding.ROWS)))


def map_row_blocks(block_fn: Callable, query_idx: np.ndarray, sharded: tuple[np.ndarray, ...],
                   replicated: tuple[Any, ...], *, static: dict[str, Any], mesh: Mesh | None,
                   block_size: int, chunks: int = 1, bucket: bool = False,
                   per_block: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> Any:
  """Runs `block_fn(query_idx_block, *sharded_blocks, *replicated, **static)` over all queries.

  Args:
    block_fn: a module-level function (it keys the compilation cache); returns a pytree of
      arrays with leading dimension block_size.
    query_idx: [q] int32 global row indices of the queries.
    sharded: arrays with leading dimension q, split like the queries.
    replicated: arrays every device sees whole (the points); copied to the devices once.
    static: hashable keyword arguments of block_fn.
    mesh: 1-D "rows" mesh (default: all devices).
    block_size: query rows per block and device.
    chunks: at most this many host-level calls (same compiled program each time), so
      `progress(done_rows, total_rows)` can report between them; each keeps >= 4 blocks per device.
    bucket: round the padded row count up to a power of two, so that calls with varying numbers
      of queries (re-ranking fallbacks) reuse a few compiled programs instead of compiling each.
    per_block: `block_fn` reduces its block and returns leading dimension 1 (e.g. sums over its
      rows; padding rows carry query index -1 and must contribute nothing). Used where per-row
      outputs would be too large (bootstrap replicates, permutations).

  Returns:
    the pytree of outputs as numpy, leading dimension q, in query order; with `per_block`, the
    stacked block results [n_blocks, ...] (their partition depends on the device count, their
    sum does not when the outputs are integers).
  """
  mesh = sharding.row_mesh() if mesh is None else mesh
  n_dev, n_q = mesh.size, len(query_idx)
  step = n_dev * block_size
  chunks = max(1, min(chunks, -(-n_q // (4 * step))))
  per_call = -(-max(1, -(-n_q // chunks)) // step) * step
  if bucket:
    per_call = step << max(0, (per_call // step - 1).bit_length())
  per_device = per_call // n_dev
  replicated = [sharding.replicate(a, mesh) for a in replicated]
  fn = _compiled(block_fn, tuple(sorted(static.items())), mesh, block_size, per_device,
                 1 + len(sharded), len(replicated))
  query_idx = np.asarray(query_idx, np.int32)
  outs = []
  for start in range(0, n_q, per_call):
    stop = min(start + per_call, n_q)

    def pad(a, fill):
      a = np.asarray(a[start:stop])
      widths = [(0, per_call - len(a))] + [(0, 0)] * (a.ndim - 1)
      return np.pad(a, widths, constant_values=fill)

    args = [sharding.shard_rows(pad(query_idx, -1), mesh)]
    args += [sharding.shard_rows(pad(a, 0), mesh) for a in sharded]
    out = fn(*args, *replicated)
    keep = None if per_block else stop - start
    outs.append(jax.tree.map(lambda o: sharding.to_host(o)[:keep], out))
    if progress is not None:
      progress(stop, n_q)
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outs)


def float_scope(dtype) -> contextlib.AbstractContextManager:
  """The context a kernel of `dtype` runs in: x64 switched on for np.float64 (jax would compute
  in float32 otherwise), nothing for np.float32; other dtypes are refused."""
  if np.dtype(dtype) not in (np.float32, np.float64):
    raise ValueError(f"dtype must be float32 or float64, got {dtype}")
  return jax.enable_x64(True) if np.dtype(dtype) == np.float64 else contextlib.nullcontext()
