"""The Raghu et al. 2021 figures are written (PNG and PDF)."""
from __future__ import annotations

import numpy as np

from repsim_jax.plotting.attention import (plot_attention_distance_by_depth,
                                           plot_attention_distances, plot_head_subset_cka)
from repsim_jax.plotting.localization import plot_localization
from repsim_jax.plotting.receptive_field import plot_receptive_fields
from repsim_jax.plotting.skip import plot_skip_ratio_heatmap, plot_skip_ratio_lines


# --------------------------------------------------------------------------------------------
# Figures


def _assert_files(paths):
  assert [p.rsplit(".", 1)[1] for p in paths] == ["png", "pdf"]
  for p in paths:
    with open(p, "rb") as fh:
      head = fh.read(8)
    assert head.startswith(b"\x89PNG" if p.endswith("png") else b"%PDF")


def test_figures_are_written(tmp_path):
  rng = np.random.default_rng(11)
  _assert_files(plot_attention_distances(rng.uniform(0, 100, (4, 6)),
                                         str(tmp_path / "dist.png"), layers=[0, 1, 3]))
  _assert_files(plot_attention_distance_by_depth(rng.uniform(0, 100, (4, 6)),
                                                 str(tmp_path / "depth")))
  _assert_files(plot_head_subset_cka(np.arange(3.0), rng.uniform(size=(3, 2)),
                                     str(tmp_path / "fig5")))
  _assert_files(plot_receptive_fields(rng.uniform(size=(5, 8, 8)),
                                      str(tmp_path / "sub" / "erf")))
  _assert_files(plot_skip_ratio_heatmap(rng.uniform(size=(4, 10)),
                                        str(tmp_path / "ratio"), num_tokens=6))
  _assert_files(plot_skip_ratio_lines(
      {"ViT CLS": rng.uniform(size=12), "ViT tokens": rng.uniform(size=12),
       "ResNet50": rng.uniform(size=16)}, str(tmp_path / "lines"), log_scale=True))
  _assert_files(plot_localization(rng.uniform(size=(2, 3, 3)), str(tmp_path / "loc"),
                                  tokens=[(0, 0), (1, 2)]))
