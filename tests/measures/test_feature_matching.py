"""Eigenspace overlap and hard / soft correlation match against numpy transcriptions of ReSi's
code (full SVD and numpy's matrix_rank, sklearn-style cosine of centred columns, scipy's
Hungarian matching), with and without ties."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

from repsim_jax.measures import measure
from resi_data import related, tied

TOL = 1e-5


def np_eigenspace_overlap(r, rp):
  r, rp = np.float64(r), np.float64(rp)
  u, _, _ = np.linalg.svd(r)
  v, _, _ = np.linalg.svd(rp)
  u = u[:, : np.linalg.matrix_rank(r)]
  v = v[:, : np.linalg.matrix_rank(rp)]
  return 1 / np.max([r.shape[1], rp.shape[1]]) * (np.linalg.norm(u.T @ v, ord="fro") ** 2)


def np_correlations(r, rp):
  r, rp = np.float64(r), np.float64(rp)
  r, rp = r - r.mean(0), rp - rp.mean(0)
  nr = np.linalg.norm(r, axis=0)
  nrp = np.linalg.norm(rp, axis=0)
  r, rp = r / np.where(nr > 0, nr, 1), rp / np.where(nrp > 0, nrp, 1)
  return r.T @ rp


def np_hard(r, rp):
  c = np_correlations(r, rp)
  pr, prp = scipy.optimize.linear_sum_assignment(c, maximize=True)
  return c[pr, prp].mean()


def np_soft(r, rp):
  c = np_correlations(r, rp)
  return (c.max(axis=1).mean() + c.max(axis=0).mean()) / 2


REFERENCES = {"eigenspace-overlap-score": np_eigenspace_overlap,
              "hard-correlation-match-score": np_hard, "soft-correlation-match-score": np_soft}


@pytest.mark.parametrize("data", [related, tied])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_matches_transcription(name, data):
  x, y = data()
  want = REFERENCES[name](x, y)
  assert 0.05 < want < 0.99
  np.testing.assert_allclose(measure(name)(x, y), want, rtol=TOL)


def test_rank_deficient_and_constant_neurons():
  x, y = related()
  x = np.concatenate([x, x[:, :3] + x[:, 3:6], np.ones((len(x), 2), np.float32)], axis=1)
  for name, ref in REFERENCES.items():
    np.testing.assert_allclose(measure(name)(x, y), ref(x, y), rtol=TOL)
  assert measure("eigenspace-overlap-score")(x, x) < 1  # rank 13 of 17 features


def test_invariances():
  x, y = related()
  a = np.random.default_rng(0).normal(size=(12, 12))
  m = measure("eigenspace-overlap-score")
  assert m(x @ a, y) == pytest.approx(m(x, y), rel=1e-4)
  h = measure("hard-correlation-match-score")
  assert h(3 * x[:, ::-1] + 2, y) == pytest.approx(h(x, y), rel=1e-5)
  assert h(x @ np.linalg.qr(a)[0], y) != pytest.approx(h(x, y), rel=1e-3)
