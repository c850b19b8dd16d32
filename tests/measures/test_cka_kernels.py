"""Lange's zero-diagonal CKA (linear and Laplace) and Gretton's Laplace CKA against a numpy
transcription of wrongu/repsim's AngularCKA (centred Gram matrix, diagonal masked for the
unbiased variant, unit Frobenius norm, inner product), with and without ties."""
from __future__ import annotations

import numpy as np
import pytest

from repsim_jax.measures import measure
from resi_data import related, tied

TOL = 1e-5


def np_point(k, unbiased):
  n = k.shape[0]
  h = np.eye(n) - np.ones((n, n)) / n
  c = h @ k @ h
  if unbiased:
    c = c * (1 - np.eye(n))
  return c / np.linalg.norm(c)


def np_kernel(x, kernel, sigma=1.0):
  x = np.float64(x)
  if kernel == "linear":
    return x @ x.T
  sq = np.clip((x * x).sum(1)[:, None] + (x * x).sum(1)[None] - 2 * x @ x.T, 0, None)
  return np.exp(-np.sqrt(sq) / (sigma * np.sqrt(2)))


def np_cka_score(x, y, kernel, unbiased, sigma=1.0):
  cka = np.sum(np_point(np_kernel(x, kernel, sigma), unbiased)
               * np_point(np_kernel(y, kernel, sigma), unbiased))
  return np.cos(np.arccos(np.clip(cka, -1, 1)))


CASES = {"cka-kernel=linear-hsic=lange-score": ("linear", True),
         "cka-kernel=(laplace-sigma=1.0)-hsic=gretton-score": ("laplace", False),
         "cka-kernel=(laplace-sigma=1.0)-hsic=lange-score": ("laplace", True)}


@pytest.mark.parametrize("data", [related, tied])
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_transcription(name, data):
  x, y = data()
  want = np_cka_score(x, y, *CASES[name])
  assert 0.05 < want < 0.99
  np.testing.assert_allclose(measure(name)(x, y), want, rtol=TOL)


def test_sigma_option_and_identity():
  x, y = related()
  name = "cka-kernel=(laplace-sigma=1.0)-hsic=lange-score"
  got = measure(name)(x, y, sigma=3.0)
  np.testing.assert_allclose(got, np_cka_score(x, y, "laplace", True, sigma=3.0), rtol=TOL)
  for name in CASES:
    assert measure(name)(x, x) == pytest.approx(1.0, abs=1e-5)
  assert measure("cka-kernel=linear-hsic=lange-score")(np.ones((20, 3)), y[:20]) == 0
