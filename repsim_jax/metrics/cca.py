"""SVCCA and PWCCA: canonical correlation analysis between representations.

Both start from the thin SVD of each column-centered representation, X_c = U S V^T. The
canonical correlations rho_1 >= rho_2 >= ... between X and Y are the singular values of
U_x^T U_y (the cosines of the principal angles between the column spaces), which avoids the
explicit inverse square roots of the covariance matrices and stays finite for rank-deficient X.

* SVCCA (Raghu et al. 2017): keep the leading singular directions of each representation that
  explain `keep` (default 0.99) of its variance, then the mean of the min(r_x, r_y) canonical
  correlations.
* PWCCA (Morcos et al. 2018): CCA on the full-rank part, then the projection-weighted mean
  sum_i alpha_i rho_i / sum_i alpha_i, alpha_i = sum_j |<h_i, x_j>| with h_i the unit-norm
  canonical variates of X and x_j the centered neurons (columns) of X. The weights come from X,
  so PWCCA is not symmetric. (The reference code takes |<h_i, x_j>| on the uncentered activations;
  we use centered ones, which makes the measure translation invariant.)

Rank: singular values below max(S) * max(n, d) * eps count as zero. CCA needs n > d to mean
anything: when the column spaces fill all n - 1 centered dimensions every correlation is 1.
A constant representation has rank 0: both measures return 0 for it.

References:
  Raghu, Gilmer, Yosinski, Sohl-Dickstein. SVCCA: Singular Vector Canonical Correlation Analysis
    for Deep Learning Dynamics and Interpretability. NeurIPS 2017.
  Morcos, Raghu, Bengio. Insights on representational similarity in neural networks with
    canonical correlation. NeurIPS 2018.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.metrics.validation import as_layer, check_rows, layer_lists
from repsim_jax.metrics.kernel_alignment import center_features

_HI = jax.lax.Precision.HIGHEST


@functools.partial(jax.jit, static_argnames=("keep",))
def _subspace(x, *, keep):
  """x: [n, d] -> (U masked [n, r], S masked [r], V^T [r, d], kept count), r = min(n, d)."""
  xc = center_features(x)
  u, s, vt = jnp.linalg.svd(xc, full_matrices=False)
  mask = s > s[0] * max(xc.shape) * jnp.finfo(s.dtype).eps
  if keep is not None:
    var = s ** 2
    total = jnp.sum(var)
    frac = jnp.cumsum(var) / jnp.where(total > 0, total, 1.0)
    count = jnp.sum(frac < keep) + 1  # smallest count reaching `keep` of the variance
    mask = jnp.logical_and(mask, jnp.arange(s.shape[0]) < count)
  return u * mask, s * mask, vt, jnp.sum(mask)


@jax.jit
def _svcca_pair(sa, sb):
  ua, ub = sa[0], sb[0]
  rho = jnp.clip(jnp.linalg.svd(jnp.matmul(ua.T, ub, precision=_HI), compute_uv=False), 0, 1)
  count = jnp.minimum(sa[3], sb[3])
  kept = jnp.arange(rho.shape[0]) < count
  return jnp.where(count > 0, jnp.sum(rho * kept) / jnp.maximum(count, 1), 0.0)


@jax.jit
def _pwcca_pair(sa, sb):
  ua, s, vt, count_a = sa
  p, rho, _ = jnp.linalg.svd(jnp.matmul(ua.T, sb[0], precision=_HI), full_matrices=False)
  rho = jnp.clip(rho, 0, 1)
  count = jnp.minimum(count_a, sb[3])
  # <h_i, x_j> = (P^T U^T X_c)_ij = (P^T S V^T)_ij with h = U P.
  alpha = jnp.sum(jnp.abs(jnp.matmul(p.T * s, vt, precision=_HI)), axis=1)
  alpha = alpha * (jnp.arange(alpha.shape[0]) < count)
  total = jnp.sum(alpha)
  return jnp.where(total > 0, jnp.sum(alpha * rho) / jnp.where(total > 0, total, 1.0), 0.0)


def cca_layer(x: Any, *, keep: float | None = None):
  """One layer's CCA preparation: the thin SVD of the centred x, truncated to `keep` of its
  variance (SVCCA) or to its numerical rank (keep None, PWCCA). A pytree for `svcca_prepared`
  / `pwcca_prepared`."""
  if keep is not None:
    _check_keep(keep)
    keep = float(keep)
  x = as_layer(x, "x")
  check_rows([x.shape], ["x"], min_n=2, why="CCA")
  return _subspace(x, keep=keep)


svcca_prepared = _svcca_pair  # (cca_layer(x, keep=...), cca_layer(y, keep=...)) -> 0-d
pwcca_prepared = _pwcca_pair  # (cca_layer(x), cca_layer(y)) -> 0-d, weights from x


def svcca(x: Any, y: Any, *, keep: float = 0.99) -> jax.Array:
  """SVCCA similarity: mean canonical correlation after SVD truncation to `keep` variance.

  Args:
    x: [n, d_x]; y: [n, d_y].
    keep: fraction of variance kept per representation, in (0, 1].

  Returns:
    0-d array in [0, 1]; 0 if either input is constant.
  """
  _check_keep(keep)
  x, y = as_layer(x, "x"), as_layer(y, "y")
  check_rows([x.shape, y.shape], ["x", "y"], min_n=2, why="CCA")
  return _svcca_pair(_subspace(x, keep=float(keep)), _subspace(y, keep=float(keep)))


def pwcca(x: Any, y: Any) -> jax.Array:
  """Projection-weighted CCA, weights from x (Morcos et al. 2018).

  Args:
    x: [n, d_x]; y: [n, d_y].

  Returns:
    0-d array in [0, 1]: sum_i alpha_i rho_i / sum_i alpha_i; 0 if either input is constant.
  """
  x, y = as_layer(x, "x"), as_layer(y, "y")
  check_rows([x.shape, y.shape], ["x", "y"], min_n=2, why="CCA")
  return _pwcca_pair(_subspace(x, keep=None), _subspace(y, keep=None))


def _matrix(pair, layers_a, layers_b, keep):
  la, lb, same = layer_lists(layers_a, layers_b, min_n=2, why="CCA")
  sa = [_subspace(x, keep=keep) for x in la]
  sb = sa if same else [_subspace(x, keep=keep) for x in lb]
  return np.array([[float(pair(a, b)) for b in sb] for a in sa])


def svcca_matrix(layers_a: Sequence[Any], layers_b: Sequence[Any], *,
                 keep: float = 0.99) -> np.ndarray:
  """[La, Lb] SVCCA; each layer's SVD computed once."""
  _check_keep(keep)
  return _matrix(_svcca_pair, layers_a, layers_b, float(keep))


def pwcca_matrix(layers_a: Sequence[Any], layers_b: Sequence[Any]) -> np.ndarray:
  """[La, Lb] PWCCA, entry [i, j] weighted by layers_a[i]; each layer's SVD computed once."""
  return _matrix(_pwcca_pair, layers_a, layers_b, None)


def _check_keep(keep: float) -> None:
  if not 0 < keep <= 1:
    raise ValueError(f"keep: expected a variance fraction in (0, 1], got {keep}")
