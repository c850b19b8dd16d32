"""CKA with Lange's zero-diagonal HSIC and with the Laplace kernel (the similarity repository's
`hsic=lange` and `kernel=(laplace-sigma=...)` variants).

Definitions (Lange et al. 2023, github.com/wrongu/repsim `AngularCKA`, as the similarity
repository registers it, github.com/nacloos/similarity-repository similarity/registry/repsim):

  Kc = H K H (H = I - 11^T / n), K = the kernel matrix of x;
  hsic=gretton:  CKA = <Kc, Lc> / (||Kc||_F ||Lc||_F);
  hsic=lange:    the same with the diagonals of Kc and Lc set to 0 *after* centring;
  the `-score` is cos(arccos(clip(CKA, -1, 1))) = CKA clipped to [-1, 1].
  Laplace kernel with parameter sigma: K_ij = exp(-||x_i - x_j|| / (sigma sqrt 2)) (repsim's
  `Laplace(length_scale=sigma * sqrt(2))`), no data-dependent bandwidth.

Computation. Linear, Lange: in feature space (no n x n matrix), with xc the centred features
(`kernel_alignment.center_features`): <Kc0, Lc0> = ||xc^T yc||_F^2 - sum_i ||xc_i||^2 ||yc_i||^2.
Laplace: the kernel matrix streamed in row blocks and double-centred blockwise
(`distance_matrices.centred`, row means from a first pass); the diagonal terms subtract for
Lange. A degenerate (constant) representation scores 0. The other CKA variants (Gretton and Song
HSIC with linear and RBF kernels) are registered with `repsim_jax.metrics.kernel_alignment`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.measures import distance_matrices
from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics import validation
from repsim_jax.metrics.kernel_alignment import center_features

__all__ = ["linear_lange_parts", "linear_lange", "laplace_parts", "laplace_cka"]

_HI = jax.lax.Precision.HIGHEST


@jax.jit
def _linear_parts(x):
  xc = center_features(x)
  sq = jnp.sum(xc * xc, axis=1)
  gram = jnp.matmul(xc.T, xc, precision=_HI)
  return xc, sq, jnp.sum(gram * gram) - jnp.sum(sq * sq)


def linear_lange_parts(x, **unused_options) -> tuple:
  """(centred features [n, d], row squared norms [n], <Kc0, Kc0>) of one layer."""
  return _linear_parts(jnp.asarray(validation.as_representation(x, "x"), jnp.float32))


@jax.jit
def _linear_cross(xc, sx, yc, sy):
  cross = jnp.matmul(xc.T, yc, precision=_HI)
  return jnp.sum(cross * cross) - jnp.sum(sx * sy)


def _ratio(cross, self_x, self_y) -> float:
  denom = np.sqrt(max(float(self_x), 0.0) * max(float(self_y), 0.0))
  return float(np.clip(float(cross) / denom, -1.0, 1.0)) if denom > 0 else 0.0


def linear_lange(a: tuple, b: tuple, **unused_options) -> float:
  """Linear CKA with Lange's zero-diagonal HSIC, from `linear_lange_parts` of each layer."""
  if a[0].shape[0] != b[0].shape[0]:
    raise ValueError(f"expected the same images in both representations, got n = "
                     f"{a[0].shape[0]} and {b[0].shape[0]}")
  return _ratio(_linear_cross(a[0], a[1], b[0], b[1]), a[2], b[2])


def laplace_parts(x, *, sigma: float = 1.0, **unused_options) -> distance_matrices.Centred:
  """One layer's Laplace kernel matrix, prepared for centred products (streamed)."""
  return distance_matrices.centred(x, ("exp", float(sigma) * np.sqrt(2.0)))


def laplace_cka(a, b, *, lange: bool = False, **unused_options) -> float:
  """Laplace-kernel CKA (Gretton's HSIC, or Lange's zero-diagonal one) of two prepared layers."""
  cross = distance_matrices.centred_cross(a, b, offdiag=lange)
  if lange:
    return _ratio(cross, a.self_product_offdiag, b.self_product_offdiag)
  return _ratio(cross, a.self_product, b.self_product)


def _laplace_lange(a, b, **options):
  return laplace_cka(a, b, lange=True, **options)


_SOURCE = ("Lange et al. 2023 (github.com/wrongu/repsim AngularCKA), as registered by the "
           "similarity repository (github.com/nacloos/similarity-repository)")
register(Measure(
    name="cka-kernel=linear-hsic=lange-score", kind="similarity", pair=linear_lange,
    prepare=linear_lange_parts, preparation="centred features",
    properties=Properties(symmetric=True, invariances=("orthogonal", "isotropic_scaling",
                                                       "translation")),
    perfect=1.0, min_rows=4, reference=_SOURCE))
_LAPLACE_PROPS = Properties(symmetric=True, invariances=("orthogonal", "translation"))
register(Measure(
    name="cka-kernel=(laplace-sigma=1.0)-hsic=gretton-score", kind="similarity",
    pair=laplace_cka, prepare=laplace_parts, preparation="centred Laplace kernel sums",
    properties=_LAPLACE_PROPS, perfect=1.0, options={"sigma": 1.0}, min_rows=4,
    reference=_SOURCE))
register(Measure(
    name="cka-kernel=(laplace-sigma=1.0)-hsic=lange-score", kind="similarity",
    pair=_laplace_lange, prepare=laplace_parts, preparation="centred Laplace kernel sums",
    properties=_LAPLACE_PROPS, perfect=1.0, options={"sigma": 1.0}, min_rows=4,
    reference=_SOURCE))
