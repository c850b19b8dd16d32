"""layer_heatmap writes a readable PNG and a PDF of the expected size ordering."""
from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from repsim_jax.plotting.heatmap import layer_heatmap


def test_layer_heatmap_writes_png_and_pdf(tmp_path):
  m = np.linspace(0, 1, 12).reshape(3, 4)
  m[0, 0] = np.nan  # missing entries are drawn blank, not an error
  paths = layer_heatmap(m, row_labels=["a0", "a1", "a2"], col_labels=[f"b{j}" for j in range(4)],
                        title="ViT → ResNet", path=str(tmp_path / "sub" / "cka.png"),
                        ylabel="ViT", xlabel="ResNet", cbar_label="CKA", cmap="magma",
                        origin="lower")
  assert paths == [str(tmp_path / "sub" / "cka.png"), str(tmp_path / "sub" / "cka.pdf")]
  image = matplotlib.image.imread(paths[0])
  assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0
  with open(paths[1], "rb") as f:
    assert f.read(5) == b"%PDF-"


def test_layer_heatmap_checks_labels(tmp_path):
  with pytest.raises(ValueError, match="does not match the labels"):
    layer_heatmap(np.zeros((2, 2)), row_labels=["a"], col_labels=["b", "c"], title="t",
                  path=str(tmp_path / "x"))
