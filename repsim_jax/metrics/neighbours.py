"""Exact k nearest neighbours, blocked and sharded: never an n x n matrix."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.metrics import _blocked, _validate, distances

__all__ = ["knn"]


def _knn_block(query_idx, points, sqnorm, *, k, metric, exclude_self):
  scores = distances.score_block(query_idx, points, sqnorm, metric=metric,
                                 exclude_self=exclude_self)
  # top_k keeps the lower index first among equal values: ties go to the lowest index.
  neg, idx = jax.lax.top_k(-scores, k)
  dist = distances.scores_to_distances(-neg, sqnorm[jnp.maximum(query_idx, 0)], metric=metric)
  return dist, idx


def knn(x, k: int, *, metric: str = "euclidean", queries=None, exclude_self: bool = True,
        block_size: int | None = None, memory_budget_bytes: int | None = None,
        mesh=None, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
  """The k nearest neighbours of each query among the rows of `x`.

  Args:
    x: [n, d] points.
    k: neighbours per query.
    metric: "euclidean" or "cosine" (1 - cosine similarity).
    queries: optional [m] int row indices of `x` to query (default: every row).
    exclude_self: a query is not its own neighbour (by index; exact duplicates still count).
    block_size / memory_budget_bytes: rows per block, or the budget it is chosen from.
    mesh: 1-D "rows" mesh (default: all devices).
    dtype: np.float32 (default) or np.float64 (needs `jax.enable_x64`).

  Returns:
    (distances [m, k], indices [m, k]) sorted by increasing distance; among equal distances the
    lower index comes first.
  """
  x = _validate.as_representation(x, "x")
  n = x.shape[0]
  _validate.check_k(k, n if exclude_self else n + 1)
  query_idx = np.arange(n) if queries is None else np.asarray(queries)
  if query_idx.ndim != 1 or not np.issubdtype(query_idx.dtype, np.integer):
    raise ValueError(f"queries: expected a 1-D array of row indices, got {query_idx.dtype} "
                     f"{query_idx.shape}")
  if query_idx.size and (query_idx.min() < 0 or query_idx.max() >= n):
    raise ValueError(f"queries: indices must lie in [0, {n}), got [{query_idx.min()}, "
                     f"{query_idx.max()}]")
  points, sqnorm = distances.prepare(x, metric, dtype)
  mesh = mesh or _blocked.sharding.row_mesh()
  bs = _blocked.choose_block_size(n, len(query_idx), mesh.size, block_size=block_size,
                                  itemsize=np.dtype(dtype).itemsize,
                                  memory_budget_bytes=memory_budget_bytes)
  dist, idx = _blocked.map_row_blocks(
      _knn_block, query_idx, (), (points, sqnorm), mesh=mesh, block_size=bs,
      static=dict(k=int(k), metric=metric, exclude_self=bool(exclude_self)))
  return dist, idx
