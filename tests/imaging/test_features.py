"""Low-level features against scikit-image, categories / sharing / baseline against plain numpy."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage as ndi
from skimage import color, data, feature, filters

from repsim_jax.analysis import lowlevel as ll

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


def test_property_levels_against_sorting():
  rng = np.random.default_rng(3)
  values = rng.integers(0, 20, size=50).astype(float)  # many ties
  levels = ll.property_levels(values, group_size=7)
  order = sorted(range(50), key=lambda i: (values[i], i))
  for col, ranks in enumerate([order[:7], order[21:28], order[-7:]]):
    np.testing.assert_array_equal(np.flatnonzero(levels[:, col]), sorted(ranks))
  with pytest.raises(ValueError, match="group_size"):
    ll.property_levels(values, group_size=51)


def _random_membership(rng, n, c, p=0.2):
  m = rng.random((n, c)) < p
  m[~m.any(axis=1), 0] = True
  return m


def test_category_sharing_against_loops():
  rng = np.random.default_rng(4)
  membership = _random_membership(rng, 30, 5)
  neighbours = rng.integers(0, 30, size=(12, 4))
  queries = rng.choice(30, 12, replace=False)
  got = ll.category_sharing(neighbours, membership, queries=queries)
  want = [np.mean([bool(set(np.flatnonzero(membership[q])) & set(np.flatnonzero(membership[j])))
                   for j in row]) for q, row in zip(queries, neighbours)]
  np.testing.assert_allclose(got, want)


def test_random_baseline_exact_and_monte_carlo():
  rng = np.random.default_rng(5)
  membership = _random_membership(rng, 60, 9, p=0.15)
  # plain numpy n x n definition
  share = (membership.astype(int) @ membership.T.astype(int)) > 0
  np.fill_diagonal(share, False)
  exact = share.sum() / (60 * 59)
  assert ll.random_sharing_baseline(membership) == pytest.approx(exact, rel=1e-12)
  # Monte Carlo: random 10-neighbour subsets of the other images
  draws = []
  for _ in range(3000):
    i = rng.integers(60)
    others = np.delete(np.arange(60), i)
    draws.append(ll.category_sharing(rng.choice(others, (1, 10), replace=False), membership,
                                     queries=[i])[0])
  se = np.std(draws) / np.sqrt(len(draws))
  assert abs(np.mean(draws) - exact) < 4 * se
  # disjoint categories: sum of g (g - 1) over categories / n (n - 1)
  disjoint = np.repeat(np.eye(9, dtype=bool), 100, axis=0)
  assert ll.random_sharing_baseline(disjoint) == pytest.approx(9 * 100 * 99 / (900 * 899))


def _numpy_cosine_knn(x, k):
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  sim = xn @ xn.T
  np.fill_diagonal(sim, -np.inf)
  return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def test_lowlevel_neighbour_analysis_against_numpy():
  rng = np.random.default_rng(6)
  n = 90
  features = {p: rng.normal(size=n) for p in ll.PROPERTIES}
  layers = {"a": [rng.normal(size=(n, 8)), rng.normal(size=(n, 5))],
            "b": [rng.normal(size=(n, 6))]}
  # make layer a[1] organised by edge density so sharing is far from the baseline
  layers["a"][1][:, 0] += 5 * features["edge_density"]
  out = ll.lowlevel_neighbour_analysis(layers, features, group_size=10, k=4)
  membership, names = ll.lowlevel_categories(features, group_size=10)
  assert names[0] == "edge_density:low" and membership.shape == (n, 9)
  for scope, cols in [("overall", slice(0, 9)), ("edge_density", slice(0, 3)),
                      ("colour_warmth", slice(3, 6))]:
    m = membership[:, cols]
    rows = np.flatnonzero(m.any(axis=1))
    np.testing.assert_array_equal(out[scope]["images"], rows)
    assert out[scope]["baseline"] == pytest.approx(ll.random_sharing_baseline(m[rows]))
    for model, xs in layers.items():
      want = []
      for x in xs:
        idx = _numpy_cosine_knn(x[rows], 4)
        want.append(np.mean([np.mean([(m[rows][i] & m[rows][j]).any() for j in idx[i]])
                             for i in range(len(rows))]))
      np.testing.assert_allclose(out[scope]["sharing"][model], want, atol=1e-12)
  assert out["edge_density"]["sharing"]["a"][1] > out["edge_density"]["baseline"] + 0.2


def test_plot_neighbour_sharing_writes_png_and_pdf(tmp_path):
  from repsim_jax.plotting.lowlevel import plot_neighbour_sharing
  sharing = {"vit": np.linspace(0.5, 0.2, 12), "dinov2": np.linspace(0.5, 0.45, 40)}
  panels = {p: (sharing, 0.33) for p in ll.PROPERTIES}
  for name, pan in [("fig3", {"overall": (sharing, 0.152)}), ("fig14", panels)]:
    paths = plot_neighbour_sharing(pan, str(tmp_path / name))
    for p, magic in zip(paths, [b"\x89PNG", b"%PDF"]):
      with open(p, "rb") as f:
        assert f.read(4) == magic
