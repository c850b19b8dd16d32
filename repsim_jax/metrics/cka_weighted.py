"""Linear CKA of resampled data sets (bootstrap, subsets), all replicates in one pass over rows.

A replicate is a vector of integer image weights w (how often each image was drawn; 0/1 for a
subset); its CKA is `cka_matrix` on the resampled rows X[idx] (biased HSIC, or the debiased HSIC_1
of Song et al. 2012 as in `cka`), duplicates being distinct samples as in any bootstrap. With K, L
the linear Gram matrices of two layers (features centred once: CKA is translation invariant),
every term of HSIC on the resample is a weighted sum over image pairs:

  sum_{p != q} K*_pq L*_pq = sum_{i != j} w_i w_j K_ij L_ij + sum_i w_i (w_i - 1) K_ii L_ii
  (K*1)_p = sum_{j != i} w_j K_ij + w_i K_ii      (K~1)_p = sum_{j != i} w_j K_ij + (w_i - 1) K_ii

and so on (K* the resampled Gram, K~ it with a zero diagonal, p a copy of image i). The pairwise
term sum_{i != j} w_i w_j K_ij L_ij is the costly one: for a block of rows, each layer's Gram rows
[b, N] are computed once, and (K_i. * L_i.) @ W [N, R] serves all R replicates. Cost per pair:
N^2 R multiply-adds in matmuls; the feature-space form ||X^T diag(w) Y||^2 would cost
N d_x d_y R, more whenever d_x d_y > N. The diagonal is kept out of the matmul so that the
debiased estimate does not subtract two large numbers.

Memory per device: every layer's points plus a few [block, N] Gram rows per layer. Sums are
float32 within a block and float64 across blocks: results agree across device counts to float32
rounding (not bitwise, unlike the integer II kernels); dtype=np.float64 for reference runs.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax import sharding
from repsim_jax.metrics import _blocked
from repsim_jax.metrics.validation import as_layer_list
from repsim_jax.metrics.kernel_alignment import center_features, resolve_hsic

__all__ = ["weighted_cka"]

_HI = jax.lax.Precision.HIGHEST


def _hsic_terms_block(query_idx, *args, a_ids, b_ids, debiased):
  """Block sums [1, P, R] of the pairwise, diagonal and cross terms, and [1, U, R] row totals.

  Pairs P: every (a, b), then every distinct layer with itself (the CKA denominators).
  """
  *layers, weights = args
  rows = jnp.maximum(query_idx, 0)
  w_query = jnp.where((query_idx >= 0)[:, None], weights[rows], 0)  # [b, R]
  c = w_query - 1 if debiased else w_query  # the diagonal's multiplicity (see the docstring)
  off = jnp.arange(weights.shape[0])[None, :] != query_idx[:, None]
  grams, diags, k_hat = [], [], []
  for x in layers:
    g = jnp.where(off, jnp.matmul(x[rows], x.T, precision=_HI), 0)  # [b, N], diagonal zeroed
    d = jnp.sum(x[rows] * x[rows], axis=1)
    grams.append(g)
    diags.append(d)
    k_hat.append(jnp.matmul(g, weights, precision=_HI) + c * d[:, None])
  pairs = [(a, b) for a in a_ids for b in b_ids] + [(u, u) for u in range(len(layers))]
  pairwise = jnp.stack([jnp.sum(w_query * jnp.matmul(grams[a] * grams[b], weights,
                                                     precision=_HI), axis=0)
                        for a, b in pairs])
  diagonal = jnp.stack([jnp.sum(w_query * c * (diags[a] * diags[b])[:, None], axis=0)
                        for a, b in pairs])
  cross = jnp.stack([jnp.sum(w_query * k_hat[a] * k_hat[b], axis=0) for a, b in pairs])
  totals = jnp.stack([jnp.sum(w_query * k, axis=0) for k in k_hat])
  return pairwise[None], diagonal[None], cross[None], totals[None]


def weighted_cka(layers_a: Sequence, layers_b: Sequence | None, weights, *,
                 hsic: str | None = None, mesh=None, block_size: int | None = None,
                 memory_budget_bytes: int | None = None, dtype=np.float32,
                 debiased: bool | None = None) -> np.ndarray:
  """Linear CKA(layers_a[i][idx], layers_b[j][idx]) for every replicate: float64 [R, La, Lb].

  Args:
    layers_a, layers_b: sequences of [N, d_l] arrays (layers_b None: layers_a).
    weights: [R, N] non-negative integers (replicate r holds image i weights[r, i] times),
      at least 4 images per replicate when debiased.
    hsic: "song" (default), HSIC_1 (Song et al. 2012) as `cka_matrix`, or "gretton", the
      biased HSIC; debiased: its deprecated form (True: "song").
    mesh, block_size, memory_budget_bytes: the row-block engine (rows sharded over devices).
    dtype: np.float32 (default) or np.float64.

  Returns:
    float64 [R, La, Lb]; 0 where a layer is constant on the replicate (as `cka_matrix`).
  """
  debiased = resolve_hsic(hsic, debiased, old_name="debiased", default="song",
                          where="weighted_cka")
  same = layers_b is None or layers_b is layers_a
  layers_a = as_layer_list(layers_a, "layers_a")
  layers_b = layers_a if same else as_layer_list(layers_b, "layers_b")
  n = layers_a[0].shape[0]
  for name, x in [(f"layers_a[{i}]", x) for i, x in enumerate(layers_a)] + [
      (f"layers_b[{j}]", y) for j, y in enumerate(layers_b)]:
    if x.shape[0] != n:
      raise ValueError(f"{name}: {x.shape[0]} rows, expected N={n} like layers_a[0]")
  weights = np.asarray(weights)
  if (weights.ndim != 2 or weights.shape[1] != n or not np.issubdtype(weights.dtype, np.integer)
      or weights.min() < 0):
    raise ValueError(f"weights: expected non-negative integers [R, N={n}], got {weights.dtype} "
                     f"{weights.shape}")
  n_w = weights.sum(axis=1).astype(np.float64)
  if n_w.min() < (4 if debiased else 2):
    raise ValueError(f"weights: a replicate holds {int(n_w.min())} samples; "
                     f"{'debiased' if debiased else 'biased'} CKA needs at least "
                     f"{4 if debiased else 2}")
  union = list({id(x): x for x in layers_a + layers_b}.values())
  a_ids = tuple(next(u for u, x in enumerate(union) if x is y) for y in layers_a)
  b_ids = tuple(next(u for u, x in enumerate(union) if x is y) for y in layers_b)
  mesh = sharding.row_mesh() if mesh is None else mesh
  with _blocked.float_scope(dtype):
    points = [np.asarray(center_features(jnp.asarray(np.asarray(x), dtype)), dtype) for x in union]
    for u, x in enumerate(points):
      if not np.all(np.isfinite(x)):
        raise ValueError(f"layer {u}: contains NaN or infinite values")
    budget = (memory_budget_bytes or _blocked.DEFAULT_MEMORY_BUDGET_BYTES) // (len(union) + 2)
    bs = _blocked.choose_block_size(n, n, mesh.size, block_size=block_size,
                                    itemsize=np.dtype(dtype).itemsize,
                                    memory_budget_bytes=budget)
    pairwise, diagonal, cross, totals = _blocked.map_row_blocks(
        _hsic_terms_block, np.arange(n), (), (*points, weights.T.astype(dtype)), mesh=mesh,
        block_size=bs, per_block=True,
        static=dict(a_ids=a_ids, b_ids=b_ids, debiased=bool(debiased)))
  pairwise, diagonal, cross, totals = (np.asarray(v, np.float64).sum(axis=0)
                                       for v in (pairwise, diagonal, cross, totals))
  pair_tot = np.array([(a, b) for a in a_ids for b in b_ids] + [(u, u) for u in range(len(union))])
  t_a, t_b = totals[pair_tot[:, 0]], totals[pair_tot[:, 1]]  # [P, R]
  trace = pairwise + diagonal
  if debiased:  # n (n - 3) HSIC_1 (Song et al. 2012, eq. 5): the factor cancels in the ratio
    hsic = trace + t_a * t_b / ((n_w - 1) * (n_w - 2)) - 2.0 / (n_w - 2) * cross
  else:  # n^2 HSIC_0 = tr(K H L H)
    hsic = trace - 2.0 / n_w * cross + t_a * t_b / n_w ** 2
  n_cross = len(a_ids) * len(b_ids)
  num = hsic[:n_cross].reshape(len(a_ids), len(b_ids), -1)
  self_terms = np.maximum(hsic[n_cross:], 0.0)  # [U, R]: squared norms, rounding clipped
  den = np.sqrt(self_terms[list(a_ids)][:, None] * self_terms[list(b_ids)][None, :])
  out = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
  return out.transpose(2, 0, 1)
