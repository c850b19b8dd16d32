"""Information imbalance of resampled data sets (bootstrap, subsets), all replicates in one pass.

A replicate is a vector of integer image weights w (bootstrap: how often each image was drawn;
a subset: 0/1). Its imbalance is DADApy's Delta on the multiset of images, with copies of the
query image itself left out:

  Delta_w(A -> B) = 2 / (n_w^2 k) * sum_i w_i * sum_{m=1..k} r_w(i, nu_m(i)),   n_w = sum_i w_i

  nu_1(i), ..., nu_k(i): the first k entries of the other images j != i sorted by d^A(i, j)
    (lowest index first among equal distances), each image repeated w_j times;
  r_w(i, j) = 1 + sum_{l != i} w_l [d^B(i, l) < d^B(i, j)]   (ties "min", with multiplicity).

w = 1 gives the plain `information_imbalance_matrix` value exactly, 0/1 weights the plain value
on the subset. Copies of i are excluded because an image drawn twice sits at distance 0 from
itself in both spaces: counting it would make every duplicated image its own perfect neighbour
and pull Delta towards 0 (the bootstrap would then estimate a different quantity).

Cost (La a-layers, Lb b-layers, R replicates): La + Lb distance passes, the same as the plain
two-phase matrix, whatever R. The a-passes give each point's C = k + 15 nearest candidates (the
first k exact as in `knn`, the others in float32 order: two candidates within float32 resolution
may swap). A replicate misses all of a row's candidates with probability ~e^-C; the rows where
one does (found before the b-passes, ~0.05% of rows at N = 1e4, 24 layers, 200 replicates) are
left out and redone with 4C candidates. Each b-pass scores a block of query rows once; the
thresholds of all La * C candidates of a row cut the row's points into bins, one segment-sum of
the weight matrix [N, R] per row counts every replicate's points in every bin, and a cumulative
sum gives all the r_w at once: N * R additions per row and b-layer on top of the distance matmul
(N * d). Results are exact integers, identical on any number of devices.
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax import sharding
from repsim_jax.metrics import _blocked, distances, validation
from repsim_jax.metrics.neighbours import candidate_lists

__all__ = ["weighted_imbalance"]

_EXTRA_CANDIDATES = 15


def _weighted_rank_block(query_idx, cand, points, sqnorm, weights, *, metric, k):
  """One block's sums over its query rows of w_i * (rank sum of i's k neighbours): [1, La, R]."""
  b, n_a, n_cand = cand.shape
  n_thr = n_a * n_cand
  keys = distances.order_keys(distances.score_block(query_idx, points, sqnorm, metric=metric))
  thr = jnp.take_along_axis(keys, cand.reshape(b, n_thr), axis=1)  # self: the largest key

  def closer(args):  # [M, R]: per threshold t_m, sum of w_l over points with s_l < t_m
    s, t = args
    order = jnp.argsort(t)
    bins = jnp.searchsorted(t[order], s, side="right")  # s_l < t_(m) <=> bin_l <= m
    counts = jnp.cumsum(jax.ops.segment_sum(weights, bins, num_segments=n_thr + 1), axis=0)
    return jnp.zeros((n_thr, weights.shape[1]), weights.dtype).at[order].set(counts[:n_thr])

  # One row at a time on CPU, where XLA lowers a batched scatter-add ~10x slower than a loop of
  # single ones; the whole block at once on accelerators, where the loop would serialise.
  per_step = 1 if jax.default_backend() == "cpu" else b
  ranks = 1 + jax.lax.map(closer, (keys, thr), batch_size=per_step).reshape(b, n_a, n_cand, -1)
  copies = weights[cand]  # [b, La, C, R]: how often each candidate was drawn
  before = jnp.cumsum(copies, axis=2) - copies
  slots = jnp.clip(k - before, 0, copies)  # neighbour slots each candidate fills
  rank_sums = jnp.sum(slots * ranks, axis=2)  # [b, La, R]
  w_query = jnp.where((query_idx >= 0)[:, None], weights[jnp.maximum(query_idx, 0)], 0)
  return jnp.sum(w_query[:, None, :] * rank_sums, axis=0)[None]


@functools.partial(jax.jit, static_argnames="k")
def _short(cand, weights, query_weights, *, k):
  """[m] rows for which some replicate (holding the row) draws fewer than k of its candidates."""
  held = jnp.sum(weights[cand], axis=2)  # [m, La, R]
  return jnp.any((held < k) & (query_weights[:, None, :] > 0), axis=(1, 2))


def _short_rows(cand, weights, rows, k, chunk=256):
  on_device = jnp.asarray(weights)  # [N, R], copied once for all chunks
  return np.concatenate([np.asarray(_short(cand[i:i + chunk], on_device,
                                           weights[rows[i:i + chunk]], k=k))
                         for i in range(0, len(rows), chunk)])


def _rank_sums(layers_b, rows, cand, weights, *, k, metric, mesh, block_size, dtype, bucket):
  """[La, Lb, R] sums over the query `rows` (candidates cand [len(rows), La, C])."""
  if not len(rows):
    return np.zeros((cand.shape[1], len(layers_b), weights.shape[1]), np.int64)
  out = []
  for y in layers_b:
    points, sqnorm = distances.prepare(y, metric, dtype)
    total = _blocked.map_row_blocks(
        _weighted_rank_block, rows, (cand,), (points, sqnorm, weights), mesh=mesh,
        block_size=block_size, per_block=True, bucket=bucket,
        static=dict(metric=metric, k=int(k)))
    out.append(np.asarray(total, np.int64).sum(axis=0))  # [La, R]
  return np.stack(out, axis=1)


def weighted_imbalance(layers_a: Sequence, layers_b: Sequence | None, weights, *, k: int = 1,
                       metric: str = "euclidean", mesh=None, block_size: int | None = None,
                       memory_budget_bytes: int | None = None,
                       dtype=np.float32) -> np.ndarray:
  """Delta_w(layers_a[i] -> layers_b[j]) for every replicate w: float64 [R, La, Lb].

  Args:
    layers_a, layers_b: as in `information_imbalance_matrix` ([N, d_l] each; layers_b None:
      layers_a).
    weights: [R, N] non-negative integers, one replicate per row (e.g. `bootstrap_weights`).
    k, metric, mesh, dtype: as in `information_imbalance_matrix` (ties "min").
    block_size / memory_budget_bytes: query rows per block, or the per-device budget they are
      chosen from (each row holds [La * C, R] counts besides its scores).

  Returns:
    float64 [R, La, Lb]; see the module docstring for the definition and the cost.
  """
  distances.check_metric(metric)
  same = layers_b is None or layers_b is layers_a
  layers_a = validation.as_layers(layers_a, "layers_a")
  layers_b = layers_a if same else validation.as_layers(layers_b, "layers_b")
  n = validation.check_same_n([layers_a[0], layers_b[0]], ["layers_a", "layers_b"])
  weights = np.asarray(weights)
  if (weights.ndim != 2 or weights.shape[1] != n or not np.issubdtype(weights.dtype, np.integer)
      or weights.min() < 0):
    raise ValueError(f"weights: expected non-negative integers [R, N={n}], got {weights.dtype} "
                     f"{weights.shape}")
  n_w = weights.sum(axis=1)
  # Each query needs k other images: the smallest replicate must hold more than k + max copies.
  if np.any(n_w - weights.max(axis=1) < k):
    raise ValueError(f"weights: a replicate holds {int((n_w - weights.max(axis=1)).min())} images "
                     f"besides the copies of one image, fewer than k={k}")
  validation.check_k(k, n)
  mesh = sharding.row_mesh() if mesh is None else mesh
  # Block sums stay below 2^31: block * max_w * (k ranks of at most n_w) per replicate.
  cap = (2 ** 31 - 1) // int(weights.max() * k * n_w.max())
  if cap < 8:
    raise ValueError(f"weights: sums of {int(weights.max())} * k={k} * {int(n_w.max())} ranks "
                     f"overflow the exact int32 block sums; use fewer points per replicate")
  weights_t = np.ascontiguousarray(weights.T, np.int32)  # [N, R]
  opts = dict(metric=metric, mesh=mesh, dtype=dtype)

  def candidates(n_cand, rows=None):
    return np.stack([candidate_lists(x, k, n_cand, queries=rows, **opts) for x in layers_a],
                    axis=1).astype(np.int32)  # [rows, La, C]

  def block_rows(n_cand):
    per_row = len(layers_a) * n_cand * weights.shape[0] * 4  # [La * C, R] arrays alive per row
    budget = (memory_budget_bytes or _blocked.DEFAULT_MEMORY_BUDGET_BYTES) // 4
    bs = _blocked.choose_block_size(n, n, mesh.size, block_size=block_size,
                                    itemsize=np.dtype(dtype).itemsize,
                                    memory_budget_bytes=budget)
    return max(8, min(bs, budget // max(per_row, 1) // 8 * 8, cap // 8 * 8))

  with _blocked.float_scope(dtype):
    n_cand = min(k + _EXTRA_CANDIDATES, n - 1)
    rows = np.arange(n)
    cand = candidates(n_cand)
    short = _short_rows(cand, weights_t, rows, k) if n_cand < n - 1 else np.zeros(n, bool)
    sums = _rank_sums(layers_b, rows[~short], cand[~short], weights_t, k=k, block_size=
                      block_rows(n_cand), bucket=False, **opts)
    rows = rows[short]
    while rows.size:  # rows a replicate left with too few candidates: again with more of them
      n_cand = min(4 * n_cand, n - 1)
      cand = candidates(n_cand, rows)
      short = _short_rows(cand, weights_t, rows, k) if n_cand < n - 1 else np.zeros(len(rows),
                                                                                   bool)
      sums += _rank_sums(layers_b, rows[~short], cand[~short], weights_t, k=k,
                         block_size=min(_blocked.sparse_block_size(len(rows), mesh.size),
                                        block_rows(n_cand)), bucket=True, **opts)
      rows = rows[short]
  n_w = n_w[:, None, None]
  return 2.0 / n_w * sums.transpose(2, 0, 1) / (n_w * k)  # as `ranks_to_imbalance`
