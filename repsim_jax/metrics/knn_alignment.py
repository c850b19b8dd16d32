"""Mutual k-NN alignment and CKNNA (Huh et al. 2024), as in the platonic-rep reference code.

Conventions (github.com/minyoungg/platonic-rep, `metrics.py` and `measure_alignment.py`):

* neighbours by inner product of the features, self excluded; with `normalize=True` (default)
  rows are L2-normalised first, as `measure_alignment.compute_score` does, so this is cosine;
* ties between equal similarities: the lower row index wins (`jax.lax.top_k`), deterministic and
  identical on any device count (the reference's torch argsort leaves them unspecified);
* mutual k-NN: mean over rows of |N_k^a(i) ∩ N_k^b(i)| / k;
* CKNNA: HSIC restricted to the mutual neighbour mask M = M_K ∘ M_L (row-wise k-NN indicator
  matrices), unbiased HSIC of (M∘K, M∘L) (Song et al. eq. 5, as the reference writes it), and
  CKNNA = s(K, L) / (sqrt(s(K, K) s(L, L)) + 1e-6), the reference's 1e-6 included. The product
  s(K, K) s(L, L) is clipped at 0 before the square root (the masked matrices are not symmetric,
  so rounding or the estimator can make it negative; the reference would return NaN).

Memory: mutual k-NN streams row blocks ([block, n] similarities), O(n k) per layer; CKNNA keeps
dense [n, n] Gram matrices per layer, like the reference.

References:
  Huh, Cheung, Wang, Isola. The Platonic Representation Hypothesis. ICML 2024.
  Song, Smola, Gretton, Bedo, Borgwardt. Feature Selection via Dependence Maximization. JMLR 2012.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.metrics.kernel_alignment import resolve_hsic
from repsim_jax.metrics.validation import as_layer, check_rows, layer_lists

_HI = jax.lax.Precision.HIGHEST


def _prepare(x: jax.Array, normalize: bool) -> jax.Array:
  if not normalize:
    return x
  norm = jnp.linalg.norm(x, axis=1, keepdims=True)
  return x / jnp.where(norm > 0, norm, 1.0)  # zero rows stay zero instead of NaN


@functools.partial(jax.jit, static_argnames=("k", "normalize", "include_self"))
def _knn_block(x, start, block_rows, *, k, normalize, include_self):
  """Top-k neighbours (by inner product) of rows start..start+len(block_rows) of x."""
  x = _prepare(x, normalize)
  q = _prepare(block_rows, normalize)
  sims = jnp.matmul(q, x.T, precision=_HI)
  if not include_self:
    own = start + jnp.arange(q.shape[0])
    sims = sims.at[jnp.arange(q.shape[0]), own].set(-jnp.inf)
  return jax.lax.top_k(sims, k)[1]


def knn_indices(x: Any, *, k: int, normalize: bool = True, include_self: bool = False,
                block_size: int = 4096) -> jax.Array:
  """x: [n, d] -> [n, k] int indices of each row's k most similar rows (inner product).

  Streams blocks of `block_size` query rows, so memory is O(block_size * n).
  """
  x = as_layer(x, "x")
  n = x.shape[0]
  if not 1 <= k <= (n if include_self else n - 1):
    raise ValueError(f"k: expected 1 <= k <= {n - (0 if include_self else 1)} for n={n}, got {k}")
  blocks = []
  for start in range(0, n, block_size):
    blocks.append(_knn_block(x, start, x[start:start + block_size], k=k, normalize=normalize,
                             include_self=include_self))
  return jnp.concatenate(blocks)


@jax.jit
def knn_overlap(ia, ib):
  """[n, k] x [n, k] neighbour lists -> mean over rows of |intersection| / k (0-d)."""
  hits = jnp.sum(ia[:, :, None] == ib[:, None, :], axis=(1, 2))
  return jnp.mean(hits / ia.shape[1])


def mutual_knn(x: Any, y: Any, *, k: int = 10, normalize: bool = True) -> jax.Array:
  """Mutual k-NN alignment of Huh et al. 2024.

  Args:
    x: [n, d_x]; y: [n, d_y].
    k: neighbours per row (self excluded).
    normalize: L2-normalise rows first (cosine neighbours), as the reference pipeline does.

  Returns:
    0-d array in [0, 1]: (1/n) sum_i |N_k^x(i) ∩ N_k^y(i)| / k.
  """
  x, y = as_layer(x, "x"), as_layer(y, "y")
  check_rows([x.shape, y.shape], ["x", "y"], min_n=k + 1, why=f"k={k} neighbours")
  return knn_overlap(knn_indices(x, k=k, normalize=normalize),
                  knn_indices(y, k=k, normalize=normalize))


def mutual_knn_matrix(layers_a: Sequence[Any], layers_b: Sequence[Any], *, k: int = 10,
                      normalize: bool = True) -> np.ndarray:
  """[La, Lb] mutual k-NN alignment; each layer's neighbour lists computed once."""
  layers_a, layers_b, same = layer_lists(layers_a, layers_b, min_n=k + 1,
                                         why=f"k={k} neighbours")
  ia = jnp.stack([knn_indices(x, k=k, normalize=normalize) for x in layers_a])
  ib = ia if same else jnp.stack([knn_indices(x, k=k, normalize=normalize) for x in layers_b])
  out = jax.jit(jax.vmap(jax.vmap(knn_overlap, (None, 0)), (0, None)))(ia, ib)
  return np.asarray(out, np.float64)


# --- CKNNA --------------------------------------------------------------------------------------

def _hsic_unbiased(a, b):
  """Song et al. 2012 eq. 5 on (possibly non-symmetric) a, b: [m, m], as in platonic-rep."""
  m = a.shape[0]
  eye = jnp.eye(m, dtype=bool)
  a, b = jnp.where(eye, 0.0, a), jnp.where(eye, 0.0, b)
  value = (jnp.sum(a * b.T) + jnp.sum(a) * jnp.sum(b) / ((m - 1) * (m - 2))
           - 2.0 * jnp.dot(jnp.sum(a, axis=0), jnp.sum(b, axis=1), precision=_HI) / (m - 2))
  return value / (m * (m - 3))


def _hsic_biased(a, b):
  m = a.shape[0]
  h = jnp.eye(m, dtype=a.dtype) - 1.0 / m
  ah = jnp.matmul(a, h, precision=_HI)
  bh = jnp.matmul(b, h, precision=_HI)
  return jnp.sum(ah * bh.T)  # trace(A H B H)


@functools.partial(jax.jit, static_argnames=("k", "normalize", "unbiased"))
def _gram_and_mask(x, *, k, normalize, unbiased):
  x = _prepare(x, normalize)
  gram = jnp.matmul(x, x.T, precision=_HI)
  n = x.shape[0]
  sims = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, gram) if unbiased else gram
  idx = jax.lax.top_k(sims, k)[1]
  mask = jnp.zeros((n, n), bool).at[jnp.arange(n)[:, None], idx].set(True)
  return gram, mask


@functools.partial(jax.jit, static_argnames=("unbiased",))
def _masked_hsic(ka, ma, kb, mb, *, unbiased):
  mask = jnp.logical_and(ma, mb)
  hsic = _hsic_unbiased if unbiased else _hsic_biased
  return hsic(jnp.where(mask, ka, 0.0), jnp.where(mask, kb, 0.0))


def _cknna_ratio(kl, kk, ll):
  return kl / (jnp.sqrt(jnp.maximum(kk * ll, 0.0)) + 1e-6)


def cknna(x: Any, y: Any, *, k: int = 10, normalize: bool = True, hsic: str | None = None,
          unbiased: bool | None = None) -> jax.Array:
  """CKNNA of Huh et al. 2024: CKA restricted to mutual k-nearest neighbours.

  Args:
    x: [n, d_x]; y: [n, d_y].
    k: neighbours per row (>= 2, as the reference requires); self excluded when unbiased.
    normalize: L2-normalise rows first (the reference pipeline does).
    hsic: "song", the unbiased HSIC (reference default), or "gretton", the biased
      trace(A H B H); unbiased: its deprecated form (True: "song").

  Returns:
    0-d array: s(K, L) / (sqrt(s(K, K) s(L, L)) + 1e-6), s = HSIC of the masked Gram matrices.
    `repsim_jax.cknna` returns it as a Python float.
  """
  unbiased = resolve_hsic(hsic, unbiased, old_name="unbiased", default="song", where="cknna")
  x, y = as_layer(x, "x"), as_layer(y, "y")
  _check_cknna(k)
  check_rows([x.shape, y.shape], ["x", "y"], min_n=max(k + 1, 4), why=f"CKNNA with k={k}")
  opts = dict(k=k, normalize=normalize, unbiased=unbiased)
  gx, gy = _gram_and_mask(x, **opts), _gram_and_mask(y, **opts)
  hs = functools.partial(_masked_hsic, unbiased=unbiased)
  return _cknna_ratio(hs(*gx, *gy), hs(*gx, *gx), hs(*gy, *gy))


def cknna_matrix(layers_a: Sequence[Any], layers_b: Sequence[Any], *, k: int = 10,
                 normalize: bool = True, hsic: str | None = None,
                 unbiased: bool | None = None) -> np.ndarray:
  """[La, Lb] CKNNA; each layer's Gram matrix, neighbour mask and self term computed once."""
  unbiased = resolve_hsic(hsic, unbiased, old_name="unbiased", default="song",
                          where="cknna_matrix")
  ga, gb, self_a, self_b, _ = _cknna_parts(layers_a, layers_b, k=k, normalize=normalize,
                                           unbiased=unbiased)
  hs = functools.partial(_masked_hsic, unbiased=unbiased)
  out = np.zeros((len(ga), len(gb)))
  for i, g in enumerate(ga):
    for j, h in enumerate(gb):
      out[i, j] = _cknna_ratio(hs(*g, *h), self_a[i], self_b[j])
  return out


def _cknna_parts(layers_a, layers_b, *, k, normalize, unbiased):
  """Checked inputs -> (Gram and mask of each layer of A, of B, self terms of A, of B, n)."""
  _check_cknna(k)
  layers_a, layers_b, same = layer_lists(layers_a, layers_b, min_n=max(k + 1, 4),
                                         why=f"CKNNA with k={k}")
  opts = dict(k=k, normalize=normalize, unbiased=unbiased)
  ga = [_gram_and_mask(x, **opts) for x in layers_a]
  gb = ga if same else [_gram_and_mask(x, **opts) for x in layers_b]
  hs = functools.partial(_masked_hsic, unbiased=unbiased)
  self_a = [hs(*g, *g) for g in ga]
  self_b = self_a if same else [hs(*g, *g) for g in gb]
  return ga, gb, self_a, self_b, layers_a[0].shape[0]


def cknna_layer(x: Any, *, k: int = 10, normalize: bool = True, unbiased: bool = True):
  """One layer's CKNNA preparation: (Gram [n, n], k-NN mask [n, n], masked self-HSIC 0-d)."""
  _check_cknna(k)
  x = as_layer(x, "x")
  check_rows([x.shape], ["x"], min_n=max(k + 1, 4), why=f"CKNNA with k={k}")
  gram, mask = _gram_and_mask(x, k=k, normalize=normalize, unbiased=unbiased)
  return gram, mask, _masked_hsic(gram, mask, gram, mask, unbiased=unbiased)


def cknna_prepared(pa, pb, *, unbiased: bool = True) -> jax.Array:
  """CKNNA (0-d) of two `cknna_layer` preparations of the same n inputs."""
  cross = _masked_hsic(pa[0], pa[1], pb[0], pb[1], unbiased=unbiased)
  return _cknna_ratio(cross, pa[2], pb[2])


def _check_cknna(k: int) -> None:
  if k < 2:
    raise ValueError(f"k: CKNNA needs k >= 2, got {k}")



# --- Permutation nulls (image correspondence shuffled), for `calibration.permutation_test` -----

def _check_perms(perms, n: int) -> np.ndarray:
  perms = np.asarray(perms)
  if (perms.ndim != 2 or perms.shape[1] != n
      or not np.all(np.sort(perms, axis=1) == np.arange(n))):
    raise ValueError(f"perms: expected permutations of range({n}) as rows [P, {n}], got "
                     f"{perms.dtype} {perms.shape}")
  return np.concatenate([np.arange(n)[None], perms]).astype(np.int32)  # identity first


@jax.jit
def _permuted_overlaps(ia, ib, perms, inverse):
  """[La, n, k], [Lb, n, k] lists; Y[perm] has neighbours inverse[ib[:, perm]] -> [p, La, Lb]."""
  def one(args):
    perm, inv = args
    permuted = inv[ib[:, perm]]
    return jax.vmap(jax.vmap(knn_overlap, (None, 0)), (0, None))(ia, permuted)
  return jax.lax.map(one, (perms, inverse))


def mutual_knn_permutation_null(layers_a: Sequence[Any], layers_b: Sequence[Any], perms, *,
                                k: int = 10, normalize: bool = True
                                ) -> tuple[np.ndarray, np.ndarray]:
  """Mutual k-NN of (layers_a[i], layers_b[j][perm]) for each permutation, and the observed.

  Each layer's neighbour lists are computed once; under a permutation pi the neighbours of row i
  in Y[pi] are pi^-1 of Y's neighbours of pi(i), a gather (ties between equal similarities keep
  the unpermuted order's lowest-index rule). One permutation costs La Lb n k^2 comparisons.

  Returns:
    (observed float64 [La, Lb], null float64 [P, La, Lb]).
  """
  layers_a, layers_b, same = layer_lists(layers_a, layers_b, min_n=k + 1,
                                         why=f"k={k} neighbours")
  perms = _check_perms(perms, layers_a[0].shape[0])
  ia = jnp.stack([knn_indices(x, k=k, normalize=normalize) for x in layers_a])
  ib = ia if same else jnp.stack([knn_indices(x, k=k, normalize=normalize) for x in layers_b])
  out = np.asarray(_permuted_overlaps(ia, ib, perms, jnp.argsort(perms, axis=1)), np.float64)
  return out[0], out[1:]


@functools.partial(jax.jit, static_argnames=("unbiased",))
def _permuted_masked_hsic(ka, ma, kb, mb, perms, *, unbiased):
  def one(perm):
    return _masked_hsic(ka, ma, kb[perm][:, perm], mb[perm][:, perm], unbiased=unbiased)
  return jax.lax.map(one, perms)


def cknna_permutation_null(layers_a: Sequence[Any], layers_b: Sequence[Any], perms, *,
                           k: int = 10, normalize: bool = True, hsic: str | None = None,
                           unbiased: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
  """CKNNA of (layers_a[i], layers_b[j][perm]) for each permutation, and the observed.

  Gram matrices, neighbour masks and self terms are computed once per layer (the self terms do
  not change when both of their arguments are permuted); a permutation gathers B's Gram and mask
  (ties as in `mutual_knn_permutation_null`) and costs one masked HSIC, O(n^2), per pair.

  Returns:
    (observed float64 [La, Lb], null float64 [P, La, Lb]).
  """
  unbiased = resolve_hsic(hsic, unbiased, old_name="unbiased", default="song",
                          where="cknna_permutation_null")
  ga, gb, self_a, self_b, n = _cknna_parts(layers_a, layers_b, k=k, normalize=normalize,
                                           unbiased=unbiased)
  perms = _check_perms(perms, n)
  out = np.zeros((len(perms), len(ga), len(gb)))
  for i, g in enumerate(ga):
    for j, h in enumerate(gb):
      cross = _permuted_masked_hsic(*g, *h, jnp.asarray(perms), unbiased=unbiased)
      out[:, i, j] = np.asarray(_cknna_ratio(cross, self_a[i], self_b[j]), np.float64)
  return out[0], out[1:]
