"""Predictivity measures: how well one representation predicts the other, linearly.

Linear / ridge regression R^2 (the similarity repository's linreg / ridge variants, diffscore's
`measure_linreg`; ReSi's LinearRegression for the in-sample one). The first argument X is
predicted from the second Y (both references' direction); the `-reverse` names predict Y from
X, so the two directions of one pair are two measures:
  linear_regression-r2-score                   in-sample: centre X, Y; R^2 = ||P_Y X||^2 / ||X||^2
                                               with P_Y the projector on Y's column space (ReSi
                                               LinearRegression: Y (Y^T Y)^-1/2 as the basis)
  linear_regression-r2-cv=5folds-score         5-fold cross-validated R^2
  ridge-lambda=1-r2-cv=5folds-score            the same with ridge lambda = 1
Folds: sklearn KFold(n_splits=5, shuffle=False) (contiguous blocks, the first n mod 5 one row
longer; no seed: the folds are the row order). On each fold, X and Y are centred with the
training rows' means; B = argmin ||X_t - Y_t B||^2 + lambda ||B||^2 (lambda = 0: least squares,
minimum-norm when Y_t is rank deficient); on the held-out rows, centred with the TRAINING means,
R^2 = 1 - ||X_v - Y_v B||^2 / ||X_v||^2 (one number over all of X's columns); the score is the
mean over folds. This is diffscore's definition; sklearn's r2_score would centre X_v with its own
mean and average per column, which we do not follow.

GULP (Boix-Adsera, Lawrence, Stepaniants, Rigollet 2022; ReSi's transcription of the authors'
`predictor_dist`): each representation centred and scaled to ||X||_F^2 = n, covariances
S_x = X^T X / n (eigenvalues clipped at 0), S_xy = X^T Y / n and A_x = (S_x + lambda)^-1
(the pseudo-inverse at lambda = 0):
  gulp-lambda=L-distance = T1 + T2 - 2 T3,  T1 = tr((S_x A_x)^2),  T2 = tr((S_y A_y)^2),
                           T3 = tr(A_x^1/2 S_xy A_y S_xy^T A_x^1/2),
computed as predictor_dist does, in the two eigenbases (T3 = sum_ij a_i M_ij^2 b_j with M the
cross-covariance in those bases and a, b the inverse eigenvalues). It is
the SQUARED GULP distance (what ReSi returns); its square root is the metric.

Mean squared CCA correlation:
  cca-squared_correlation-score = sum_i rho_i^2 / sqrt(r_x r_y) = cos(P_x, P_y) of the
  projectors on the centred column spaces (ranks r): the similarity repository's
  `cca-squared_score` (the cosine of centred whitened linear kernels). With r_x = r_y it is the
  mean of the squared canonical correlations, Kornblith et al. 2019's R^2_CCA (their divisor is
  the first width; ours is symmetric).

References:
  Klabunde et al. ReSi (ICLR 2025), repsim/measures/linear_regression.py, gulp.py.
  Cloos et al., similarity repository (nacloos/similarity-repository): diffscore linreg, cca.
  Boix-Adsera, Lawrence, Stepaniants, Rigollet. GULP: a prediction-based metric between
    representations. NeurIPS 2022.
  Kornblith, Norouzi, Lee, Hinton. Similarity of Neural Network Representations Revisited.
    ICML 2019 (R^2_CCA).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics.kernel_alignment import center_features
from repsim_jax.metrics.validation import as_layer

__all__ = ["regression_r2", "kfold_bounds", "gulp", "cca_squared"]

_HI = jax.lax.Precision.HIGHEST
GULP_LAMBDAS = (0.0, 0.01)


def _mm(a, b):
  return jnp.matmul(a, b, precision=_HI)


def kfold_bounds(n: int, folds: int) -> list[tuple[int, int]]:
  """sklearn KFold(n_splits=folds, shuffle=False): contiguous [start, stop) test blocks."""
  sizes = np.full(folds, n // folds)
  sizes[: n % folds] += 1
  stops = np.cumsum(sizes)
  return [(int(b - s), int(b)) for s, b in zip(sizes, stops)]


def _fit_predict(xt, yt, xv, yv, lam):
  mx, my = jnp.mean(xt, axis=0), jnp.mean(yt, axis=0)
  xt, yt, xv, yv = xt - mx, yt - my, xv - mx, yv - my
  if lam > 0:
    b = jnp.linalg.solve(_mm(yt.T, yt) + lam * jnp.eye(yt.shape[1], dtype=yt.dtype), _mm(yt.T, xt))
  else:
    b = jnp.linalg.lstsq(yt, xt)[0]
  return xv, _mm(yv, b)


def _r2(x, pred):
  den = jnp.sum(x * x)
  return 1.0 - jnp.sum((x - pred) ** 2) / jnp.where(den > 0, den, 1.0)


@functools.partial(jax.jit, static_argnames=("folds", "lam"))
def regression_r2(x, y, *, folds: int = 5, lam: float = 0.0):
  """R^2 of predicting x [n, d_x] from y [n, d_y] (module docstring); folds = 0: in-sample."""
  if folds == 0:
    xc, pred = _fit_predict(x, y, x, y, lam)
    return _r2(xc, pred)
  scores = []
  for start, stop in kfold_bounds(x.shape[0], folds):
    train = np.r_[0:start, stop:x.shape[0]]
    xv, pred = _fit_predict(x[train], y[train], x[start:stop], y[start:stop], lam)
    scores.append(_r2(xv, pred))
  return jnp.mean(jnp.stack(scores))


# ------------------------------------------------------------------------------------- GULP

@functools.partial(jax.jit, static_argnames=("lam",))
def gulp_layer(x, *, lam):
  """x: [n, d] -> (X E / sqrt(n) rotated into S_x's eigenbasis, inverse eigenvalues, T term)."""
  n = x.shape[0]
  xc = center_features(x)
  norm = jnp.linalg.norm(xc)
  xc = jnp.sqrt(float(n)) * xc / jnp.where(norm > 0, norm, 1.0)
  ev, e = jnp.linalg.eigh(_mm(xc.T, xc))
  ev = jnp.maximum(ev, 0.0) / n  # predictor_dist's (ev + |ev|) / (2 n)
  if lam > 0:
    inv = 1.0 / (ev + lam)  # at ev = 0 this is 1 / lam, as in predictor_dist
  else:
    inv = jnp.where(ev > 0, 1.0 / jnp.where(ev > 0, ev, 1.0), 0.0)
  return {"z": _mm(xc, e) / jnp.sqrt(float(n)), "inv": inv, "t": jnp.sum((ev * inv) ** 2)}


@jax.jit
def _gulp_pair(pa, pb):
  m = _mm(pa["z"].T, pb["z"])  # E_a^T S_ab E_b
  t3 = jnp.sum(pa["inv"][:, None] * m * m * pb["inv"][None, :])
  return pa["t"] + pb["t"] - 2.0 * t3


def gulp(x, y, *, lam: float = 0.0) -> float:
  """Squared GULP distance (module docstring)."""
  return float(_gulp_pair(gulp_layer(as_layer(x, "x"), lam=float(lam)),
                          gulp_layer(as_layer(y, "y"), lam=float(lam))))


# --------------------------------------------------------------------------------------- CCA

@jax.jit
def _column_basis(x):
  """x: [n, d] -> orthonormal basis of the centred column space, zero columns beyond the rank."""
  xc = center_features(x)
  u, s, _ = jnp.linalg.svd(xc, full_matrices=False)
  return u * (s > s[0] * max(xc.shape) * jnp.finfo(s.dtype).eps)


@jax.jit
def _cca_squared_pair(ua, ub):
  ra, rb = jnp.sum(ua * ua), jnp.sum(ub * ub)  # ranks
  m = _mm(ua.T, ub)
  den = jnp.sqrt(ra * rb)
  return jnp.where(den > 0, jnp.sum(m * m) / jnp.where(den > 0, den, 1.0), 0.0)


def cca_squared(x, y) -> float:
  return float(_cca_squared_pair(_column_basis(as_layer(x, "x")), _column_basis(as_layer(y, "y"))))


# ----------------------------------------------------------------------------------- registry

_REG_REF = ("similarity repository (diffscore measure_linreg, sklearn KFold folds); ReSi "
            "LinearRegression (in-sample)")


def _regression_pair(x, y, *, folds, lam, reverse):
  return regression_r2(y, x, folds=folds, lam=lam) if reverse else regression_r2(
      x, y, folds=folds, lam=lam)


def _register_all():
  variants = (("linear_regression-r2", 0, 0.0), ("linear_regression-r2-cv=5folds", 5, 0.0),
              ("ridge-lambda=1-r2-cv=5folds", 5, 1.0))
  for stem, folds, lam in variants:
    for reverse in (False, True):
      register(Measure(
          name=f"{stem}{'-reverse' if reverse else ''}-score", kind="similarity",
          properties=Properties(symmetric=False, invariances=(
              # OLS R^2 is unchanged by invertible maps of the predictor and by orthogonal
              # maps / scalings of the target; ridge only by orthogonal maps of either.
              ("orthogonal", "permutation", "translation")
              + (("isotropic_scaling",) if lam == 0 else ()))),
          preparation="features", prepare=_features,
          pair=functools.partial(_regression_pair, folds=folds, lam=lam, reverse=reverse),
          min_rows=2 * max(folds, 1), reference=_REG_REF))
  for lam in GULP_LAMBDAS:
    register(Measure(
        name=f"gulp-lambda={lam:g}-distance", kind="distance",
        aliases=(("gulp",) if lam == 0 else ()),
        properties=Properties(symmetric=True, invariances=(
            ("orthogonal", "permutation", "isotropic_scaling", "translation")
            + (("invertible_linear", "affine") if lam == 0 else ()))),
        preparation="normalised features in their covariance eigenbasis",
        prepare=functools.partial(_gulp_fixed, lam=lam), pair=_gulp_pair,
        reference="Boix-Adsera et al. 2022; ReSi gulp.py (predictor_dist)"))
  register(Measure(
      name="cca-squared_correlation-score", kind="similarity",
      properties=Properties(symmetric=True, invariances=(
          "orthogonal", "isotropic_scaling", "translation", "invertible_linear", "affine",
          "permutation")),
      preparation="orthonormal basis of the centred column space", prepare=_basis_fixed,
      pair=_cca_squared_pair,
      reference="Kornblith et al. 2019 (R^2_CCA); similarity repository cca-squared_score"))


def _features(x):
  return as_layer(x, "x")


def _gulp_fixed(x, *, lam):
  return gulp_layer(as_layer(x, "x"), lam=lam)


def _basis_fixed(x):
  return _column_basis(as_layer(x, "x"))


_register_all()
