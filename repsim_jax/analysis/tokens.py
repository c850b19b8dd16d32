"""Token and feature-map layouts the ViT-vs-CNN analyses share (Raghu et al. 2021).

Token layout: transformer tokens are [B, T, D] with `num_prefix_tokens` tokens without a position
on the image (CLS, distillation, register tokens) first, then the patch tokens in row-major order
over the patch grid [grid_h, grid_w] (T = num_prefix_tokens + grid_h * grid_w).
A CNN's "tokens" are the positions of its NHWC feature map. numpy in, numpy out; JAX in, JAX out
(host-side rearranging with numpy avoids one XLA compile per distinct slice).
"""
from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

import jax
import numpy as np

from repsim_jax.shapes import pair

TRANSFORMER_BLOCK = re.compile(r"^block_(\d+)$")  # a transformer's main blocks in `blocks`

__all__ = ["TRANSFORMER_BLOCK", "as_array", "feature_grid", "flatten_representation", "pair",
           "square_grid", "tokens_to_grid", "transformer_block_indices"]


def as_array(x):
  """JAX arrays stay on device; anything else becomes a numpy array (host-side rearranging
  with numpy avoids one XLA compile per distinct slice)."""
  return x if isinstance(x, jax.Array) else np.asarray(x)


def square_grid(num_patches: int, name: str) -> tuple[int, int]:
  side = math.isqrt(num_patches)
  if side * side != num_patches:
    raise ValueError(f"{name}: {num_patches} patch tokens do not form a square grid; "
                     "pass grid_shape=(grid_h, grid_w)")
  return side, side


def transformer_block_indices(blocks: Mapping[str, object]) -> list[int]:
  """Indices i of the "block_XX" entries of a transformer's `blocks`, in forward order."""
  # Sorted numerically: jit returns dicts with sorted keys, so insertion order is not forward order.
  indices = sorted(int(m.group(1)) for name in blocks if (m := TRANSFORMER_BLOCK.match(name)))
  if not indices:
    raise ValueError(f"blocks: no 'block_XX' entries (got {sorted(blocks)[:8]} ...)")
  return indices


def tokens_to_grid(tokens: jax.Array, *, num_prefix_tokens: int = 1,
                   grid_shape: Sequence[int] | None = None) -> jax.Array:
  """Patch tokens [B, T, D] -> [B, grid_h, grid_w, D], the prefix tokens dropped.

  `grid_shape` defaults to the square grid of T - num_prefix_tokens patches. numpy in, numpy
  out; JAX in, JAX out.
  """
  tokens = as_array(tokens)
  if tokens.ndim != 3:
    raise ValueError(f"tokens must be [B, T, D], got shape {tokens.shape}")
  num_patches = tokens.shape[1] - num_prefix_tokens
  gh, gw = (square_grid(num_patches, "tokens") if grid_shape is None
            else pair(grid_shape, "grid_shape"))
  if gh * gw != num_patches:
    raise ValueError(f"tokens: {tokens.shape[1]} tokens minus {num_prefix_tokens} prefix tokens "
                     f"= {num_patches}, expected grid_shape {gh}x{gw} = {gh * gw}")
  return tokens[:, num_prefix_tokens:].reshape(tokens.shape[0], gh, gw, tokens.shape[2])


def feature_grid(features: jax.Array, num_prefix_tokens: int,
                  grid_shape: Sequence[int] | None) -> jax.Array:
  if features.ndim == 4:  # NHWC feature map
    return features
  if features.ndim == 3:  # [B, T, D] tokens
    return tokens_to_grid(features, num_prefix_tokens=num_prefix_tokens, grid_shape=grid_shape)
  raise ValueError(f"features (or f(images)) must be NHWC [B, h, w, C] or tokens [B, T, D], "
                   f"got shape {features.shape}")


def flatten_representation(x: jax.Array, *, pooling: str = "flatten") -> jax.Array:
  """One row per image: [B, ...] -> [B, d]. pooling="flatten" keeps every position
  (d = prod of the trailing dims); "mean" averages over all axes but the last (tokens / H, W).
  numpy in, numpy out; JAX in, JAX out."""
  x = as_array(x)
  if pooling == "flatten":
    return x.reshape(x.shape[0], -1)
  if pooling == "mean":
    return x.reshape(x.shape[0], -1, x.shape[-1]).mean(1)
  raise ValueError(f"pooling must be 'flatten' or 'mean', got {pooling!r}")
