"""The ViT-vs-CNN analyses of Raghu et al. 2021, as functions over arrays.

Every function takes plain arrays (numpy or JAX) or the `blocks` dict of a `ModelOutput`
(`repsim_jax.models.outputs`) and returns arrays; figures live in `repsim_jax.plotting.vit`.

- `mean_attention_distance` / `attention_distances` / `sort_heads`: attention-weighted pixel
  distance per head (Figs. 3, 4, C.5, C.6).
- `attention_values`, `attention_head_outputs`, `head_subsets`, `head_subset_representations`,
  `head_subset_cka`: local -> global head subsets of one block against a CNN's lower layers
  (Fig. 5).
- `effective_receptive_field`: |d centre activation / d input| (Figs. 6, C.1-C.4).
- `skip_connection_stats`, `transformer_skip_stats`, `resnet_skip_stats`,
  `summarize_token_stats`: norm ratio ||z|| / ||f(z)|| and cos(z, f(z)) (Figs. 7, E.1, E.2).
- `block_statistics`: attention distances and skip statistics streamed over image batches.
- `image_patches`, `localization_maps`: CKA of one token with input patches (Figs. 9, 10, D.1-D.3).

Kernels are JAX (jitted where they compute); CKA comes from `repsim_jax.metrics.kernel_alignment`. Pure
rearranging of many slices (tokens, patches, head subsets) happens in numpy on the host.

Token layout: transformer tokens are [B, T, D] with `num_prefix_tokens` tokens without a position
on the image (CLS, distillation, register tokens) first, then the patch tokens in row-major order
over the patch grid [grid_h, grid_w] (T = num_prefix_tokens + grid_h * grid_w).

References:
  Raghu, Unterthiner, Kornblith, Zhang, Dosovitskiy. "Do Vision Transformers See Like
  Convolutional Neural Networks?" NeurIPS 2021.
  Luo, Li, Urtasun, Zemel. "Understanding the Effective Receptive Field in Deep Convolutional
  Neural Networks." NeurIPS 2016.
  Dosovitskiy et al. "An Image is Worth 16x16 Words." ICLR 2021 (attention distance, Fig. 7).
"""
from __future__ import annotations

import functools
import math
import re
from typing import Callable, Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

_HIGHEST = jax.lax.Precision.HIGHEST
_BLOCK = re.compile(r"^block_(\d+)$")


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
  if isinstance(value, (int, np.integer)):
    value = (int(value), int(value))
  value = tuple(int(v) for v in value)
  if len(value) != 2 or min(value) < 1:
    raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {value}")
  return value


def _as_array(x):
  """JAX arrays stay on device; anything else becomes a numpy array (host-side rearranging
  with numpy avoids one XLA compile per distinct slice)."""
  return x if isinstance(x, jax.Array) else np.asarray(x)


def _square_grid(num_patches: int, name: str) -> tuple[int, int]:
  side = math.isqrt(num_patches)
  if side * side != num_patches:
    raise ValueError(f"{name}: {num_patches} patch tokens do not form a square grid; "
                     "pass grid_shape=(grid_h, grid_w)")
  return side, side


def transformer_block_indices(blocks: Mapping[str, object]) -> list[int]:
  """Indices i of the "block_XX" entries of a transformer's `blocks`, in forward order."""
  # Sorted numerically: jit returns dicts with sorted keys, so insertion order is not forward order.
  indices = sorted(int(m.group(1)) for name in blocks if (m := _BLOCK.match(name)))
  if not indices:
    raise ValueError(f"blocks: no 'block_XX' entries (got {sorted(blocks)[:8]} ...)")
  return indices


def tokens_to_grid(tokens: jax.Array, *, num_prefix_tokens: int = 1,
                   grid_shape: Sequence[int] | None = None) -> jax.Array:
  """Patch tokens [B, T, D] -> [B, grid_h, grid_w, D], the prefix tokens dropped.

  `grid_shape` defaults to the square grid of T - num_prefix_tokens patches. numpy in, numpy
  out; JAX in, JAX out.
  """
  tokens = _as_array(tokens)
  if tokens.ndim != 3:
    raise ValueError(f"tokens must be [B, T, D], got shape {tokens.shape}")
  num_patches = tokens.shape[1] - num_prefix_tokens
  gh, gw = (_square_grid(num_patches, "tokens") if grid_shape is None
            else _pair(grid_shape, "grid_shape"))
  if gh * gw != num_patches:
    raise ValueError(f"tokens: {tokens.shape[1]} tokens minus {num_prefix_tokens} prefix tokens "
                     f"= {num_patches}, expected grid_shape {gh}x{gw} = {gh * gw}")
  return tokens[:, num_prefix_tokens:].reshape(tokens.shape[0], gh, gw, tokens.shape[2])


# ---------------------------------------------------------------------------------------------
# Attention distance (Figs. 3, 4, C.5, C.6)


def patch_distance_matrix(grid_shape: Sequence[int],
                          patch_size: int | Sequence[int] = 1) -> np.ndarray:
  """Pixel distances between patch centres: [P, P], P = grid_h * grid_w, row-major patches.

  D[q, k] = sqrt((dy * patch_h)^2 + (dx * patch_w)^2) for grid offsets (dy, dx) of patches q, k.
  """
  gh, gw = _pair(grid_shape, "grid_shape")
  ph, pw = _pair(patch_size, "patch_size")
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
  grid_shape = (_square_grid(num_patches, "attn_probs") if grid_shape is None
                else _pair(grid_shape, "grid_shape"))
  if grid_shape[0] * grid_shape[1] != num_patches:
    raise ValueError(f"attn_probs: T={attn_probs.shape[-1]} minus {num_prefix_tokens} prefix "
                     f"tokens does not match grid_shape {grid_shape}")
  return _mean_attention_distance(
      attn_probs, grid_shape=grid_shape, patch_size=_pair(patch_size, "patch_size"),
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


# ---------------------------------------------------------------------------------------------
# Local -> global head subsets against a CNN (Fig. 5)


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


def flatten_representation(x: jax.Array, *, pooling: str = "flatten") -> jax.Array:
  """One row per image: [B, ...] -> [B, d]. pooling="flatten" keeps every position
  (d = prod of the trailing dims); "mean" averages over all axes but the last (tokens / H, W).
  numpy in, numpy out; JAX in, JAX out."""
  x = _as_array(x)
  if pooling == "flatten":
    return x.reshape(x.shape[0], -1)
  if pooling == "mean":
    return x.reshape(x.shape[0], -1, x.shape[-1]).mean(1)
  raise ValueError(f"pooling must be 'flatten' or 'mean', got {pooling!r}")


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
    debiased, batch_size, **cka_options: passed to `repsim_jax.metrics.kernel_alignment.cka_matrix`
      (linear CKA; minibatch estimator of Nguyen et al. 2020 when batch_size is given; the
      paper's protocol with batch_size=1024, n_samples=10240, repeats=20, seed=...).
  Returns:
    (mean_distance [S], cka [S, len(cnn_layers)]); Fig. 5 plots cka[:, j] against mean_distance.

  References:
    Raghu et al. 2021, Sec. 5 "Does access to global information result in different features?"
  """
  from repsim_jax.metrics import kernel_alignment as cka_lib  # pylint: disable=g-import-not-at-top
  indices, mean_distance = head_subsets(distances, subset_size=subset_size, stride=stride)
  subsets = head_subset_representations(head_outputs, indices,
                                        num_prefix_tokens=num_prefix_tokens, pooling=pooling)
  cnn = [flatten_representation(x, pooling=pooling) for x in cnn_layers]
  similarity = cka_lib.cka_matrix(subsets, cnn, debiased=debiased, batch_size=batch_size,
                                  **cka_options)
  return mean_distance, np.asarray(similarity)


# ---------------------------------------------------------------------------------------------
# Effective receptive fields (Figs. 6, C.1-C.4)


def _feature_grid(features: jax.Array, num_prefix_tokens: int,
                  grid_shape: Sequence[int] | None) -> jax.Array:
  if features.ndim == 4:  # NHWC feature map
    return features
  if features.ndim == 3:  # [B, T, D] tokens
    return tokens_to_grid(features, num_prefix_tokens=num_prefix_tokens, grid_shape=grid_shape)
  raise ValueError(f"features (or f(images)) must be NHWC [B, h, w, C] or tokens [B, T, D], "
                   f"got shape {features.shape}")


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
    grid = _feature_grid(jnp.asarray(features), num_prefix_tokens, grid_shape)
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


# ---------------------------------------------------------------------------------------------
# Skip connections (Figs. 7, E.1, E.2)


@jax.jit
def _skip_stats(z, fz):
  z, fz = z.astype(jnp.float32), fz.astype(jnp.float32)
  tiny = jnp.finfo(jnp.float32).tiny
  z_norm = jnp.sqrt(jnp.sum(z * z, -1))
  f_norm = jnp.sqrt(jnp.sum(fz * fz, -1))
  ratio = z_norm / jnp.maximum(f_norm, tiny)
  cosine = jnp.sum(z * fz, -1) / jnp.maximum(z_norm * f_norm, tiny)
  return ratio.mean(0), cosine.mean(0)


def skip_connection_stats(z: jax.Array, fz: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Norm ratio ||z|| / ||f(z)|| and cosine similarity cos(z, f(z)) per position.

  Args:
    z: the skip (identity) branch, i.e. the residual stream entering the sublayer:
      [B, T, D] tokens or [B, H, W, C] NHWC.
    fz: the long branch output added to it (attention or MLP output after any layer scale;
      the residual branch of a ResNet block), same shape as z.
  Returns:
    (ratio, cosine), each [T] or [H * W] (positions row-major): the per-image values averaged
    over images (mean of ratios, not ratio of mean norms). A zero-norm f(z) gives a huge but
    finite ratio; a zero vector has cosine 0.

  References:
    Raghu et al. 2021, Sec. 6, Figs. 7, E.1, E.2.
  """
  z, fz = jnp.asarray(z), jnp.asarray(fz)
  if z.shape != fz.shape or z.ndim not in (3, 4):
    raise ValueError(f"z and fz must have the same shape, [B, T, D] or [B, H, W, C]; got "
                     f"{z.shape} and {fz.shape}")
  if z.ndim == 4:
    z, fz = (a.reshape(a.shape[0], -1, a.shape[-1]) for a in (z, fz))
  return _skip_stats(z, fz)


def transformer_skip_stats(blocks: Mapping[str, jax.Array]) -> dict[str, np.ndarray]:
  """Skip-connection statistics of every attention and MLP sublayer of a transformer.

  Uses `ModelOutput.blocks` with sublayers: for block i the attention sublayer has
  z = the block input ("embeddings" for i = 0, else "block_{i-1}") and f(z) = "block_i.attn";
  the MLP sublayer has z = "block_i.mid" and f(z) = "block_i.mlp".

  Returns:
    {"attn_ratio", "attn_cosine", "mlp_ratio", "mlp_cosine"}: each [L, T] (block x token),
    the heatmaps of Figs. 7 (left) and E.1; `summarize_token_stats` gives the line plots.
  """
  out = {k: [] for k in ("attn_ratio", "attn_cosine", "mlp_ratio", "mlp_cosine")}
  indices = transformer_block_indices(blocks)
  for pos, i in enumerate(indices):
    block_input = "embeddings" if pos == 0 else f"block_{indices[pos - 1]:02d}"
    pairs = {"attn": (block_input, f"block_{i:02d}.attn"),
             "mlp": (f"block_{i:02d}.mid", f"block_{i:02d}.mlp")}
    for branch, (z_name, f_name) in pairs.items():
      for name in (z_name, f_name):
        if name not in blocks:
          raise KeyError(f"blocks: missing {name!r}; run the model with sublayers=True")
      ratio, cosine = skip_connection_stats(blocks[z_name], blocks[f_name])
      out[f"{branch}_ratio"].append(np.asarray(ratio))
      out[f"{branch}_cosine"].append(np.asarray(cosine))
  return {k: np.stack(v) for k, v in out.items()}


def resnet_skip_stats(blocks: Mapping[str, jax.Array]) -> dict[str, np.ndarray | list[str]]:
  """Skip-connection statistics of every ResNet block, averaged over spatial positions.

  For block "stageS.blockBB", z = the shortcut: "stageS.blockBB.shortcut" when the model
  gives it, else the previous block's output ("stem" before the first), which is the shortcut
  of an identity block; f(z) = "stageS.blockBB.branch" (residual branch before the add). Where
  the shortcut is a projection (or follows a downsampling layer) and not given, z and f(z)
  differ in shape and that block's entries are NaN.

  Returns:
    {"names": [L] block names, "ratio": [L], "cosine": [L]}.
  """
  from repsim_jax.models.outputs import block_names  # pylint: disable=g-import-not-at-top
  names = sorted((n for n in block_names(blocks) if n.startswith("stage")),
                 key=lambda n: tuple(int(d) for d in re.findall(r"\d+", n)))
  if not names:
    raise ValueError(f"blocks: no 'stageS.blockBB' entries (got {sorted(blocks)[:8]} ...)")
  ratios, cosines = [], []
  previous = "stem"
  for name in names:
    branch = f"{name}.branch"
    if branch not in blocks:
      raise KeyError(f"blocks: missing {branch!r}; run the model with sublayers=True")
    z, fz = blocks.get(f"{name}.shortcut", blocks.get(previous)), blocks[branch]
    if z is None or np.shape(z) != np.shape(fz):
      ratios.append(np.nan)
      cosines.append(np.nan)
    else:
      ratio, cosine = skip_connection_stats(z, fz)
      ratios.append(float(jnp.mean(ratio)))
      cosines.append(float(jnp.mean(cosine)))
    previous = name
  return {"names": names, "ratio": np.asarray(ratios), "cosine": np.asarray(cosines)}


def summarize_token_stats(stats: jax.Array, *, num_prefix_tokens: int = 1) -> dict[str, np.ndarray]:
  """Figs. 7 (right) / E.2 aggregation of a [L, T] block x token statistic.

  Returns {"cls": [L] token 0, "tokens": [L] mean over the patch tokens (tokens
  num_prefix_tokens...), "all": [L] mean over all tokens}; "cls" is absent when
  num_prefix_tokens == 0 (a GAP model has no CLS token).
  """
  stats = np.asarray(stats)
  if stats.ndim != 2 or stats.shape[1] <= num_prefix_tokens:
    raise ValueError(f"stats must be [L, T] with T > num_prefix_tokens, got {stats.shape}")
  out = {"tokens": stats[:, num_prefix_tokens:].mean(1), "all": stats.mean(1)}
  if num_prefix_tokens:
    out["cls"] = stats[:, 0]
  return out


def block_statistics(forward: Callable[[jax.Array], object], batches: Iterable[jax.Array], *,
                     patch_size: int | Sequence[int] = 1, num_prefix_tokens: int = 1,
                     grid_shape: Sequence[int] | None = None, prefix_keys: str = "renormalize",
                     progress=None) -> dict[str, np.ndarray]:
  """Attention distances and skip-connection statistics averaged over a stream of images.

  Args:
    forward: images [B, H, W, C] -> `ModelOutput` (or its `blocks` dict) with sublayers, e.g. a
      jitted `lambda x: model(x, sublayers=True)`.
    batches: iterable of image batches (any sizes; results are means over all images, exactly
      as if every image came in one batch).
    patch_size, num_prefix_tokens, grid_shape, prefix_keys: as in `mean_attention_distance`.
    progress: optional `repsim_jax.progress.Progress`, updated with the number of images.
  Returns:
    transformer: {"attention_distance": [L, H], "attn_ratio", "attn_cosine", "mlp_ratio",
      "mlp_cosine": [L, T]} (`attention_distances`, `transformer_skip_stats`);
    conv ("stageS.blockBB" blocks): {"names": [L] str, "ratio": [L], "cosine": [L]}
      (`resnet_skip_stats`).
  """
  sums: dict[str, np.ndarray] = {}
  names = None
  count = 0
  for images in batches:
    out = forward(images)
    blocks = getattr(out, "blocks", out)
    n = int(np.shape(images)[0])
    if any(_BLOCK.match(name) for name in blocks):
      stats = {"attention_distance": attention_distances(
          blocks, patch_size=patch_size, num_prefix_tokens=num_prefix_tokens,
          grid_shape=grid_shape, prefix_keys=prefix_keys), **transformer_skip_stats(blocks)}
    else:
      stats = resnet_skip_stats(blocks)
      names = stats.pop("names")
    for key, value in stats.items():
      sums[key] = sums.get(key, 0.0) + n * np.asarray(value, np.float64)
    count += n
    if progress is not None:
      progress.update(n)
  if not count:
    raise ValueError("batches: no images")
  result = {key: (value / count).astype(np.float32) for key, value in sums.items()}
  if names is not None:
    result["names"] = np.asarray(names)
  return result


# ---------------------------------------------------------------------------------------------
# Localization (Figs. 9, 10, D.1-D.3)


def image_patches(images: jax.Array, patch_size: int | Sequence[int]) -> jax.Array:
  """Non-overlapping patches: [N, H, W, C] -> [N, H // ph, W // pw, ph * pw * C].

  Each patch is flattened row-major (rows, then columns, then channels); H and W must be
  multiples of the patch size. numpy in, numpy out; JAX in, JAX out.
  """
  images = _as_array(images)
  if images.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
  ph, pw = _pair(patch_size, "patch_size")
  n, h, w, c = images.shape
  if h % ph or w % pw:
    raise ValueError(f"images: size {h}x{w} is not a multiple of patch_size {ph}x{pw}")
  x = images.reshape(n, h // ph, ph, w // pw, pw, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h // ph, w // pw, ph * pw * c)


def localization_maps(features: jax.Array, images: jax.Array, *,
                      patch_size: int | Sequence[int] | None = None,
                      num_prefix_tokens: int = 1, grid_shape: Sequence[int] | None = None,
                      tokens: Sequence[Sequence[int]] | None = None, debiased: bool = True,
                      batch_size: int | None = None, **cka_options) -> np.ndarray:
  """CKA between one position's representation and the input patches at every location.

  Args:
    features: one layer on N images: tokens [N, T, D] (prefix tokens dropped, the rest
      reshaped to the patch grid) or an NHWC feature map [N, h, w, C] (a ResNet "token" is all
      channels at one spatial position).
    images: [N, H, W, C] the inputs (as fed to the model).
    patch_size: input patch size; default H // h (and W // w) so that the patch grid matches
      the feature grid, as in Figs. 9 and D.3.
    tokens: (row, col) feature-grid positions to map; default all, row-major.
    debiased, batch_size, **cka_options: passed to `repsim_jax.metrics.kernel_alignment.cka_matrix`
      (linear CKA). The exact path holds all K + P token / patch representations (features when
      N > d, else N x N Grams); for many images pass batch_size (minibatch CKA, memory
      (K + P) * batch_size^2 floats per batch, independent of N) and, for the paper's
      protocol, n_samples=10240, repeats=20, seed=....
  Returns:
    [K, grid_h', grid_w'] maps: entry [k, a, b] = CKA(features at tokens[k], patch (a, b)),
    K = len(tokens) (or h * w for all positions, row-major).

  References:
    Raghu et al. 2021, Sec. 7, Figs. 9, 10, D.1-D.3.
  """
  from repsim_jax.metrics import kernel_alignment as cka_lib  # pylint: disable=g-import-not-at-top
  # Rearranged on the host: one XLA compile per token slice would dominate the run time.
  features = np.asarray(_feature_grid(np.asarray(features), num_prefix_tokens, grid_shape))
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[0] != features.shape[0]:
    raise ValueError(f"images must be [N, H, W, C] with N = {features.shape[0]} (the number of "
                     f"feature rows), got shape {images.shape}")
  gh, gw = features.shape[1:3]
  if patch_size is None:
    if images.shape[1] % gh or images.shape[2] % gw:
      raise ValueError(f"images {images.shape[1:3]} are not a multiple of the feature grid "
                       f"{(gh, gw)}; pass patch_size")
    patch_size = (images.shape[1] // gh, images.shape[2] // gw)
  patches = np.asarray(image_patches(images, patch_size))
  ph_grid, pw_grid = patches.shape[1:3]
  if tokens is None:
    tokens = [(r, c) for r in range(gh) for c in range(gw)]
  token_reps = [features[:, r, c, :] for r, c in tokens]
  patch_reps = [patches[:, a, b, :] for a in range(ph_grid) for b in range(pw_grid)]
  similarity = np.asarray(cka_lib.cka_matrix(token_reps, patch_reps, debiased=debiased,
                                             batch_size=batch_size, **cka_options))
  return similarity.reshape(len(token_reps), ph_grid, pw_grid)
