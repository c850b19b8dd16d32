"""Mutual k-NN, CKNNA, SVCCA, PWCCA and Procrustes against plain numpy (float64) versions.

The k-NN references transcribe platonic-rep's torch code into numpy; the CCA references use the
textbook route (inverse square roots of the covariance matrices), independent of the SVD route of
the library; Procrustes uses the SVD of X^T Y directly.
"""
from __future__ import annotations

import numpy as np
import pytest

from repsim_jax.metrics.knn_alignment import (cknna, cknna_matrix, knn_indices, mutual_knn,
                                          mutual_knn_matrix)
from repsim_jax.metrics.cca import pwcca, pwcca_matrix, svcca, svcca_matrix
from repsim_jax.metrics.procrustes import procrustes, procrustes_matrix

TOL = 1e-5
N = 48


def reps(widths, n=N, seed=0):
  """Related representations with a decaying spectrum (SVD truncation keeps a strict subset)."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, 6)) * np.array([4.0, 3.0, 2.0, 1.0, 0.5, 0.25])
  out = []
  for d in widths:
    x = z @ rng.normal(size=(6, d)) + 0.3 * rng.normal(size=(n, d)) + 1.5
    out.append(x.astype(np.float32))
  return out


def unit(x):
  return x / np.linalg.norm(x, axis=1, keepdims=True)


# --- numpy references ----------------------------------------------------------------------------

def np_knn(x, k):
  sims = x @ x.T
  np.fill_diagonal(sims, -1e8)
  return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def np_mutual_knn(x, y, k):
  a, b = np_knn(unit(x), k), np_knn(unit(y), k)
  n = len(x)
  ma, mb = np.zeros((n, n)), np.zeros((n, n))
  ma[np.arange(n)[:, None], a] = 1
  mb[np.arange(n)[:, None], b] = 1
  return np.mean((ma * mb).sum(1) / k)


def np_hsic_unbiased(k, l):
  m = k.shape[0]
  k, l = k.copy(), l.copy()
  np.fill_diagonal(k, 0)
  np.fill_diagonal(l, 0)
  return ((np.sum(k * l.T) + np.sum(k) * np.sum(l) / ((m - 1) * (m - 2))
           - 2 * np.sum(k @ l) / (m - 2)) / (m * (m - 3)))


def np_hsic_biased(k, l):
  h = np.eye(k.shape[0]) - 1 / k.shape[0]
  return np.trace(k @ h @ l @ h)


def np_cknna(x, y, k, unbiased=True):
  kx, ly = unit(x) @ unit(x).T, unit(y) @ unit(y).T
  n = len(x)

  def sim(a, b):
    def mask(g):
      g = g.copy()
      if unbiased:
        np.fill_diagonal(g, -np.inf)
      m = np.zeros((n, n))
      m[np.arange(n)[:, None], np.argsort(-g, axis=1, kind="stable")[:, :k]] = 1
      return m

    m = mask(a) * mask(b)
    return (np_hsic_unbiased if unbiased else np_hsic_biased)(m * a, m * b)

  return sim(kx, ly) / (np.sqrt(sim(kx, kx) * sim(ly, ly)) + 1e-6)


def inv_sqrt(c):
  w, v = np.linalg.eigh(c)
  return (v / np.sqrt(w)) @ v.T


def np_cca(x, y):
  """Textbook CCA: correlations, and the unit-norm canonical variates of x."""
  x, y = x - x.mean(0), y - y.mean(0)
  wx, wy = inv_sqrt(x.T @ x), inv_sqrt(y.T @ y)
  a, rho, _ = np.linalg.svd(wx @ x.T @ y @ wy)
  r = min(x.shape[1], y.shape[1])
  h = x @ wx @ a[:, :r]
  return rho[:r], h / np.linalg.norm(h, axis=0), x


def np_svcca(x, y, keep=0.99):
  def reduce(z):
    z = z - z.mean(0)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    frac = np.cumsum(s ** 2) / np.sum(s ** 2)
    r = int(np.searchsorted(frac, keep) + 1)
    return u[:, :r] * s[:r]

  rho, _, _ = np_cca(reduce(x), reduce(y))
  return rho.mean()


def np_pwcca(x, y):
  rho, h, xc = np_cca(x, y)
  alpha = np.abs(h.T @ xc).sum(1)
  return np.sum(alpha * rho) / np.sum(alpha)


def np_procrustes(x, y):
  x, y = x - x.mean(0), y - y.mean(0)
  x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
  return 2 - 2 * np.linalg.svd(x.T @ y, compute_uv=False).sum()


def f64(*xs):
  return [x.astype(np.float64) for x in xs]


# --- tests ---------------------------------------------------------------------------------------

def test_knn_indices_match_argsort():
  x, = reps([7])
  np.testing.assert_array_equal(np.asarray(knn_indices(x, k=5, block_size=20)),
                                np_knn(unit(x.astype(np.float64)), 5))


@pytest.mark.parametrize("k", [3, 10])
def test_mutual_knn_matches_reference(k):
  x, y, z = reps([7, 5, 9])
  assert abs(float(mutual_knn(x, y, k=k)) - np_mutual_knn(*f64(x, y), k)) <= TOL
  got = mutual_knn_matrix([x, y], [y, z], k=k)
  want = [[np_mutual_knn(*f64(a, b), k) for b in (y, z)] for a in (x, y)]
  np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


@pytest.mark.parametrize("unbiased", [True, False])
def test_cknna_matches_reference(unbiased):
  x, y, z = reps([7, 5, 9], seed=1)
  assert abs(float(cknna(x, y, k=10, unbiased=unbiased))
             - np_cknna(*f64(x, y), 10, unbiased)) <= TOL
  got = cknna_matrix([x, z], [y, z], k=10, unbiased=unbiased)
  want = [[np_cknna(*f64(a, b), 10, unbiased) for b in (y, z)] for a in (x, z)]
  np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


def test_svcca_pwcca_match_reference():
  x, y, z = reps([7, 5, 9], seed=2)
  assert abs(float(svcca(x, y)) - np_svcca(*f64(x, y))) <= TOL
  assert abs(float(pwcca(x, y)) - np_pwcca(*f64(x, y))) <= TOL
  np.testing.assert_allclose(svcca_matrix([x, y], [y, z]),
                             [[np_svcca(*f64(a, b)) for b in (y, z)] for a in (x, y)],
                             atol=TOL, rtol=0)
  np.testing.assert_allclose(pwcca_matrix([x, y], [y, z]),
                             [[np_pwcca(*f64(a, b)) for b in (y, z)] for a in (x, y)],
                             atol=TOL, rtol=0)


def test_procrustes_matches_reference():
  x, y, z = reps([7, 5, 9], seed=3)
  assert abs(float(procrustes(x, y)) - np_procrustes(*f64(x, y))) <= TOL
  np.testing.assert_allclose(procrustes_matrix([x, y], [y, z]),
                             [[np_procrustes(*f64(a, b)) for b in (y, z)] for a in (x, y)],
                             atol=TOL, rtol=0)
  # Gram-sized case n < d: the thin-SVD route still gives the same nuclear norm.
  a, b = reps([20, 30], n=12, seed=4)
  assert abs(float(procrustes(a, b)) - np_procrustes(*f64(a, b))) <= TOL


def test_invariances():
  x, y = reps([7, 5], seed=5)
  q, _ = np.linalg.qr(np.random.default_rng(6).normal(size=(7, 7)))
  xr = (x @ q.astype(np.float32)) * 3.0  # orthogonal transform and isotropic scaling
  for fn in (svcca, procrustes, cknna, mutual_knn):
    assert abs(float(fn(xr, y)) - float(fn(x, y))) <= TOL, fn.__name__
  # PWCCA weights sum over neurons, so it is invariant to permuting (not rotating) them.
  xp = x[:, np.random.default_rng(7).permutation(7)] * 3.0
  assert abs(float(pwcca(xp, y)) - float(pwcca(x, y))) <= TOL
  assert float(procrustes(x, xr)) <= TOL
  assert abs(float(svcca(x, xr)) - 1) <= TOL and abs(float(pwcca(x, xr)) - 1) <= TOL


def test_degenerate_inputs():
  x, = reps([5])
  const = np.full_like(x, 0.7)
  assert float(svcca(const, x)) == 0.0 and float(pwcca(x, const)) == 0.0
  assert float(procrustes(const, x)) == 2.0
  for value in (cknna(const, x), mutual_knn(const, x, k=3)):
    assert np.isfinite(float(value))
  with pytest.raises(ValueError, match="k: CKNNA needs k >= 2"):
    cknna(x, x, k=1)
  with pytest.raises(ValueError, match="same number of"):
    procrustes(x, x[:10])
  with pytest.raises(ValueError, match="layers_b: contains NaN|layers_b\\[0\\]: contains NaN"):
    svcca_matrix([x], [np.full_like(x, np.nan)])
