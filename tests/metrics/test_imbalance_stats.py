"""Appendix B statistics, representation preprocessing, the synthetic ground truth."""
import numpy as np
import pytest

import repsim_jax
from repsim_jax.data import synthetic_layers
from repsim_jax.metrics import distances, imbalance_stats


def _layers():
  return synthetic_layers.information_loss_layers(120, n_layers=4, latent_dim=8, drop=2,
                                                  width=12, seed=1)


def test_subsets_are_disjoint_and_exact():
  layers = _layers()
  out = imbalance_stats.imbalance_subsets(layers, subset_size=40, seed=3, k=1)
  assert out["values"].shape == (3, 4, 4) and out["subsets"].shape == (3, 40)
  assert len(np.unique(out["subsets"])) == 120  # disjoint, covering all N
  for r, idx in enumerate(out["subsets"]):
    np.testing.assert_array_equal(
        out["values"][r], repsim_jax.information_imbalance_matrix([x[idx] for x in layers]))
  np.testing.assert_allclose(out["mean"], out["values"].mean(0))
  np.testing.assert_allclose(out["sem"], out["values"].std(0, ddof=1) / np.sqrt(3))
  with pytest.raises(ValueError, match="4 disjoint subsets of 40 points need 160 points"):
    imbalance_stats.imbalance_subsets(layers, subset_size=40, repeats=4, seed=3)


def test_sample_size_curve_and_smoothness_against_numpy():
  layers = _layers()
  curve = imbalance_stats.sample_size_curve(layers, sizes=[30, 60], n_subsamples=3, seed=0)
  assert curve["values"].shape == (2, 3, 4, 4)
  rng = np.random.default_rng(0)  # the documented draw order: per size, per subsample
  for s, size in enumerate([30, 60]):
    for r in range(3):
      idx = np.sort(rng.choice(120, size=size, replace=False))
      np.testing.assert_array_equal(
          curve["values"][s, r], repsim_jax.information_imbalance_matrix([x[idx] for x in layers]))
  np.testing.assert_allclose(curve["std"], curve["values"].std(axis=1, ddof=1))
  m = np.array([[0.1, 0.3, 0.2, 0.6], [0.0, 0.1, 0.2, 0.3]])
  np.testing.assert_allclose(imbalance_stats.smoothness(m), [np.std([0.2, -0.1, 0.4]), 0.0],
                             atol=1e-12)
  sm = imbalance_stats.smoothness_curve(layers, sizes=[30, 60], n_seeds=3, seed=0)
  np.testing.assert_allclose(sm["values"], np.std(np.diff(curve["values"], axis=-1), axis=-1))
  with pytest.raises(ValueError, match="at least 3 layers"):
    imbalance_stats.smoothness(m[:, :2])
  # a size of N: every subsample is every point, the matrix on all of them; the draws of the
  # other sizes stay where the documented order puts them
  whole = imbalance_stats.sample_size_curve(layers, sizes=[30, 120], n_subsamples=3, seed=0)
  np.testing.assert_array_equal(whole["values"][0], curve["values"][0])
  for r in range(3):
    np.testing.assert_array_equal(whole["values"][1, r],
                                  repsim_jax.information_imbalance_matrix(layers))
  np.testing.assert_allclose(whole["std"][1], 0, atol=1e-12)


def test_preprocess_against_numpy():
  x = np.random.default_rng(2).normal(size=(30, 50)) * 3 + 1
  got = distances.preprocess(x, clip_quantiles=(0.05, 0.95))
  lo, hi = np.quantile(x, 0.05, axis=1), np.quantile(x, 0.95, axis=1)
  np.testing.assert_allclose(got, np.minimum(np.maximum(x, lo[:, None]), hi[:, None]))
  np.testing.assert_allclose(distances.preprocess(x, center=True).mean(0), 0, atol=1e-12)
  np.testing.assert_allclose(np.linalg.norm(distances.preprocess(x, l2_normalize=True), axis=1), 1)
  with pytest.raises(ValueError, match="clip_quantiles"):
    distances.preprocess(x, clip_quantiles=(0.9, 0.1))


def test_synthetic_ground_truth():
  m = repsim_jax.information_imbalance_matrix(
      synthetic_layers.information_loss_layers(400, n_layers=5, seed=0))
  upper, lower = m[np.triu_indices(5, 1)], m.T[np.triu_indices(5, 1)]
  assert np.all(upper < lower)  # early layers predict late ones better than the reverse
  assert np.all(np.diff(m[0, 1:]) > 0) and np.all(np.diff(m[-1, ::-1][1:]) > 0)
