"""Measures of pairwise-distance matrices, streamed in row blocks (never an n x n matrix).

  distance-correlation-score          Szekely, Rizzo & Bakirov 2007, as ReSi writes it
                                      (repsim/measures/distance_correlation.py):
                                      A, B = double-centred euclidean distance matrices,
                                      dCov2(A, B) = mean(A * B),
                                      dCor = sqrt(dCov2(A, B) / sqrt(dCov2(A, A) dCov2(B, B)))
  rsm-norm-difference-distance        ReSi (repsim/measures/rsm_norm_difference.py):
                                      || D_a - D_b ||_F, D = euclidean distance matrices

Streaming: a row block of D (from the Gram trick on column-centred float32 features, precision
"highest"; the diagonal is exactly 0) is transformed elementwise (distance, squared distance, a
kernel exp(-d / l), ...), and reduced at once: row sums, or the sum of products of the
double-centred blocks F_ij - r_i - r_j + m (row means r and grand mean m from a first pass, so
products are taken of centred entries and do not cancel), or the sum of squared differences.
Block partial sums are added in float64 on the host. The kernel CKA variants
(`measures.cka_kernels`) and the uniformity difference (`measures.statistics`) reuse these
reductions. A dCov2 that rounds below 0 is clipped at 0 (ReSi would return NaN).

Declared properties are the ones that hold (tested): both measures only see euclidean distances,
so they are translation invariant, and distance correlation is also invariant to isotropic
scaling (ReSi's declarations mark neither).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics import validation

__all__ = ["Centred", "prepare_points", "row_sums", "centred", "centred_cross",
           "squared_difference", "distance_correlation", "rsm_norm_difference"]

_HI = jax.lax.Precision.HIGHEST
_BLOCK = 256  # rows per block: [block, n] entries per transform


def prepare_points(x) -> jax.Array:
  """[n, d] -> column-centred float32 points (distances are translation invariant; centring in
  float64 first keeps the Gram trick's cancellation small)."""
  x = np.asarray(validation.as_representation(x, "x"), np.float64)
  return jnp.asarray(x - x.mean(axis=0), jnp.float32)


def _transform(d2, kind):
  """Squared distances [b, n] -> the matrix entries; kind = (name, parameter)."""
  name, param = kind
  if name == "sqeuclidean":
    return d2
  d = jnp.sqrt(d2)
  if name == "euclidean":
    return d
  if name == "exp":  # exp(-d / param): the Laplace kernel
    return jnp.exp(-d / param)
  if name == "exp_sq":  # exp(-param d^2): ReSi's uniformity term
    return jnp.exp(-param * d2)
  raise ValueError(f"unknown distance transform {kind!r}")


def _block(x, sq, start, kind, block):
  """Rows start..start+block of the transformed distance matrix: ([block, n], rows, valid)."""
  n = x.shape[0]
  rows = start + jnp.arange(block)
  valid = rows < n
  safe = jnp.minimum(rows, n - 1)
  d2 = sq[safe][:, None] + sq[None, :] - 2 * jnp.matmul(x[safe], x.T, precision=_HI)
  diag = rows[:, None] == jnp.arange(n)[None, :]
  d2 = jnp.where(diag, 0.0, jnp.maximum(d2, 0.0))
  return _transform(d2, kind), safe, valid, diag


def _starts(n, block):
  return jnp.arange(0, n, block)


@functools.partial(jax.jit, static_argnames=("kind", "block"))
def _row_sums(x, *, kind, block=_BLOCK):
  sq = jnp.sum(x * x, axis=1)

  def one(start):
    f, _, valid, _ = _block(x, sq, start, kind, block)
    return jnp.where(valid, f.sum(axis=1), 0.0)
  return jax.lax.map(one, _starts(x.shape[0], block)).reshape(-1)[:x.shape[0]]


def row_sums(x: jax.Array, kind: tuple) -> np.ndarray:
  """Row sums [n] (float64) of the transformed distance matrix of prepared points x."""
  return np.asarray(_row_sums(x, kind=kind), np.float64)


class Centred(NamedTuple):
  """One layer's matrix F = transform(distances), ready for centred products.

  points: [n, d] prepared points; kind: the transform; row_means: [n]; mean: the grand mean;
  self_product: sum_ij Fc_ij^2 (Fc = double-centred F); self_product_offdiag: the same without
  the diagonal; diag: [n] the diagonal of Fc.
  """
  points: jax.Array
  kind: tuple
  row_means: np.ndarray
  mean: float
  self_product: float
  self_product_offdiag: float
  diag: np.ndarray


@functools.partial(jax.jit, static_argnames=("kind_x", "kind_y", "block"))
def _centred_cross(x, y, rx, mx, ry, my, *, kind_x, kind_y, block=_BLOCK):
  sqx, sqy = jnp.sum(x * x, axis=1), jnp.sum(y * y, axis=1)

  def one(start):
    f, rows, valid, diag = _block(x, sqx, start, kind_x, block)
    g, _, _, _ = _block(y, sqy, start, kind_y, block)
    fc = f - rx[rows][:, None] - rx[None, :] + mx
    gc = g - ry[rows][:, None] - ry[None, :] + my
    prod = jnp.where(valid[:, None], fc * gc, 0.0)
    return jnp.stack([prod.sum(), jnp.where(diag, prod, 0.0).sum()])
  return jax.lax.map(one, _starts(x.shape[0], block))


def _cross(x, y, cx: Centred | tuple, cy: Centred | tuple, kind_x, kind_y):
  """(sum_ij Fc_ij Gc_ij, its diagonal part) in float64."""
  parts = _centred_cross(x, y, jnp.asarray(cx[0], jnp.float32), jnp.float32(cx[1]),
                         jnp.asarray(cy[0], jnp.float32), jnp.float32(cy[1]),
                         kind_x=kind_x, kind_y=kind_y)
  total, diag = np.asarray(parts, np.float64).sum(axis=0)
  return total, diag


def centred(x, kind: tuple) -> Centred:
  """Prepares one layer: two passes (row means, then the centred self product)."""
  points = prepare_points(x)
  n = points.shape[0]
  means = row_sums(points, kind) / n
  mean = float(means.mean())
  total, diag_sum = _cross(points, points, (means, mean), (means, mean), kind, kind)
  f0 = float(_transform(jnp.zeros((1, 1)), kind)[0, 0])
  diag = f0 - 2 * means + mean
  return Centred(points, kind, means, mean, total, total - diag_sum, diag)


def centred_cross(a: Centred, b: Centred, *, offdiag: bool = False) -> float:
  """sum_ij Fc_ij Gc_ij of two prepared layers (off the diagonal only if `offdiag`)."""
  if a.points.shape[0] != b.points.shape[0]:
    raise ValueError(f"expected the same images in both representations, got n = "
                     f"{a.points.shape[0]} and {b.points.shape[0]}")
  total, diag = _cross(a.points, b.points, (a.row_means, a.mean), (b.row_means, b.mean),
                       a.kind, b.kind)
  return total - diag if offdiag else total


@functools.partial(jax.jit, static_argnames=("kind", "block"))
def _squared_difference(x, y, *, kind, block=_BLOCK):
  sqx, sqy = jnp.sum(x * x, axis=1), jnp.sum(y * y, axis=1)

  def one(start):
    f, _, valid, _ = _block(x, sqx, start, kind, block)
    g, _, _, _ = _block(y, sqy, start, kind, block)
    return jnp.where(valid[:, None], (f - g) ** 2, 0.0).sum()
  return jax.lax.map(one, _starts(x.shape[0], block))


def squared_difference(x: jax.Array, y: jax.Array, kind: tuple) -> float:
  """sum_ij (F_ij - G_ij)^2 of two layers' prepared points (float64 sum of block partials)."""
  if x.shape[0] != y.shape[0]:
    raise ValueError(f"expected the same images in both representations, got n = {x.shape[0]} "
                     f"and {y.shape[0]}")
  return float(np.asarray(_squared_difference(x, y, kind=kind), np.float64).sum())


_EUCLIDEAN = ("euclidean", 0.0)


def _centred_euclidean(x, **unused_options) -> Centred:
  return centred(x, _EUCLIDEAN)


def distance_correlation(a: Centred, b: Centred, **unused_options) -> float:
  """ReSi's distance correlation of two prepared layers (`centred(x, ("euclidean", 0))`)."""
  cross = max(centred_cross(a, b), 0.0)
  denom = np.sqrt(a.self_product * b.self_product)
  return float(np.sqrt(cross / denom)) if denom > 0 else 0.0


def rsm_norm_difference(x: jax.Array, y: jax.Array, **unused_options) -> float:
  """ReSi's RSM norm difference ||D_x - D_y||_F of prepared points."""
  return float(np.sqrt(squared_difference(x, y, _EUCLIDEAN)))


def _points(x, **unused_options):
  return prepare_points(x)


_RESI = "Klabunde et al. 2025 (ReSi), github.com/mklabunde/resi "
register(Measure(
    name="distance-correlation-score", kind="similarity",
    properties=Properties(symmetric=True, invariances=("orthogonal", "isotropic_scaling",
                                                       "permutation", "translation")),
    prepare=_centred_euclidean, preparation="double-centred distance matrix sums",
    pair=distance_correlation,
    perfect=1.0, min_rows=3,
    reference=("Szekely, Rizzo & Bakirov 2007; " + _RESI
               + "repsim/measures/distance_correlation.py")))
register(Measure(
    name="rsm-norm-difference-distance", kind="distance",
    properties=Properties(metric=True, symmetric=True,
                          invariances=("orthogonal", "permutation", "translation")),
    prepare=_points, preparation="centred points", pair=rsm_norm_difference, perfect=0.0,
    min_rows=2, reference=_RESI + "repsim/measures/rsm_norm_difference.py"))
