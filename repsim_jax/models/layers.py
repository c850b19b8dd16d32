"""Shared NNX building blocks of the model ports, written once.

Every matmul and convolution runs with precision "highest", so float32 results match the torch
reference to ~1e-6; `dtype` sets the compute dtype (e.g. bfloat16) while parameters stay float32.
Softmax and layer-norm statistics are always computed in float32, as in transformers.

Parameter names follow the transformers modules where that costs nothing (q_proj, fc1, gate_proj,
...), so the converters in the family modules stay short.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

PRECISION = jax.lax.Precision.HIGHEST

# q, k: [B, H, T, hd] -> rotated (q, k). Models pass one to apply rotary position embeddings.
RopeFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def _gelu_exact(x):
  return jax.nn.gelu(x, approximate=False)


def _gelu_tanh(x):
  return jax.nn.gelu(x, approximate=True)


def _quick_gelu(x):
  return x * jax.nn.sigmoid(1.702 * x)


# transformers ACT2FN names -> jax functions (same formulas as transformers.activations).
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": _gelu_exact,
    "gelu_python": _gelu_exact,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_tanh,
    "quick_gelu": _quick_gelu,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """The jax function for a transformers activation name (`config.hidden_act`)."""
  if name not in ACTIVATIONS:
    raise ValueError(f"unsupported activation {name!r}; supported: {', '.join(sorted(ACTIVATIONS))}")
  return ACTIVATIONS[name]


def linear(in_features: int, out_features: int, *, use_bias: bool = True, dtype=jnp.float32,
           rngs: nnx.Rngs) -> nnx.Linear:
  """nnx.Linear with float32 parameters, compute in `dtype`, precision "highest"."""
  return nnx.Linear(in_features, out_features, use_bias=use_bias, dtype=dtype,
                    param_dtype=jnp.float32, precision=PRECISION, rngs=rngs)


def layer_norm(dim: int, *, eps: float, use_bias: bool = True, dtype=jnp.float32,
               rngs: nnx.Rngs) -> nnx.LayerNorm:
  """torch.nn.LayerNorm: biased variance E[(x - mean)^2] (not the fast E[x^2] - mean^2)."""
  return nnx.LayerNorm(dim, epsilon=eps, use_bias=use_bias, use_fast_variance=False, dtype=dtype,
                       param_dtype=jnp.float32, rngs=rngs)


class MultiHeadAttention(nnx.Module):
  """Multi-head self-attention with separate q/k/v/o projections (as transformers' eager path).

  x: [B, T, D] -> (out [B, T, D], probs [B, H, T, T] or None).
  probs = softmax(q k^T * scale + mask) computed in float32; out = o_proj(concat_h(probs v)).
  """

  def __init__(self, dim: int, num_heads: int, *, head_dim: int | None = None,
               qkv_bias: bool | tuple[bool, bool, bool] = True, out_bias: bool = True,
               scale: float | None = None, dtype=jnp.float32, rngs: nnx.Rngs):
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

  def __call__(self, x: jax.Array, *, causal: bool = False, rope: RopeFn | None = None,
               return_probs: bool = False) -> tuple[jax.Array, jax.Array | None]:
    b, t, _ = x.shape

    def heads(y):  # [B, T, H*hd] -> [B, H, T, hd]
      return y.reshape(b, t, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

    q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
    if rope is not None:
      q, k = rope(q, k)
    logits = jnp.einsum("bhqd,bhkd->bhqk", q, k, precision=PRECISION) * self.scale
    logits = logits.astype(jnp.float32)
    if causal:
      mask = jnp.tril(jnp.ones((t, t), bool))
      logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    out = jnp.einsum("bhqk,bhkd->bqhd", probs, v, precision=PRECISION)
    out = self.o_proj(out.reshape(b, t, self.num_heads * self.head_dim))
    return out, (probs if return_probs else None)


class MLP(nnx.Module):
  """fc2(act(fc1(x))): the standard transformer MLP. x: [..., D] -> [..., out_dim or D]."""

  def __init__(self, dim: int, hidden: int, *, act: str = "gelu", out_dim: int | None = None,
               use_bias: bool = True, dtype=jnp.float32, rngs: nnx.Rngs):
    self.act = activation(act)
    self.fc1 = linear(dim, hidden, use_bias=use_bias, dtype=dtype, rngs=rngs)
    self.fc2 = linear(hidden, out_dim or dim, use_bias=use_bias, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fc2(self.act(self.fc1(x)))


class GatedMLP(nnx.Module):
  """down_proj(act(gate_proj(x)) * up_proj(x)): SwiGLU when act="silu" (Shazeer 2020)."""

  def __init__(self, dim: int, hidden: int, *, act: str = "silu", use_bias: bool = True,
               dtype=jnp.float32, rngs: nnx.Rngs):
    self.act = activation(act)
    self.gate_proj = linear(dim, hidden, use_bias=use_bias, dtype=dtype, rngs=rngs)
    self.up_proj = linear(dim, hidden, use_bias=use_bias, dtype=dtype, rngs=rngs)
    self.down_proj = linear(hidden, dim, use_bias=use_bias, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class LayerScale(nnx.Module):
  """x * lambda1 per channel (Touvron et al. 2021, CaiT)."""

  def __init__(self, dim: int, *, init: float = 1.0):
    self.lambda1 = nnx.Param(jnp.full((dim,), init, jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    return x * self.lambda1[...].astype(x.dtype)


class PatchEmbedding(nnx.Module):
  """Non-overlapping p x p patches -> D channels (a stride-p convolution, as nn.Conv2d).

  pixel_values: [B, H, W, C] -> ([B, (H//p)*(W//p), D] in row-major patch order, (H//p, W//p)).
  Trailing pixels that do not fill a patch are dropped, as torch does.
  """

  def __init__(self, in_channels: int, dim: int, patch_size: int | Sequence[int], *,
               dtype=jnp.float32, rngs: nnx.Rngs):
    self.patch_size = pair(patch_size, "patch_size")
    self.in_channels = in_channels
    self.projection = nnx.Conv(in_channels, dim, kernel_size=self.patch_size, strides=self.patch_size,
                               padding="VALID", dtype=dtype, param_dtype=jnp.float32,
                               precision=PRECISION, rngs=rngs)

  def __call__(self, pixel_values: jax.Array) -> tuple[jax.Array, tuple[int, int]]:
    _, height, width, _ = pixel_values.shape
    if height < self.patch_size[0] or width < self.patch_size[1]:
      raise ValueError(f"image size {height}x{width} is smaller than one "
                       f"{self.patch_size[0]}x{self.patch_size[1]} patch")
    y = self.projection(pixel_values)
    b, h, w, d = y.shape
    return y.reshape(b, h * w, d), (h, w)


class EncoderBlock(nnx.Module):
  """Pre-norm transformer block: x + ls1(attn(norm1(x))), then + ls2(mlp(norm2(.))).

  Returns (output, sublayers) where sublayers (only when asked) holds the entries of the output
  contract (repsim_jax.models.outputs): "attn" (attention branch after layer scale, before the
  add), "attn_probs" [B, H, T, T], "mid" (residual stream after the attention add), "mlp".
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

  def __call__(self, x: jax.Array, *, sublayers: bool = False, causal: bool = False,
               rope: RopeFn | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
    attn, probs = self.attention(self.norm1(x), causal=causal, rope=rope, return_probs=sublayers)
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
                causal: bool = False, rope: RopeFn | None = None,
                ) -> tuple[jax.Array, list[jax.Array], dict[str, jax.Array]]:
  """Runs the blocks in order. Returns (last output, [x, out_0, ..., out_{L-1}], named blocks).

  The named entries are "embeddings" (= x), "block_XX" and with sublayers "block_XX.attn",
  ".attn_probs", ".mid", ".mlp" (names sort in forward order within a block, as jit returns
  dicts with sorted keys).
  """
  hidden = [x]
  blocks = {"embeddings": x}
  for i, layer in enumerate(layers):
    x, subs = layer(x, sublayers=sublayers, causal=causal, rope=rope)
    name = f"block_{i:02d}"
    blocks[name] = x
    for key, value in subs.items():
      blocks[f"{name}.{key}"] = value
    hidden.append(x)
  return x, hidden, blocks


def rotate_half(x: jax.Array) -> jax.Array:
  """[..., d] -> concat(-x[..., d/2:], x[..., :d/2]) (the rotary-embedding helper of transformers)."""
  x1, x2 = jnp.split(x, 2, axis=-1)
  return jnp.concatenate([-x2, x1], axis=-1)


def apply_rotary(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """x * cos + rotate_half(x) * sin: rotary position embedding (Su et al. 2021, RoFormer);
  cos, sin broadcast against x: [..., T, head_dim]."""
  return x * cos.astype(x.dtype) + rotate_half(x) * sin.astype(x.dtype)


def check_pixel_values(pixel_values: jax.Array, *, num_channels: int, model: str) -> None:
  """Clear errors for wrong rank, channel count or dtype of NHWC float images."""
  shape = tuple(pixel_values.shape)
  if len(shape) != 4:
    raise ValueError(f"{model}: pixel_values must be NHWC [batch, height, width, {num_channels}], "
                     f"got shape {shape}")
  if shape[-1] != num_channels:
    hint = " (looks like NCHW; transpose to NHWC)" if shape[1] == num_channels else ""
    raise ValueError(f"{model}: pixel_values must have {num_channels} channels in the last axis "
                     f"(NHWC), got shape {shape}{hint}")
  if not jnp.issubdtype(pixel_values.dtype, jnp.floating):
    raise TypeError(f"{model}: pixel_values must be floating point (preprocessed, normalised "
                    f"images), got dtype {pixel_values.dtype}")


def bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] weights of torch's bicubic resize along one axis (float32).

  torch.nn.functional.interpolate(mode="bicubic", align_corners=False, antialias=False) with an
  explicit `size`: source coordinate s = (i + 0.5) * in/out - 0.5, Keys cubic kernel with
  A = -0.75 on the 4 neighbours floor(s)-1 .. floor(s)+2, indices clamped to the border.
  Reference: aten/src/ATen/native/UpSample.h (upsample_bicubic2d).
  """
  a = -0.75
  scale = np.float32(in_size / out_size)
  w = np.zeros((out_size, in_size), np.float64)
  for i in range(out_size):
    src = np.float32(scale * np.float32(i + 0.5) - np.float32(0.5))
    idx = int(np.floor(src))
    t = np.float32(src - idx)
    x1, x2 = t + 1.0, 1.0 - t
    coeffs = (((a * x1 - 5 * a) * x1 + 8 * a) * x1 - 4 * a,
              ((a + 2) * t - (a + 3)) * t * t + 1,
              ((a + 2) * x2 - (a + 3)) * x2 * x2 + 1,
              ((a * (x2 + 1) - 5 * a) * (x2 + 1) + 8 * a) * (x2 + 1) - 4 * a)
    for k, c in enumerate(coeffs):
      w[i, min(max(idx - 1 + k, 0), in_size - 1)] += c
  return w.astype(np.float32)


def resize_bicubic(grid: jax.Array, out_hw: tuple[int, int]) -> jax.Array:
  """grid: [h, w, D] -> [out_h, out_w, D] exactly as torch bicubic (align_corners=False)."""
  h, w, _ = grid.shape
  wh = jnp.asarray(bicubic_matrix(h, out_hw[0]))
  ww = jnp.asarray(bicubic_matrix(w, out_hw[1]))
  grid = jnp.einsum("ih,hwd->iwd", wh, grid.astype(jnp.float32), precision=PRECISION)
  return jnp.einsum("jw,iwd->ijd", ww, grid, precision=PRECISION)


def pair(value: int | Sequence[int], name: str = "value") -> tuple[int, int]:
  """(h, w) from one positive int or a pair of them (image, patch, grid and window sizes); the
  error names the argument."""
  if isinstance(value, (int, np.integer)):
    value = (int(value), int(value))
  value = tuple(int(v) for v in value)
  if len(value) != 2 or min(value) < 1:
    raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {value}")
  return value
