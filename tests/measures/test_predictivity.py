"""Regression R^2 (sklearn KFold + numpy least squares / ridge, diffscore's definition; ReSi's
in-sample LinearRegression with scipy sqrtm), GULP (ReSi's copy of the authors'
predictor_dist, transcribed) and the mean squared CCA correlation (textbook inverse square
roots of the covariances), all in float64."""
from __future__ import annotations

import jax
import numpy as np
import pytest
import scipy.linalg
from sklearn.model_selection import KFold

from repsim_jax.measures import measure, measures as listing
from repsim_jax.measures import predictivity

TOL = 1e-5
N = 53  # not a multiple of 5: unequal folds


def data(dx, dy, ties=False, seed=0):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(N, 3))
  x = z @ rng.normal(size=(3, dx)) + 0.5 * rng.normal(size=(N, dx)) + 2.0
  y = np.tanh(z) @ rng.normal(size=(3, dy)) + 0.5 * rng.normal(size=(N, dy))
  if ties:
    x, y = np.round(x), np.round(y)
    x[::6], y[::6] = x[1::6], y[1::6]
  return x, y


def diffscore_r2(x, y, folds, lam):
  """X predicted from Y, centred with training means, R^2 over all columns, mean over folds."""
  def fit_score(xt, yt, xv, yv):
    mx, my = xt.mean(0), yt.mean(0)
    xt, yt, xv, yv = xt - mx, yt - my, xv - mx, yv - my
    if lam > 0:
      b = np.linalg.lstsq(yt.T @ yt + lam * np.eye(yt.shape[1]), yt.T @ xt, rcond=None)[0]
    else:
      b = np.linalg.lstsq(yt, xt, rcond=None)[0]
    return 1 - np.linalg.norm(xv - yv @ b) ** 2 / np.linalg.norm(xv) ** 2
  if folds is None:
    return fit_score(x, y, x, y)
  return np.mean([fit_score(x[tr], y[tr], x[te], y[te])
                  for tr, te in KFold(n_splits=folds, shuffle=False).split(x)])


def resi_linear_reg(r, rp):
  r, rp = r - r.mean(0), rp - rp.mean(0)
  base = rp @ scipy.linalg.inv(scipy.linalg.sqrtm(rp.T @ rp))
  return np.linalg.norm(base.T @ r) ** 2 / np.linalg.norm(r) ** 2


def predictor_dist(a, b, lmbda=0):
  """GULP's predictor_dist as ReSi copies it (a, b are d x n)."""
  k, n = a.shape
  evals_a, evecs_a = np.linalg.eigh(a @ a.T)
  evals_b, evecs_b = np.linalg.eigh(b @ b.T)
  evals_a = (evals_a + np.abs(evals_a)) / (2 * n)
  evals_b = (evals_b + np.abs(evals_b)) / (2 * n)
  if lmbda > 0:
    inv_a = np.array([1 / (v + lmbda) if v > 0 else 1 / lmbda for v in evals_a])
    inv_b = np.array([1 / (v + lmbda) if v > 0 else 1 / lmbda for v in evals_b])
  else:
    inv_a = np.array([1 / v if v > 0 else 0 for v in evals_a])
    inv_b = np.array([1 / v if v > 0 else 0 for v in evals_b])
  t1 = np.sum(np.square(evals_a * inv_a))
  t2 = np.sum(np.square(evals_b * inv_b))
  cov_ab = a @ b.T / n
  t3 = np.trace((np.diag(np.sqrt(inv_a)) @ evecs_a.T) @ cov_ab
                @ (evecs_b @ np.diag(inv_b) @ evecs_b.T) @ cov_ab.T
                @ (evecs_a @ np.diag(np.sqrt(inv_a))))
  return t1 + t2 - 2 * t3


def resi_gulp(r, rp, lmbda):
  n = r.shape[0]
  reps = []
  for m in (r.T, rp.T):
    m = m - m.mean(axis=1, keepdims=True)
    reps.append(np.sqrt(n) * m / np.linalg.norm(m))
  return predictor_dist(*reps, lmbda=lmbda)


def textbook_cca_squared(x, y):
  xc, yc = x - x.mean(0), y - y.mean(0)
  def inv_sqrt(c):
    w, v = np.linalg.eigh(c)
    return v @ np.diag(w ** -0.5) @ v.T
  m = inv_sqrt(xc.T @ xc) @ xc.T @ yc @ inv_sqrt(yc.T @ yc)
  rho = np.linalg.svd(m, compute_uv=False)
  return np.sum(rho ** 2) / np.sqrt(x.shape[1] * y.shape[1])


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("dx,dy", [(4, 6), (5, 3)])
def test_regression_r2_matches_references_both_directions(dx, dy, ties):
  x, y = data(dx, dy, ties)
  for stem, folds, lam in (("linear_regression-r2", None, 0.0),
                           ("linear_regression-r2-cv=5folds", 5, 0.0),
                           ("ridge-lambda=1-r2-cv=5folds", 5, 1.0)):
    fwd = measure(f"{stem}-score")(x, y)
    rev = measure(f"{stem}-reverse-score")(x, y)
    np.testing.assert_allclose(fwd, diffscore_r2(x, y, folds, lam), rtol=TOL, err_msg=stem)
    np.testing.assert_allclose(rev, diffscore_r2(y, x, folds, lam), rtol=TOL, err_msg=stem)
  np.testing.assert_allclose(measure("linear_regression-r2-score")(x, y),
                             resi_linear_reg(x, y), rtol=TOL)


def test_kfold_bounds_are_sklearns():
  for n, k in ((53, 5), (10, 5), (7, 3)):
    want = [(te[0], te[-1] + 1) for _, te in KFold(n_splits=k).split(np.zeros(n))]
    assert predictivity.kfold_bounds(n, k) == want


@pytest.mark.parametrize("ties", [False, True])
def test_gulp_and_cca_squared(ties):
  x, y = data(4, 6, ties)
  for lam in predictivity.GULP_LAMBDAS:
    np.testing.assert_allclose(measure(f"gulp-lambda={lam:g}-distance")(x, y),
                               resi_gulp(x, y, lam), rtol=TOL, atol=1e-9)
  np.testing.assert_allclose(measure("cca-squared_correlation-score")(x, y),
                             textbook_cca_squared(x, y), rtol=TOL)
  # The cosine of the two column-space projectors (similarity repository's definition).
  px = np.linalg.qr(x - x.mean(0))[0]
  py = np.linalg.qr(y - y.mean(0))[0]
  kx, ky = px @ px.T, py @ py.T
  np.testing.assert_allclose(measure("cca-squared_correlation-score")(x, y),
                             np.sum(kx * ky) / np.sqrt(np.sum(kx * kx) * np.sum(ky * ky)),
                             rtol=TOL)


def test_declared_invariances_and_perfect_values(invariance_maps):
  x, y = data(5, 5)
  transforms = invariance_maps(5, seed=7)
  for row in listing():
    if not row["name"].startswith(("linear_regression", "ridge", "gulp", "cca-squared")):
      continue
    m = measure(row["name"])
    base = m(x, y)
    for inv in m.properties.invariances:
      for moved in ((transforms[inv](x), y), (x, transforms[inv](y))):
        np.testing.assert_allclose(m(*moved), base, rtol=1e-6, atol=1e-9,
                                   err_msg=f"{m.name} {inv}")
    if "ridge" not in m.name:
      assert m(x, x) == pytest.approx(m.perfect, abs=1e-6), m.name


def test_jit_pair():
  x, y = data(4, 6)
  for name in ("ridge-lambda=1-r2-cv=5folds-score", "gulp-lambda=0-distance"):
    m = measure(name)
    np.testing.assert_allclose(jax.jit(m.pair)(m.prepare(x), m.prepare(y)), m(x, y), rtol=1e-10)
