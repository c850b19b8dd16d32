"""The classic ResNet (He et al. 2016; ResNet v1.5 as torchvision and timm train it) as
transformers' `ResNetModel` (e.g. microsoft/resnet-50), in Flax NNX.

Stem: 7x7/2 conv (pad 3), BatchNorm, ReLU, 3x3/2 max-pool (pad 1). Four stages of residual units,
each unit out = act(branch(x) + shortcut(x)), with
  "bottleneck" (ResNet-50/101/152): 1x1 -> 3x3 -> 1x1 convs (the middle width out/4), the stride
  on the 3x3 (v1.5; on the first 1x1 with config.downsample_in_bottleneck, v1);
  "basic" (ResNet-18/34): 3x3 -> 3x3, the stride on the first;
every conv followed by BatchNorm (inference: running statistics) and, except the last of the
branch, the activation. The shortcut is a 1x1 strided conv + BatchNorm when the unit changes the
width or the resolution, else the identity. The first stage has stride 1 unless
config.downsample_in_first_stage. Convolutions pad k // 2 on both sides, as torch.

model(pixel_values [B, H, W, C]) -> ModelOutput with
  hidden_states: (stem output, stage 0..3 outputs), NHWC, as torch's output_hidden_states=True;
  last_hidden_state: the last stage's output; pooler_output: its spatial mean, [B, 1, 1, C] (torch's
  AdaptiveAvgPool2d output in NHWC);
  blocks: "stem", "stageS.blockBB" per unit, and with sublayers=True "stageS.blockBB.branch" (the
  residual branch before the add).

References: He et al. 2016, "Deep Residual Learning for Image Recognition", arXiv:1512.03385;
Goyal et al. 2017 (v1.5's stride placement); transformers/models/resnet/modeling_resnet.py.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from repsim_jax import tiny_checkpoints as tiny
from repsim_jax.models import layers, parity
from repsim_jax.models.convert import StateDict, layer_list
from repsim_jax.models.outputs import ModelOutput
from repsim_jax.models.registry import ModelType

MODEL_TYPES = {"resnet": ModelType(pooling="gap", feature_maps=True)}
CONVERT_VERSION = 1


class BatchNorm(nnx.Module):
  """torch.nn.BatchNorm2d in eval mode on NHWC: y = x * a + b per channel, a = weight /
  sqrt(running_var + eps), b = bias - running_mean * a (torch's CPU inference form), in float32."""

  def __init__(self, channels: int, *, eps: float = 1e-5, dtype):
    self.scale = nnx.Param(jnp.ones((channels,), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((channels,), jnp.float32))
    self.mean = nnx.BatchStat(jnp.zeros((channels,), jnp.float32))
    self.var = nnx.BatchStat(jnp.ones((channels,), jnp.float32))
    self.eps, self.dtype = eps, dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    a = self.scale[...] * jax.lax.rsqrt(self.var[...] + self.eps)
    b = self.bias[...] - self.mean[...] * a
    return (x.astype(jnp.float32) * a + b).astype(self.dtype)


class ConvNorm(nnx.Module):
  """Conv (no bias, pad k // 2) -> BatchNorm -> optional activation (HF ResNetConvLayer and
  ResNetShortCut, whose 1x1 conv pads 0 = 1 // 2 too)."""

  def __init__(self, cin: int, cout: int, kernel: int, *, stride: int = 1, act: str | None,
               dtype, conv_lowering: str | None, rngs: nnx.Rngs):
    self.conv = layers.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2,
                              use_bias=False, dtype=dtype, lowering=conv_lowering, rngs=rngs)
    self.norm = BatchNorm(cout, dtype=dtype)
    self.act = layers.activation(act) if act is not None else None

  def __call__(self, x: jax.Array) -> jax.Array:
    x = self.norm(self.conv(x))
    return self.act(x) if self.act is not None else x


class Unit(nnx.Module):
  """One residual unit (HF ResNetBottleNeckLayer / ResNetBasicLayer); returns (output, branch)."""

  def __init__(self, cin: int, cout: int, config: Any, *, stride: int, dtype,
               conv_lowering: str | None, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, conv_lowering=conv_lowering, rngs=rngs)
    act = config.hidden_act
    self.shortcut = (ConvNorm(cin, cout, 1, stride=stride, act=None, **kw)
                     if cin != cout or stride != 1 else None)
    if config.layer_type == "bottleneck":
      mid, first = cout // 4, config.downsample_in_bottleneck
      convs = [ConvNorm(cin, mid, 1, stride=stride if first else 1, act=act, **kw),
               ConvNorm(mid, mid, 3, stride=1 if first else stride, act=act, **kw),
               ConvNorm(mid, cout, 1, act=None, **kw)]
    else:
      convs = [ConvNorm(cin, cout, 3, stride=stride, act=act, **kw),
               ConvNorm(cout, cout, 3, act=None, **kw)]
    self.convs = nnx.List(convs)
    self.act = layers.activation(act)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    branch = x
    for conv in self.convs:
      branch = conv(branch)
    shortcut = self.shortcut(x) if self.shortcut is not None else x
    return self.act(branch + shortcut), branch


class Stage(nnx.Module):

  def __init__(self, units: list[Unit]):
    self.units = nnx.List(units)


class ResNet(nnx.Module):
  """ResNetModel; input NHWC float images. conv_lowering: see layers.conv2d (None: per
  platform)."""

  def __init__(self, config: Any, *, dtype=jnp.float32, conv_lowering: str | None = None,
               rngs: nnx.Rngs):
    if config.layer_type not in ("bottleneck", "basic"):
      raise ValueError(f"config.layer_type {config.layer_type!r}: expected 'bottleneck' or "
                       f"'basic'")
    kw = dict(dtype=dtype, conv_lowering=conv_lowering, rngs=rngs)
    self.num_channels, self.dtype = config.num_channels, dtype
    self.stem = ConvNorm(config.num_channels, config.embedding_size, 7, stride=2,
                         act=config.hidden_act, **kw)
    widths = [config.embedding_size, *config.hidden_sizes]
    stages = []
    for s, depth in enumerate(config.depths):
      stride = 2 if s > 0 or config.downsample_in_first_stage else 1
      stages.append(Stage([Unit(widths[s] if u == 0 else widths[s + 1], widths[s + 1], config,
                                stride=stride if u == 0 else 1, **kw) for u in range(depth)]))
    self.stages = nnx.List(stages)

  def __call__(self, pixel_values: jax.Array, *, sublayers: bool = False) -> ModelOutput:
    layers.check_pixel_values(pixel_values, num_channels=self.num_channels, model="ResNetModel")
    x = self.stem(pixel_values.astype(self.dtype))
    # torch's max-pool pads with -inf. A numpy init value stays concrete under jit, so jax sees
    # a max-pool and can differentiate it (effective receptive fields).
    x = jax.lax.reduce_window(x, np.array(-np.inf, x.dtype), jax.lax.max, (1, 3, 3, 1),
                              (1, 2, 2, 1), ((0, 0), (1, 1), (1, 1), (0, 0)))
    hidden, blocks = [x], {"stem": x}
    for s, stage in enumerate(self.stages):
      for u, unit in enumerate(stage.units):
        x, branch = unit(x)
        blocks[f"stage{s}.block{u:02d}"] = x
        if sublayers:
          blocks[f"stage{s}.block{u:02d}.branch"] = branch
      hidden.append(x)
    pooled = jnp.mean(x, axis=(1, 2), keepdims=True, dtype=jnp.float32).astype(x.dtype)
    return ModelOutput(hidden_states=tuple(hidden), blocks=blocks, last_hidden_state=x,
                       pooler_output=pooled)


def build(config: Any, *, dtype=jnp.float32, conv_lowering: str | None = None,
          rngs: nnx.Rngs | None = None) -> ResNet:
  return ResNet(config, dtype=dtype, conv_lowering=conv_lowering,
                rngs=rngs if rngs is not None else nnx.Rngs(0))


def torch_hooks(config: Any, *, sublayers: bool = True) -> dict[str, str]:
  """Our block names -> ResNetModel modules (NCHW there). The branch is the output of the unit's
  `layer` (the conv stack, before the in-place add of the shortcut)."""
  return parity.stage_hooks(config.depths, "encoder.stages.{s}.layers.{b}", stem="embedder",
                            branch="layer", sublayers=sublayers)


def convert(state_dict: Mapping[str, Any], config: Any) -> dict:
  """torch ResNetModel state dict (numpy arrays) -> our pure param dict. A
  ResNetForImageClassification state dict (prefix "resnet.") is accepted; the head is dropped.
  Raises on missing weights and on weights the port does not use."""
  sd = StateDict(state_dict, prefixes=("resnet",), marker="embedder.", ignore=("classifier.",))
  sd.discard("num_batches_tracked")

  def conv_norm(t: str) -> dict:  # HF ResNetConvLayer / ResNetShortCut
    bn = f"{t}.normalization"
    return {"conv": sd.conv2d(f"{t}.convolution", bias=False),
            "norm": {"scale": sd.pop(f"{bn}.weight"), "bias": sd.pop(f"{bn}.bias"),
                     "mean": sd.pop(f"{bn}.running_mean"), "var": sd.pop(f"{bn}.running_var")}}

  params: dict = {"stem": conv_norm("embedder.embedder")}
  stages = []
  for s, depth in enumerate(config.depths):
    units = []
    for u in range(depth):
      t = f"encoder.stages.{s}.layers.{u}"
      unit = {"convs": layer_list([conv_norm(f"{t}.layer.{i}")
                                   for i in range(3 if config.layer_type == "bottleneck" else 2)])}
      if f"{t}.shortcut.convolution.weight" in sd:
        unit["shortcut"] = conv_norm(f"{t}.shortcut")
      units.append(unit)
    stages.append({"units": layer_list(units)})
  params["stages"] = layer_list(stages)
  sd.check_consumed("resnet")
  return params


def tiny_config(model_type: str, image_size: int):
  import transformers as tr
  return (tr.ResNetConfig(embedding_size=8, layer_type="bottleneck", **tiny.stage_sizes()),
          {"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": image_size},
           "crop_pct": 0.875, **tiny.IMAGENET_NORM})
