"""Multi-head attention (global and Swin's shifted windows) and the pre-norm transformer block."""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from repsim_jax.models.layers.core import PRECISION, LayerScale, linear
from repsim_jax.models.layers.positions import RelativePositionBias, RopeFn

class MultiHeadAttention(nnx.Module):
  """Multi-head attention with separate q/k/v/o projections (as transformers' eager path).

  x: [B, Tq, D] -> (out [B, Tq, D], probs [B, H, Tq, Tk] or None). Keys and values come from
  `context` [B, Tk, D] when given (cross-attention, e.g. SigLIP's attention-pooling head), else
  from x (self-attention, Tk = Tq).
  logits = q k^T * scale (+ relative_position_bias(grid)) (+ bias), in float32;
  probs = softmax(logits); out = o_proj(concat_h(probs v)).
  `relative_position_bias`: an optional module owned by this attention (BEiT, Swin; see
  `RelativePositionBias`); `bias`: any other additive term broadcastable to [B, H, Tq, Tk]
  (a causal or window mask, a bias shared by all blocks).
  """

  def __init__(self, dim: int, num_heads: int, *, head_dim: int | None = None,
               qkv_bias: bool | tuple[bool, bool, bool] = True, out_bias: bool = True,
               scale: float | None = None, relative_position_bias: nnx.Module | None = None,
               dtype=jnp.float32, rngs: nnx.Rngs):
    self.num_heads = num_heads
    self.head_dim = head_dim or dim // num_heads
    self.scale = self.head_dim ** -0.5 if scale is None else scale
    self.dtype = dtype
    q_bias, k_bias, v_bias = (qkv_bias,) * 3 if isinstance(qkv_bias, bool) else qkv_bias
    inner = num_heads * self.head_dim
    self.q_proj = linear(dim, inner, use_bias=q_bias, dtype=dtype, rngs=rngs)
    self.k_proj = linear(dim, inner, use_bias=k_bias, dtype=dtype, rngs=rngs)
    self.v_proj = linear(dim, inner, use_bias=v_bias, dtype=dtype, rngs=rngs)
    self.o_proj = linear(inner, dim, use_bias=out_bias, dtype=dtype, rngs=rngs)
    self.relative_position_bias = relative_position_bias

  def __call__(self, x: jax.Array, *, context: jax.Array | None = None, causal: bool = False,
               rope: RopeFn | None = None, bias: jax.Array | None = None,
               grid: tuple[int, int] | None = None, return_probs: bool = False
               ) -> tuple[jax.Array, jax.Array | None]:
    b, t, _ = x.shape
    kv = x if context is None else context

    def heads(y):  # [B, T, H*hd] -> [B, H, T, hd]
      return y.reshape(b, y.shape[1], self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

    q, k, v = heads(self.q_proj(x)), heads(self.k_proj(kv)), heads(self.v_proj(kv))
    if rope is not None:
      q, k = rope(q, k)
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, k, precision=PRECISION) * self.scale
    logits = logits.astype(jnp.float32)
    if self.relative_position_bias is not None:
      logits = logits + self.relative_position_bias(grid)
    if bias is not None:
      logits = logits + bias.astype(jnp.float32)
    if causal:
      mask = jnp.tril(jnp.ones((t, k.shape[2]), bool))
      logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    out = jnp.einsum("bhqk,bhkd->bqhd", probs, v, precision=PRECISION)
    out = self.o_proj(out.reshape(b, t, self.num_heads * self.head_dim))
    return out, (probs if return_probs else None)


class EncoderBlock(nnx.Module):
  """Pre-norm transformer block: x + ls1(attn(norm1(x))), then + ls2(mlp(norm2(.))).

  Returns (output, sublayers) where sublayers (only when asked) holds the entries of the output
  contract (repsim_jax.models.outputs): "attn" (attention branch after layer scale, before the
  add), "attn_probs" [B, H, T, T] (windowed attention: see `WindowAttention`), "mid" (residual
  stream after the attention add), "mlp". Keyword arguments other than `sublayers` go to the
  attention (causal, rope, bias, grid: see `MultiHeadAttention`).
  """

  def __init__(self, *, norm1: nnx.Module, attention: MultiHeadAttention, norm2: nnx.Module,
               mlp: nnx.Module, layer_scale1: LayerScale | None = None,
               layer_scale2: LayerScale | None = None):
    self.norm1 = norm1
    self.attention = attention
    self.layer_scale1 = layer_scale1
    self.norm2 = norm2
    self.mlp = mlp
    self.layer_scale2 = layer_scale2

  def __call__(self, x: jax.Array, *, sublayers: bool = False, **attention_kwargs
               ) -> tuple[jax.Array, dict[str, jax.Array]]:
    attn, probs = self.attention(self.norm1(x), return_probs=sublayers, **attention_kwargs)
    if self.layer_scale1 is not None:
      attn = self.layer_scale1(attn)
    mid = x + attn
    mlp = self.mlp(self.norm2(mid))
    if self.layer_scale2 is not None:
      mlp = self.layer_scale2(mlp)
    out = mid + mlp
    subs = {"attn": attn, "attn_probs": probs, "mid": mid, "mlp": mlp} if sublayers else {}
    return out, subs


def run_encoder(layers: Sequence[EncoderBlock], x: jax.Array, *, sublayers: bool = False,
                name: str = "block_{i:02d}", input_name: str | None = "embeddings",
                **attention_kwargs) -> tuple[jax.Array, list[jax.Array], dict[str, jax.Array]]:
  """Runs the blocks in order. Returns (last output, [x, out_0, ..., out_{L-1}], named blocks).

  The named entries are `input_name` (= x; left out when None) and `name.format(i=i)` per
  block ("block_XX" by default; Swin's stages pass "stage{s}.block{i:02d}"), with sublayers
  also ".attn", ".attn_probs", ".mid", ".mlp" (names sort in forward order within a block, as
  jit returns dicts with sorted keys). Other keyword arguments go to every block's attention.
  """
  hidden = [x]
  blocks = {input_name: x} if input_name is not None else {}
  for i, layer in enumerate(layers):
    x, subs = layer(x, sublayers=sublayers, **attention_kwargs)
    block = name.format(i=i)
    blocks[block] = x
    for key, value in subs.items():
      blocks[f"{block}.{key}"] = value
    hidden.append(x)
  return x, hidden, blocks


def shifted_window_mask(height: int, width: int, window: int, shift: int) -> np.ndarray:
  """[num_windows, window^2, window^2] additive mask of shifted-window attention (Swin): 0 between
  tokens of the same region of the cyclically shifted (height, width) grid, -100 otherwise (the
  value transformers and the Swin reference use). Regions per axis: [0, n - window),
  [n - window, n - shift), [n - shift, n)."""
  def regions(n):
    idx = np.arange(n)
    return (idx >= n - window).astype(np.int64) + (idx >= n - shift)
  ids = regions(height)[:, None] * 3 + regions(width)[None, :]
  ids = partition_windows(ids[None, :, :, None], window).reshape(-1, window * window)
  return np.where(ids[:, None, :] != ids[:, :, None], -100.0, 0.0).astype(np.float32)


def partition_windows(x, window: int):
  """[B, H, W, C] -> [B * (H/w) * (W/w), w, w, C], windows in row-major order (numpy or jax)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // window, window, w // window, window, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)


def merge_windows(x, window: int, height: int, width: int):
  """Inverse of `partition_windows`: [B * nW, w, w, C] -> [B, H, W, C]."""
  c = x.shape[-1]
  x = x.reshape(-1, height // window, width // window, window, window, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(-1, height, width, c)


class WindowAttention(MultiHeadAttention):
  """Self-attention within non-overlapping windows of a token grid, optionally cyclically shifted
  (Swin; Liu et al. 2021, "Swin Transformer", arXiv:2103.14030). Same projections as
  `MultiHeadAttention` (and a `RelativePositionBias` over the window).

  x: [B, h*w, D] (row-major grid `grid` = (h, w)) -> (out [B, h*w, D], probs [B*nW, H, w², w²]
  or None; windows in row-major order within each image, as torch's attention weights).
  As transformers' SwinLayer: when min(h, w) <= window the window is the whole grid and there is
  no shift; the grid is zero-padded on the bottom / right to a multiple of the window (padded
  tokens take part as keys, as in torch), rolled by -shift, split into windows, attended with
  the relative position bias plus the shifted-window mask (`shifted_window_mask`), merged, rolled
  back and cropped.
  """

  def __init__(self, dim: int, num_heads: int, *, window_size: int, shift_size: int = 0,
               qkv_bias: bool = True, dtype=jnp.float32, rngs: nnx.Rngs):
    super().__init__(dim, num_heads, qkv_bias=qkv_bias, dtype=dtype, rngs=rngs,
                     relative_position_bias=RelativePositionBias((window_size, window_size),
                                                                 num_heads))
    self.window_size = window_size
    self.shift_size = shift_size

  def __call__(self, x: jax.Array, *, grid: tuple[int, int], return_probs: bool = False
               ) -> tuple[jax.Array, jax.Array | None]:
    b, _, c = x.shape
    h, w = grid
    window, shift = self.window_size, self.shift_size
    if min(h, w) <= window:
      if min(h, w) < window:
        raise ValueError(f"WindowAttention: the {h}x{w} token grid is smaller than the "
                         f"{window}x{window} window; transformers' Swin fails here too (its "
                         f"relative position bias is sized for the window). Use larger images.")
      shift = 0
    pad_h, pad_w = -h % window, -w % window
    y = jnp.pad(x.reshape(b, h, w, c), ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    hp, wp = h + pad_h, w + pad_w
    if shift:
      y = jnp.roll(y, (-shift, -shift), axis=(1, 2))
    windows = partition_windows(y, window).reshape(-1, window * window, c)
    mask = None
    if shift:
      mask = jnp.asarray(shifted_window_mask(hp, wp, window, shift))  # [nW, T, T]
      mask = jnp.broadcast_to(mask[None], (b,) + mask.shape).reshape(-1, 1, *mask.shape[1:])
    out, probs = super().__call__(windows, bias=mask, return_probs=return_probs)
    y = merge_windows(out.reshape(-1, window, window, c), window, hp, wp)
    if shift:
      y = jnp.roll(y, (shift, shift), axis=(1, 2))
    return y[:, :h, :w].reshape(b, h * w, c), probs
