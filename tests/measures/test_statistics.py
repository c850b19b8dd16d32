"""Magnitude, concentricity and uniformity differences against numpy transcriptions of ReSi's
statistics.py, with and without ties."""
from __future__ import annotations

import numpy as np
import pytest

from repsim_jax.measures import measure
from resi_data import related, tied

TOL = 1e-5


def np_magnitude_difference(r, rp):
  r, rp = np.float64(r), np.float64(rp)
  return abs(np.linalg.norm(r.mean(axis=0)) - np.linalg.norm(rp.mean(axis=0)))


def np_concentricity(x):
  x = np.float64(x)
  m = x.mean(axis=0)
  return np.mean(x @ m / (np.linalg.norm(x, axis=1) * np.linalg.norm(m)))


def np_uniformity(x, t=2):
  x = np.float64(x)
  pdist = ((x[:, None] - x[None]) ** 2).sum(-1)
  return np.log(np.exp(-t * pdist).sum() / x.shape[0] ** 2)


REFERENCES = {
    "magnitude-difference-distance": np_magnitude_difference,
    "concentricity-difference-distance": lambda r, rp: abs(np_concentricity(r)
                                                           - np_concentricity(rp)),
    "uniformity-difference-distance": lambda r, rp: abs(np_uniformity(r) - np_uniformity(rp)),
}


def shifted(data):
  """Adds an offset to y so the summaries differ (the raw test data are centred)."""
  x, y = data()
  return x, y * 0.7 + np.linspace(0.2, 1.0, y.shape[1], dtype=np.float32)


@pytest.mark.parametrize("data", [related, tied])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_matches_transcription(name, data):
  x, y = shifted(data)
  want = REFERENCES[name](x, y)
  assert want > 1e-3
  np.testing.assert_allclose(measure(name)(x, y), want, rtol=TOL)
  assert measure(name)(x, x) == 0


def test_declared_invariances_hold():
  x, y = shifted(related)
  q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(12, 12)))
  moves = {"orthogonal": x @ q, "isotropic_scaling": 1.7 * x, "translation": x + 0.5,
           "permutation": x[:, ::-1]}
  for name in REFERENCES:
    m = measure(name)
    for inv, moved in moves.items():
      same = m(moved, y) == pytest.approx(m(x, y), rel=1e-4, abs=1e-6)
      assert same == (inv in m.properties.invariances), (name, inv)
