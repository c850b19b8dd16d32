"""Shared NNX building blocks of the model ports, written once.

Every matmul and convolution runs with precision "highest", so float32 results match the torch
reference to ~1e-6; `dtype` sets the compute dtype (e.g. bfloat16) while parameters stay float32.
Softmax and layer-norm statistics are always computed in float32, as in transformers.

Parameter names follow the transformers modules where that costs nothing (q_proj, fc1, gate_proj,
...), so the converters in the family modules stay short.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.custom_derivatives import SymbolicZero

from repsim_jax import resources
from repsim_jax.models import native as native_kernels

PRECISION = jax.lax.Precision.HIGHEST

# q, k: [B, H, T, hd] -> rotated (q, k). Models pass one to apply rotary position embeddings.
RopeFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def _gelu_exact(x):
  """x/2 (1 + erf(x / sqrt 2)): torch's exact GELU, in torch's own form.

  jax.nn.gelu(approximate=False) writes the same function with erfc(-x / sqrt 2), which XLA:CPU
  evaluates with an exp, two divisions and four selects per element; erf is a short polynomial.
  """
  return x * (0.5 * (1.0 + jax.lax.erf(x * np.sqrt(0.5).astype(x.dtype))))


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


# --- convolutions ------------------------------------------------------------------------------
#
# One convolution, three lowerings, chosen when the code is lowered for a platform:
#   "xla": XLA's convolution op (lax.conv_general_dilated); GPU and TPU run it well.
#   "cpu": what XLA:CPU runs fast. A depthwise convolution is one multiply-add per kernel tap
#          (shifted input x tap weight, accumulated in float32), since XLA:CPU's grouped convolution
#          is ~10x slower than that at ConvNeXt's 7x7; a 1x1 or a non-overlapping patch convolution
#          is one matmul, which XLA:CPU runs ~1.5-3x faster than its convolution op; every other
#          dense convolution (3x3, the BiT stem) stays XLA's op, which is as fast there.
#   "native": "cpu", with two float32 cases in our C++ kernels (models/native, built on first
#          use; where they cannot be built, exactly "cpu"): stride-1 depthwise convolutions
#          (3-4x faster than the taps) and dense ones where that is faster than XLA's op
#          (`_native_dense_wins`: BiT's stem and 3x3s).
# None (the default) is "native" when lowered for CPU with JAX's default backend the CPU (the
# kernel is built only there), "cpu" when lowered for CPU otherwise, and "xla" elsewhere.
# All compute the same sums in float32 (different order): results agree to float32 rounding.
# Measured in benchmarks/bench_models.py.
CONV_LOWERINGS = ("xla", "cpu", "native")


def compiler_options(platform: str) -> dict[str, Any]:
  """XLA options the model forwards compile with on `platform` ("cpu", "gpu", "tpu").

  On a CPU with AVX-512: 512-bit vectors. XLA:CPU emits 256-bit code by default (LLVM's choice,
  made for Intel parts that lower their clock under wide vectors). Matmuls and convolutions go to
  libraries either way; the element-wise loops are what changes. On the AMD EPYC (AVX-512) dev
  machine the depthwise 7x7 taps ran ~2x faster and ConvNeXt-B's forward ~6% faster
  (benchmarks/bench_models.py). Vector width changes the order of float32 sums, not their
  terms: outputs stay within the parity tolerances (tests/models/test_layers.py).
  Other platforms: none.
  """
  if platform == "cpu" and "avx512f" in resources.host_cpu_flags():
    return {"xla_cpu_prefer_vector_width": 512}
  return {}


Padding = int | Sequence[tuple[int, int]]


def conv2d(x: jax.Array, kernel: jax.Array, *, stride: int | Sequence[int] = 1,
           padding: Padding = 0, dilation: int | Sequence[int] = 1, groups: int = 1,
           lowering: str | None = None) -> jax.Array:
  """torch.nn.functional.conv2d (cross-correlation, no bias) on NHWC, precision "highest".

  x: [B, H, W, Cin], kernel: [kh, kw, Cin/groups, Cout] (HWIO) -> [B, H', W', Cout] with
  H' = (H + top + bottom - dilation * (kh - 1) - 1) // stride + 1 (likewise W').
  padding: zeros on both sides of both axes (an int) or ((top, bottom), (left, right)).
  lowering: one of CONV_LOWERINGS, or None: picked per platform when lowered (see CONV_LOWERINGS;
    lax.platform_dependent: the platform of the compilation, not of the host).
  """
  stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
  pads = ((padding, padding),) * 2 if isinstance(padding, int) else tuple(
      (int(lo), int(hi)) for lo, hi in padding)
  if len(pads) != 2:
    raise ValueError(f"conv2d: padding must be an int or ((top, bottom), (left, right)), got "
                     f"{padding!r}")
  if kernel.shape[2] * groups != x.shape[-1]:
    raise ValueError(f"conv2d: kernel {tuple(kernel.shape)} with groups={groups} expects "
                     f"{kernel.shape[2] * groups} input channels, x has shape {tuple(x.shape)}")
  if lowering not in (None, *CONV_LOWERINGS):
    raise ValueError(f"conv2d: lowering {lowering!r}; expected None or one of {CONV_LOWERINGS}")
  args = dict(stride=stride, pads=pads, dilation=dilation, groups=groups)
  if lowering is None:
    cpu_native = jax.default_backend() == "cpu"
    return jax.lax.platform_dependent(
        x, kernel, cpu=lambda x, k: _conv2d_cpu(x, k, native=cpu_native, **args),
        default=lambda x, k: _conv2d_xla(x, k, **args))
  if lowering == "xla":
    return _conv2d_xla(x, kernel, **args)
  return _conv2d_cpu(x, kernel, native=lowering == "native", **args)


def _conv2d_xla(x, kernel, *, stride, pads, dilation, groups):
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=stride, padding=pads, rhs_dilation=dilation,
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups, precision=PRECISION)


def _conv2d_cpu(x, kernel, *, stride, pads, dilation, groups, native):
  kh, kw, cin_per_group, cout = kernel.shape
  cin = x.shape[-1]
  # what both native kernels take: float32, unit dilation, no negative padding
  native = (native and x.dtype == kernel.dtype == jnp.float32 and dilation == (1, 1)
            and min(p for side in pads for p in side) >= 0)
  if groups == cin and cin_per_group == 1 and cout == cin:
    if native and stride == (1, 1) and native_kernels.status().available:
      return _depthwise_native(x, kernel[:, :, 0, :], pads)
    return _depthwise_taps(x, kernel, stride=stride, pads=pads, dilation=dilation)
  if groups == 1 and (kh, kw) == (1, 1):
    x = _pad_hw(x, pads)[:, ::stride[0], ::stride[1], :]
    return _matmul(x, kernel.reshape(cin, cout))
  if groups == 1 and stride == (kh, kw) and dilation == (1, 1) and pads == ((0, 0), (0, 0)):
    b, h, w, _ = x.shape
    ho, wo = h // kh, w // kw  # trailing rows/columns that fill no patch are dropped, as torch
    patches = x[:, :ho * kh, :wo * kw].reshape(b, ho, kh, wo, kw, cin).transpose(0, 1, 3, 2, 4, 5)
    return _matmul(patches.reshape(b, ho, wo, kh * kw * cin), kernel.reshape(kh * kw * cin, cout))
  if native and groups == 1 and stride[0] == stride[1] and _native_dense_wins(cin, cout):
    return _dense_native(_pad_hw(x, pads), kernel, stride[0])
  return _conv2d_xla(x, kernel, stride=stride, pads=pads, dilation=dilation, groups=groups)


def _native_dense_wins(cin: int, cout: int) -> bool:
  """Where the native dense kernel beats XLA:CPU's convolution op (1x1 and patch convolutions are
  matmuls before this). Measured at BiT-R50x1's shapes, batch 8, on the AMD EPYC dev machine:
  built for AVX-512 (14-pixel tile) it is 5-45% faster at all of them (stem 20.6 -> 11.4 ms,
  64-channel 3x3 18.8 -> 10.2, 512-channel 3x3 11.6 -> 9.7); built for AVX2 (6-pixel tile; same
  machine) only up to 64 input channels (stem 21.0 -> 14.7 ms) and up to 2x slower above."""
  st = native_kernels.status()
  return (st.available and cout % st.dense_channel_multiple == 0
          and (cin <= 64 or st.dense_tile_pixels >= 14))


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _dense_native(x, kernel, stride):
  """native_kernels.dense_conv2d of a padded x; tangents through XLA's op (bilinear, as
  `_depthwise_native`)."""
  return native_kernels.dense_conv2d(x, kernel, stride)


def _dense_native_jvp(stride, primals, tangents):
  conv = functools.partial(_conv2d_xla, stride=(stride, stride), pads=((0, 0), (0, 0)),
                           dilation=(1, 1), groups=1)
  y = _dense_native(*primals, stride)
  return y, _bilinear_tangent(conv, y, primals, tangents)


_dense_native.defjvp(_dense_native_jvp, symbolic_zeros=True)


def _bilinear_tangent(conv, y, primals, tangents):
  """The tangent of y = conv(x, k), bilinear: conv(dx, k) + conv(x, dk), leaving out a term whose
  tangent is a symbolic zero (an input gradient, as for effective receptive fields, computes no
  kernel term)."""
  (x, kernel), (dx, dkernel) = primals, tangents
  terms = []
  if not isinstance(dx, SymbolicZero):
    terms.append(conv(dx, kernel))
  if not isinstance(dkernel, SymbolicZero):
    terms.append(conv(x, dkernel))
  return functools.reduce(jnp.add, terms) if terms else jnp.zeros_like(y)


def _depthwise_taps(x, kernel, *, stride, pads, dilation):
  """sum over taps (i, j) of x_padded[i*d + s*h', j*d + s*w', c] * kernel[i, j, 0, c], in float32.

  Written as two channel halves joined along the channel (minor) axis: XLA:CPU never fuses such a
  concatenation into its users, so the sum is computed once and written out. A single sum would
  be fused into each of its users instead (layer norm's mean, variance and scaling: 3x the taps).
  """
  c = x.shape[-1]
  if c < 2:
    return _depthwise_taps_sum(x, kernel, stride=stride, pads=pads, dilation=dilation)
  half = c // 2
  return jnp.concatenate([
      _depthwise_taps_sum(x[..., :half], kernel[..., :half], stride=stride, pads=pads,
                          dilation=dilation),
      _depthwise_taps_sum(x[..., half:], kernel[..., half:], stride=stride, pads=pads,
                          dilation=dilation)], axis=-1)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _depthwise_native(x, kernel, pads):
  """native_kernels.depthwise_conv2d (kernel [kh, kw, C]), differentiable: the convolution is
  bilinear in (x, kernel), so its tangent is the taps applied to (dx, kernel) and (x, dkernel),
  which jax also transposes for reverse mode."""
  return native_kernels.depthwise_conv2d(x, kernel, pads)


def _depthwise_native_jvp(pads, primals, tangents):
  taps = lambda x, k: _depthwise_taps(x, k[:, :, None], stride=(1, 1), pads=pads,
                                      dilation=(1, 1))
  y = _depthwise_native(*primals, pads)
  return y, _bilinear_tangent(taps, y, primals, tangents)


_depthwise_native.defjvp(_depthwise_native_jvp, symbolic_zeros=True)


def _depthwise_taps_sum(x, kernel, *, stride, pads, dilation):
  kh, kw = kernel.shape[:2]
  channels = x.shape[-1]
  acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
  # The kh*kw taps read pixels one channel row apart. When that row is a multiple of 1 KiB, their
  # addresses share the low bits and evict each other from the L1 cache (30-60% of the taps' time
  # at 1024 channels); 16 more channels in the padded copy (not read) break the pattern.
  extra = 16 if channels * jnp.dtype(acc_dtype).itemsize % 1024 == 0 else 0
  xp = jnp.pad(x.astype(acc_dtype), ((0, 0), *pads, (0, extra)))
  k = kernel.astype(acc_dtype)
  ho = (xp.shape[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
  wo = (xp.shape[2] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
  out = None
  for i in range(kh):
    for j in range(kw):
      r, c = i * dilation[0], j * dilation[1]
      tap = xp[:, r:r + stride[0] * (ho - 1) + 1:stride[0], c:c + stride[1] * (wo - 1) + 1:stride[1],
               :channels]
      tap = tap * k[i, j, 0]
      out = tap if out is None else out + tap
  return out.astype(x.dtype)


def _pad_hw(x, pads):
  if pads == ((0, 0), (0, 0)):
    return x
  return jnp.pad(x, ((0, 0), *pads, (0, 0)))


def _matmul(x, w):
  """[..., K] @ [K, N] at precision "highest"."""
  return jax.lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())), precision=PRECISION)


class Conv2d(nnx.Module):
  """nn.Conv2d on NHWC through `conv2d` (lowered per backend, see CONV_LOWERINGS).

  Parameters as nnx.Conv (kernel [kh, kw, in/groups, out], bias [out]; float32), so converted
  torch weights (`StateDict.conv2d`) load unchanged; computes in `dtype`.
  x: [B, H, W, in] -> [B, H', W', out].
  """

  def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int], *,
               stride: int | Sequence[int] = 1, padding: Padding = 0,
               dilation: int | Sequence[int] = 1, groups: int = 1, use_bias: bool = True,
               dtype=jnp.float32, lowering: str | None = None, rngs: nnx.Rngs):
    if in_channels % groups or out_channels % groups:
      raise ValueError(f"Conv2d: {in_channels} -> {out_channels} channels do not split into "
                       f"{groups} groups")
    kh, kw = pair(kernel_size, "kernel_size")
    # Initialised as nnx.Conv, drawing the same keys, so randomly initialised models are unchanged.
    self.kernel = nnx.Param(nnx.initializers.lecun_normal()(
        rngs.params(), (kh, kw, in_channels // groups, out_channels), jnp.float32))
    self.bias = (nnx.Param(nnx.initializers.zeros_init()(rngs.params(), (out_channels,),
                                                          jnp.float32)) if use_bias else None)
    self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
    self.dtype, self.lowering = dtype, lowering

  def __call__(self, x: jax.Array) -> jax.Array:
    y = conv2d(x.astype(self.dtype), self.kernel[...].astype(self.dtype), stride=self.stride,
               padding=self.padding, dilation=self.dilation, groups=self.groups,
               lowering=self.lowering)
    return y if self.bias is None else y + self.bias[...].astype(self.dtype)


class PatchEmbedding(nnx.Module):
  """Non-overlapping p x p patches -> D channels (a stride-p convolution, as nn.Conv2d).

  pixel_values: [B, H, W, C] -> ([B, (H//p)*(W//p), D] in row-major patch order, (H//p, W//p)).
  Trailing pixels that do not fill a patch are dropped, as torch does; with pad_partial=True
  (Swin) the image is instead zero-padded on the bottom / right to a multiple of p first.
  use_bias=False for CLIP's bias-free patch convolution.
  """

  def __init__(self, in_channels: int, dim: int, patch_size: int | Sequence[int], *,
               use_bias: bool = True, pad_partial: bool = False, dtype=jnp.float32,
               conv_lowering: str | None = None, rngs: nnx.Rngs):
    self.patch_size = pair(patch_size, "patch_size")
    self.in_channels = in_channels
    self.pad_partial = pad_partial
    self.projection = Conv2d(in_channels, dim, self.patch_size, stride=self.patch_size,
                             use_bias=use_bias, dtype=dtype, lowering=conv_lowering, rngs=rngs)

  def __call__(self, pixel_values: jax.Array) -> tuple[jax.Array, tuple[int, int]]:
    _, height, width, _ = pixel_values.shape
    ph, pw = self.patch_size
    if self.pad_partial:
      pixel_values = jnp.pad(pixel_values, ((0, 0), (0, -height % ph), (0, -width % pw), (0, 0)))
    elif height < ph or width < pw:
      raise ValueError(f"image size {height}x{width} is smaller than one {ph}x{pw} patch")
    y = self.projection(pixel_values)
    b, h, w, d = y.shape
    return y.reshape(b, h * w, d), (h, w)


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


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] weights of torch's bilinear resize along one axis (float32).

  torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False) with an
  explicit `size`: s = max((i + 0.5) * in/out - 0.5, 0), neighbours floor(s) and floor(s) + 1
  (clamped to the border) with weights 1 - (s - floor(s)) and s - floor(s), in float32.
  Reference: aten/src/ATen/native/UpSample.h (area_pixel_compute_source_index).
  """
  scale = np.float32(in_size / out_size)
  w = np.zeros((out_size, in_size), np.float64)
  for i in range(out_size):
    src = max(np.float32(scale * np.float32(i + 0.5) - np.float32(0.5)), np.float32(0))
    idx = int(src)
    lam = np.float32(src - idx)
    w[i, idx] += np.float32(1) - lam
    w[i, min(idx + 1, in_size - 1)] += lam
  return w.astype(np.float32)


def _aa_bilinear(x: float) -> float:
  x = abs(x)
  return 1.0 - x if x < 1.0 else 0.0


def _aa_bicubic(x: float) -> float:  # Keys cubic with a = -0.5 (PIL's), as torch's antialias path
  a, x = -0.5, abs(x)
  if x < 1.0:
    return ((a + 2) * x - (a + 3)) * x * x + 1
  if x < 2.0:
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  return 0.0


def antialias_matrix(in_size: int, out_size: int, mode: str) -> np.ndarray:
  """[out_size, in_size] weights of torch's antialiased resize along one axis (float32).

  torch.nn.functional.interpolate(mode=mode, align_corners=False, antialias=True), mode
  "bilinear" or "bicubic" (the same separable filter as PIL's resize): scale = in/out, support =
  (1 or 2) * max(scale, 1), centre c = scale * (i + 0.5); input j in [int(c - support + 0.5),
  int(c + support + 0.5)) clipped to the image gets filter((j - c + 0.5) / max(scale, 1)),
  normalised to sum to 1 (no border clamping; the window is cut at the edges).
  Reference: aten/src/ATen/native/cpu/UpSampleKernel.cpp (_compute_indices_min_size_weights_aa).
  """
  filters = {"bilinear": (_aa_bilinear, 1.0), "bicubic": (_aa_bicubic, 2.0)}
  if mode not in filters:
    raise ValueError(f"antialias_matrix: mode must be one of {sorted(filters)}, got {mode!r}")
  filt, half = filters[mode]
  scale = in_size / out_size
  support = half * scale if scale >= 1.0 else half
  invscale = 1.0 / scale if scale >= 1.0 else 1.0
  w = np.zeros((out_size, in_size), np.float64)
  for i in range(out_size):
    center = scale * (i + 0.5)
    lo = max(int(center - support + 0.5), 0)
    hi = min(int(center + support + 0.5), in_size)
    weights = np.array([filt((j - center + 0.5) * invscale) for j in range(lo, hi)])
    total = weights.sum()
    w[i, lo:hi] = weights / total if total != 0.0 else weights
  return w.astype(np.float32)


def resize_separable(grid: jax.Array, rows: np.ndarray, cols: np.ndarray) -> jax.Array:
  """grid: [h, w, D] -> [out_h, out_w, D] = rows [out_h, h] . grid . cols^T [w, out_w], in float32
  (a separable resize; the weight matrices come from bicubic_matrix, bilinear_matrix or
  antialias_matrix)."""
  grid = jnp.einsum("ih,hwd->iwd", jnp.asarray(rows), grid.astype(jnp.float32),
                    precision=PRECISION)
  return jnp.einsum("jw,iwd->ijd", jnp.asarray(cols), grid, precision=PRECISION)


def resize_bicubic(grid: jax.Array, out_hw: tuple[int, int], *, antialias: bool = False
                   ) -> jax.Array:
  """grid: [h, w, D] -> [out_h, out_w, D] exactly as torch bicubic (align_corners=False), with
  antialias=True as torch's antialiased bicubic (DINOv2 with registers)."""
  h, w, _ = grid.shape
  if antialias:
    return resize_separable(grid, antialias_matrix(h, out_hw[0], "bicubic"),
                            antialias_matrix(w, out_hw[1], "bicubic"))
  return resize_separable(grid, bicubic_matrix(h, out_hw[0]), bicubic_matrix(w, out_hw[1]))


def pair(value: int | Sequence[int], name: str = "value") -> tuple[int, int]:
  """(h, w) from one positive int or a pair of them (image, patch, grid and window sizes); the
  error names the argument."""
  if isinstance(value, (int, np.integer)):
    value = (int(value), int(value))
  value = tuple(int(v) for v in value)
  if len(value) != 2 or min(value) < 1:
    raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {value}")
  return value
