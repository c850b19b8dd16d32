"""Effective receptive fields: |d centre activation / d input| (Raghu et al. 2021, Figs. 6,
C.1-C.4; Luo et al. 2016), for token and NHWC feature maps alike.

References:
  Raghu, Unterthiner, Kornblith, Zhang, Dosovitskiy. "Do Vision Transformers See Like
  Convolutional Neural Networks?" NeurIPS 2021.
  Luo, Li, Urtasun, Zemel. "Understanding the Effective Receptive Field in Deep Convolutional
  Neural Networks." NeurIPS 2016.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from repsim_jax.analysis.tokens import feature_grid


def effective_receptive_field(f: Callable[[jax.Array], object], images: jax.Array, *,
                              num_images: int | None = 32, location: Sequence[int] | None = None,
                              num_prefix_tokens: int = 0,
                              grid_shape: Sequence[int] | None = None,
                              channels: str = "sum", normalize: str | None = "max",
                              channel_batch_size: int = 64, params=None):
  """Effective receptive field of one location of a feature map: [H, W] over input pixels.

  ERF[y, x] = mean over images n and input channels c of |d a_n / d images[n, y, x, c]|, where
  a_n is the activation of image n at `location` of the feature map f(images)[n].

  Args:
    f: images [N, H, W, C] -> feature map, NHWC [N, h, w, D] or tokens [N, T, D] (reshaped to
      the patch grid after dropping `num_prefix_tokens` prefix tokens); or a dict / list of such
      maps (e.g. several entries of `ModelOutput.blocks`), whose ERFs then come from one
      compiled forward pass and one backward pass per map. f must be a pure function that treats
      images independently (no batch statistics, no dropout): gradients of the batch sum are
      then per image. "After" and "before the residual add" are just two maps (e.g.
      blocks["block_03.mid"] and blocks["block_03.attn"]).
    images: [N, H, W, C] inputs in the form f takes (e.g. preprocessed pixel_values).
    num_images: use the first num_images images (the paper uses 32 random images; draw them
      with the deterministic sampler); None uses all.
    location: (row, col) on the feature grid; default the centre (h // 2, w // 2), which for an
      even side is the lower/right of the two middle positions.
    num_prefix_tokens, grid_shape: token layout when f returns tokens.
    channels: how feature channels are combined. "sum" (default, Luo et al. 2016): the gradient
      of the channel-summed activation, one backward pass. "mean_abs": mean over channels of
      |d a_{n,d} / d x| per channel (one backward pass per channel, vmapped in
      chunks of `channel_batch_size`), the stricter reading of "averaged across all channels".
    normalize: "max" (default) divides by the maximum, so every map spans [0, 1] as each panel
      of Figs. 6 and C.1-C.4 has its own colour scale; "sum" makes it sum to 1; None keeps the
      raw mean |gradient|.
    params: when given, f is called as f(params, images) and params (any pytree, e.g. the
      `nnx.State` from `nnx.split(model)`) enter the compiled function as arguments instead of
      being baked into it as constants (large models compile faster and share memory).
  Returns:
    [H, W] float32, or a dict / list of them with the structure of f's output.

  References:
    Raghu et al. 2021, Sec. 5 "Effective Receptive Fields", Figs. 6, C.1-C.4; Luo et al. 2016.
  """
  images = jnp.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
  if num_images is not None:
    if images.shape[0] < num_images:
      raise ValueError(f"images: need at least num_images={num_images} images, got "
                       f"{images.shape[0]} (pass num_images=None to use all)")
    images = images[:num_images]
  if channels not in ("sum", "mean_abs"):
    raise ValueError(f"channels must be 'sum' or 'mean_abs', got {channels!r}")
  if normalize not in ("max", "sum", None):
    raise ValueError(f"normalize must be 'max', 'sum' or None, got {normalize!r}")

  def centre_features(features):  # one feature map -> [N, D] activations at the location
    grid = feature_grid(jnp.asarray(features), num_prefix_tokens, grid_shape)
    row, col = (grid.shape[1] // 2, grid.shape[2] // 2) if location is None else location
    if not (0 <= row < grid.shape[1] and 0 <= col < grid.shape[2]):
      raise ValueError(f"location {(row, col)} is outside the feature grid {grid.shape[1:3]}")
    return grid[:, row, col, :].astype(jnp.float32)

  def all_centres(x, params):
    return jax.tree.map(centre_features, f(x) if params is None else f(params, x))

  def scale(erf):
    if normalize == "max":
      return erf / jnp.maximum(erf.max(), jnp.finfo(jnp.float32).tiny)
    if normalize == "sum":
      return erf / jnp.maximum(erf.sum(), jnp.finfo(jnp.float32).tiny)
    return erf

  def erfs_of(x, params):
    feats, vjp = jax.vjp(lambda x: all_centres(x, params), x)
    leaves, treedef = jax.tree.flatten(feats)

    def input_grad(i, cotangent_i):  # |d <leaf i, cotangent_i> / dx| averaged over n and c
      cotangents = [cotangent_i if j == i else jnp.zeros_like(leaf)
                    for j, leaf in enumerate(leaves)]
      (g,) = vjp(jax.tree.unflatten(treedef, cotangents))
      return jnp.abs(g).mean(axis=(0, 3))

    maps = []
    for i, leaf in enumerate(leaves):
      if channels == "sum":
        erf = input_grad(i, jnp.ones_like(leaf))
      else:
        erf = jax.lax.map(lambda d, i=i, leaf=leaf: input_grad(i, jnp.zeros_like(leaf).at[:, d]
                                                                .set(1.0)),
                          jnp.arange(leaf.shape[1]),
                          batch_size=min(channel_batch_size, leaf.shape[1])).mean(0)
      maps.append(scale(erf))
    return jax.tree.unflatten(treedef, maps)

  # One compiled forward + backward per call (op-by-op dispatch of a large model is slow).
  return jax.jit(erfs_of)(images, params)
