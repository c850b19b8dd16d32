"""Position information inside attention: rotary embeddings (q, k rotated) and learned relative
position biases of the attention logits."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from repsim_jax.models.layers.resize import bilinear_matrix, resize_separable
from repsim_jax.shapes import pair

# q, k: [B, H, T, hd] -> rotated (q, k). Models pass one to apply rotary position embeddings.
RopeFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def rotate_half(x: jax.Array) -> jax.Array:
  """[..., d] -> concat(-x[..., d/2:], x[..., :d/2]) (the rotary-embedding helper of transformers)."""
  x1, x2 = jnp.split(x, 2, axis=-1)
  return jnp.concatenate([-x2, x1], axis=-1)


def apply_rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """x * cos + rotate_half(x) * sin: rotary position embedding (Su et al. 2021, RoFormer);
  cos, sin broadcast against x: [..., T, head_dim]."""
  return x * cos.astype(x.dtype) + rotate_half(x) * sin.astype(x.dtype)


def relative_position_index(window: tuple[int, int], *, num_prefix_tokens: int = 0) -> np.ndarray:
  """[T, T] indices into a relative position bias table for a (wh, ww) window of tokens,
  T = wh * ww (+ 1 with a [CLS] token).

  Tokens i, j at (y_i, x_i), (y_j, x_j) get (y_i - y_j + wh - 1) * (2 ww - 1) + (x_i - x_j + ww
  - 1) (Swin, Liu et al. 2021). With num_prefix_tokens=1 (BEiT, Bao et al. 2022) the [CLS] row,
  column and corner get the table's last three entries: cls->token n, token->cls n + 1,
  cls->cls n + 2, n = (2 wh - 1)(2 ww - 1).
  """
  wh, ww = window
  coords = np.stack(np.meshgrid(np.arange(wh), np.arange(ww), indexing="ij")).reshape(2, -1)
  rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0)
  index = (rel[..., 0] + wh - 1) * (2 * ww - 1) + rel[..., 1] + ww - 1
  if num_prefix_tokens == 0:
    return index
  if num_prefix_tokens != 1:
    raise ValueError(f"relative_position_index: num_prefix_tokens must be 0 or 1, got "
                     f"{num_prefix_tokens}")
  n = (2 * wh - 1) * (2 * ww - 1)
  full = np.zeros((wh * ww + 1,) * 2, np.int64)
  full[1:, 1:] = index
  full[0, :] = n
  full[:, 0] = n + 1
  full[0, 0] = n + 2
  return full


class RelativePositionBias(nnx.Module):
  """Learned per-head bias of the attention logits for each relative offset in a window.

  relative_position_bias_table: [(2 wh - 1)(2 ww - 1) (+ 3 with a [CLS] token), H].
  __call__(grid) -> [H, T, T] (float32): the table gathered with `relative_position_index`.
  `grid` (BEiT) is the patch grid of the current image: when it differs from the window the table
  was trained for, its spatial part is resized bilinearly (align_corners=False, as torch; the
  three [CLS] entries are kept), exactly as transformers' BeitRelativePositionBias, including its
  (2 ww - 1, 2 wh - 1) reading of the table's layout. Swin calls it with grid=None.
  """

  def __init__(self, window: tuple[int, int], num_heads: int, *, num_prefix_tokens: int = 0):
    self.window = pair(window, "window")
    self.num_prefix_tokens = num_prefix_tokens
    size = (2 * self.window[0] - 1) * (2 * self.window[1] - 1) + 3 * num_prefix_tokens
    self.relative_position_bias_table = nnx.Param(jnp.zeros((size, num_heads), jnp.float32))

  def __call__(self, grid: tuple[int, int] | None = None) -> jax.Array:
    table = self.relative_position_bias_table[...]
    window = self.window if grid is None else tuple(grid)
    if window != self.window:
      old_h, old_w = 2 * self.window[0] - 1, 2 * self.window[1] - 1
      new_h, new_w = 2 * window[0] - 1, 2 * window[1] - 1
      sub = table[:old_h * old_w].reshape(old_w, old_h, -1)  # torch's reading (width first)
      sub = resize_separable(sub, bilinear_matrix(old_w, new_h), bilinear_matrix(old_h, new_w))
      table = jnp.concatenate([sub.reshape(new_h * new_w, -1), table[old_h * old_w:]])
    index = relative_position_index(window, num_prefix_tokens=self.num_prefix_tokens)
    return jnp.take(table, jnp.asarray(index.reshape(-1)), axis=0).reshape(
        *index.shape, -1).transpose(2, 0, 1)
