"""Permutation null of information imbalance: every permutation counted inside the same pass.

Permuting the image correspondence between the spaces (row i of B becomes B[pi(i)]) turns
Delta(A -> B) into

  Delta_pi(A -> B) = 2 / (N^2 k) * sum_i sum_{j in nn_A(i)} r_B(pi(i), pi(j)),

the rank of pi(j) among the points of B seen from pi(i). For a block of B's rows u, the scores of
row u are all that is needed for every permutation: the targets pi(j), j in nn_A(pi^-1(u)), are
gathered from A's neighbour lists (computed once), and their ranks are read off the sorted row
with `searchsorted` (ties "min": the number of points strictly closer; "average": also those
equal). So P permutations cost La + Lb distance passes in all, like the plain two-phase matrix,
plus per row and b-layer one sort of the row (N log N) and (P + 1) La k binary searches, next to
the N d multiply-adds of its distances. The observed matrix (identity) comes out of the same pass
and equals `information_imbalance_matrix` exactly; rank sums are exact integers, identical on any
number of devices.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax import sharding
from repsim_jax.metrics import _blocked, distances, validation
from repsim_jax.metrics.neighbours import knn

__all__ = ["imbalance_permutation_null"]

_TIES = ("min", "average")


def _null_rank_block(query_idx, points, sqnorm, nn, perms, inverse, *, metric, ties):
  """Block sums [1, P + 1, La] of the B-ranks of A's neighbours, identity first."""
  scores = distances.score_block(query_idx, points, sqnorm, metric=metric)  # self: +inf
  rows = jnp.maximum(query_idx, 0)
  permuted = jax.vmap(lambda p, inv: p[nn[inv[rows]]])(perms, inverse)  # [P, b, La, k]
  targets = jnp.concatenate([nn[rows][None], permuted])  # [P + 1, b, La, k]
  n_p, b, n_a, k = targets.shape
  targets = targets.transpose(1, 0, 2, 3).reshape(b, -1)
  keys = distances.order_keys(scores)
  values = jnp.take_along_axis(keys, targets, axis=1)
  srt = jax.lax.sort(keys, dimension=1, is_stable=False)
  closer = jax.vmap(lambda s, v: jnp.searchsorted(s, v, side="left"))(srt, values)
  if ties == "min":
    ranks = 1 + closer
  else:  # twice the average rank, an integer: 2 (1 + closer + (equal - 1) / 2)
    upto = jax.vmap(lambda s, v: jnp.searchsorted(s, v, side="right"))(srt, values)
    ranks = 1 + closer + upto
  ranks = jnp.where((query_idx >= 0)[:, None], ranks, 0).reshape(b, n_p, n_a, k)
  return jnp.sum(ranks, axis=(0, 3), dtype=jnp.int32)[None]


def imbalance_permutation_null(layers_a: Sequence, layers_b: Sequence | None, perms, *,
                               k: int = 1, metric: str = "euclidean", ties: str = "min",
                               mesh=None, block_size: int | None = None,
                               memory_budget_bytes: int | None = None,
                               dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
  """Delta(layers_a[i] -> layers_b[j][perm]) for every permutation, and the observed matrix.

  Args:
    layers_a, layers_b: as in `information_imbalance_matrix` ([N, d_l]; layers_b None:
      layers_a).
    perms: [P, N] permutations of range(N) (e.g. `calibration.permutations`); permutation p
      pairs image i of A with image perms[p, i] of B.
    k, metric, ties, mesh, block_size, memory_budget_bytes, dtype: as in
      `information_imbalance_matrix`.

  Returns:
    (observed float64 [La, Lb], null float64 [P, La, Lb]).
  """
  distances.check_metric(metric)
  if ties not in _TIES:
    raise ValueError(f"ties must be one of {_TIES}, got {ties!r}")
  same = layers_b is None or layers_b is layers_a
  layers_a = validation.as_layers(layers_a, "layers_a")
  layers_b = layers_a if same else validation.as_layers(layers_b, "layers_b")
  n = validation.check_same_n([layers_a[0], layers_b[0]], ["layers_a", "layers_b"])
  validation.check_k(k, n)
  perms = np.asarray(perms)
  if (perms.ndim != 2 or perms.shape[1] != n
      or not np.all(np.sort(perms, axis=1) == np.arange(n))):
    raise ValueError(f"perms: expected permutations of range({n}) as rows [P, {n}], got "
                     f"{perms.dtype} {perms.shape}")
  mesh = sharding.row_mesh() if mesh is None else mesh
  scale = 2 if ties == "average" else 1
  # Block sums stay below 2^31: block * k ranks of at most scale * N each.
  cap = (2 ** 31 - 1) // (scale * k * n)
  if cap < 8:
    raise ValueError(f"N={n}, k={k}: rank sums overflow the exact int32 block sums")
  inverse = np.argsort(perms, axis=1).astype(np.int32)
  with _blocked.float_scope(dtype):
    nn = np.stack([knn(x, k, metric=metric, mesh=mesh, dtype=dtype)[1] for x in layers_a],
                  axis=1).astype(np.int32)  # [N, La, k]
    per_row = (len(perms) + 1) * len(layers_a) * k * 4 * 4  # targets, values, ranks per row
    budget = (memory_budget_bytes or _blocked.DEFAULT_MEMORY_BUDGET_BYTES) // 2
    bs = _blocked.choose_block_size(n, n, mesh.size, block_size=block_size,
                                    itemsize=np.dtype(dtype).itemsize,
                                    memory_budget_bytes=budget)
    bs = max(8, min(bs, budget // per_row // 8 * 8, cap // 8 * 8))
    sums = []
    for y in layers_b:
      points, sqnorm = distances.prepare(y, metric, dtype)
      out = _blocked.map_row_blocks(
          _null_rank_block, np.arange(n), (), (points, sqnorm, nn, perms.astype(np.int32),
                                               inverse),
          mesh=mesh, block_size=bs, per_block=True, static=dict(metric=metric, ties=ties))
      sums.append(np.asarray(out, np.int64).sum(axis=0))  # [P + 1, La]
  delta = 2.0 / n * np.stack(sums, axis=2) / (scale * n * k)  # as `ranks_to_imbalance`
  return delta[0], delta[1:]
