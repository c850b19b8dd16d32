"""Effective receptive fields (repsim_jax.analysis.receptive_field) of box convolutions, whose
receptive fields are known.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repsim_jax.analysis.receptive_field import effective_receptive_field


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
  erfs = effective_receptive_field(
      lambda x: {"box5": _box_conv(x, 5, 2), "box3x3": _box_conv(_box_conv(x, 3, 4), 3, 3)},
      images, num_images=None, channels=channels)
  expected = np.zeros((15, 15))
  expected[5:10, 5:10] = 1.0
  np.testing.assert_allclose(np.asarray(erfs["box5"]), expected, atol=1e-6)
  tri = np.array([1, 2, 3, 2, 1]) / 3.0
  expected[5:10, 5:10] = np.outer(tri, tri)
  np.testing.assert_allclose(np.asarray(erfs["box3x3"]), expected, atol=1e-6)
  # Off-centre location and sum normalisation.
  erf = np.asarray(effective_receptive_field(lambda x: _box_conv(x, 3), images,
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
  erf = np.asarray(effective_receptive_field(f, images, num_images=3, normalize=None))
  expected = np.zeros((6, 6))
  expected[3, 3] = np.abs(w.sum(1)).mean()
  np.testing.assert_allclose(erf, expected, rtol=1e-6, atol=1e-7)
  erf = np.asarray(effective_receptive_field(f, images, num_images=3, normalize=None,
                                             channels="mean_abs", channel_batch_size=3))
  expected[3, 3] = np.abs(w).mean()
  np.testing.assert_allclose(erf, expected, rtol=1e-6, atol=1e-7)
  with pytest.raises(ValueError, match="num_images"):
    effective_receptive_field(f, images)  # 32 by default, only 3 given


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
  erf = np.asarray(effective_receptive_field(f, images, num_images=2, num_prefix_tokens=1,
                                             params=kernel))
  support = erf > 0
  expected = np.zeros((12, 12), bool)
  expected[4:8, 4:8] = True
  np.testing.assert_array_equal(support, expected)
  expected_values = np.abs(np.asarray(kernel).sum(-1)).mean(-1)  # [4, 4]
  np.testing.assert_allclose(erf[4:8, 4:8], expected_values / expected_values.max(), rtol=1e-5)
  with pytest.raises(ValueError, match="outside the feature grid"):
    effective_receptive_field(f, images, num_images=2, num_prefix_tokens=1, location=(3, 0),
                              params=kernel)
