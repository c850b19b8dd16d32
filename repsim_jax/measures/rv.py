"""The RV coefficient (Robert & Escoufier 1976), declared once: everything else is derived.

  RV(X, Y) = tr(X X^T Y Y^T) / sqrt(tr((X X^T)^2) tr((Y Y^T)^2)) = ||X^T Y||_F^2 / (||X^T X||_F
             ||Y^T Y||_F),   X, Y column-centred [n, d_x], [n, d_y],

in [0, 1], 1 when Y is a rotation and rescaling of X. It is linear CKA with Gretton's biased
HSIC (Kornblith et al. 2019 note the identity); this module is the worked example of adding a
measure (docs/design.md): one module, its test, one line of MODULES. Each layer is prepared once
(centred, with ||X^T X||_F); a constant layer has RV 0 against anything.

References:
  Robert, Escoufier. "A Unifying Tool for Linear Multivariate Statistical Methods: The
  RV-Coefficient." Journal of the Royal Statistical Society C 25(3), 1976.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from repsim_jax.measures.protocol import Measure, Properties, register

_HI = jax.lax.Precision.HIGHEST


@jax.jit
def _prepare(x):
  """x [n, d] -> (column-centred x, ||x^T x||_F)."""
  x = jnp.asarray(x, jnp.promote_types(x.dtype, jnp.float32))
  xc = x - jnp.mean(x, axis=0, keepdims=True)
  return xc, jnp.linalg.norm(jnp.matmul(xc.T, xc, precision=_HI))


@jax.jit
def _pair(a, b):
  (xc, nx), (yc, ny) = a, b
  cross = jnp.sum(jnp.matmul(xc.T, yc, precision=_HI) ** 2)
  den = nx * ny
  return jnp.where(den > 0, cross / jnp.where(den > 0, den, 1.0), 0.0)


register(Measure(
    name="rv-score", aliases=("rv", "rv_coefficient"), kind="similarity",
    properties=Properties(symmetric=True, invariances=(
        "orthogonal", "isotropic_scaling", "translation")),
    preparation="centred features and ||X^T X||_F", prepare=_prepare, pair=_pair,
    reference="Robert & Escoufier, JRSS C 1976; = linear CKA, biased HSIC (Kornblith et al. 2019)"))
