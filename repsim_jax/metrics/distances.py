"""Pairwise distances in row blocks, and the representation preprocessing used in this literature.

Kernels never form an N x N matrix: they score a block of query rows against all N points. For
ranking, a per-row monotone *score* is enough and more accurate than the distance itself:

  euclidean: s_ij = |x_j|^2 - 2 <x_i, x_j>   (d_ij^2 = s_ij + |x_i|^2)
  cosine:    s_ij = -<x_i/|x_i|, x_j/|x_j|>  (d_ij = 1 + s_ij, sklearn/DADApy's 1 - cos)

Euclidean points are shifted by their mean rounded to a power-of-two grid (2^floor(log2(std))):
distances are unchanged, the cancellation error of the dot-product form shrinks as with exact
centring, and data on a dyadic lattice (integers, halves, ...) stay exactly representable, so
points at exactly equal distances still tie exactly. Exact duplicates always produce identical
scores. Feature widths are zero-padded to a few buckets (powers of two up to 128, then multiples
of 128), which changes no distance and lets layers of similar width share one compilation.

Matmuls run at precision "highest" (true float32; float64 when x64 is enabled).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.metrics import validation

METRICS = ("euclidean", "cosine")
HIGHEST = jax.lax.Precision.HIGHEST


def check_metric(metric: str) -> None:
  if metric not in METRICS:
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def preprocess(x, *, clip_quantiles: tuple[float, float] | None = None, center: bool = False,
               l2_normalize: bool = False) -> np.ndarray:
  """Optional representation preprocessing, in this order (all off by default).

  Args:
    x: [n, d] representation.
    clip_quantiles: (lo, hi) in [0, 1], e.g. (0.05, 0.95): each sample's values are clipped to
      its own lo/hi quantiles (tames the few huge "massive activation" features of ViTs).
    center: subtract the mean over samples of each feature.
    l2_normalize: scale each sample to unit L2 norm (rows of zeros are left at zero).

  Returns:
    [n, d] float array (float64 input stays float64).
  """
  x = validation.as_representation(x, "x")
  if clip_quantiles is not None:
    lo, hi = clip_quantiles
    if not 0.0 <= lo < hi <= 1.0:
      raise ValueError(f"clip_quantiles must satisfy 0 <= lo < hi <= 1, got {clip_quantiles}")
    q = np.quantile(x, [lo, hi], axis=1)
    x = np.clip(x, q[0][:, None], q[1][:, None])
  if center:
    x = x - x.mean(axis=0, keepdims=True)
  if l2_normalize:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1)
  return x


def _row_sqnorms(x: np.ndarray, chunk: int = 8192) -> np.ndarray:
  """Row squared norms accumulated in float64, in chunks (no full float64 copy of x)."""
  out = np.empty(len(x))
  for start in range(0, len(x), chunk):
    c = np.asarray(x[start:start + chunk], np.float64)
    out[start:start + chunk] = np.einsum("nd,nd->n", c, c)
  return out


def prepare(x: np.ndarray, metric: str, dtype=np.float32, name: str = "x"):
  """Points and squared norms ready for `score_block` (host side, once per layer).

  Memory: one output copy of x in `dtype` (padded), no float64 copy.

  Returns:
    (points [n, d_padded], sqnorm [n]) as numpy arrays of `dtype`.
  """
  check_metric(metric)
  x = np.asarray(x)
  n, d = x.shape
  width = 1 << max(3, (d - 1).bit_length()) if d <= 128 else -(-d // 128) * 128
  points = np.zeros((n, width), dtype)
  if metric == "euclidean":
    mean = x.mean(axis=0, dtype=np.float64)
    std = float(np.sqrt(max(_row_sqnorms(x).sum() / x.size - float(mean @ mean) / d, 0.0)))
    grid = 2.0 ** np.floor(np.log2(std)) if std > 0 else 1.0
    offset = np.round(mean / grid) * grid  # dyadic: exact in float32, keeps lattices exact
    np.subtract(x, offset.astype(dtype), out=points[:, :d], casting="unsafe")
  else:
    norms = np.sqrt(_row_sqnorms(x))
    zero = int(np.sum(norms == 0))
    if zero:
      raise ValueError(f"{name}: cosine distance is undefined for {zero} all-zero rows")
    np.divide(x, norms[:, None], out=points[:, :d], casting="unsafe")
  return points, _row_sqnorms(points).astype(dtype)


def score_block(query_idx: jax.Array, points: jax.Array, sqnorm: jax.Array, *, metric: str,
                exclude_self: bool = True) -> jax.Array:
  """Ranking scores of a block of query rows against every point.

  Args:
    query_idx: [b] int global row indices of the queries (-1 marks padding).
    points, sqnorm: from `prepare`, [n, d] and [n].
    metric: "euclidean" or "cosine".
    exclude_self: score +inf for the query itself, so it is never a neighbour nor counted.

  Returns:
    [b, n] scores, increasing with distance within each row.
  """
  queries = points[jnp.maximum(query_idx, 0)]
  dots = jnp.matmul(queries, points.T, precision=HIGHEST)
  scores = sqnorm[None, :] - 2 * dots if metric == "euclidean" else -dots
  if exclude_self:
    cols = jnp.arange(points.shape[0], dtype=query_idx.dtype)
    scores = jnp.where(cols[None, :] == query_idx[:, None], jnp.inf, scores)
  return scores


def order_keys(scores: jax.Array) -> jax.Array:
  """Integers that order like `scores` (float32 -> int32, float64 -> int64); -0.0 equals +0.0.

  Rank kernels only need the order of a row's scores, and XLA's CPU sort is ~3x faster on
  integers than on floats (which it orders through a NaN-aware comparator). Scores must not be
  NaN (+inf, the excluded self, stays the largest).
  """
  scores = jnp.where(scores == 0, jnp.zeros_like(scores), scores)
  itype = jnp.int32 if scores.dtype == jnp.float32 else jnp.int64
  bits = jax.lax.bitcast_convert_type(scores, itype)
  return jnp.where(bits < 0, bits ^ jnp.iinfo(itype).max, bits)  # negative floats: reversed


def scores_to_distances(scores: jax.Array, query_sqnorm: jax.Array, *, metric: str) -> jax.Array:
  """Turns `score_block` values back into distances (euclidean, or 1 - cosine similarity)."""
  if metric == "euclidean":
    return jnp.sqrt(jnp.maximum(scores + query_sqnorm[:, None], 0))
  return 1 + scores


@functools.partial(jax.jit, static_argnames="metric")
def _pairwise(x, y, *, metric):
  if metric == "euclidean":
    d2 = (jnp.sum(x * x, 1)[:, None] + jnp.sum(y * y, 1)[None, :]
          - 2 * jnp.matmul(x, y.T, precision=HIGHEST))
    return jnp.sqrt(jnp.maximum(d2, 0))
  xn = x / jnp.linalg.norm(x, axis=1, keepdims=True)
  yn = y / jnp.linalg.norm(y, axis=1, keepdims=True)
  return 1 - jnp.matmul(xn, yn.T, precision=HIGHEST)


def pairwise_distances(x, y=None, *, metric: str = "euclidean") -> jax.Array:
  """Full distance matrix [n, m] (small inputs only: it is n x m).

  Args:
    x: [n, d]; y: [m, d] (default x).
    metric: "euclidean" or "cosine" (1 - cosine similarity).
  """
  check_metric(metric)
  x = validation.as_representation(x, "x")
  y = x if y is None else validation.as_representation(y, "y")
  return _pairwise(jnp.asarray(x), jnp.asarray(y), metric=metric)
