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


_REFINE_EXTRA = 7  # float32 candidates beyond k that are re-ranked exactly
_REFINE_ROWS = 2048  # rows per host chunk of the float64 re-ranking


def _refine(x: np.ndarray, query_idx: np.ndarray, cand: np.ndarray, k: int, metric: str):
  """Re-ranks float32 candidates with float64 distances; ties -> lowest index.

  Near-ties below float32 resolution (seen in high-dimensional data: two neighbours whose
  distances differ by 4e-9 relative) would otherwise pick the wrong nearest neighbour, and in
  information imbalance one wrong neighbour moves its rank by ~N/2.
  """
  dist = np.empty((len(query_idx), k))
  idx = np.empty((len(query_idx), k), dtype=cand.dtype)
  for start in range(0, len(query_idx), _REFINE_ROWS):
    rows = slice(start, start + _REFINE_ROWS)
    q = np.asarray(x[query_idx[rows]], np.float64)[:, None, :]
    c = np.asarray(x[cand[rows]], np.float64)
    if metric == "euclidean":
      d = np.sqrt(np.sum((c - q) ** 2, axis=-1))
    else:
      qn = q / np.linalg.norm(q, axis=-1, keepdims=True)
      cn = c / np.linalg.norm(c, axis=-1, keepdims=True)
      d = 1.0 - np.sum(qn * cn, axis=-1)
    order = np.lexsort((cand[rows], d), axis=-1)[:, :k]  # by distance, then index
    dist[rows] = np.take_along_axis(d, order, axis=1)
    idx[rows] = np.take_along_axis(cand[rows], order, axis=1)
  return dist, idx


def knn(x, k: int, *, metric: str = "euclidean", queries=None, exclude_self: bool = True,
        refine: bool = True, block_size: int | None = None,
        memory_budget_bytes: int | None = None, mesh=None,
        dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
  """The k nearest neighbours of each query among the rows of `x`.

  Candidates come from the blocked device kernel (float32 scores at precision "highest", or
  float64); with `refine` the best k + 7 candidates are re-ranked on the host with float64
  distances, so the neighbours and distances are exact unless float32 error exceeds the gap to
  the (k+7)-th candidate.

  Args:
    x: [n, d] points.
    k: neighbours per query.
    metric: "euclidean" or "cosine" (1 - cosine similarity).
    queries: optional [m] int row indices of `x` to query (default: every row).
    exclude_self: a query is not its own neighbour (by index; exact duplicates still count).
    refine: re-rank candidates in float64 on the host (default True).
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
  n_cand = min(k + _REFINE_EXTRA, n - 1 if exclude_self else n) if refine else k
  dist, idx = _blocked.map_row_blocks(
      _knn_block, query_idx, (), (points, sqnorm), mesh=mesh, block_size=bs,
      static=dict(k=int(n_cand), metric=metric, exclude_self=bool(exclude_self)))
  if refine:
    dist, idx = _refine(x, query_idx, idx, k, metric)
  return dist, idx
