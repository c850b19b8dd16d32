"""Shape metrics, Procrustes variants and Bures distance against numpy transcriptions of netrep
(LinearMetric, PermutationMetric, utils.whiten / check_equal_shapes) and ReSi
(repsim/measures/procrustes.py), written here from their code in float64; Bures and NBS also
against rsatoolbox 0.3.2's 'bures_metric' and 'bures' comparators.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.optimize import linear_sum_assignment

from repsim_jax.measures import measure, measures as listing, similarity_matrix
from repsim_jax.measures import rsa, shape

TOL = 1e-5
N = 40


# ------------------------------------------------------------------- transcriptions (float64)

def pad(x, y):
  """netrep check_equal_shapes(zero_pad=True) / ReSi adjust_dimensionality."""
  d = max(x.shape[1], y.shape[1])
  return (np.pad(x, ((0, 0), (0, d - x.shape[1]))), np.pad(y, ((0, 0), (0, d - y.shape[1]))))


def netrep_whiten(x, alpha, tol=1e-7):
  if alpha > 1 - tol:
    return x
  lam, v = np.linalg.eigh(x.T @ x)
  lam = np.maximum(lam, tol)
  d = alpha + (1 - alpha) * lam ** -0.5
  new_var = np.sum(alpha ** 2 * lam + 2 * alpha * (1 - alpha) * lam ** 0.5 + (1 - alpha) ** 2)
  d *= np.sqrt(np.sum(lam) / new_var)
  return x @ ((v * d[None, :]) @ v.T)


def netrep_linear(x, y, alpha, score):
  x, y = pad(x, y)
  xw = netrep_whiten(x - x.mean(0), alpha)
  yw = netrep_whiten(y - y.mean(0), alpha)
  u, _, vt = np.linalg.svd(xw.T @ yw)
  tx, ty = xw @ u, yw @ vt.T
  if score == "angular":
    c = np.dot(tx.ravel(), ty.ravel()) / (np.linalg.norm(tx) * np.linalg.norm(ty))
    return np.arccos(np.clip(c, -1, 1))
  return np.linalg.norm(tx - ty)


def netrep_permutation(x, y, score):
  x, y = pad(x, y)
  x, y = x - x.mean(0), y - y.mean(0)
  px, py = linear_sum_assignment(x.T @ y, maximize=True)
  tx, ty = x[:, px], y[:, py]
  if score == "angular":
    c = np.dot(tx.ravel(), ty.ravel()) / (np.linalg.norm(tx) * np.linalg.norm(ty))
    return np.arccos(np.clip(c, -1, 1))
  return np.linalg.norm(tx - ty)


def resi_orthogonal_procrustes(r, rp):
  r, rp = pad(r, rp)
  nuc = orthogonal_procrustes(r, rp)[1]
  return np.sqrt(max(-2 * nuc + np.linalg.norm(r) ** 2 + np.linalg.norm(rp) ** 2, 0))


def resi_centred_normalized(r, rp):
  r, rp = r - r.mean(0), rp - rp.mean(0)
  return resi_orthogonal_procrustes(r / np.linalg.norm(r), rp / np.linalg.norm(rp))


def resi_size_and_shape(r, rp):
  return resi_orthogonal_procrustes(r - r.mean(0), rp - rp.mean(0))


def resi_angular_centred(r, rp):
  r, rp = pad(r - r.mean(0), rp - rp.mean(0))
  r, rp = r / np.linalg.norm(r), rp / np.linalg.norm(rp)
  q, _ = orthogonal_procrustes(r, rp)
  return np.arccos(np.clip(np.trace(q.T @ r.T @ rp), -1, 1))


def resi_permutation_procrustes(r, rp):
  r, rp = pad(r, rp)
  pr, prp = linear_sum_assignment(r.T @ rp, maximize=True)
  return np.linalg.norm(r[:, pr] - rp[:, prp])


def resi_aligned_cossim(r, rp):
  r, rp = pad(r, rp)
  q, _ = orthogonal_procrustes(r, rp)
  ra = r @ q
  cos = [a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in zip(ra, rp)
         if np.any(a) and np.any(b)]
  return np.mean(cos)


def data(dx, dy, ties=False, seed=0):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(N, 4))
  x = z @ rng.normal(size=(4, dx)) + 0.4 * rng.normal(size=(N, dx)) + 3.0
  y = z @ rng.normal(size=(4, dy)) + 0.4 * rng.normal(size=(N, dy)) - 1.0
  if ties:  # repeated rows and integer values: equal entries, duplicated stimuli
    x, y = np.round(x), np.round(y)
    x[::4], y[::4] = x[1::4], y[1::4]
  return x, y


CASES = [(6, 6, False), (7, 4, False), (5, 5, True), (3, 8, True)]


@pytest.mark.parametrize("dx,dy,ties", CASES)
def test_linear_shape_metric_matches_netrep(dx, dy, ties):
  x, y = data(dx, dy, ties)
  for alpha in shape.ALPHAS + (0.25,):
    for score in ("angular", "euclidean"):
      want = netrep_linear(x, y, alpha, score)
      got = shape.linear_metric(x, y, alpha=alpha, score=score)
      np.testing.assert_allclose(got, want, rtol=TOL, err_msg=f"alpha={alpha} {score}")
      if alpha in shape.ALPHAS:
        m = measure(f"shape_metric-alpha={alpha:g}-distance={score}")
        np.testing.assert_allclose(m(x, y), want, rtol=TOL)


@pytest.mark.parametrize("dx,dy,ties", CASES)
def test_permutation_metric_and_resi_variants(dx, dy, ties):
  x, y = data(dx, dy, ties)
  checks = {
      "permutation_metric-distance=angular": netrep_permutation(x, y, "angular"),
      "permutation_metric-distance=euclidean": netrep_permutation(x, y, "euclidean"),
      "procrustes-distance=euclidean": resi_centred_normalized(x, y),
      "bures-distance": resi_size_and_shape(x, y),
      "procrustes_size_and_shape-distance": resi_size_and_shape(x, y),
      "shape_metric-alpha=1-distance=angular": resi_angular_centred(x, y),
      "permutation_procrustes-distance=euclidean": resi_permutation_procrustes(x, y),
  }
  if dx == dy:  # ReSi's completion of X^T Y's null directions is LAPACK's otherwise
    checks["aligned_cossim-score"] = resi_aligned_cossim(x, y)
  for name, want in checks.items():
    np.testing.assert_allclose(measure(name)(x, y), want, rtol=TOL, err_msg=name)


def test_aligned_cossim_keeps_small_real_directions():
  # Wide ReLU layers with a large common offset: X^T Y has hundreds of singular values far
  # below d * eps * s_max that are not null; dropping them (numpy's rank tolerance) moved the
  # score by 0.5% from ReSi's float64 value at d = 768.
  rng = np.random.default_rng(3)
  z = rng.normal(size=(600, 16))
  x = np.maximum(z @ rng.normal(size=(16, 300)) + 0.3 * rng.normal(size=(600, 300)), 0)
  y = np.maximum(z @ rng.normal(size=(16, 300)) + 0.8 * rng.normal(size=(600, 300)), 0)
  s = np.linalg.svd(x.T @ y, compute_uv=False)
  assert np.sum(s < s[0] * 300 * np.finfo(np.float32).eps) > 10  # the case this guards
  np.testing.assert_allclose(measure("aligned_cossim-score")(x.astype(np.float32),
                                                             y.astype(np.float32)),
                             resi_aligned_cossim(x, y), rtol=TOL)


def test_procrustes_variants_relate_to_todays_procrustes():
  from repsim_jax.metrics.procrustes import procrustes
  x, y = data(6, 4)
  today = float(procrustes(x, y))  # 2 - 2 ||X^T Y||_* on unit-norm centred data
  euclid = measure("procrustes-distance=euclidean")(x, y)
  angular = measure("shape_metric-alpha=1-distance=angular")(x, y)
  np.testing.assert_allclose(euclid ** 2, today, rtol=TOL)
  np.testing.assert_allclose(np.cos(angular), 1 - today / 2, rtol=TOL)
  # Bures distance of the unit-norm centred data is the Ding et al. distance's square root.
  xc, yc = x - x.mean(0), y - y.mean(0)
  np.testing.assert_allclose(
      measure("bures-distance")(xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)),
      euclid, rtol=TOL)


@pytest.mark.parametrize("ties", [False, True])
def test_bures_and_nbs_identity_through_rsatoolbox(ties):
  """rsatoolbox's 'bures' (NBS of the centred kernels -D/2 double-centred, D our squared
  euclidean RDM) and 'bures_metric' (squared Bures distance): arccos(NBS) equals the angular
  Procrustes / shape metric on centred data (the similarity repository's identity)."""
  rc = pytest.importorskip("rsatoolbox.rdm.compare")
  x, y = data(5, 3, ties)
  va = np.asarray(rsa.rdm(x, metric="squared_euclidean"))[None]
  vb = np.asarray(rsa.rdm(y, metric="squared_euclidean"))[None]
  nbs = rc.compare(va, vb, method="bures")[0, 0]
  bures_sq = rc.compare(va, vb, method="bures_metric")[0, 0]
  np.testing.assert_allclose(measure("bures-distance")(x, y) ** 2, bures_sq, rtol=TOL)
  np.testing.assert_allclose(measure("shape_metric-alpha=1-distance=angular")(x, y),
                             np.arccos(nbs), rtol=TOL)


def test_invariances_declared_hold(invariance_maps):
  x, y = data(5, 5)
  transforms = invariance_maps(5)
  for row in listing():
    if not row["name"].startswith(("shape_metric", "permutation_", "procrustes-distance=eu",
                                   "bures", "aligned")):
      continue
    m = measure(row["name"])
    base = m(x, y)
    for inv in m.properties.invariances:
      np.testing.assert_allclose(m(transforms[inv](x), y), base, rtol=1e-6, atol=1e-9,
                                 err_msg=f"{m.name} {inv}")
    assert m(x, x) == pytest.approx(m.perfect, abs=1e-6)


def test_jit_and_similarity_matrix():
  x, y = data(6, 4)
  m = measure("shape_metric-alpha=0.5-distance=angular")
  px, py = m.prepare(x), m.prepare(y)
  np.testing.assert_allclose(jax.jit(m.pair)(px, py), m(x, y), rtol=1e-10)
  mat = similarity_matrix([x, y], [y], measure="bures-distance")
  np.testing.assert_allclose(mat[:, 0], [resi_size_and_shape(x, y), 0.0], rtol=TOL, atol=1e-6)
  with pytest.raises(ValueError, match="alpha"):
    shape.linear_metric(x, y, alpha=1.5)
