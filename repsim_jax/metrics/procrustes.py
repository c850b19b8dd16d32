"""Orthogonal Procrustes distance between representations (Ding et al. 2021).

  d(X, Y) = min_Q ||X^ - Y^ Q||_F^2 = 2 - 2 ||X^^T Y^||_*,  Q orthogonal,

with X^ the column-centered representation scaled to unit Frobenius norm and ||.||_* the nuclear
norm (sum of singular values). Different widths are allowed (Q is then a partial isometry, which
is the same as zero-padding the narrower side). Singular values of X^T Y equal those of
(U_x S_x)^T (U_y S_y), computed from each layer's thin SVD once, so a pair costs
O(n r_x r_y) with r = min(n, d). Range [0, 2]; 0 iff Y^ is a rotation of X^.

A constant representation cannot be normalised; its distance to anything is defined as 2 (no
alignment), never NaN.

References:
  Ding, Denain, Steinhardt. Grounding Representation Similarity with Statistical Testing.
    NeurIPS 2021.
  Williams, Kunz, Kornblith, Linderman. Generalized Shape Metrics on Neural Representations.
    NeurIPS 2021.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.metrics.validation import as_layer, check_rows, layer_lists
from repsim_jax.metrics.kernel_alignment import center_features

_HI = jax.lax.Precision.HIGHEST


@jax.jit
def _scores(x):
  """x: [n, d] -> (U S of the unit-norm centered x, [n, min(n, d)]; constant flag)."""
  xc = center_features(x)
  norm = jnp.linalg.norm(xc)
  xc = xc / jnp.where(norm > 0, norm, 1.0)
  u, s, _ = jnp.linalg.svd(xc, full_matrices=False)
  return u * s, norm == 0


@jax.jit
def _distance(a, b):
  nuclear = jnp.sum(jnp.linalg.svd(jnp.matmul(a[0].T, b[0], precision=_HI), compute_uv=False))
  d = jnp.clip(2.0 - 2.0 * nuclear, 0.0, 2.0)
  return jnp.where(jnp.logical_or(a[1], b[1]), 2.0, d)


def procrustes_layer(x: Any):
  """One layer's preparation: (U S of the unit-norm centred x [n, min(n, d)], constant flag)."""
  x = as_layer(x, "x")
  check_rows([x.shape], ["x"], min_n=2, why="Procrustes")
  return _scores(x)


@jax.jit
def nuclear_prepared(a, b) -> jax.Array:
  """||X^^T Y^||_* in [0, 1] from two `procrustes_layer` preparations (0 if one is constant):
  the normalized Bures similarity (Harvey et al. 2023), 1 - `procrustes` / 2."""
  nuclear = jnp.sum(jnp.linalg.svd(jnp.matmul(a[0].T, b[0], precision=_HI), compute_uv=False))
  return jnp.where(jnp.logical_or(a[1], b[1]), 0.0, jnp.clip(nuclear, 0.0, 1.0))


procrustes_prepared = _distance  # (procrustes_layer(x), procrustes_layer(y)) -> 0-d in [0, 2]


def procrustes(x: Any, y: Any) -> jax.Array:
  """Orthogonal Procrustes distance.

  Args:
    x: [n, d_x]; y: [n, d_y].

  Returns:
    0-d array in [0, 2]: 2 - 2 ||X^^T Y^||_*; 2 if either input is constant.
  """
  x, y = as_layer(x, "x"), as_layer(y, "y")
  check_rows([x.shape, y.shape], ["x", "y"], min_n=2, why="Procrustes")
  return _distance(_scores(x), _scores(y))


def procrustes_matrix(layers_a: Sequence[Any], layers_b: Sequence[Any]) -> np.ndarray:
  """[La, Lb] Procrustes distances; each layer's SVD computed once."""
  la, lb, same = layer_lists(layers_a, layers_b, min_n=2, why="Procrustes")
  sa = [_scores(x) for x in la]
  sb = sa if same else [_scores(x) for x in lb]
  return np.array([[float(_distance(a, b)) for b in sb] for a in sa])
