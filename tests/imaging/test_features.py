"""Low-level image features (Canny, Sobel, warmth, texture) against scikit-image."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
from skimage import color, data, feature, filters

from repsim_jax.imaging import features as ll

H, W = 96, 112  # one non-square size for every image keeps compiles few and catches transposes


def _generated_images(rng: np.random.Generator, n: int, h: int = H, w: int = W):
  """Grey scenes with rectangles, discs, a ramp and noise: many edges, corners and weak edges."""
  yy, xx = np.mgrid[:h, :w]
  out = []
  for _ in range(n):
    img = 0.3 * (xx / w) + 0.2 * rng.random()
    for _ in range(3):
      y0, x0 = rng.integers(0, h - 20), rng.integers(0, w - 20)
      img[y0:y0 + rng.integers(8, 30), x0:x0 + rng.integers(8, 30)] += rng.uniform(-0.4, 0.4)
      cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(5, 25)
      img[(yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2] += rng.uniform(-0.3, 0.3)
    img += rng.normal(0, 0.03, img.shape)
    out.append(np.clip(img, 0, 1))
  return np.stack(out).astype(np.float32)


def _sample_crops(h: int = H, w: int = W):
  """Grey crops of scikit-image's bundled sample images (natural photos and textures)."""
  rgb = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
  grey = [data.camera(), data.brick(), data.grass(), data.coins(), data.moon(), data.text()]
  crops = []
  for i, im in enumerate(rgb + grey):
    im = color.rgb2gray(im) if im.ndim == 3 else im / 255.0
    y0 = (im.shape[0] - h) // (2 + i % 3)
    x0 = (im.shape[1] - w) // (3 - i % 2)
    crops.append(im[y0:y0 + h, x0:x0 + w])
  return np.stack(crops).astype(np.float32)


@pytest.fixture(scope="module")
def grey_images():
  rng = np.random.default_rng(0)
  gen = _generated_images(rng, 6)
  return {"generated": gen, "samples": _sample_crops()}


@pytest.mark.parametrize("sigma,low,high", [(1.0, 0.1, 0.2), (2.0, 0.05, 0.15)])
def test_canny_matches_skimage(grey_images, sigma, low, high):
  images = np.concatenate([grey_images["generated"], grey_images["samples"]])
  got = np.asarray(jax.jit(jax.vmap(lambda g: ll.canny(
      g, sigma=sigma, low_threshold=low, high_threshold=high)))(images))
  want = np.stack([feature.canny(g, sigma=sigma, low_threshold=low, high_threshold=high)
                   for g in images])
  agreement = (got == want).mean(axis=(1, 2))
  assert agreement.min() >= 0.99, agreement  # per image, generated and sample crops alike
  assert want.mean() > 0.02 and want.mean(axis=(1, 2)).min() > 0.002  # edges to get wrong


def test_hysteresis_matches_connected_components():
  """Many images (two uint32 bit planes plus padding), nested vmap, vs scipy labelling."""
  rng = np.random.default_rng(1)
  cand = rng.random((2, 37, 20, 23)) < 0.45
  strong = cand & (rng.random(cand.shape) < 0.05)
  got = np.asarray(jax.jit(jax.vmap(jax.vmap(ll.hysteresis)))(cand, strong))
  for c, s, g in zip(cand.reshape(-1, 20, 23), strong.reshape(-1, 20, 23), got.reshape(-1, 20, 23)):
    labels, _ = ndi.label(c, np.ones((3, 3), bool))
    good = np.unique(labels[s])
    np.testing.assert_array_equal(g, np.isin(labels, good[good > 0]))
  # the unbatched path (one image in one bit plane) gives the same map
  np.testing.assert_array_equal(np.asarray(ll.hysteresis(cand[0, 0], strong[0, 0])), got[0, 0])


def test_sobel_and_texture_match_skimage(grey_images):
  images = np.concatenate([grey_images["generated"], grey_images["samples"]])
  got = np.asarray(jax.jit(jax.vmap(ll.sobel_magnitude))(images))
  want = np.stack([filters.sobel(g.astype(np.float64)) for g in images])
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  texture = np.asarray(jax.vmap(ll.texture_complexity)(images))
  np.testing.assert_allclose(texture, want.std(axis=(1, 2)), atol=1e-5, rtol=1e-5)


def test_lowlevel_features_match_skimage_per_image():
  """uint8 RGB batch with a ragged last batch: every property against a skimage/numpy loop."""
  rng = np.random.default_rng(2)
  crops = [data.astronaut()[100:164, 150:214], data.coffee()[50:114, 300:364],
           data.chelsea()[20:84, 100:164], data.rocket()[200:264, 10:74]]
  images = np.stack(crops + [(rng.random((64, 64, 3)) * 255).astype(np.uint8)])
  got = ll.lowlevel_features(images, batch_size=3)
  floats = images.astype(np.float64) / 255
  grey = [color.rgb2gray(im) for im in floats]
  np.testing.assert_allclose(got["colour_warmth"], (floats[..., 0] - floats[..., 2]).mean((1, 2)),
                             atol=1e-6)
  np.testing.assert_allclose(got["texture_complexity"], [filters.sobel(g).std() for g in grey],
                             atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(got["edge_density"], [feature.canny(g).mean() for g in grey],
                             atol=1e-3)  # i.e. >= 99.9 % of pixels agree
  np.testing.assert_allclose(color.rgb2gray(floats), np.asarray(ll.rgb_to_gray(floats)), atol=1e-12)
  # 15 images: two chunks (bit planes) of 8, the second padded; float input as uint8 / 255
  many = np.asarray(ll.batch_features(np.concatenate([images] * 3).astype(np.float32) / 255))
  want = np.stack([got[p] for p in ll.PROPERTIES], axis=1)
  np.testing.assert_allclose(many, np.tile(want, (3, 1)), atol=1e-6)
