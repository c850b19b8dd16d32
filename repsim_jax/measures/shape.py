"""Alignment-based geometric measures: shape metrics, Procrustes variants, Bures distance.

All compare X [n, d_x] and Y [n, d_y] after an optimal alignment; unequal widths are
zero-padded to max(d_x, d_y) (netrep and ReSi both do; the padding only changes the whitening
scale of the linear metric, see below). ||.||_* is the nuclear norm, X_c the column-centred X.

Shape metrics (Williams et al. 2021; netrep `LinearMetric`, `PermutationMetric`):
  shape_metric-alpha=A-distance=angular     arccos( ||X_w^T Y_w||_* / (||X_w|| ||Y_w||) )
  shape_metric-alpha=A-distance=euclidean   sqrt(||X_w||^2 + ||Y_w||^2 - 2 ||X_w^T Y_w||_*)
    with X_w = X_c Z_x the partial whitening of netrep.utils.whiten: the eigen-decomposition
    X_c^T X_c = V diag(lam) V^T (eigenvalues clipped below at 1e-7, zero-padded columns adding
    eigenvalues 1e-7), Z = c V diag(alpha + (1 - alpha) lam^-1/2) V^T, and c rescaling so the
    total variance tr(X_w^T X_w) equals sum(lam) (netrep's preserve_variance=True). alpha = 1 is
    rotations only (Procrustes; the angular one equals `procrustes-distance=angular` and ReSi's
    OrthogonalAngularShapeMetricCentered), alpha = 0 all invertible linear maps (CCA). Metrics.
    For 0 < alpha < 1 the value depends on the data's overall scale (alpha and lam^-1/2 mix),
    as in netrep; the euclidean ones are scale dependent by definition.
  permutation_metric-distance=angular|euclidean   the same with X_c, Y_c unwhitened and the
    alignment restricted to permutations of the (padded) columns: the assignment maximising
    tr(P^T X_c^T Y_c) (scipy linear_sum_assignment, on host: this pair is not jit-able).

Procrustes variants (ReSi, Klabunde et al. 2025, repsim/measures/procrustes.py). Today's
`repsim_jax.procrustes` (protocol name procrustes-distance=squared_euclidean) is
2 - 2 ||X^^T Y^||_* with X^ = X_c / ||X_c||:
  procrustes-distance=euclidean   ReSi OrthogonalProcrustesCenteredAndNormalized (Ding et al.):
                                  sqrt(2 - 2 ||X^^T Y^||_*) = sqrt(today's procrustes).
  bures-distance                  sqrt(tr K_x + tr K_y - 2 tr (K_x^1/2 K_y K_x^1/2)^1/2) for the
                                  centred linear kernels K = X_c X_c^T (Harvey et al. 2023)
                                  = sqrt(||X_c||^2 + ||Y_c||^2 - 2 ||X_c^T Y_c||_*): ReSi's
                                  ProcrustesSizeAndShapeDistance (alias), today's procrustes
                                  before the unit-norm scaling; rsatoolbox's 'bures_metric' is
                                  its square.
  permutation_procrustes-distance=euclidean   ReSi PermutationProcrustes: ||X P - Y||_F, NOT
                                  centred, P the best column permutation.
  aligned_cossim-score            ReSi AlignedCosineSimilarity: NOT centred; Q = U V^T from
                                  X^T Y = U S V^T, the mean over rows i of cos((X Q)_i, Y_i),
                                  all-zero rows left out. With d_x != d_y the orthogonal
                                  completion of X^T Y's null directions is arbitrary (ReSi
                                  inherits LAPACK's); we leave those directions out of the
                                  numerator (X U_r V_r^T) and divide by ||X_i|| as any
                                  completion would.
The angular shape metric of ReSi is shape_metric-alpha=1-distance=angular. The normalized Bures
similarity NBS = ||X^^T Y^||_* (registered by the protocol module as nbs-score) satisfies
arccos(NBS) = shape_metric-alpha=1-distance=angular: tests/measures/test_shape.py checks it
through rsatoolbox's 'bures' comparator.

A constant representation (X_c = 0) has angle pi/2 to everything and cosine 0.

References:
  Williams, Kunz, Kornblith, Linderman. Generalized Shape Metrics on Neural Representations.
    NeurIPS 2021 (github ahwillia/netrep: metrics/linear.py, metrics/perm.py, utils.whiten).
  Ding, Denain, Steinhardt. Grounding Representation Similarity with Statistical Testing. 2021.
  Harvey, Larsen, Williams. Duality of Bures and Shape Distances with Implications for
    Comparing Neural Representations. UniReps 2023.
  Klabunde, Wald, Schumacher, Strohmaier, Lemmerich. ReSi: A Comprehensive Benchmark for
    Representational Similarity Measures. ICLR 2025 (github mklabunde/resi).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics.kernel_alignment import center_features
from repsim_jax.metrics.validation import as_layer

__all__ = ["ALPHAS", "whiten_layer", "linear_metric", "permutation_metric"]

_HI = jax.lax.Precision.HIGHEST
ALPHAS = (0.0, 0.5, 1.0)
_EIG_TOL = 1e-7  # netrep.utils.whiten's eigval_tol


def _nuclear(a, b):
  return jnp.sum(jnp.linalg.svd(jnp.matmul(a.T, b, precision=_HI), compute_uv=False))


def _safe_div(num, den):
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


def _angle(cos):
  return jnp.arccos(jnp.clip(cos, -1.0, 1.0))


def _length(sq):
  return jnp.sqrt(jnp.maximum(sq, 0.0))


# ------------------------------------------------------------------------ linear shape metric

@functools.partial(jax.jit, static_argnames=("alpha",))
def whiten_layer(x, *, alpha):
  """x: [n, d] -> {'w': X_c V diag(alpha + (1-alpha) lam^-1/2) [n, d], 'lam': clipped [d]}.

  The rotation V^T of netrep's Z is dropped (no value here depends on it); the variance
  rescaling c waits for the pair, where the zero-padding is known.
  """
  xc = center_features(x)
  if alpha > 1 - _EIG_TOL:  # netrep returns early: no whitening at all
    return {"w": xc, "lam": jnp.zeros((0,), xc.dtype)}
  lam, v = jnp.linalg.eigh(jnp.matmul(xc.T, xc, precision=_HI))
  lam = jnp.maximum(lam, _EIG_TOL)
  return {"w": jnp.matmul(xc, v, precision=_HI) * (alpha + (1 - alpha) * lam ** -0.5),
          "lam": lam}


def _variance_scale(lam, pad, alpha):
  """netrep's preserve_variance factor for eigenvalues `lam` plus `pad` padded ones (1e-7)."""
  if alpha > 1 - _EIG_TOL:
    return 1.0

  def new_var(l):
    return alpha ** 2 * l + 2 * alpha * (1 - alpha) * jnp.sqrt(l) + (1 - alpha) ** 2
  total = jnp.sum(lam) + pad * _EIG_TOL
  return jnp.sqrt(total / (jnp.sum(new_var(lam)) + pad * new_var(_EIG_TOL)))


@functools.partial(jax.jit, static_argnames=("alpha", "score"))
def _linear_pair(px, py, *, alpha, score):
  dx, dy = px["w"].shape[1], py["w"].shape[1]
  width = max(dx, dy)
  wx = px["w"] * _variance_scale(px["lam"], width - dx, alpha)
  wy = py["w"] * _variance_scale(py["lam"], width - dy, alpha)
  nuc = _nuclear(wx, wy)
  nx, ny = jnp.sum(wx * wx), jnp.sum(wy * wy)
  if score == "angular":
    return jnp.where((nx > 0) & (ny > 0), _angle(_safe_div(nuc, jnp.sqrt(nx * ny))), jnp.pi / 2)
  return _length(nx + ny - 2.0 * nuc)


def linear_metric(x, y, *, alpha: float = 1.0, score: str = "angular") -> float:
  """netrep's LinearMetric(alpha, center_columns=True, zero_pad=True, score_method=score)."""
  if not 0 <= alpha <= 1:
    raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
  if score not in ("angular", "euclidean"):
    raise ValueError(f"score: expected 'angular' or 'euclidean', got {score!r}")
  return float(_linear_pair(whiten_layer(as_layer(x, "x"), alpha=float(alpha)),
                            whiten_layer(as_layer(y, "y"), alpha=float(alpha)),
                            alpha=float(alpha), score=score))


# --------------------------------------------------------------------- permutation alignments

def _assignment_sum(a, b):
  """max over column permutations (zero-padded) of tr(P^T a^T b), solved on host."""
  c = np.asarray(jnp.matmul(a.T, b, precision=_HI), np.float64)
  rows, cols = linear_sum_assignment(c, maximize=True)
  return c[rows, cols].sum()


def permutation_metric(a, b, *, score: str = "angular") -> float:
  """Permutation-aligned distance between prepared (centred or raw) layers a, b."""
  s = _assignment_sum(a, b)
  na, nb = float(jnp.sum(a * a)), float(jnp.sum(b * b))
  if score == "angular":
    return float(np.arccos(np.clip(s / np.sqrt(na * nb), -1, 1))) if na * nb > 0 else np.pi / 2
  return float(np.sqrt(max(na + nb - 2.0 * s, 0.0)))


# ------------------------------------------------------------------------ Procrustes variants

@jax.jit
def _centred_layer(x):
  return center_features(x)


@jax.jit
def _procrustes_euclidean(a, b):
  na, nb = jnp.linalg.norm(a), jnp.linalg.norm(b)
  nuc = _safe_div(_nuclear(a, b), na * nb)
  return jnp.where((na > 0) & (nb > 0), _length(2.0 - 2.0 * nuc), jnp.sqrt(2.0))


@jax.jit
def _bures_distance(a, b):
  return _length(jnp.sum(a * a) + jnp.sum(b * b) - 2.0 * _nuclear(a, b))


@jax.jit
def _aligned_cossim(a, b):
  u, s, vt = jnp.linalg.svd(jnp.matmul(a.T, b, precision=_HI), full_matrices=False)
  # Directions with a zero singular value have an arbitrary orthogonal completion (docstring).
  # A backward-stable SVD gets every singular value to within ~eps * s[0]: below a few of those
  # a direction is numerically null. (numpy's matrix_rank tolerance, max(d) * eps * s[0], is
  # far too coarse here: at d = 768 it dropped 336 real directions of wide ReLU layers and
  # moved the score by 0.5%.)
  keep = s > s[0] * 4 * jnp.finfo(s.dtype).eps
  q = jnp.matmul(u * keep, vt, precision=_HI)
  dots = jnp.sum(jnp.matmul(a, q, precision=_HI) * b, axis=1)
  na, nb = jnp.linalg.norm(a, axis=1), jnp.linalg.norm(b, axis=1)
  ok = (na > 0) & (nb > 0)
  cos = jnp.where(ok, dots / jnp.where(ok, na * nb, 1.0), 0.0)
  return _safe_div(jnp.sum(cos), jnp.sum(ok))


# ----------------------------------------------------------------------------------- registry

_SHAPE_REF = "Williams et al., NeurIPS 2021; anchor netrep (ahwillia/netrep) metrics/linear.py"
_RESI_REF = "Klabunde et al., ReSi (ICLR 2025); anchor mklabunde/resi repsim/measures/procrustes.py"


def _register_all():
  for alpha in ALPHAS:
    for score in ("angular", "euclidean"):
      # netrep's partial whitening alpha + (1 - alpha) lam^-1/2 mixes two scales: only the
      # ends alpha = 0, 1 of the angular metric are scale invariant.
      scale_free = score == "angular" and alpha in (0.0, 1.0)
      inv = ("orthogonal", "permutation", "translation") + (
          ("isotropic_scaling",) if scale_free else ())
      if alpha == 0 and score == "angular":  # full whitening (the euclidean one keeps the
        inv = inv + ("invertible_linear", "affine")  # total variance, so it sees the map)
      register(Measure(
          name=f"shape_metric-alpha={alpha:g}-distance={score}", kind="distance",
          properties=Properties(metric=True, invariances=tuple(dict.fromkeys(inv))),
          preparation="partially whitened centred features",
          prepare=functools.partial(_whiten_fixed, alpha=alpha),
          pair=functools.partial(_linear_pair, alpha=alpha, score=score),
          reference=_SHAPE_REF))
  for score in ("angular", "euclidean"):
    register(Measure(
        name=f"permutation_metric-distance={score}", kind="distance",
        properties=Properties(metric=True, invariances=(
            ("permutation", "translation") + (("isotropic_scaling",) if score == "angular"
                                              else ()))),
        preparation="centred features", prepare=_centred_fixed,
        pair=functools.partial(permutation_metric, score=score),
        reference=_SHAPE_REF.replace("linear.py", "perm.py")))
  register(Measure(
      name="procrustes-distance=euclidean", kind="distance",
      properties=Properties(metric=True, invariances=(
          "orthogonal", "isotropic_scaling", "translation", "permutation")),
      preparation="centred features", prepare=_centred_fixed, pair=_procrustes_euclidean,
      reference="Ding et al. 2021; " + _RESI_REF))
  register(Measure(
      name="bures-distance", aliases=("procrustes_size_and_shape-distance",), kind="distance",
      properties=Properties(metric=True, invariances=("orthogonal", "translation",
                                                      "permutation")),
      preparation="centred features", prepare=_centred_fixed, pair=_bures_distance,
      reference="Harvey et al. 2023; " + _RESI_REF + "; rsatoolbox compare 'bures_metric'"))
  register(Measure(
      name="permutation_procrustes-distance=euclidean", kind="distance",
      properties=Properties(metric=True, invariances=("permutation",)),
      preparation="features", prepare=_raw_fixed,
      pair=functools.partial(permutation_metric, score="euclidean"), reference=_RESI_REF))
  register(Measure(
      name="aligned_cossim-score", kind="similarity",
      properties=Properties(invariances=("orthogonal", "permutation")),
      preparation="features", prepare=_raw_fixed, pair=_aligned_cossim, reference=_RESI_REF))


def _whiten_fixed(x, *, alpha):
  return whiten_layer(as_layer(x, "x"), alpha=alpha)


def _centred_fixed(x):
  return _centred_layer(as_layer(x, "x"))


def _raw_fixed(x):
  return as_layer(x, "x")


_register_all()
