"""Attention distances and head subsets (repsim_jax.analysis.attention) against closed forms,
a numpy loop over pixels and a numpy CKA.
"""
from __future__ import annotations

import itertools
import math
import types

import jax
import numpy as np
import pytest

from repsim_jax.analysis.attention import (attention_distances, attention_head_outputs,
                                           attention_values, head_subset_cka,
                                           head_subset_representations, head_subsets,
                                           mean_attention_distance, patch_distance_matrix,
                                           sort_heads)


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


def numpy_linear_cka(x, y, debiased):
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
  got = mean_attention_distance(attn, grid_shape=(gh, gw), patch_size=p, num_prefix_tokens=0)
  # Right neighbour: p for gw - 1 columns, (gw - 1) p for the wrapped last column.
  expected_right = 2 * (gw - 1) * p / gw
  uniform = np.mean(patch_distance_matrix((gh, gw), p))
  np.testing.assert_allclose(np.asarray(got), [0.0, expected_right, uniform], rtol=1e-6)
  # 2x2 grid, uniform attention: distances 0, p, p, p*sqrt(2) from every query.
  attn2 = np.full((2, 1, 4, 4), 0.25, np.float32)
  np.testing.assert_allclose(
      np.asarray(mean_attention_distance(attn2, patch_size=p, num_prefix_tokens=0)),
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
  renorm = mean_attention_distance(attn, grid_shape=(1, 3), patch_size=p)
  drop = mean_attention_distance(attn, grid_shape=(1, 3), patch_size=p, prefix_keys="drop")
  np.testing.assert_allclose(np.asarray(renorm), [p], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(drop), [p / 2], rtol=1e-6)


@pytest.mark.parametrize("renormalize", [True, False])
def test_attention_distance_matches_numpy_loop(renormalize):
  rng = np.random.default_rng(0)
  grid, patch, prefix = (3, 5), (14, 16), 2
  attn = _dirichlet_attention(rng, (3, 4, prefix + 15, prefix + 15))
  got = jax.jit(lambda a: mean_attention_distance(
      a, grid_shape=grid, patch_size=patch, num_prefix_tokens=prefix, per_image=True,
      prefix_keys="renormalize" if renormalize else "drop"))(attn)
  expected = _numpy_attention_distance(attn, grid, patch, prefix, renormalize)
  np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5)
  mean = mean_attention_distance(attn, grid_shape=grid, patch_size=patch,
                                 num_prefix_tokens=prefix,
                                 prefix_keys="renormalize" if renormalize else "drop")
  np.testing.assert_allclose(np.asarray(mean), expected.mean(0), rtol=1e-5)


def test_attention_distances_over_blocks_and_sorting():
  rng = np.random.default_rng(1)
  blocks = {"embeddings": np.zeros((2, 5, 8), np.float32)}
  for i in range(3):
    blocks[f"block_{i:02d}"] = np.zeros((2, 5, 8), np.float32)
    blocks[f"block_{i:02d}.attn_probs"] = _dirichlet_attention(rng, (2, 6, 5, 5))
  distances = attention_distances(blocks, patch_size=32)
  assert distances.shape == (3, 6)
  for i in range(3):
    expected = _numpy_attention_distance(blocks[f"block_{i:02d}.attn_probs"], (2, 2), (32, 32),
                                         1, True).mean(0)
    np.testing.assert_allclose(distances[i], expected, rtol=1e-5)
  ordered, order = sort_heads(distances)
  np.testing.assert_array_equal(ordered, np.sort(distances, axis=-1))
  np.testing.assert_array_equal(np.take_along_axis(distances, order, -1), ordered)
  with pytest.raises(KeyError, match="sublayers=True"):
    attention_distances({"block_00": blocks["block_00"]})
  with pytest.raises(ValueError, match="grid_shape"):
    mean_attention_distance(blocks["block_00.attn_probs"], grid_shape=(3, 3))


# --------------------------------------------------------------------------------------------
# Head subsets (Fig. 5)


def test_head_subsets_local_to_global():
  distances = np.array([5.0, 1.0, 9.0, 3.0, 7.0])
  indices, mean = head_subsets(distances, subset_size=2)
  np.testing.assert_array_equal(indices, [[1, 3], [3, 0], [0, 4], [4, 2]])
  np.testing.assert_allclose(mean, [2.0, 4.0, 6.0, 8.0])
  indices, mean = head_subsets(distances, subset_size=3, stride=2)
  np.testing.assert_array_equal(indices, [[1, 3, 0], [0, 4, 2]])
  with pytest.raises(ValueError, match="subset_size"):
    head_subsets(distances, subset_size=6)


def test_head_outputs_and_subset_representations():
  rng = np.random.default_rng(2)
  attn = _dirichlet_attention(rng, (3, 4, 5, 5))
  values = rng.normal(size=(3, 5, 4, 2)).astype(np.float32)
  out = np.asarray(attention_head_outputs(attn, values))
  expected = np.zeros((3, 5, 4, 2))
  for b, h, q in itertools.product(range(3), range(4), range(5)):
    expected[b, q, h] = attn[b, h, q] @ values[b, :, h]
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
  reps = head_subset_representations(out, np.array([[2, 0]]), num_prefix_tokens=1)
  np.testing.assert_allclose(np.asarray(reps[0]), out[:, 1:][:, :, [2, 0]].reshape(3, -1))
  reps = head_subset_representations(out, np.array([[3]]), pooling="mean")
  np.testing.assert_allclose(np.asarray(reps[0]), out[:, 1:, 3].mean(1), rtol=1e-6)


def test_attention_values_of_a_block():
  rng = np.random.default_rng(12)
  w = rng.normal(size=(6, 6)).astype(np.float32)
  attention = types.SimpleNamespace(v_proj=lambda x: x @ w, num_heads=3, head_dim=2)
  block = types.SimpleNamespace(norm1=lambda x: 2.0 * x, attention=attention)
  z = rng.normal(size=(2, 5, 6)).astype(np.float32)
  values = np.asarray(attention_values(block, z))
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
  mean, sim = head_subset_cka(head_out, distances, cnn, subset_size=2, debiased=debiased)
  indices, _ = head_subsets(distances, subset_size=2)
  expected = [[numpy_linear_cka(head_out[:, 1:][:, :, idx], layer, debiased) for layer in cnn]
              for idx in indices]
  np.testing.assert_allclose(mean, [1.5, 2.5, 3.5])
  np.testing.assert_allclose(sim, expected, rtol=1e-4, atol=1e-5)
