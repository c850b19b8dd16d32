"""The information-imbalance figures (Mahaut & Baroni 2026, Figs. 1, 10, 11, 12) from small
arrays."""
from __future__ import annotations

import os

import matplotlib.image
import numpy as np
import pytest

from repsim_jax.plotting.imbalance import (plot_imbalance_grid, plot_imbalance_heatmaps,
                                           plot_sample_size_std, plot_smoothness_vs_n)


def _check_written(paths, count=2):
  assert len(paths) == count
  for p in paths:
    assert os.path.getsize(p) > 0
    if p.endswith(".png"):
      image = matplotlib.image.imread(p)
      assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0
    else:
      with open(p, "rb") as f:
        assert f.read(5) == b"%PDF-"


def _matrices(depths):
  rng = np.random.default_rng(0)
  return {(a, b): rng.uniform(0, 1, (la, lb)) for a, la in depths.items()
          for b, lb in depths.items()}


def test_imbalance_grid_and_heatmaps(tmp_path):
  depths = {"vit": 5, "convnext": 7}
  matrices = _matrices(depths)
  names = {m: [f"{m}_{i}" for i in range(l)] for m, l in depths.items()}
  paths = plot_imbalance_grid(matrices, str(tmp_path / "fig1.png"), models=list(depths),
                              representative={"vit": [1, 2, 3], "convnext": [1, 3, 5]},
                              layer_names=names)
  assert paths == [str(tmp_path / "fig1.png"), str(tmp_path / "fig1.pdf")]
  _check_written(paths)
  heat = plot_imbalance_heatmaps(matrices, str(tmp_path / "fig10"), layer_names=names)
  _check_written(heat, count=8)
  assert str(tmp_path / "fig10" / "fig10_vit__convnext.png") in heat
  with pytest.raises(ValueError, match="missing"):
    plot_imbalance_grid({("vit", "vit"): matrices[("vit", "vit")]}, str(tmp_path / "x"),
                        models=list(depths), representative={"vit": [1, 2, 3]})
  with pytest.raises(ValueError, match="expected 3 layers"):
    plot_imbalance_grid(matrices, str(tmp_path / "x"), models=list(depths),
                        representative={"vit": [1, 2], "convnext": [1, 2, 3]})


def test_sample_size_and_smoothness_figures(tmp_path):
  sizes = np.array([100, 1000, 10_000])
  std = {"vit": np.array([0.05, 0.02, 0.01]), "convnext": np.array([0.08, 0.05, 0.04])}
  _check_written(plot_sample_size_std(sizes, std, str(tmp_path / "fig11")))
  _check_written(plot_smoothness_vs_n(sizes, std, {m: v / 4 for m, v in std.items()},
                                      str(tmp_path / "fig12")))
  with pytest.raises(ValueError, match="one value per size"):
    plot_sample_size_std(sizes, {"vit": np.zeros(2)}, str(tmp_path / "bad"))
  with pytest.raises(ValueError, match="same models"):
    plot_smoothness_vs_n(sizes, std, {"vit": std["vit"]}, str(tmp_path / "bad"))
