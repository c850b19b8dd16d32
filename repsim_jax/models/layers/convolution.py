"""One convolution (torch's conv2d on NHWC) with two lowerings, chosen per platform, and the conv
modules of the ports.

  "xla": XLA's convolution op (lax.conv_general_dilated); GPU and TPU run it well.
  "cpu": what XLA:CPU runs fast, in pure JAX. A depthwise convolution is one multiply-add per
         kernel tap (shifted input x tap weight, accumulated in float32), since XLA:CPU's grouped
         convolution is far slower than that at ConvNeXt's 7x7; a 1x1 or a non-overlapping patch
         convolution is one matmul; every other dense convolution (3x3, a 7x7 stem) stays XLA's
         op.
`conv2d(..., lowering=None)` (the default) picks "cpu" when lowered for the CPU and "xla"
elsewhere (`conv_lowering(platform)` says which; stores record it). Both compute the same sums in
float32 in a different order: results agree to float32 rounding. Speed against torch:
benchmarks/bench_models.py.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from repsim_jax import resources
from repsim_jax.models.layers.core import PRECISION
from repsim_jax.shapes import pair

CONV_LOWERINGS = ("xla", "cpu")


def conv_lowering(platform: str) -> str:
  """The lowering `conv2d(..., lowering=None)` uses when compiled for `platform` ("cpu", "gpu",
  "tpu", ...): "cpu" on the CPU, "xla" elsewhere."""
  return "cpu" if platform == "cpu" else "xla"


def compiler_options(platform: str) -> dict[str, Any]:
  """XLA options the model forwards compile with on `platform` ("cpu", "gpu", "tpu").

  On a CPU with AVX-512: 512-bit vectors. XLA:CPU emits 256-bit code by default (LLVM's choice,
  made for Intel parts that lower their clock under wide vectors); the element-wise loops (the
  depthwise taps) are what changes (bench_models.py prints the options it ran with). Vector
  width changes the order of float32 sums, not their terms: outputs stay within the parity
  tolerances (tests/models/layers/test_convolution.py). Other platforms: none.
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
  lowering: one of CONV_LOWERINGS, or None: picked per platform when lowered (`conv_lowering`;
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
  if lowering is None:  # the platform of the compilation, not of the host
    return jax.lax.platform_dependent(
        x, kernel, cpu=lambda x, k: _conv2d_cpu(x, k, **args),
        default=lambda x, k: _conv2d_xla(x, k, **args))
  if lowering == "xla":
    return _conv2d_xla(x, kernel, **args)
  return _conv2d_cpu(x, kernel, **args)


def _conv2d_xla(x, kernel, *, stride, pads, dilation, groups):
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=stride, padding=pads, rhs_dilation=dilation,
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups, precision=PRECISION)


def _conv2d_cpu(x, kernel, *, stride, pads, dilation, groups):
  kh, kw, cin_per_group, cout = kernel.shape
  cin = x.shape[-1]
  if groups == cin and cin_per_group == 1 and cout == cin:
    return _depthwise_taps(x, kernel, stride=stride, pads=pads, dilation=dilation)
  if groups == 1 and (kh, kw) == (1, 1):
    x = _pad_hw(x, pads)[:, ::stride[0], ::stride[1], :]
    return _matmul(x, kernel.reshape(cin, cout))
  if groups == 1 and stride == (kh, kw) and dilation == (1, 1) and pads == ((0, 0), (0, 0)):
    b, h, w, _ = x.shape
    ho, wo = h // kh, w // kw  # trailing rows/columns that fill no patch are dropped, as torch
    patches = x[:, :ho * kh, :wo * kw].reshape(b, ho, kh, wo, kw, cin).transpose(0, 1, 3, 2, 4, 5)
    return _matmul(patches.reshape(b, ho, wo, kh * kw * cin), kernel.reshape(kh * kw * cin, cout))
  return _conv2d_xla(x, kernel, stride=stride, pads=pads, dilation=dilation, groups=groups)


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
