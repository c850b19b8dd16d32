"""The measure benchmark's tests on small matrices whose answers are known by hand, and ReSi's
monotonicity transcribed loop by loop."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from repsim_jax.analysis import measure_quality as quality


def test_layer_identification_counts_strict_row_maxima():
  sim = np.array([[0.9, 0.2, 0.1],
                  [0.3, 0.5, 0.5],   # tie with layer 2: a miss
                  [0.1, 0.8, 0.7]])  # layer 1 wins: a miss
  assert quality.layer_identification(sim) == pytest.approx(1 / 3)
  assert quality.layer_identification(np.ones((4, 4))) == 0
  assert quality.layer_identification(quality.oriented(1 - np.eye(3), False)) == 1
  with pytest.raises(ValueError, match="square"):
    quality.layer_identification(np.ones((2, 3)))


def resi_monotonicity(sim):
  """ReSi's corr_btw_sim_and_layer_distance and violation_rate on a similarity matrix."""
  n = len(sim)
  corrs, viol, total = [], 0, 0
  for src in range(n):
    for tgts in (range(src + 1, n), range(0, src)):
      sims = [sim[src, t] for t in tgts]
      dists = [abs(t - src) for t in tgts]
      corrs.append(-scipy.stats.spearmanr(sims, dists)[0] if len(sims) > 1 else np.nan)
  for src in range(n):
    for tgt in range(src + 1, n):
      for far in range(tgt + 1, n):
        total += 1
        viol += sim[src, tgt] < sim[src, far]
    for tgt in range(0, src):
      for far in range(0, tgt):
        total += 1
        viol += sim[src, tgt] < sim[src, far]
  return np.nanmean(corrs), viol / total


def test_layer_monotonicity_matches_resi():
  rng = np.random.default_rng(0)
  gap = np.abs(np.subtract.outer(np.arange(7), np.arange(7)))
  for noise in (0.0, 0.5, 3.0):
    sim = -gap + noise * rng.normal(size=gap.shape)
    sim = np.round(sim, 1)  # ties
    got = quality.layer_monotonicity(sim)
    np.testing.assert_allclose(got, resi_monotonicity(sim), rtol=1e-12)
  assert quality.layer_monotonicity(-gap) == (pytest.approx(1.0), 0.0)
  assert quality.layer_monotonicity(gap.astype(float))[0] == pytest.approx(-1.0)


def test_average_ranks_match_scipy():
  x = np.array([3.0, 1.0, 3.0, 2.0, 1.0, 5.0])
  np.testing.assert_array_equal(quality.average_ranks(x), scipy.stats.rankdata(x))


def test_factor_sensitivity():
  scores_a = np.array([0.9, 0.8, 0.2, 0.1])  # layers 0, 1 colour-driven
  scores_b = np.array([0.7, 0.3, 0.3])       # layer 0 colour-driven
  sim = np.array([[0.9, 0.1, 0.0],
                  [0.2, 0.5, 0.1],            # most similar to B's layer 1: a miss
                  [0.0, 0.0, 1.0],
                  [0.0, 1.0, 0.0]])
  assert quality.factor_sensitivity(sim, scores_a, scores_b) == (0.5, pytest.approx(1 / 3))
  np.testing.assert_array_equal(quality.factor_driven([1, 1, 1]), [True] * 3)
