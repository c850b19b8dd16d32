"""Exact k nearest neighbours, blocked and sharded: never an n x n matrix."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax import sharding
from repsim_jax.metrics import _blocked, distances, validation

__all__ = ["knn", "candidate_lists", "exact_distances"]


_GROUP = 128  # columns per group in the two-level top-k


def smallest_k(scores: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """The k smallest scores per row and their column indices, exactly, sorted ascending.

  Two levels (XLA's CPU top-k sorts whole rows): the minimum of each group of 128 columns, the k
  groups with the smallest minima (every one of the k smallest values lies in one of them), then
  top-k over those k * 128 values. Groups are taken in column order, so among equal values the
  lower column index still comes first.
  """
  b, n = scores.shape
  n_groups = -(-n // _GROUP)
  if n_groups <= k:
    neg, idx = jax.lax.top_k(-scores, k)
    return -neg, idx
  scores = jnp.pad(scores, ((0, 0), (0, n_groups * _GROUP - n)), constant_values=jnp.inf)
  grouped = scores.reshape(b, n_groups, _GROUP)
  _, groups = jax.lax.top_k(-grouped.min(axis=2), k)
  groups = jnp.sort(groups, axis=1)
  cand = jnp.take_along_axis(grouped, groups[:, :, None], axis=1).reshape(b, k * _GROUP)
  neg, pos = jax.lax.top_k(-cand, k)
  idx = jnp.take_along_axis(groups, pos // _GROUP, axis=1) * _GROUP + pos % _GROUP
  return -neg, idx


def _knn_block(query_idx, points, sqnorm, *, k, metric, exclude_self):
  scores = distances.score_block(query_idx, points, sqnorm, metric=metric,
                                 exclude_self=exclude_self)
  return smallest_k(scores, k)


_REFINE_EXTRA = 7  # float32 candidates beyond k, re-ranked exactly when needed
_REFINE_ROWS = 2048  # rows per host chunk of the float64 re-ranking
_EPS32 = float(np.finfo(np.float32).eps)


def score_error_bound(points: np.ndarray, sqnorm: np.ndarray, query_idx: np.ndarray):
  """A bound on the float32 error of `score_block` scores for each query row.

  Scores are |x_j|^2 - 2 <q, x_j> with an inner product of d float32 terms: worst-case error
  d * eps * |q| |x_j| (any summation order), plus roundings of the norms and of the inputs to
  float32; the factor 4 covers all of them with margin.
  """
  d = points.shape[1]
  norm_max = float(np.sqrt(sqnorm.max()))
  q_norm = np.sqrt(np.asarray(sqnorm[query_idx], np.float64))
  return 4 * (d + 2) * _EPS32 * (q_norm * norm_max + norm_max ** 2)


def exact_distances(x, rows, cols, metric: str, *, chunk_rows: int = 1024) -> np.ndarray:
  """float64 distances [r, c] between x[rows] ([r] indices) and x[cols[r]] ([r, c] indices).

  Computed on the host from the inputs (differences for euclidean, unit vectors for cosine), in
  chunks of rows so memory stays O(chunk_rows * c * d); each entry depends only on its two rows.
  """
  rows, cols = np.asarray(rows), np.asarray(cols)
  out = np.empty(cols.shape, np.float64)
  for start in range(0, len(rows), chunk_rows):
    q = np.asarray(x[rows[start:start + chunk_rows]], np.float64)[:, None, :]
    c = np.asarray(x[cols[start:start + chunk_rows]], np.float64)
    if metric == "euclidean":
      out[start:start + chunk_rows] = np.sqrt(np.einsum("rcd,rcd->rc", c - q, c - q))
    else:
      qn = q / np.linalg.norm(q, axis=-1, keepdims=True)
      cn = c / np.linalg.norm(c, axis=-1, keepdims=True)
      out[start:start + chunk_rows] = 1.0 - np.einsum("rcd,rcd->rc", qn, cn)
  return out


def _refine(x, query_idx, cand_scores, cand, k, metric, bound, exclude_self=True, mesh=None):
  """Exact neighbours for the rows whose float32 order is within error of changing.

  Rows where the gap between consecutive candidates (among the first k + 1) is within twice the
  error bound are re-ranked on the host with float64 distances over their candidates; rows where
  even the last candidate is within error of the k-th (tightly bunched distances, e.g. cosine
  on isotropic noise) are recomputed by the float64 device kernel over all points.
  Returns (indices [m, k], the row positions that were re-ranked).

  On multi-process runs every process re-ranks (the candidates are the same gathered arrays),
  and the writer's indices are kept everywhere: float64 sums on the host may round differently
  on different CPUs, and callers decide from these indices which rows to recount (collectives
  that every process must make alike).
  """
  idx = cand[:, :k].copy()
  gaps = np.diff(cand_scores[:, : k + 1], axis=1).min(axis=1)
  far = np.flatnonzero(cand_scores[:, -1] - cand_scores[:, k - 1] <= 2 * bound)
  near = np.setdiff1d(np.flatnonzero(gaps <= 2 * bound), far)
  for start in range(0, len(near), _REFINE_ROWS):
    rows = near[start:start + _REFINE_ROWS]
    d = exact_distances(x, query_idx[rows], cand[rows], metric)
    order = np.lexsort((cand[rows], d), axis=-1)[:, :k]  # by distance, then index
    idx[rows] = np.take_along_axis(cand[rows], order, axis=1)
  if far.size:  # the true neighbours may lie beyond the candidates: float64 over all points
    with jax.enable_x64(True):
      points, sqnorm = distances.prepare(x, metric, np.float64)
      mesh = mesh or _blocked.sharding.row_mesh()
      _, idx[far] = _blocked.map_row_blocks(
          _knn_block, query_idx[far], (), (points, sqnorm), mesh=mesh, bucket=True,
          block_size=_blocked.sparse_block_size(len(far), mesh.size),
          static=dict(k=int(k), metric=metric, exclude_self=bool(exclude_self)))
  if near.size:
    idx = sharding.broadcast_from_writer(idx)
  return idx, np.union1d(near, far)


def knn(x, k: int, *, metric: str = "euclidean", queries=None, exclude_self: bool = True,
        refine: bool = True, block_size: int | None = None,
        memory_budget_bytes: int | None = None, mesh=None,
        dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
  """The k nearest neighbours of each query among the rows of `x`.

  Candidates come from the blocked device kernel (float32 scores at precision "highest", or
  float64). With `refine` (float32), rows whose candidate order lies within the float32 error
  bound are re-ranked on the host with float64 distances (and, if needed, over all points), so
  the neighbours are exact; returned distances are float64.

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
  x = validation.as_representation(x, "x")
  n = x.shape[0]
  validation.check_k(k, n if exclude_self else n + 1)
  n_cand = min(k + _REFINE_EXTRA, n - 1 if exclude_self else n) if refine else k
  idx, scores, query_idx, points, sqnorm, mesh = _candidate_pass(
      x, n_cand, metric=metric, queries=queries, exclude_self=exclude_self, block_size=block_size,
      memory_budget_bytes=memory_budget_bytes, mesh=mesh, dtype=dtype)
  if refine and n_cand > k:
    bound = score_error_bound(points, sqnorm, query_idx)
    idx, _ = _refine(x, query_idx, scores, idx, k, metric, bound, exclude_self, mesh)
    dist = exact_distances(x, query_idx, idx, metric)
  else:
    idx = idx[:, :k]
    dist = np.asarray(distances.scores_to_distances(
        scores[:, :k], sqnorm[query_idx], metric=metric))
  return dist, idx


def _candidate_pass(x, n_cand, *, metric, queries, exclude_self, block_size, memory_budget_bytes,
                    mesh, dtype):
  """One blocked pass: the n_cand smallest-score candidates of each query (device order)."""
  n = x.shape[0]
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
  scores, idx = _blocked.map_row_blocks(
      _knn_block, query_idx, (), (points, sqnorm), mesh=mesh, block_size=bs,
      static=dict(k=int(n_cand), metric=metric, exclude_self=bool(exclude_self)))
  return idx, scores, query_idx, points, sqnorm, mesh


def candidate_lists(x, k: int, n_candidates: int, *, metric: str = "euclidean", queries=None,
                    block_size: int | None = None, memory_budget_bytes: int | None = None,
                    mesh=None, dtype=np.float32) -> np.ndarray:
  """Each query's exact k nearest neighbours, then its next candidates: [m, n_candidates].

  One distance pass. The first k entries are `knn`'s (exact, lowest index first among ties);
  the following ones continue in the device's score order (float32 unless dtype=np.float64:
  two candidates whose distances differ below float32 resolution may swap). Self excluded.
  Used where a resampled data set needs "the nearest neighbour still present".
  """
  x = validation.as_representation(x, "x")
  n = x.shape[0]
  validation.check_k(n_candidates, n, "n_candidates")
  if not 1 <= k <= n_candidates:
    raise ValueError(f"k={k}: expected 1 <= k <= n_candidates={n_candidates}")
  refine = np.dtype(dtype) == np.float32
  n_cand = max(n_candidates, min(k + _REFINE_EXTRA, n - 1) if refine else k)
  idx, scores, query_idx, points, sqnorm, mesh = _candidate_pass(
      x, n_cand, metric=metric, queries=queries, exclude_self=True, block_size=block_size,
      memory_budget_bytes=memory_budget_bytes, mesh=mesh, dtype=dtype)
  if not refine:
    return idx[:, :n_candidates]
  bound = score_error_bound(points, sqnorm, query_idx)
  exact, _ = _refine(x, query_idx, scores, idx, k, metric, bound, True, mesh)
  taken = np.any(idx[:, :, None] == exact[:, None, :], axis=2)  # at most k per row
  rest = np.take_along_axis(idx, np.argsort(taken, axis=1, kind="stable"), axis=1)
  return np.concatenate([exact, rest[:, : n_candidates - k]], axis=1)
