"""Attention distances and local -> global head subsets of a ViT (Raghu et al. 2021, Sec. 5).

- `mean_attention_distance` / `attention_distances` / `sort_heads`: attention-weighted pixel
  distance per head (Figs. 3, 4, C.5, C.6).
- `attention_values`, `attention_head_outputs`, `head_subsets`, `head_subset_representations`,
  `head_subset_cka`: local -> global head subsets of one block against a CNN's lower layers
  (Fig. 5).

Functions over arrays (or the `blocks` dict of a `ModelOutput`); figures are in
`repsim_jax.plotting.attention`. Token layout (`repsim_jax.analysis.tokens`): transformer tokens
are [B, T, D] with `num_prefix_tokens` tokens without a position on the image (CLS,
distillation, register tokens) first, then the patch tokens in row-major order over the patch
grid [grid_h, grid_w] (T = num_prefix_tokens + grid_h * grid_w).

References:
  Raghu, Unterthiner, Kornblith, Zhang, Dosovitskiy. "Do Vision Transformers See Like
  Convolutional Neural Networks?" NeurIPS 2021.
  Dosovitskiy et al. "An Image is Worth 16x16 Words." ICLR 2021 (attention distance, Fig. 7).
"""
from __future__ import annotations

import functools
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.analysis.tokens import (flatten_representation, pair, square_grid,
                                        transformer_block_indices)
from repsim_jax.metrics.kernel_alignment import cka_matrix

_HIGHEST = jax.lax.Precision.HIGHEST


def patch_distance_matrix(grid_shape: Sequence[int],
                          patch_size: int | Sequence[int] = 1) -> np.ndarray:
  """Pixel distances between patch centres: [P, P], P = grid_h * grid_w, row-major patches.

  D[q, k] = sqrt((dy * patch_h)^2 + (dx * patch_w)^2) for grid offsets (dy, dx) of patches q, k.
  """
  gh, gw = pair(grid_shape, "grid_shape")
  ph, pw = pair(patch_size, "patch_size")
  rows, cols = np.divmod(np.arange(gh * gw), gw)
  dy = (rows[:, None] - rows[None, :]) * ph
  dx = (cols[:, None] - cols[None, :]) * pw
  return np.sqrt(dy.astype(np.float64) ** 2 + dx.astype(np.float64) ** 2).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("grid_shape", "patch_size", "num_prefix_tokens",
                                             "prefix_keys", "per_image"))
def _mean_attention_distance(attn_probs, *, grid_shape, patch_size, num_prefix_tokens,
                             prefix_keys, per_image):
  distance = jnp.asarray(patch_distance_matrix(grid_shape, patch_size))
  weights = attn_probs[:, :, num_prefix_tokens:, num_prefix_tokens:].astype(jnp.float32)
  if prefix_keys == "renormalize":
    # Attention to prefix tokens has no position: the distance is the mean over patch keys only.
    weights = weights / jnp.maximum(weights.sum(-1, keepdims=True), jnp.finfo(jnp.float32).tiny)
  per_query = jnp.einsum("bhqk,qk->bhq", weights, distance, precision=_HIGHEST)
  per_head = per_query.mean(-1)  # [B, H]
  return per_head if per_image else per_head.mean(0)


def mean_attention_distance(attn_probs: jax.Array, *, grid_shape: Sequence[int] | None = None,
                            patch_size: int | Sequence[int] = 1, num_prefix_tokens: int = 1,
                            prefix_keys: str = "renormalize",
                            per_image: bool = False) -> jax.Array:
  """Attention-weighted mean pixel distance between query and key patches, per head.

  Args:
    attn_probs: [B, H, T, T] attention probabilities (rows = queries, sum to 1 over keys),
      T = num_prefix_tokens + grid_h * grid_w; tokens laid out as in this module's docstring.
    grid_shape: (grid_h, grid_w) patch grid; default the square grid of T - num_prefix_tokens.
    patch_size: pixels per patch (int or (h, w)); distances are in pixels, so 1 gives patch units.
    num_prefix_tokens: tokens without an image position (CLS, registers, distillation), first
      in the sequence. Their rows (as queries) are left out of the average.
    prefix_keys: what happens to the attention mass a patch query gives to prefix keys:
      "renormalize" (default) divides the patch-key weights by their sum, so the result is the
      weighted mean distance of the attended *patches*; "drop" leaves the weights as they are,
      which counts prefix-key mass as distance 0 (the convention of the widely copied
      `compute_mean_attention_dist` notebook code). With num_prefix_tokens=0 they agree.
    per_image: return [B, H] instead of the mean over images (for streaming sums over batches).

  Returns:
    [H] (or [B, H]) float32: d_h = mean_{b, q} sum_k w[b, h, q, k] D[q, k] with
    D = `patch_distance_matrix(grid_shape, patch_size)`, q and k over patch tokens only.

  References:
    Raghu et al. 2021, Sec. 5 "Analyzing Attention Distances", Figs. 3, 4, C.5, C.6;
    Dosovitskiy et al. 2021, Fig. 7 (right).
  """
  if prefix_keys not in ("renormalize", "drop"):
    raise ValueError(f"prefix_keys must be 'renormalize' or 'drop', got {prefix_keys!r}")
  attn_probs = jnp.asarray(attn_probs)
  if attn_probs.ndim != 4 or attn_probs.shape[-1] != attn_probs.shape[-2]:
    raise ValueError(f"attn_probs must be [B, H, T, T], got shape {attn_probs.shape}")
  num_patches = attn_probs.shape[-1] - num_prefix_tokens
  grid_shape = (square_grid(num_patches, "attn_probs") if grid_shape is None
                else pair(grid_shape, "grid_shape"))
  if grid_shape[0] * grid_shape[1] != num_patches:
    raise ValueError(f"attn_probs: T={attn_probs.shape[-1]} minus {num_prefix_tokens} prefix "
                     f"tokens does not match grid_shape {grid_shape}")
  return _mean_attention_distance(
      attn_probs, grid_shape=grid_shape, patch_size=pair(patch_size, "patch_size"),
      num_prefix_tokens=num_prefix_tokens, prefix_keys=prefix_keys, per_image=per_image)


def attention_distances(blocks: Mapping[str, jax.Array], **kwargs) -> np.ndarray:
  """Mean attention distance of every head of every block: [L, H] (unsorted).

  `blocks` is `ModelOutput.blocks` with sublayers ("block_XX.attn_probs" [B, H, T, T]); the
  keyword arguments go to `mean_attention_distance`. To average over more images than fit one
  forward pass, pass `per_image=True` and concatenate over batches ([L, B, H] then), or weight
  batch means by batch size.
  """
  out = []
  for i in transformer_block_indices(blocks):
    name = f"block_{i:02d}.attn_probs"
    if name not in blocks:
      raise KeyError(f"blocks: missing {name!r}; run the model with sublayers=True")
    out.append(np.asarray(mean_attention_distance(blocks[name], **kwargs)))
  return np.stack(out)


def sort_heads(distances: jax.Array) -> tuple[np.ndarray, np.ndarray]:
  """Heads sorted by mean attention distance within each layer, as plotted in Figs. 3/4/C.5/C.6.

  Args:
    distances: [L, H] (or [H]) mean attention distance per head.
  Returns:
    (sorted [L, H] ascending per row, order [L, H]) with sorted[l] = distances[l, order[l]];
    ties keep head order (stable sort).
  """
  distances = np.asarray(distances)
  order = np.argsort(distances, axis=-1, kind="stable")
  return np.take_along_axis(distances, order, axis=-1), order


def attention_head_outputs(attn_probs: jax.Array, values: jax.Array) -> jax.Array:
  """Per-head attention outputs before the output projection: [B, T, H, Dh].

  out[b, q, h] = sum_k attn_probs[b, h, q, k] * values[b, k, h]; `values` [B, T, H, Dh] are the
  value projections of the block's normalised input (per head). Concatenating the heads of a
  subset gives that subset's representation (`head_subset_representations`).
  """
  attn_probs, values = jnp.asarray(attn_probs), jnp.asarray(values)
  if attn_probs.ndim != 4 or values.ndim != 4 or attn_probs.shape[:2] != (
      values.shape[0], values.shape[2]) or attn_probs.shape[-1] != values.shape[1]:
    raise ValueError(f"attn_probs must be [B, H, T, T] and values [B, T, H, Dh] with matching "
                     f"B, H, T; got {attn_probs.shape} and {values.shape}")
  return jnp.einsum("bhqk,bkhd->bqhd", attn_probs, values, precision=_HIGHEST)


def attention_values(block, z: jax.Array) -> jax.Array:
  """Per-head value projections [B, T, H, Dh] of a pre-norm transformer block on its input z.

  `block` is a `repsim_jax.models.layers.EncoderBlock` (anything with `norm1` and an
  `attention` holding `v_proj`, `num_heads`, `head_dim`); z [B, T, D] is the block input
  (blocks["embeddings"] or blocks["block_{i-1}"]). With the block's "attn_probs",
  `attention_head_outputs` then gives the per-head outputs that Fig. 5 compares.
  """
  z = jnp.asarray(z)
  attention = block.attention
  v = attention.v_proj(block.norm1(z))
  return v.reshape(z.shape[0], z.shape[1], attention.num_heads, attention.head_dim)


def head_subsets(distances: jax.Array, *, subset_size: int,
                 stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """Windows of `subset_size` heads over the heads sorted by distance, local -> global.

  Args:
    distances: [H] mean attention distance per head of one block (e.g. the first block).
    subset_size: heads per subset (1 <= subset_size <= H).
    stride: step between consecutive windows in the sorted order.
  Returns:
    (indices [S, subset_size] head indices, mean_distance [S] the subsets' mean head distance),
    S = (H - subset_size) // stride + 1, subset 0 the most local.
  """
  distances = np.asarray(distances)
  if distances.ndim != 1:
    raise ValueError(f"distances must be [H], got shape {distances.shape}")
  num_heads = distances.shape[0]
  if not 1 <= subset_size <= num_heads or stride < 1:
    raise ValueError(f"subset_size must be in [1, {num_heads}] and stride >= 1, "
                     f"got subset_size={subset_size}, stride={stride}")
  _, order = sort_heads(distances)
  starts = np.arange(0, num_heads - subset_size + 1, stride)
  indices = np.stack([order[s:s + subset_size] for s in starts])
  return indices, distances[indices].mean(-1)


def head_subset_representations(head_outputs: jax.Array, indices: np.ndarray, *,
                                num_prefix_tokens: int = 1,
                                pooling: str = "flatten") -> list[jax.Array]:
  """The representation of each head subset: one [B, d] array per row of `indices`.

  Args:
    head_outputs: [B, T, H, Dh] from `attention_head_outputs`.
    indices: [S, k] head indices (from `head_subsets`).
    num_prefix_tokens: prefix tokens left out, so that only patch positions are compared with
      the CNN's spatial positions.
    pooling: "flatten" -> d = (T - prefix) * k * Dh; "mean" over tokens -> d = k * Dh.
  """
  head_outputs = np.asarray(head_outputs)[:, num_prefix_tokens:]  # host: cka_matrix reads rows
  return [flatten_representation(head_outputs[:, :, np.asarray(idx)], pooling=pooling)
          for idx in np.asarray(indices)]


def head_subset_cka(head_outputs: jax.Array, distances: jax.Array,
                    cnn_layers: Sequence[jax.Array], *, subset_size: int, stride: int = 1,
                    num_prefix_tokens: int = 1, pooling: str = "flatten",
                    debiased: bool = True, batch_size: int | None = None,
                    **cka_options) -> tuple[np.ndarray, np.ndarray]:
  """CKA of local -> global head subsets of one ViT block against CNN layers (Fig. 5).

  Args:
    head_outputs: [B, T, H, Dh] per-head outputs of one block (`attention_head_outputs`).
    distances: [H] the block's mean attention distances (`mean_attention_distance`).
    cnn_layers: CNN representations on the same B images, each [B, ...] (NHWC maps), flattened
      with the same `pooling`.
    subset_size, stride: as in `head_subsets`.
    debiased, batch_size, **cka_options: passed to `repsim_jax.cka_matrix`
      (linear CKA; minibatch estimator of Nguyen et al. 2020 when batch_size is given; the
      paper's protocol with batch_size=1024, n_samples=10240, repeats=20, seed=...).
  Returns:
    (mean_distance [S], cka [S, len(cnn_layers)]); Fig. 5 plots cka[:, j] against mean_distance.

  References:
    Raghu et al. 2021, Sec. 5 "Does access to global information result in different features?"
  """
  indices, mean_distance = head_subsets(distances, subset_size=subset_size, stride=stride)
  subsets = head_subset_representations(head_outputs, indices,
                                        num_prefix_tokens=num_prefix_tokens, pooling=pooling)
  cnn = [flatten_representation(x, pooling=pooling) for x in cnn_layers]
  similarity = cka_matrix(subsets, cnn, hsic="song" if debiased else "gretton",
                          batch_size=batch_size, **cka_options)
  return mean_distance, np.asarray(similarity)
