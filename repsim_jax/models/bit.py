"""BiT ResNet (ResNet v2 with weight standardisation and GroupNorm), ported from transformers'
`BitModel` (torch).

Both layer types of HF are covered: "preactivation" (BiT: GN+ReLU before each conv, unit output
= branch + shortcut, a final GN+ReLU) and "bottleneck" (ViT-hybrid backbone: conv-GN-ReLU, unit
output = ReLU(branch + shortcut)). Every convolution is weight-standardised per output channel
(biased variance, eps 1e-8, as HF; `convert` stores the kernels standardised, so a converted
checkpoint skips what torch recomputes in every forward, see `build_options`) and padded like
HF: `global_padding=None` pads ((stride-1) + dilation*(k-1)) // 2 on both sides; "SAME" pads
statically when that is exact and otherwise dynamically as TensorFlow (extra pixel at the
bottom/right), computed from the input size; "VALID" does not pad. The stem max-pool pads
dynamically with zeros (not -inf) when `embedding_dynamic_padding`, else the stem output is
zero-padded by one pixel when `global_padding` is not "SAME", as HF does.

`hidden_states` = torch's `output_hidden_states=True` in NHWC: (stem output, stage 0..3 outputs),
before the final norm. `last_hidden_state` is after the final norm (preactivation) and
`pooler_output` is its spatial mean, [B, 1, 1, C] as torch's AdaptiveAvgPool2d output in NHWC.
`blocks`: "stem", "stageS.blockBB" for every residual unit, and with `sublayers=True`
"stageS.blockBB.branch", the residual branch before the add.

Raghu et al.'s baselines as HF configs: `RAGHU_CONFIGS["resnet50x1"]`, `["resnet152x2"]`
(HF's BitModel cannot run `width_factor` != 1 with the default hidden sizes, because its final
norm is built for `hidden_sizes[-1]`; a x2 model is therefore written with doubled hidden sizes
and stem width, which is what BiT's x2 means).

References:
  Kolesnikov et al. 2020, "Big Transfer (BiT): General Visual Representation Learning".
  Qiao et al. 2019, "Micro-Batch Training with Batch-Channel Normalization and Weight
  Standardization". He et al. 2016, "Identity Mappings in Deep Residual Networks".
  transformers/models/bit/modeling_bit.py
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from repsim_jax import tiny_checkpoints as tiny
from repsim_jax.models import layers, parity
from repsim_jax.models import preprocessing as pp
from repsim_jax.models.convert import StateDict, layer_list
from repsim_jax.models.outputs import ModelOutput
from repsim_jax.models.registry import ModelType

MODEL_TYPES = {"bit": ModelType(pooling="gap", feature_maps=True)}
CONVERT_VERSION = 2  # 2: standardized_kernel

# BitImageProcessor (BiT, DINOv2): resize the shortest edge to size.shortest_edge keeping the
# aspect ratio (bicubic), center crop to crop_size, rescale, normalize.
IMAGE_PROCESSORS = {
    "BitImageProcessor": dict(
        resample=3, image_mean=pp.OPENAI_CLIP_MEAN, image_std=pp.OPENAI_CLIP_STD,
        size={"shortest_edge": 224}, default_to_square=False,
        crop_size={"height": 224, "width": 224}, do_resize=True, do_center_crop=True,
        do_rescale=True, do_normalize=True),
}

# BitConfig keyword arguments for the ResNets Raghu et al. 2021 compare with ViTs (BiT-M).
RAGHU_CONFIGS: dict[str, dict[str, Any]] = {
    "resnet50x1": dict(layer_type="preactivation", depths=[3, 4, 6, 3], embedding_size=64,
                       hidden_sizes=[256, 512, 1024, 2048], num_groups=32, width_factor=1,
                       global_padding=None, embedding_dynamic_padding=False),
    "resnet152x2": dict(layer_type="preactivation", depths=[3, 8, 36, 3], embedding_size=128,
                        hidden_sizes=[512, 1024, 2048, 4096], num_groups=32, width_factor=1,
                        global_padding=None, embedding_dynamic_padding=False),
}


def make_div(value: float, divisor: int = 8) -> int:
  """Channel rounding of HF/timm (`modeling_bit.make_div`)."""
  new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
  if new_value < 0.9 * value:
    new_value += divisor
  return new_value


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
  """TF 'SAME' padding (HF DynamicPad2d): the extra pixel goes after."""
  total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
  return total // 2, total - total // 2


def _padding_rule(padding: str | None, kernel: int, stride: int, dilation: int) -> int | None:
  """HF `get_padding_value`: a static symmetric pad, or None for dynamic 'SAME'."""
  static = ((stride - 1) + dilation * (kernel - 1)) // 2
  if padding is None:
    return static
  padding = padding.lower()
  if padding == "same":
    return static if stride == 1 and (dilation * (kernel - 1)) % 2 == 0 else None
  if padding == "valid":
    return 0
  return static


WS_EPS = 1e-8  # the weight-standardisation epsilon of HF's BiT (stem and units)


def standardize_kernel(kernel: np.ndarray, eps: float = WS_EPS) -> np.ndarray:
  """Weight standardisation of an HWIO kernel, per output channel, in float64 -> float32.

  w_hat[..., o] = (w[..., o] - mean(w[..., o])) / sqrt(var(w[..., o]) + eps), mean and biased var
  over (kh, kw, in): HF's WeightStandardizedConv2d (batch_norm over the flattened weight), which
  recomputes it in float32 in every forward.
  """
  w = np.asarray(kernel, np.float64)
  mean = w.mean(axis=(0, 1, 2), keepdims=True)
  var = np.square(w - mean).mean(axis=(0, 1, 2), keepdims=True)
  return ((w - mean) / np.sqrt(var + eps)).astype(np.float32)


class WeightStandardizedConv(nnx.Module):
  """Conv2d (no bias) whose kernel is weight-standardised (`standardize_kernel`) before use;
  x: [B, H, W, Cin] -> [B, H', W', Cout].

  Holds either `kernel` (raw, HWIO), standardised in float32 in every forward as torch does, or
  (standardized=True) `standardized_kernel`, already standardised (what `convert` writes), used
  as is: the per-forward standardisation is ~10% of a BiT-R50 forward at batch 8 on CPU.
  """

  def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, dilation: int = 1,
               padding: str | None, standardized: bool = False, dtype,
               conv_lowering: str | None = None, rngs: nnx.Rngs):
    init = nnx.initializers.he_normal()(rngs.params(), (kernel, kernel, cin, cout), jnp.float32)
    self.standardized = standardized
    if standardized:
      self.standardized_kernel = nnx.Param(_standardize(init))
    else:
      self.kernel = nnx.Param(init)
    self.size, self.stride, self.dilation = kernel, stride, dilation
    self.static_pad = _padding_rule(padding, kernel, stride, dilation)
    self.dtype, self.conv_lowering = dtype, conv_lowering

  def __call__(self, x: jax.Array) -> jax.Array:
    w = self.standardized_kernel[...] if self.standardized else _standardize(self.kernel[...])
    if self.static_pad is None:
      pads = [_same_pad(n, self.size, self.stride, self.dilation) for n in x.shape[1:3]]
    else:
      pads = [(self.static_pad, self.static_pad)] * 2
    return layers.conv2d(x.astype(self.dtype), w.astype(self.dtype), stride=self.stride,
                         padding=pads, dilation=self.dilation, lowering=self.conv_lowering)


def _standardize(w: jax.Array) -> jax.Array:
  """`standardize_kernel` in float32 with jax (the per-forward one, as torch)."""
  mean = jnp.mean(w, axis=(0, 1, 2), keepdims=True)
  var = jnp.mean(jnp.square(w - mean), axis=(0, 1, 2), keepdims=True)
  return (w - mean) * jax.lax.rsqrt(var + WS_EPS)


class GroupNorm(nnx.Module):
  """torch.nn.GroupNorm on NHWC: channels split into `groups` contiguous groups, each normalised
  over (H, W, channels in group) with biased variance, then a per-channel affine.

  Statistics are computed in float32 with a shifted two-pass mean (m = m0 + mean(x - m0)): the
  stem and residual-stream inputs of BiT have |mean| >> std, where a one-pass float32 mean loses
  enough digits to triple the error against float64 compared with torch. Each mean sums over
  (H, W) per channel first, then over the channels of a group: the reduction keeps NHWC's
  contiguous channel axis (4-10x faster on CPU than reducing a [.., groups, channels/group]
  view whose minor axis may be 2 wide).
  """

  def __init__(self, channels: int, groups: int, *, eps: float, dtype):
    if channels % groups:
      raise ValueError(f"GroupNorm: {channels} channels do not split into {groups} groups")
    self.groups, self.eps, self.dtype = groups, eps, dtype
    self.scale = nnx.Param(jnp.ones((channels,), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((channels,), jnp.float32))

  def _group_mean(self, t: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, 1, 1, C]: the mean over (H, W, channels of the group) per channel."""
    b, h, w, c = t.shape
    per_group = jnp.sum(jnp.sum(t, axis=(1, 2)).reshape(b, self.groups, c // self.groups), axis=-1)
    per_group = per_group / (h * w * (c // self.groups))
    return jnp.repeat(per_group, c // self.groups, axis=1)[:, None, None, :]

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.astype(jnp.float32)
    m0 = self._group_mean(x)
    mean = m0 + self._group_mean(x - m0)
    d = x - mean
    var = self._group_mean(jnp.square(d))
    y = d * jax.lax.rsqrt(var + self.eps)
    return (y * self.scale[...] + self.bias[...]).astype(self.dtype)


class GroupNormAct(nnx.Module):
  """GroupNorm (eps 1e-5) optionally followed by the config's activation (HF
  BitGroupNormActivation)."""

  def __init__(self, channels: int, config: Any, *, act: bool = True, dtype, rngs: nnx.Rngs):
    self.norm = GroupNorm(channels, config.num_groups, eps=1e-5, dtype=dtype)
    self.act = layers.activation(config.hidden_act) if act else None

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self.norm(x)
    return self.act(x) if self.act is not None else x


class Unit(nnx.Module):
  """One residual unit, pre-activation or bottleneck (HF BitPreActivationBottleneckLayer /
  BitBottleneckLayer). Returns (output, branch before the add)."""

  def __init__(self, cin: int, cout: int, config: Any, *, stride: int, dilation: int,
               first: bool, dtype, conv: dict, rngs: nnx.Rngs):
    self.preact = config.layer_type == "preactivation"
    mid = make_div(cout * 0.25)
    kw = dict(padding=config.global_padding, dtype=dtype, rngs=rngs, **conv)
    self.downsample = (WeightStandardizedConv(cin, cout, 1, stride=stride, **kw)
                       if first else None)
    if self.preact:
      # HF's pre-activation unit ignores dilation in its 3x3 conv.
      self.norm1 = GroupNormAct(cin, config, dtype=dtype, rngs=rngs)
      self.conv1 = WeightStandardizedConv(cin, mid, 1, **kw)
      self.norm2 = GroupNormAct(mid, config, dtype=dtype, rngs=rngs)
      self.conv2 = WeightStandardizedConv(mid, mid, 3, stride=stride, **kw)
      self.norm3 = GroupNormAct(mid, config, dtype=dtype, rngs=rngs)
      self.conv3 = WeightStandardizedConv(mid, cout, 1, **kw)
      self.downsample_norm = None
    else:
      self.downsample_norm = (GroupNormAct(cout, config, act=False, dtype=dtype, rngs=rngs)
                              if first else None)
      self.conv1 = WeightStandardizedConv(cin, mid, 1, **kw)
      self.norm1 = GroupNormAct(mid, config, dtype=dtype, rngs=rngs)
      self.conv2 = WeightStandardizedConv(mid, mid, 3, stride=stride, dilation=dilation, **kw)
      self.norm2 = GroupNormAct(mid, config, dtype=dtype, rngs=rngs)
      self.conv3 = WeightStandardizedConv(mid, cout, 1, **kw)
      self.norm3 = GroupNormAct(cout, config, act=False, dtype=dtype, rngs=rngs)
      self.act = layers.activation(config.hidden_act)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    if self.preact:
      pre = self.norm1(x)
      shortcut = self.downsample(pre) if self.downsample is not None else x
      branch = self.conv3(self.norm3(self.conv2(self.norm2(self.conv1(pre)))))
      return branch + shortcut, branch
    shortcut = x
    if self.downsample is not None:
      shortcut = self.downsample_norm(self.downsample(x))
    branch = self.norm3(self.conv3(self.norm2(self.conv2(self.norm1(self.conv1(x))))))
    return self.act(branch + shortcut), branch


class Stem(nnx.Module):
  """7x7/2 standardised conv, [zero pad 1,] [GN+act (bottleneck)], 3x3/2 max-pool (HF
  BitEmbeddings)."""

  def __init__(self, config: Any, *, dtype, conv: dict, rngs: nnx.Rngs):
    self.conv = WeightStandardizedConv(config.num_channels, config.embedding_size, 7, stride=2,
                                       padding=config.global_padding, dtype=dtype, rngs=rngs,
                                       **conv)
    same = config.global_padding is not None and config.global_padding.upper() == "SAME"
    self.pad_one = not same
    self.norm = (GroupNormAct(config.embedding_size, config, dtype=dtype, rngs=rngs)
                 if config.layer_type != "preactivation" else None)
    self.dynamic_pool_pad = config.embedding_dynamic_padding

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self.conv(x)
    if self.pad_one:
      x = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    if self.norm is not None:
      x = self.norm(x)
    if self.dynamic_pool_pad:
      # HF pads the pool input with zeros (not -inf): a zero can win over negative activations.
      ph, pw = (_same_pad(n, 3, 2, 1) for n in x.shape[1:3])
      x = jnp.pad(x, ((0, 0), ph, pw, (0, 0)))
    # A numpy init value stays concrete under jit, so jax sees a max-pool and can differentiate
    # it (effective receptive fields); a jnp.array init is a tracer there and is not.
    return jax.lax.reduce_window(x, np.array(-np.inf, x.dtype), jax.lax.max, (1, 3, 3, 1),
                                 (1, 2, 2, 1), "VALID")


class Stage(nnx.Module):

  def __init__(self, units: list[Unit]):
    self.units = nnx.List(units)


def _stage_plan(config: Any) -> list[tuple[int, int, int, int]]:
  """(out_channels, stride, dilation, first_dilation) per stage, as HF BitEncoder/BitStage."""
  plan, current_stride, dilation = [], 4, 1
  for s, hidden in enumerate(config.hidden_sizes[:len(config.depths)]):
    out = make_div(hidden * config.width_factor)
    stride = 1 if s == 0 else 2
    if current_stride >= config.output_stride:
      dilation *= stride
      stride = 1
    first_dilation = 1 if dilation in (1, 2) else 2
    plan.append((out, stride, dilation, first_dilation))
    current_stride *= stride
  return plan


class BiT(nnx.Module):
  """BitModel; input NHWC float images.

  conv_lowering: how the convolutions are lowered (layers.CONV_LOWERINGS); None: per platform.
  standardized_kernels: hold the kernels already standardised (see `build_options`).
  """

  def __init__(self, config: Any, *, dtype=jnp.float32, conv_lowering: str | None = None,
               standardized_kernels: bool = False, rngs: nnx.Rngs):
    if config.layer_type not in ("preactivation", "bottleneck"):
      raise ValueError(f"config.layer_type {config.layer_type!r}: expected 'preactivation' or "
                       f"'bottleneck'")
    plan = _stage_plan(config)
    if config.layer_type == "preactivation" and plan[-1][0] != config.hidden_sizes[-1]:
      raise ValueError(
          f"config: width_factor={config.width_factor} makes the last stage "
          f"{plan[-1][0]} channels wide but HF's final norm has hidden_sizes[-1]="
          f"{config.hidden_sizes[-1]} (torch BitModel fails too); scale hidden_sizes and "
          f"embedding_size instead and keep width_factor=1 (see RAGHU_CONFIGS)")
    self.num_channels = config.num_channels
    self.dtype = dtype
    conv = dict(conv_lowering=conv_lowering, standardized=standardized_kernels)
    self.stem = Stem(config, dtype=dtype, conv=conv, rngs=rngs)
    stages, cin = [], config.embedding_size
    for depth, (cout, stride, dilation, first_dilation) in zip(config.depths, plan):
      units = []
      for u in range(depth):
        units.append(Unit(cin, cout, config, stride=stride if u == 0 else 1,
                          dilation=first_dilation if u == 0 else dilation, first=u == 0,
                          dtype=dtype, conv=conv, rngs=rngs))
        cin = cout
      stages.append(Stage(units))
    self.stages = nnx.List(stages)
    self.norm = (GroupNormAct(config.hidden_sizes[-1], config, dtype=dtype, rngs=rngs)
                 if config.layer_type == "preactivation" else None)

  def __call__(self, pixel_values: jax.Array, *, sublayers: bool = False) -> ModelOutput:
    """pixel_values: [B, H, W, C] float -> ModelOutput (NHWC maps; see the module docstring)."""
    layers.check_pixel_values(pixel_values, num_channels=self.num_channels, model=type(self).__name__)
    x = self.stem(pixel_values.astype(self.dtype))
    blocks: dict[str, jax.Array] = {"stem": x}
    hidden = [x]
    for s, stage in enumerate(self.stages):
      for u, unit in enumerate(stage.units):
        x, branch = unit(x)
        name = f"stage{s}.block{u:02d}"
        if sublayers:
          blocks[f"{name}.branch"] = branch
        blocks[name] = x
      hidden.append(x)
    last = self.norm(x) if self.norm is not None else x
    pooled = jnp.mean(last, axis=(1, 2), keepdims=True)
    return ModelOutput(hidden_states=tuple(hidden), blocks=blocks, last_hidden_state=last,
                       pooler_output=pooled)


def build(config: Any, *, dtype=jnp.float32, conv_lowering: str | None = None,
          standardized_kernels: bool = False, rngs: nnx.Rngs | None = None) -> BiT:
  """The NNX model for a transformers BitConfig (options: see `BiT`)."""
  return BiT(config, dtype=dtype, conv_lowering=conv_lowering,
             standardized_kernels=standardized_kernels,
             rngs=rngs if rngs is not None else nnx.Rngs(0))


def build_options(params: dict, config: Any) -> dict:
  """Build options that fit `params`: `standardized_kernels` when they hold standardised kernels
  (`convert` writes those; a native checkpoint of raw `kernel`s keeps the torch-like forward)."""
  return {"standardized_kernels": "standardized_kernel" in params["stem"]["conv"]}


def torch_hooks(config: Any, *, sublayers: bool = True) -> dict[str, str]:
  """Our block names -> the transformers BitModel module whose forward output equals them (for
  forward hooks in parity checks; NCHW there). The branch is the output of the unit's
  `drop_path` (an Identity at inference): conv3 (pre-activation) or norm3 (bottleneck) output."""
  return parity.stage_hooks(config.depths, "encoder.stages.{s}.layers.{b}", stem="embedder",
                            branch="drop_path", sublayers=sublayers)


def convert(state_dict: Mapping[str, Any], config: Any) -> dict:
  """torch BitModel state dict (numpy arrays) -> our pure param dict, for a model built with
  `build_options` (standardized_kernels): every conv weight OIHW -> HWIO, standardised by
  `standardize_kernel` (`standardized_kernel`).

  A BitForImageClassification state dict (prefix "bit.") is accepted; the head is dropped.
  Raises on missing weights and on weights the port does not use.
  """
  sd = StateDict(state_dict, prefixes=("bit",), marker="embedder.", ignore=("classifier.",))

  def conv(t: str) -> dict:
    return {"standardized_kernel": standardize_kernel(sd.conv2d(t, bias=False)["kernel"])}

  def gn(t: str) -> dict:
    return {"norm": sd.layer_norm(t, bias=True)}  # GroupNorm has the same {weight, bias}

  preact = config.layer_type == "preactivation"
  params: dict = {"stem": {"conv": conv("embedder.convolution")}}
  if not preact:
    params["stem"]["norm"] = gn("embedder.norm")
  stages = []
  for s, depth in enumerate(config.depths):
    units = []
    for u in range(depth):
      t = f"encoder.stages.{s}.layers.{u}"
      unit = {f"{k}{i}": (conv if k == "conv" else gn)(f"{t}.{k}{i}")
              for k in ("conv", "norm") for i in (1, 2, 3)}
      if u == 0:
        unit["downsample"] = conv(f"{t}.downsample.conv")
        if not preact:
          unit["downsample_norm"] = gn(f"{t}.downsample.norm")
      units.append(unit)
    stages.append({"units": layer_list(units)})
  params["stages"] = layer_list(stages)
  if preact:
    params["norm"] = gn("norm")
  sd.check_consumed("bit")
  return params


def tiny_config(model_type: str, image_size: int):
  import transformers as tr
  return (tr.BitConfig(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                       num_groups=4, layer_type="bottleneck", global_padding="SAME",
                       embedding_dynamic_padding=True),
          {"image_processor_type": "BitImageProcessor", "size": {"shortest_edge": image_size},
           "crop_size": tiny.square(image_size), **tiny.HALF_NORM})
