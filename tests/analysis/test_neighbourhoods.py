"""Neighbourhoods at early / middle / late layers and shared-neighbour counts against numpy."""
from __future__ import annotations

import numpy as np
import pytest

from repsim_jax.analysis import neighbourhoods as nb


def _numpy_cosine_neighbours(x, queries, k):
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  sim = xn[queries] @ xn.T
  sim[np.arange(len(queries)), queries] = -np.inf
  idx = np.argsort(-sim, axis=1, kind="stable")[:, :k]
  return 1 - np.take_along_axis(sim, idx, 1), idx


def test_representative_layers():
  assert nb.representative_layers(12) == (1, 6, 10)
  assert nb.representative_layers(3) == (1, 1, 1)
  with pytest.raises(ValueError, match="at least 3 blocks"):
    nb.representative_layers(2)


def test_query_neighbours_excludes_self_keeps_duplicates():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(40, 5))
  x[7] = x[3]  # duplicate image: distance 0 to query 7 from a lower index
  queries = np.array([7, 3, 20, 0])
  dist, idx = nb.query_neighbours(x, queries, 4)
  want_d, want_i = _numpy_cosine_neighbours(x, queries, 4)
  np.testing.assert_array_equal(idx, want_i)
  np.testing.assert_allclose(dist, want_d, atol=1e-5)
  assert not (idx == queries[:, None]).any()
  assert idx[0, 0] == 3 and idx[1, 0] == 7  # the duplicate is the nearest neighbour


def test_neighbourhoods_and_shared_counts_against_numpy():
  rng = np.random.default_rng(1)
  n, k = 60, 9
  base = rng.normal(size=(n, 4))
  models = {  # different depths and widths; late layers of a and b share structure
      "a": [rng.normal(size=(n, 6)) for _ in range(5)],
      "b": [rng.normal(size=(n, 3)) for _ in range(7)],
      "c": [rng.normal(size=(n, 8)) for _ in range(4)],
  }
  models["a"][3] = base + 0.05 * rng.normal(size=base.shape)
  models["b"][5] = base + 0.05 * rng.normal(size=base.shape)
  queries = np.array([5, 17, 42])
  out = nb.neighbourhoods(models, queries, k=k)
  assert out["models"] == ["a", "b", "c"]
  np.testing.assert_array_equal(out["layers"], [[1, 2, 3], [1, 3, 5], [1, 2, 2]])
  for m, name in enumerate(out["models"]):
    for r, l in enumerate(out["layers"][m]):
      d, i = _numpy_cosine_neighbours(models[name][l], queries, k)
      np.testing.assert_array_equal(out["indices"][m, r], i)
      np.testing.assert_allclose(out["distances"][m, r], d, atol=1e-5)
  counts = nb.shared_neighbour_counts(out["indices"])
  idx = out["indices"]
  for r in range(3):
    for q in range(3):
      sets = [set(idx[m, r, q]) for m in range(3)]
      want = [[len(sa & sb) for sb in sets] for sa in sets]
      np.testing.assert_array_equal(counts["between_models"][r, q], want)
      assert counts["all_models"][r, q] == len(sets[0] & sets[1] & sets[2])
  for m in range(3):
    for q in range(3):
      sets = [set(idx[m, r, q]) for r in range(3)]
      np.testing.assert_array_equal(counts["across_layers"][m, q],
                                    [[len(sa & sb) for sb in sets] for sa in sets])
  assert counts["between_models"][2, :, 0, 1].min() >= 6  # late a and b share most neighbours


def test_plot_neighbourhoods_writes_png_and_pdf(tmp_path):
  from repsim_jax.plotting.neighbourhoods import plot_neighbourhoods
  rng = np.random.default_rng(2)
  images = (rng.random((30, 12, 16, 3)) * 255).astype(np.uint8)
  indices = rng.integers(0, 30, size=(2, 3, 9))
  paths = plot_neighbourhoods(images, 4, indices, str(tmp_path / "fig2.png"),
                              model_names=["vit", "dinov2"])
  assert paths == [str(tmp_path / "fig2.png"), str(tmp_path / "fig2.pdf")]
  with open(paths[0], "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  with open(paths[1], "rb") as f:
    assert f.read(5) == b"%PDF-"
  with pytest.raises(ValueError, match="model_names"):
    plot_neighbourhoods(images, 4, indices, str(tmp_path / "x"), model_names=["vit"])


def test_mosaic_places_images_row_major():
  from repsim_jax.plotting.neighbourhoods import mosaic
  ims = [np.full((4, 5, 3), v, np.uint8) for v in (0, 51, 102, 153, 204)]
  out = mosaic(ims, 3, gap=1)
  assert out.shape == (2 * 4 + 1, 3 * 5 + 2, 3)
  np.testing.assert_allclose(out[0, 6], 0.2)  # second image, first row
  np.testing.assert_allclose(out[5, 6], 0.8)  # fifth image, second row
  np.testing.assert_allclose(out[5, 12], 1.0)  # empty slot stays white
