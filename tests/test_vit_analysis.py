"""Tests of the Raghu et al. 2021 analyses (repsim_jax.analysis.vit) and their figures.

References: hand-built attention maps with closed-form distances, a numpy loop over pixels,
box convolutions whose receptive fields are known, numpy norms / cosines / CKA.
"""
from __future__ import annotations

import itertools
import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repsim_jax.analysis import vit
from repsim_jax.models.outputs import ModelOutput
from repsim_jax.progress import Progress
from repsim_jax.plotting import vit as vit_plots


def _dirichlet_attention(rng, shape):
  """Random row-stochastic attention [..., T, T]."""
  logits = rng.normal(size=shape) * 2.0
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  return (probs / probs.sum(-1, keepdims=True)).astype(np.float32)


def _numpy_attention_distance(attn, grid_shape, patch_size, num_prefix, renormalize):
  """Per-head distance by explicit loops over images, heads, queries and keys."""
  gh, gw = grid_shape
  ph, pw = patch_size
  b, h = attn.shape[:2]
  out = np.zeros((b, h))
  for n, head in itertools.product(range(b), range(h)):
    total = 0.0
    for q in range(gh * gw):
      weights = attn[n, head, num_prefix + q, num_prefix:].astype(np.float64)
      if renormalize:
        weights = weights / weights.sum()
      qy, qx = divmod(q, gw)
      for k in range(gh * gw):
        ky, kx = divmod(k, gw)
        total += weights[k] * math.hypot((qy - ky) * ph, (qx - kx) * pw)
    out[n, head] = total / (gh * gw)
  return out


def _numpy_linear_cka(x, y, debiased):
  """Linear CKA from Gram matrices; the debiased form uses the unbiased HSIC of Song et al."""
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  y = np.asarray(y, np.float64).reshape(len(y), -1)
  n = x.shape[0]

  def hsic(k, l):
    if not debiased:
      h = np.eye(n) - 1.0 / n
      return np.sum((h @ k @ h) * (h @ l @ h))
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    ones = np.ones(n)
    return (np.trace(k @ l) + ones @ k @ ones * (ones @ l @ ones) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * ones @ k @ l @ ones) / (n * (n - 3))

  k, l = x @ x.T, y @ y.T
  return hsic(k, l) / math.sqrt(hsic(k, k) * hsic(l, l))


# --------------------------------------------------------------------------------------------
# Attention distance


def test_attention_distance_closed_forms():
  gh, gw, p = 3, 4, 16
  num_patches = gh * gw
  attn = np.zeros((1, 3, num_patches, num_patches), np.float32)
  for q in range(num_patches):
    row, col = divmod(q, gw)
    attn[0, 0, q, q] = 1.0                                   # attends to itself: 0
    attn[0, 1, q, row * gw + (col + 1) % gw] = 1.0           # right neighbour, wrapping
    attn[0, 2, q, :] = 1.0 / num_patches                     # uniform
  got = vit.mean_attention_distance(attn, grid_shape=(gh, gw), patch_size=p, num_prefix_tokens=0)
  # Right neighbour: p for gw - 1 columns, (gw - 1) p for the wrapped last column.
  expected_right = 2 * (gw - 1) * p / gw
  uniform = np.mean(vit.patch_distance_matrix((gh, gw), p))
  np.testing.assert_allclose(np.asarray(got), [0.0, expected_right, uniform], rtol=1e-6)
  # 2x2 grid, uniform attention: distances 0, p, p, p*sqrt(2) from every query.
  attn2 = np.full((2, 1, 4, 4), 0.25, np.float32)
  np.testing.assert_allclose(
      np.asarray(vit.mean_attention_distance(attn2, patch_size=p, num_prefix_tokens=0)),
      [(2 + math.sqrt(2)) * p / 4], rtol=1e-6)


def test_attention_distance_prefix_tokens():
  # One CLS token: patch queries put half their mass on CLS, half on the right neighbour
  # (no wrap on a 1x3 grid: last column goes left). The CLS query row attends far away and must
  # not count.
  p = 8
  attn = np.zeros((1, 1, 4, 4), np.float32)
  attn[0, 0, 0, 3] = 1.0
  for q, k in ((1, 2), (2, 3), (3, 2)):
    attn[0, 0, q, 0] = 0.5
    attn[0, 0, q, k] = 0.5
  renorm = vit.mean_attention_distance(attn, grid_shape=(1, 3), patch_size=p)
  drop = vit.mean_attention_distance(attn, grid_shape=(1, 3), patch_size=p, prefix_keys="drop")
  np.testing.assert_allclose(np.asarray(renorm), [p], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(drop), [p / 2], rtol=1e-6)


@pytest.mark.parametrize("renormalize", [True, False])
def test_attention_distance_matches_numpy_loop(renormalize):
  rng = np.random.default_rng(0)
  grid, patch, prefix = (3, 5), (14, 16), 2
  attn = _dirichlet_attention(rng, (3, 4, prefix + 15, prefix + 15))
  got = jax.jit(lambda a: vit.mean_attention_distance(
      a, grid_shape=grid, patch_size=patch, num_prefix_tokens=prefix, per_image=True,
      prefix_keys="renormalize" if renormalize else "drop"))(attn)
  expected = _numpy_attention_distance(attn, grid, patch, prefix, renormalize)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)
  mean = vit.mean_attention_distance(attn, grid_shape=grid, patch_size=patch,
                                     num_prefix_tokens=prefix,
                                     prefix_keys="renormalize" if renormalize else "drop")
  np.testing.assert_allclose(np.asarray(mean), expected.mean(0), rtol=1e-5)


def test_attention_distances_over_blocks_and_sorting():
  rng = np.random.default_rng(1)
  blocks = {"embeddings": np.zeros((2, 5, 8), np.float32)}
  for i in range(3):
    blocks[f"block_{i:02d}"] = np.zeros((2, 5, 8), np.float32)
    blocks[f"block_{i:02d}.attn_probs"] = _dirichlet_attention(rng, (2, 6, 5, 5))
  distances = vit.attention_distances(blocks, patch_size=32)
  assert distances.shape == (3, 6)
  for i in range(3):
    expected = _numpy_attention_distance(blocks[f"block_{i:02d}.attn_probs"], (2, 2), (32, 32),
                                         1, True).mean(0)
    np.testing.assert_allclose(distances[i], expected, rtol=1e-5)
  ordered, order = vit.sort_heads(distances)
  np.testing.assert_array_equal(ordered, np.sort(distances, axis=-1))
  np.testing.assert_array_equal(np.take_along_axis(distances, order, -1), ordered)
  with pytest.raises(KeyError, match="sublayers=True"):
    vit.attention_distances({"block_00": blocks["block_00"]})
  with pytest.raises(ValueError, match="grid_shape"):
    vit.mean_attention_distance(blocks["block_00.attn_probs"], grid_shape=(3, 3))


# --------------------------------------------------------------------------------------------
# Head subsets (Fig. 5)


def test_head_subsets_local_to_global():
  distances = np.array([5.0, 1.0, 9.0, 3.0, 7.0])
  indices, mean = vit.head_subsets(distances, subset_size=2)
  np.testing.assert_array_equal(indices, [[1, 3], [3, 0], [0, 4], [4, 2]])
  np.testing.assert_allclose(mean, [2.0, 4.0, 6.0, 8.0])
  indices, mean = vit.head_subsets(distances, subset_size=3, stride=2)
  np.testing.assert_array_equal(indices, [[1, 3, 0], [0, 4, 2]])
  with pytest.raises(ValueError, match="subset_size"):
    vit.head_subsets(distances, subset_size=6)


def test_head_outputs_and_subset_representations():
  rng = np.random.default_rng(2)
  attn = _dirichlet_attention(rng, (3, 4, 5, 5))
  values = rng.normal(size=(3, 5, 4, 2)).astype(np.float32)
  out = np.asarray(vit.attention_head_outputs(attn, values))
  expected = np.zeros((3, 5, 4, 2))
  for b, h, q in itertools.product(range(3), range(4), range(5)):
    expected[b, q, h] = attn[b, h, q] @ values[b, :, h]
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
  reps = vit.head_subset_representations(out, np.array([[2, 0]]), num_prefix_tokens=1)
  np.testing.assert_allclose(np.asarray(reps[0]), out[:, 1:][:, :, [2, 0]].reshape(3, -1))
  reps = vit.head_subset_representations(out, np.array([[3]]), pooling="mean")
  np.testing.assert_allclose(np.asarray(reps[0]), out[:, 1:, 3].mean(1), rtol=1e-6)


def test_attention_values_of_a_block():
  rng = np.random.default_rng(12)
  w = rng.normal(size=(6, 6)).astype(np.float32)
  attention = types.SimpleNamespace(v_proj=lambda x: x @ w, num_heads=3, head_dim=2)
  block = types.SimpleNamespace(norm1=lambda x: 2.0 * x, attention=attention)
  z = rng.normal(size=(2, 5, 6)).astype(np.float32)
  values = np.asarray(vit.attention_values(block, z))
  np.testing.assert_allclose(values, (2.0 * z @ w).reshape(2, 5, 3, 2), rtol=1e-5)


def test_head_subset_cka_matches_numpy(debiased=False):
  # One estimator here and the other in the localization test: both only pass `debiased` on to
  # cka_matrix, whose estimators tests/test_cka.py pins (each variant costs a compile).
  pytest.importorskip("repsim_jax.metrics.kernel_alignment")
  rng = np.random.default_rng(3)
  head_out = rng.normal(size=(12, 5, 4, 3)).astype(np.float32)
  distances = np.array([4.0, 1.0, 3.0, 2.0])
  cnn = [rng.normal(size=(12, 2, 2, 3)).astype(np.float32),
         head_out[:, 1:, 1].reshape(12, 2, 2, 3) * 2.0]  # equals the most local head, scaled
  mean, sim = vit.head_subset_cka(head_out, distances, cnn, subset_size=2, debiased=debiased)
  indices, _ = vit.head_subsets(distances, subset_size=2)
  expected = [[_numpy_linear_cka(head_out[:, 1:][:, :, idx], layer, debiased) for layer in cnn]
              for idx in indices]
  np.testing.assert_allclose(mean, [1.5, 2.5, 3.5])
  np.testing.assert_allclose(sim, expected, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------
# Effective receptive fields


def _box_conv(x, size, out_channels=1):
  kernel = jnp.ones((size, size, x.shape[-1], out_channels), x.dtype)
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def test_erf_of_box_convolutions(channels="sum"):
  # channels="mean_abs" gives the same maps here; its exact values are pinned in the next test.
  rng = np.random.default_rng(4)
  images = jnp.asarray(rng.normal(size=(4, 15, 15, 3)).astype(np.float32))
  # A 5x5 box: uniform 5x5 support around the centre (7, 7), zero elsewhere. Two stacked 3x3
  # boxes: the separable triangle [1, 2, 3, 2, 1] x [1, 2, 3, 2, 1] / 9. Both from one call.
  erfs = vit.effective_receptive_field(
      lambda x: {"box5": _box_conv(x, 5, 2), "box3x3": _box_conv(_box_conv(x, 3, 4), 3, 3)},
      images, num_images=None, channels=channels)
  expected = np.zeros((15, 15))
  expected[5:10, 5:10] = 1.0
  np.testing.assert_allclose(np.asarray(erfs["box5"]), expected, atol=1e-6)
  tri = np.array([1, 2, 3, 2, 1]) / 3.0
  expected[5:10, 5:10] = np.outer(tri, tri)
  np.testing.assert_allclose(np.asarray(erfs["box3x3"]), expected, atol=1e-6)
  # Off-centre location and sum normalisation.
  erf = np.asarray(vit.effective_receptive_field(lambda x: _box_conv(x, 3), images,
                                                 num_images=2, location=(0, 14),
                                                 normalize="sum", channels=channels))
  expected = np.zeros((15, 15))
  expected[0:2, 13:15] = 0.25
  np.testing.assert_allclose(erf, expected, atol=1e-6)


def test_erf_abs_mean_over_images_and_channels():
  # f(x)[n, i, j, :] = x[n, i, j, :] @ w, so the gradient of the channel sum is w.sum(1) at the
  # centre pixel, per image: ERF = mean |w.sum(1)| over input channels, one pixel.
  rng = np.random.default_rng(5)
  w = rng.normal(size=(3, 4)).astype(np.float32)
  images = rng.normal(size=(3, 6, 6, 3)).astype(np.float32)
  f = lambda x: x @ w
  erf = np.asarray(vit.effective_receptive_field(f, images, num_images=3, normalize=None))
  expected = np.zeros((6, 6))
  expected[3, 3] = np.abs(w.sum(1)).mean()
  np.testing.assert_allclose(erf, expected, rtol=1e-6, atol=1e-7)
  erf = np.asarray(vit.effective_receptive_field(f, images, num_images=3, normalize=None,
                                                 channels="mean_abs", channel_batch_size=3))
  expected[3, 3] = np.abs(w).mean()
  np.testing.assert_allclose(erf, expected, rtol=1e-6, atol=1e-7)
  with pytest.raises(ValueError, match="num_images"):
    vit.effective_receptive_field(f, images)  # 32 by default, only 3 given


def test_erf_of_tokens_with_cls():
  # A patch embedding (4x4 patches) plus a CLS token: the centre token (1, 1) of the 3x3 grid
  # sees exactly its own patch, pixels [4:8, 4:8].
  rng = np.random.default_rng(6)
  kernel = jnp.asarray(rng.normal(size=(4, 4, 3, 5)).astype(np.float32))

  def f(kernel, x):  # weights as an argument: the params= path
    maps = jax.lax.conv_general_dilated(x, kernel, (4, 4), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    tokens = maps.reshape(x.shape[0], -1, 5)
    cls = jnp.broadcast_to(tokens.mean(1, keepdims=True) * 0.0, (x.shape[0], 1, 5))
    return jnp.concatenate([cls, tokens], axis=1)

  images = rng.normal(size=(2, 12, 12, 3)).astype(np.float32)
  erf = np.asarray(vit.effective_receptive_field(f, images, num_images=2, num_prefix_tokens=1,
                                                 params=kernel))
  support = erf > 0
  expected = np.zeros((12, 12), bool)
  expected[4:8, 4:8] = True
  np.testing.assert_array_equal(support, expected)
  expected_values = np.abs(np.asarray(kernel).sum(-1)).mean(-1)  # [4, 4]
  np.testing.assert_allclose(erf[4:8, 4:8], expected_values / expected_values.max(), rtol=1e-5)
  with pytest.raises(ValueError, match="outside the feature grid"):
    vit.effective_receptive_field(f, images, num_images=2, num_prefix_tokens=1, location=(3, 0),
                                  params=kernel)


# --------------------------------------------------------------------------------------------
# Skip connections


def _numpy_skip(z, fz):
  z = np.asarray(z, np.float64).reshape(z.shape[0], -1, z.shape[-1])
  fz = np.asarray(fz, np.float64).reshape(fz.shape[0], -1, fz.shape[-1])
  zn, fn = np.linalg.norm(z, axis=-1), np.linalg.norm(fz, axis=-1)
  return (zn / fn).mean(0), ((z * fz).sum(-1) / (zn * fn)).mean(0)


def test_skip_connection_stats_match_numpy():
  rng = np.random.default_rng(7)
  for shape in ((3, 5, 8), (2, 3, 4, 6)):
    z = rng.normal(size=shape).astype(np.float32) * 3.0
    fz = (0.5 * z + rng.normal(size=shape)).astype(np.float32)
    ratio, cosine = vit.skip_connection_stats(z, fz)
    ref_ratio, ref_cos = _numpy_skip(z, fz)
    np.testing.assert_allclose(np.asarray(ratio), ref_ratio, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(cosine), ref_cos, rtol=1e-5, atol=1e-6)
  ratio, cosine = vit.skip_connection_stats(np.ones((1, 2, 3)), np.zeros((1, 2, 3)))
  assert np.all(np.isfinite(np.asarray(ratio))) and np.all(np.asarray(cosine) == 0)
  with pytest.raises(ValueError, match="same shape"):
    vit.skip_connection_stats(np.ones((1, 2, 3)), np.ones((1, 2, 4)))


def test_transformer_and_resnet_skip_stats():
  rng = np.random.default_rng(8)
  normal = lambda *s: rng.normal(size=s).astype(np.float32)
  blocks = {"embeddings": normal(2, 5, 4)}
  for i in range(3):
    blocks[f"block_{i:02d}.attn"] = normal(2, 5, 4)
    blocks[f"block_{i:02d}.mid"] = normal(2, 5, 4)
    blocks[f"block_{i:02d}.mlp"] = normal(2, 5, 4)
    blocks[f"block_{i:02d}"] = normal(2, 5, 4)
  stats = vit.transformer_skip_stats(dict(reversed(blocks.items())))  # order comes from names
  assert stats["attn_ratio"].shape == (3, 5)
  for i in range(3):
    z = blocks["embeddings"] if i == 0 else blocks[f"block_{i - 1:02d}"]
    ratio, cosine = _numpy_skip(z, blocks[f"block_{i:02d}.attn"])
    np.testing.assert_allclose(stats["attn_ratio"][i], ratio, rtol=1e-5)
    np.testing.assert_allclose(stats["attn_cosine"][i], cosine, rtol=1e-5, atol=1e-6)
    ratio, cosine = _numpy_skip(blocks[f"block_{i:02d}.mid"], blocks[f"block_{i:02d}.mlp"])
    np.testing.assert_allclose(stats["mlp_ratio"][i], ratio, rtol=1e-5)
    np.testing.assert_allclose(stats["mlp_cosine"][i], cosine, rtol=1e-5, atol=1e-6)
  summary = vit.summarize_token_stats(stats["mlp_ratio"], num_prefix_tokens=1)
  np.testing.assert_allclose(summary["cls"], stats["mlp_ratio"][:, 0])
  np.testing.assert_allclose(summary["tokens"], stats["mlp_ratio"][:, 1:].mean(1))
  assert "cls" not in vit.summarize_token_stats(stats["mlp_ratio"], num_prefix_tokens=0)

  conv = {"stem": normal(2, 4, 4, 3),
          "stage0.block00": normal(2, 4, 4, 3), "stage0.block00.branch": normal(2, 4, 4, 3),
          "stage1.block00": normal(2, 2, 2, 6), "stage1.block00.branch": normal(2, 2, 2, 6),
          "stage1.block01": normal(2, 2, 2, 6), "stage1.block01.branch": normal(2, 2, 2, 6)}
  res = vit.resnet_skip_stats(dict(sorted(conv.items(), reverse=True)))
  assert res["names"] == ["stage0.block00", "stage1.block00", "stage1.block01"]
  assert np.isnan(res["ratio"][1]) and np.isnan(res["cosine"][1])  # projection shortcut
  conv["stage1.block00.shortcut"] = normal(2, 2, 2, 6)  # ... unless the model gives it
  res_with_shortcut = vit.resnet_skip_stats(conv)
  for k, (z, fz) in ((0, ("stem", "stage0.block00.branch")),
                     (2, ("stage1.block00", "stage1.block01.branch"))):
    ratio, cosine = _numpy_skip(conv[z], conv[fz])
    np.testing.assert_allclose(res["ratio"][k], ratio.mean(), rtol=1e-5)
    np.testing.assert_allclose(res["cosine"][k], cosine.mean(), rtol=1e-5, atol=1e-6)
  ratio, _ = _numpy_skip(conv["stage1.block00.shortcut"], conv["stage1.block00.branch"])
  np.testing.assert_allclose(res_with_shortcut["ratio"][1], ratio.mean(), rtol=1e-5)


def _tiny_transformer(seed=0, dim=8, heads=2, num_blocks=2, patch=4):
  """A pre-norm-free toy ViT (CLS + 4x4 patches) returning ModelOutput with sublayers."""
  rng = np.random.default_rng(seed)  # numpy: eager jax.random calls would each compile
  embed = (rng.normal(size=(patch * patch * 3, dim)) * 0.3).astype(np.float32)
  cls = rng.normal(size=(1, 1, dim)).astype(np.float32)
  weights = [[(rng.normal(size=(dim, dim)) * 0.3).astype(np.float32) for _ in range(5)]
             for _ in range(num_blocks)]

  def forward(images):
    tokens = vit.image_patches(images, patch)
    tokens = tokens.reshape(images.shape[0], -1, tokens.shape[-1]) @ embed
    x = jnp.concatenate([jnp.broadcast_to(cls, (images.shape[0], 1, dim)), tokens], 1)
    blocks = {"embeddings": x}
    for i, (wq, wk, wv, wo, wm) in enumerate(weights):
      split = lambda y: y.reshape(y.shape[0], y.shape[1], heads, -1)
      q, k, v = split(x @ wq), split(x @ wk), split(x @ wv)
      probs = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k), -1)
      attn = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(x.shape) @ wo
      mid = x + attn
      mlp = jnp.tanh(mid @ wm)
      x = mid + mlp
      blocks.update({f"block_{i:02d}": x, f"block_{i:02d}.attn": attn,
                     f"block_{i:02d}.attn_probs": probs, f"block_{i:02d}.mid": mid,
                     f"block_{i:02d}.mlp": mlp})
    return ModelOutput(hidden_states=(), blocks=blocks)

  return forward


def _tiny_resnet(seed=0):
  rng = np.random.default_rng(seed)
  conv = lambda x, w, stride=1: jax.lax.conv_general_dilated(
      x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  w_stem, w0, w1 = ((rng.normal(size=s) * 0.3).astype(np.float32)
                    for s in ((3, 3, 3, 4), (3, 3, 4, 4), (3, 3, 4, 6)))

  def forward(images):
    stem = conv(images, w_stem)
    branch0 = conv(jax.nn.relu(stem), w0)
    block0 = stem + branch0
    branch1 = conv(jax.nn.relu(block0), w1, 2)  # projection block: shortcut not exposed
    block1 = branch1 + conv(block0, w1, 2)
    return {"stem": stem, "stage0.block00": block0, "stage0.block00.branch": branch0,
            "stage1.block00": block1, "stage1.block00.branch": branch1}

  return forward


def test_block_statistics_stream_equals_one_batch():
  rng = np.random.default_rng(13)
  images = rng.normal(size=(5, 12, 12, 3)).astype(np.float32)
  forward = jax.jit(_tiny_transformer())
  lines = []
  progress = Progress("stats", 5, unit="images", every_s=0.0, log=lines.append)
  streamed = vit.block_statistics(forward, [images[:3], images[3:]], patch_size=4,
                                  progress=progress)
  blocks = forward(images).blocks
  np.testing.assert_allclose(streamed["attention_distance"],
                             vit.attention_distances(blocks, patch_size=4), rtol=1e-5)
  for key, value in vit.transformer_skip_stats(blocks).items():
    np.testing.assert_allclose(streamed[key], value, rtol=1e-5, atol=1e-6)
  assert streamed["attn_ratio"].shape == (2, 10) and len(lines) == 2
  forward = jax.jit(_tiny_resnet())
  streamed = vit.block_statistics(forward, [images[:2]])  # one shape: one compile
  direct = vit.resnet_skip_stats(forward(images[:2]))
  assert list(streamed["names"]) == direct["names"]
  np.testing.assert_allclose(streamed["ratio"], direct["ratio"], rtol=1e-5)  # NaN == NaN
  assert np.isnan(streamed["cosine"][1]) and np.isfinite(streamed["cosine"][0])


# --------------------------------------------------------------------------------------------
# Localization


def test_image_patches_and_token_grid():
  rng = np.random.default_rng(9)
  images = rng.normal(size=(2, 6, 9, 2)).astype(np.float32)
  patches = np.asarray(vit.image_patches(images, (2, 3)))
  assert patches.shape == (2, 3, 3, 12)
  for a, b in itertools.product(range(3), range(3)):
    np.testing.assert_array_equal(patches[:, a, b],
                                  images[:, 2 * a:2 * a + 2, 3 * b:3 * b + 3].reshape(2, -1))
  tokens = rng.normal(size=(2, 1 + 6, 4)).astype(np.float32)
  grid = np.asarray(vit.tokens_to_grid(tokens, grid_shape=(2, 3)))
  np.testing.assert_array_equal(grid[:, 1, 2], tokens[:, 1 + 5])
  with pytest.raises(ValueError, match="square grid"):
    vit.tokens_to_grid(tokens)


def test_localization_maps_match_numpy(debiased=True):
  pytest.importorskip("repsim_jax.metrics.kernel_alignment")
  rng = np.random.default_rng(10)
  n, p = 16, 2
  images = rng.normal(size=(n, 3 * p, 3 * p, 2)).astype(np.float32)
  patches = np.asarray(vit.image_patches(images, p)).reshape(n, 9, -1)
  # Tokens = a random linear map of their own patch plus noise, after one CLS token.
  w = rng.normal(size=(patches.shape[-1], 5)).astype(np.float32)
  tokens = patches @ w + 0.1 * rng.normal(size=(n, 9, 5)).astype(np.float32)
  tokens = np.concatenate([rng.normal(size=(n, 1, 5)).astype(np.float32), tokens], 1)
  picks = [(0, 0), (1, 1), (2, 1)]
  maps = vit.localization_maps(tokens, images, patch_size=p, tokens=picks, debiased=debiased)
  assert maps.shape == (3, 3, 3)
  for k, (r, c) in enumerate(picks):
    expected = [[_numpy_linear_cka(tokens[:, 1 + r * 3 + c], patches[:, a * 3 + b], debiased)
                 for b in range(3)] for a in range(3)]
    np.testing.assert_allclose(maps[k], expected, rtol=1e-4, atol=1e-5)
  # NHWC input: the default patch size matches the feature grid (same picks: no new compile).
  fmap = tokens[:, 1:].reshape(n, 3, 3, 5)
  np.testing.assert_allclose(vit.localization_maps(fmap, images, tokens=picks, debiased=debiased),
                             maps, rtol=1e-5, atol=1e-6)


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
  _assert_files(vit_plots.plot_attention_distances(rng.uniform(0, 100, (4, 6)),
                                                   str(tmp_path / "dist.png"), layers=[0, 1, 3]))
  _assert_files(vit_plots.plot_attention_distance_by_depth(rng.uniform(0, 100, (4, 6)),
                                                           str(tmp_path / "depth")))
  _assert_files(vit_plots.plot_head_subset_cka(np.arange(3.0), rng.uniform(size=(3, 2)),
                                               str(tmp_path / "fig5")))
  _assert_files(vit_plots.plot_receptive_fields(rng.uniform(size=(5, 8, 8)),
                                                str(tmp_path / "sub" / "erf")))
  _assert_files(vit_plots.plot_skip_ratio_heatmap(rng.uniform(size=(4, 10)),
                                                  str(tmp_path / "ratio"), num_tokens=6))
  _assert_files(vit_plots.plot_skip_ratio_lines(
      {"ViT CLS": rng.uniform(size=12), "ViT tokens": rng.uniform(size=12),
       "ResNet50": rng.uniform(size=16)}, str(tmp_path / "lines"), log_scale=True))
  _assert_files(vit_plots.plot_localization(rng.uniform(size=(2, 3, 3)), str(tmp_path / "loc"),
                                            tokens=[(0, 0), (1, 2)]))
