"""Distance correlation and RSM norm difference against numpy transcriptions of ReSi's code
(sklearn-style dense float64 distance matrices, double centring), with and without ties; the
streamed block sums are checked with a block size that does not divide n."""
from __future__ import annotations

import numpy as np
import pytest

from repsim_jax.measures import measure, similarity_matrix
from repsim_jax.measures import distance_matrices
from resi_data import related, tied

TOL = 1e-5


def np_distances(x):
  x = np.asarray(x, np.float64)
  return np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1), 0))


def double_center(x):
  return x - x.mean(axis=0, keepdims=True) - x.mean(axis=1, keepdims=True) + x.mean()


def np_distance_correlation(r, rp):
  s, sp = double_center(np_distances(r)), double_center(np_distances(rp))
  dcov2 = lambda a, b: np.multiply(a, b).mean()
  return np.sqrt(dcov2(s, sp) / np.sqrt(dcov2(s, s) * dcov2(sp, sp)))


def np_rsm_norm_diff(r, rp):
  return np.linalg.norm(np_distances(r) - np_distances(rp))


@pytest.mark.parametrize("data", [related, tied])
def test_distance_correlation(data):
  x, y = data()
  want = np_distance_correlation(x, y)
  assert 0.2 < want < 0.99
  np.testing.assert_allclose(measure("distance-correlation-score")(x, y), want, rtol=TOL)


@pytest.mark.parametrize("data", [related, tied])
def test_rsm_norm_difference(data):
  x, y = data()
  want = np_rsm_norm_diff(x, y)
  got = measure("rsm-norm-difference-distance")(x, y)
  np.testing.assert_allclose(got, want, rtol=TOL)
  assert measure("rsm-norm-difference-distance")(x, x + 3.0) == pytest.approx(0, abs=1e-3)


def test_blocked_sums_match_dense():
  x, y = related(n=70)
  px, py = distance_matrices.prepare_points(x), distance_matrices.prepare_points(y)
  d = np_distances(x)
  for kind, f in ((("euclidean", 0.0), d), (("exp", 1.7), np.exp(-d / 1.7)),
                  (("exp_sq", 2.0), np.exp(-2 * d ** 2))):
    np.testing.assert_allclose(distance_matrices.row_sums(px, kind), f.sum(1), rtol=TOL)
  a = distance_matrices.centred(x, ("euclidean", 0.0))
  b = distance_matrices.centred(y, ("euclidean", 0.0))
  fc, gc = double_center(d), double_center(np_distances(y))
  np.testing.assert_allclose(distance_matrices.centred_cross(a, b), np.sum(fc * gc), rtol=TOL)
  off = np.sum(fc * gc) - np.sum(np.diag(fc) * np.diag(gc))
  np.testing.assert_allclose(distance_matrices.centred_cross(a, b, offdiag=True), off, rtol=TOL)
  np.testing.assert_allclose(a.diag, np.diag(fc), rtol=TOL, atol=1e-6)
  np.testing.assert_allclose(a.self_product, np.sum(fc * fc), rtol=TOL)


def test_matrix_and_invariances():
  x, y = related()
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(12, 12)))
  m = measure("distance-correlation-score")
  base = m(x, y)
  for t in (x @ q, 2.5 * x, x + 4.0):  # orthogonal, isotropic scaling, translation
    assert m(t, y) == pytest.approx(base, rel=TOL)
  mat = similarity_matrix([x, y], measure="distance-correlation-score")
  np.testing.assert_allclose(mat, [[1, base], [base, 1]], rtol=TOL)
  with pytest.raises(ValueError, match="same images"):
    measure("rsm-norm-difference-distance")(x, y[:-1])
