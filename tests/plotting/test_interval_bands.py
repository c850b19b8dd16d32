"""Interval shading in the II figures: the band drawn is the interval given."""
import os

import numpy as np
import pytest

from repsim_jax.plotting import common
from repsim_jax.plotting import imbalance as plots


def test_shade_interval_draws_the_band():
  fig = common.new_figure((3, 2))
  ax = fig.subplots()
  x, low, high = np.arange(4.0), np.array([0.1, 0.2, 0.1, 0.0]), np.array([0.3, 0.5, 0.2, 0.4])
  common.shade_interval(ax, x, low, high, color="red")
  (band,) = ax.collections
  vertices = band.get_paths()[0].vertices
  for xi, lo, hi in zip(x, low, high):  # both edges of the band pass through the interval
    at_x = vertices[np.isclose(vertices[:, 0], xi), 1]
    assert np.isclose(at_x.min(), lo) and np.isclose(at_x.max(), hi)
  with pytest.raises(ValueError, match="one shape"):
    common.shade_interval(ax, x, low[:3], high, color="red")


def test_figures_with_intervals(tmp_path):
  rng = np.random.default_rng(0)
  models = ["a", "b"]
  mats = {(p, q): rng.random((4, 5)) for p in models for q in models}
  intervals = {k: (v - 0.05, v + 0.05) for k, v in mats.items()}
  paths = plots.plot_imbalance_grid(mats, str(tmp_path / "grid"), models=models,
                                    representative={"a": [0, 1, 3], "b": [0, 2, 3]},
                                    intervals=intervals)
  sizes = [100, 1000, 10000]
  paths += plots.plot_sample_size_std(sizes, {"a": [0.1, 0.05, 0.01]}, str(tmp_path / "n"),
                                      band_by_model={"a": ([0.08, 0.04, 0.005],
                                                           [0.12, 0.06, 0.015])})
  paths += plots.plot_smoothness_vs_n(sizes, {"a": [0.1, 0.1, 0.1]}, {"a": [0.01] * 3},
                                      str(tmp_path / "smooth"),
                                      band_by_model={"a": ([0.05] * 3, [0.15] * 3)})
  paths += plots.plot_adjacent_layers({"a": [0.1, 0.3, 0.2], "b": [0.05, 0.06, 0.07]},
                                      str(tmp_path / "adjacent"),
                                      band_by_model={"a": ([0.0, 0.2, 0.1], [0.2, 0.4, 0.3])})
  assert len(paths) == 8 and all(os.path.getsize(p) > 1000 for p in paths)
  with pytest.raises(ValueError, match="one shape"):
    plots.plot_adjacent_layers({"a": [0.1, 0.3]}, str(tmp_path / "bad"),
                               band_by_model={"a": ([0.0], [0.2])})
