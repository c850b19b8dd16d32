"""The shapes world: deterministic, factors that match the pixels, usable as a data source."""
import numpy as np
import pytest

from repsim_jax import data as data_lib
from repsim_jax.imaging import features as lowlevel
from repsim_jax.data import shapes_world as sw


def test_images_are_deterministic_and_independent_of_order():
  a, fa = sw.render_batch([3, 11, 12], seed=5)
  b, fb = sw.render_batch([12, 3], seed=5)
  np.testing.assert_array_equal(a[[2, 0]], b)
  for k in sw.FACTORS:
    np.testing.assert_array_equal(fa[k][[2, 0]], fb[k])
  image, labels = sw.shapes_image(11, seed=5)
  np.testing.assert_array_equal(image, a[1])
  assert labels["label"] == labels["shape"] == 11 % len(sw.SHAPES)
  other, _ = sw.render_batch([3, 11, 12], seed=6)
  assert not np.array_equal(a, other)


def test_pixels_show_the_drawn_colours_and_shape():
  images, f = sw.render_batch(range(300), seed=0)
  assert images.shape == (300, 32, 32, 3) and images.dtype == np.uint8
  palette = np.asarray([h[1] for h in sw.HUES])
  # Object centre (inside every shape) has the object colour; noise std is 0.15 * texture.
  calm = f["texture"] < 0.2
  cy = np.clip(((f["y"] + 1) / 2 * 32).astype(int), 0, 31)
  cx = np.clip(((f["x"] + 1) / 2 * 32).astype(int), 0, 31)
  centre = images[np.arange(300), cy, cx] / 255.0
  drawn = palette[f["object_hue"]] * np.array([d["brightness"][0] for d in
                                               (sw.draw_factors(i, seed=0) for i in range(300))])[:, None]
  np.testing.assert_allclose(centre[calm], drawn[calm], atol=0.1)
  # Object and background hues differ; warm flags follow the palette.
  assert np.all(f["object_hue"] != f["background_hue"])
  np.testing.assert_array_equal(f["background_warm"],
                                [sw.HUES[h][2] for h in f["background_hue"]])
  # The true warmth is what the pixel-level estimator measures (noise averages out).
  measured = np.asarray(lowlevel.lowlevel_features(images)["colour_warmth"])
  # (clipping at 0 / 255 of noisy saturated colours biases a few images by up to ~0.04)
  np.testing.assert_allclose(measured, f["warmth"], atol=0.05)
  assert np.median(np.abs(measured - f["warmth"])) < 0.01
  # Classes are balanced and cover every shape.
  assert np.bincount(f["shape"]).tolist() == [60] * len(sw.SHAPES)


def test_texture_and_clutter_drive_the_low_level_measures():
  images, f = sw.render_batch(range(400), seed=1)
  feats = lowlevel.lowlevel_features(images)
  # Rank correlations: noisier images have more gradient energy (mean Sobel magnitude, from
  # scikit-image), images with more lines more Canny edges.
  from skimage import color, filters
  rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
  energy = [filters.sobel(color.rgb2gray(im)).mean() for im in images]
  assert np.corrcoef(rank(f["texture"]), rank(energy))[0, 1] > 0.8
  smooth = f["texture"] < 0.1
  edges = np.asarray(feats["edge_density"])[smooth]
  assert np.corrcoef(rank(f["clutter"][smooth]), rank(edges))[0, 1] > 0.3


def test_source_from_config():
  source = data_lib.from_config({"kind": "shapes_world", "n": 7, "seed": 2, "size": 24})
  assert source.ids == [f"shapes/{i}" for i in range(7)]
  ex = source.load("shapes/4")
  image, labels = sw.shapes_image(4, seed=2, size=24)
  np.testing.assert_array_equal(ex.image, image)
  assert ex.labels == labels
  assert source.describe()["kind"] == "shapes_world"
  with pytest.raises(KeyError, match="is not one of the 7 ids"):
    source.load("shapes/7")
  with pytest.raises(ValueError, match="num_shapes"):
    sw.ShapesWorld(5, num_shapes=9)
