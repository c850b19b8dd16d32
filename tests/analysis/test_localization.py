"""Localization maps and patches (repsim_jax.analysis.localization) against a numpy CKA."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from repsim_jax.analysis.localization import image_patches, localization_maps
from repsim_jax.analysis.tokens import tokens_to_grid
from test_attention import numpy_linear_cka


# --------------------------------------------------------------------------------------------
# Localization


def test_image_patches_and_token_grid():
  rng = np.random.default_rng(9)
  images = rng.normal(size=(2, 6, 9, 2)).astype(np.float32)
  patches = np.asarray(image_patches(images, (2, 3)))
  assert patches.shape == (2, 3, 3, 12)
  for a, b in itertools.product(range(3), range(3)):
    np.testing.assert_array_equal(patches[:, a, b],
                                  images[:, 2 * a:2 * a + 2, 3 * b:3 * b + 3].reshape(2, -1))
  tokens = rng.normal(size=(2, 1 + 6, 4)).astype(np.float32)
  grid = np.asarray(tokens_to_grid(tokens, grid_shape=(2, 3)))
  np.testing.assert_array_equal(grid[:, 1, 2], tokens[:, 1 + 5])
  with pytest.raises(ValueError, match="square grid"):
    tokens_to_grid(tokens)


def test_localization_maps_match_numpy(debiased=True):
  pytest.importorskip("repsim_jax.metrics.kernel_alignment")
  rng = np.random.default_rng(10)
  n, p = 16, 2
  images = rng.normal(size=(n, 3 * p, 3 * p, 2)).astype(np.float32)
  patches = np.asarray(image_patches(images, p)).reshape(n, 9, -1)
  # Tokens = a random linear map of their own patch plus noise, after one CLS token.
  w = rng.normal(size=(patches.shape[-1], 5)).astype(np.float32)
  tokens = patches @ w + 0.1 * rng.normal(size=(n, 9, 5)).astype(np.float32)
  tokens = np.concatenate([rng.normal(size=(n, 1, 5)).astype(np.float32), tokens], 1)
  picks = [(0, 0), (1, 1), (2, 1)]
  maps = localization_maps(tokens, images, patch_size=p, tokens=picks, debiased=debiased)
  assert maps.shape == (3, 3, 3)
  for k, (r, c) in enumerate(picks):
    expected = [[numpy_linear_cka(tokens[:, 1 + r * 3 + c], patches[:, a * 3 + b], debiased)
                 for b in range(3)] for a in range(3)]
    np.testing.assert_allclose(maps[k], expected, rtol=1e-4, atol=1e-5)
  # NHWC input: the default patch size matches the feature grid (same picks: no new compile).
  fmap = tokens[:, 1:].reshape(n, 3, 3, 5)
  np.testing.assert_allclose(localization_maps(fmap, images, tokens=picks, debiased=debiased),
                             maps, rtol=1e-5, atol=1e-6)
