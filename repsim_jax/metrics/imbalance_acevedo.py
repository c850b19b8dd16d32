"""Information imbalance in the convention of Acevedo et al. (2025): queries against a held-out set.

The query rows Q (by default 500 of the N points, or 20% of N when N < 2500, drawn with a seed)
are ranked against the disjoint reference points R (all the others, n_ref = N - |Q|):

  r^X_ij = rankdata(d^X(i, R), method="min")[j] - 1   (0-based: the nearest point has rank 0,
                                                       tied points share the lowest rank)
  Delta(A -> B) = 2 / (n_ref - 1) * mean of r^B_ij over every pair (i in Q, j in R) with
                  r^A_ij < k  (k = 1: every tied nearest neighbour of i in A counts)

The mean runs over pairs, so a query with three tied nearest neighbours weighs three times. This
is a transcription of `get_relative_ranks` / `build_information_imbalance` in the authors' code
with the query split of their paper; `information_imbalance(..., convention="acevedo")` is the
public entry point, next to DADApy's convention (see `imbalance.information_imbalance`).

One pass per distinct layer: for a block of query rows every layer's scores against all points
are computed once; non-reference columns are masked, the a-layers give the neighbour masks (all
scores <= the k-th smallest), the b-layers the 0-based min-ranks (a sort of the row's order keys
and `searchsorted`), and the rank sums of every (a, b) pair are one exact matmul of the masks with the
ranks split into base-256 digits (integers below 2^24 in float32, so the sums are exact).

References:
  Acevedo, Mascaretti, Rende, Mahaut, Baroni, Laio. "An approach to identify the most semantically
  informative deep representations of text and images." arXiv:2505.17101, 2025.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax import sharding
from repsim_jax.metrics import _blocked, distances
from repsim_jax.metrics import neighbours as neighbours_lib

__all__ = ["default_query_rows", "acevedo_rank_sums"]

_DIGIT = 256  # ranks are split into base-256 digits for the exact float matmul


def default_query_rows(n: int, seed: int = 0) -> np.ndarray:
  """The paper's query rows: 500 of n points (20% of n, floored, when n < 2500), sorted.

  Drawn like the authors' `separate_samples(jax.random.PRNGKey(seed), n)`: the key is split once
  and the rows are `jax.random.choice(subkey, n, (n_query,), replace=False)`.
  """
  n_query = 500 if n >= 2500 else int(np.floor(0.2 * n))
  if n_query < 1 or n - n_query < 2:
    raise ValueError(f"convention='acevedo': N={n} points give {n_query} query rows and "
                     f"{n - n_query} reference points; needs at least 1 and 2 (N >= 5)")
  _, subkey = jax.random.split(jax.random.PRNGKey(seed))
  rows = jax.random.choice(subkey, n, shape=(n_query,), replace=False)
  return np.sort(np.asarray(rows, np.int64))


def check_query_rows(query_rows, n: int) -> np.ndarray:
  """Explicit query rows: distinct integer indices in [0, n) leaving at least 2 reference points."""
  rows = np.asarray(query_rows)
  if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
    raise ValueError(f"query_rows: expected a 1-D array of row indices, got {rows.dtype} "
                     f"{rows.shape}")
  if rows.size == 0 or rows.min() < 0 or rows.max() >= n:
    raise ValueError(f"query_rows: expected at least one index in [0, {n}), got "
                     f"{rows.size} indices" + (f" in [{rows.min()}, {rows.max()}]" if rows.size
                                               else ""))
  if len(np.unique(rows)) != rows.size:
    raise ValueError(f"query_rows: {rows.size - len(np.unique(rows))} repeated indices; query "
                     f"rows must be distinct")
  if n - rows.size < 2:
    raise ValueError(f"query_rows: {rows.size} query rows leave {n - rows.size} reference "
                     f"points of N={n}; the convention needs at least 2")
  return np.sort(rows.astype(np.int64))


def _acevedo_block(query_idx, is_ref, *layers, metric, k, a_ids, b_ids, n_digits):
  """Neighbour counts [b, La] and digit-wise rank sums [b, La, Lb * n_digits] of a query block."""
  scores = [jnp.where(is_ref[None, :],
                      distances.score_block(query_idx, layers[2 * u], layers[2 * u + 1],
                                            metric=metric, exclude_self=False), jnp.inf)
            for u in range(len(layers) // 2)]
  masks = []
  for u in a_ids:
    kth = neighbours_lib.smallest_k(scores[u], k)[0][:, k - 1:]
    masks.append(scores[u] <= kth)  # rank < k: fewer than k reference points strictly closer
  masks = jnp.stack(masks, axis=1)  # [b, La, N]
  counts = jnp.sum(masks, axis=2, dtype=jnp.int32)
  digits = []
  for v in b_ids:
    keys = distances.order_keys(scores[v])
    ranks = jax.vmap(lambda row, srt: jnp.searchsorted(srt, row, side="left"))(
        keys, jax.lax.sort(keys, dimension=1, is_stable=False))  # 0-based min-rank: # closer
    digits += [(ranks >> (8 * p)) & (_DIGIT - 1) for p in range(n_digits)]
  dtype = scores[0].dtype
  digits = jnp.stack(digits, axis=1).astype(dtype)  # [b, Lb * n_digits, N]
  sums = jnp.einsum("ban,bcn->bac", masks.astype(dtype), digits,
                    precision=jax.lax.Precision.HIGHEST)
  return counts, sums.astype(jnp.int32)


def acevedo_rank_sums(union: Sequence[np.ndarray], a_ids: Sequence[int], b_ids: Sequence[int],
                      query_rows: np.ndarray, *, k: int, metric: str, mesh=None,
                      block_size: int | None = None, memory_budget_bytes: int | None = None,
                      dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
  """Rank sums and pair counts of the Acevedo convention, exact integers.

  Args:
    union: the distinct layers [N, d_u] (validated); a_ids, b_ids: positions of the predicting
      and predicted layers among them.
    query_rows: sorted distinct row indices (see `default_query_rows`, `check_query_rows`).
    k, metric, mesh, block_size, memory_budget_bytes, dtype: as in
      `information_imbalance_matrix`.

  Returns:
    (sums [La, Lb] int64: the 0-based B-ranks summed over all neighbour pairs,
     counts [La] int64: the number of (query, neighbour) pairs of each a-layer).
    Delta = 2 * sums / (counts[:, None] * (n_ref - 1)).
  """
  n = len(union[0])
  n_ref = n - len(query_rows)
  if not 1 <= k <= n_ref:
    raise ValueError(f"k={k}: the Acevedo convention needs 1 <= k <= n_ref={n_ref} reference "
                     f"points")
  if n_ref >= _DIGIT ** 3:
    raise ValueError(f"convention='acevedo' supports up to {_DIGIT ** 3} reference points, got "
                     f"{n_ref}")
  n_digits = max(1, int(np.ceil(np.log(n_ref) / np.log(_DIGIT))))
  mesh = sharding.row_mesh() if mesh is None else mesh
  is_ref = np.ones(n, bool)
  is_ref[query_rows] = False
  with _blocked.float_scope(dtype):
    operands = []
    for u, x in enumerate(union):
      operands += distances.prepare(x, metric, dtype, name=f"layer {u}")
    per_row = len(union) + len(a_ids) + n_digits * len(b_ids)  # [b, N] arrays alive per block
    budget = (memory_budget_bytes or _blocked.DEFAULT_MEMORY_BUDGET_BYTES) * 4 // per_row
    bs = _blocked.choose_block_size(n, len(query_rows), mesh.size, block_size=block_size,
                                    itemsize=np.dtype(dtype).itemsize,
                                    memory_budget_bytes=budget)
    counts, sums = _blocked.map_row_blocks(
        _acevedo_block, query_rows, (), (is_ref, *operands), mesh=mesh, block_size=bs,
        static=dict(metric=metric, k=int(k), a_ids=tuple(a_ids), b_ids=tuple(b_ids),
                    n_digits=n_digits))
  counts = np.asarray(counts, np.int64)
  # Each digit sum is exact while it stays below 2^24 (float32 mantissa): count * 255 < 2^24.
  if np.dtype(dtype) == np.float32 and counts.max() * (_DIGIT - 1) >= 2 ** 24:
    raise ValueError(f"convention='acevedo': a query row has {counts.max()} tied neighbours; "
                     f"exact float32 rank sums support up to {2 ** 24 // (_DIGIT - 1)}; use "
                     f"dtype=np.float64")
  sums = np.asarray(sums, np.int64).reshape(len(query_rows), len(a_ids), len(b_ids), n_digits)
  sums = (sums * _DIGIT ** np.arange(n_digits)).sum(axis=(0, 3))
  return sums, counts.sum(axis=0)
