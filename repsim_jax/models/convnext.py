"""ConvNeXt (v1), ConvNeXt V2 and DINOv3 ConvNeXt, ported from transformers' torch classes.

One stage/block implementation covers the three variants; they differ only in

  variant           stem                    block extra      downsample LN   final output
  convnext          patch conv + LN(1e-6)   layer scale      eps 1e-6        LN(mean_hw(x))
  convnextv2        patch conv + LN(1e-6)   GRN after act    eps 1e-6        LN(mean_hw(x))
  dinov3_convnext   4x4 conv + LN(eps)      layer scale      eps = config    LN([mean_hw(x); tokens])

`hidden_states` is exactly torch's `output_hidden_states=True` (in NHWC): ConvNeXt v1/V2 give
(stem output, stage 0 .. 3 outputs); DINOv3 ConvNeXt gives (pixel_values, stage 0 .. 3 outputs)
because its stem lives inside stage 0. `blocks` holds "stem" and "stageS.blockBB" for every
block of every stage (ConvNeXt-XL: 3+3+27+3), and with `sublayers=True` also
"stageS.blockBB.branch", the residual branch (after layer scale) before the add.

References:
  Liu et al. 2022, "A ConvNet for the 2020s". Woo et al. 2023, "ConvNeXt V2: Co-designing and
  Scaling ConvNets with Masked Autoencoders". Simeoni et al. 2025, "DINOv3".
  transformers/models/{convnext,convnextv2,dinov3_convnext}/modeling_*.py
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from repsim_jax import tiny_checkpoints as tiny
from repsim_jax.models import layers, parity
from repsim_jax.models import preprocessing as pp
from repsim_jax.models.convert import StateDict, layer_list
from repsim_jax.models.outputs import ModelOutput
from repsim_jax.models.registry import ModelType

MODEL_TYPES = {model_type: ModelType(pooling="gap", feature_maps=True)
               for model_type in ("convnext", "convnextv2", "dinov3_convnext")}

CONVERT_VERSION = 1

# ConvNextImageProcessor: size.shortest_edge < 384: resize the shortest edge to
# int(shortest_edge / crop_pct), center crop to shortest_edge; otherwise warp to
# (shortest_edge, shortest_edge). Bicubic.
IMAGE_PROCESSORS = {
    "ConvNextImageProcessor": dict(
        resample=3, image_mean=pp.IMAGENET_STANDARD_MEAN, image_std=pp.IMAGENET_STANDARD_STD,
        size={"shortest_edge": 384}, default_to_square=False, do_resize=True, do_rescale=True,
        do_normalize=True, crop_pct=224 / 256, crop_pct_resize=True),
}


@dataclasses.dataclass(frozen=True)
class Variant:
  """What distinguishes the three ConvNeXt families (see the module docstring)."""
  name: str
  grn: bool            # ConvNeXt V2: global response normalisation in the MLP
  layer_scale: bool    # v1 (when layer_scale_init_value > 0) and DINOv3
  block_eps: float     # LN inside blocks
  down_eps: float      # LN of the stem and of the downsampling layers
  stem_kernel: int | tuple[int, int]
  tokens_output: bool  # DINOv3: last_hidden_state is LN([pooled; patch tokens]) [B, 1+HW, C]

  @classmethod
  def from_config(cls, config: Any) -> "Variant":
    kind = config.model_type
    if kind == "dinov3_convnext":
      eps = config.layer_norm_eps
      return cls(kind, grn=False, layer_scale=True, block_eps=eps, down_eps=eps, stem_kernel=4,
                 tokens_output=True)
    if kind not in ("convnext", "convnextv2"):
      raise ValueError(f"config.model_type {kind!r} is not a ConvNeXt family; expected one of "
                       f"{sorted(MODEL_TYPES)}")
    patch = config.patch_size if isinstance(config.patch_size, int) else tuple(config.patch_size)
    v2 = kind == "convnextv2"
    return cls(kind, grn=v2, layer_scale=not v2 and config.layer_scale_init_value > 0,
               block_eps=1e-6, down_eps=1e-6, stem_kernel=patch, tokens_output=False)


class GRN(nnx.Module):
  """Global response normalisation (ConvNeXt V2), NHWC.

  g = ||x||_2 over (H, W) per channel; x + weight * x * g / (mean_c(g) + 1e-6) + bias.
  """

  def __init__(self, dim: int, *, rngs: nnx.Rngs):
    self.weight = nnx.Param(jnp.zeros((dim,), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((dim,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    # statistics in float32 also when computing in bfloat16
    g = jnp.sqrt(jnp.sum(jnp.square(x.astype(jnp.float32)), axis=(1, 2), keepdims=True))
    n = (g / (jnp.mean(g, axis=-1, keepdims=True) + 1e-6)).astype(x.dtype)
    w, b = self.weight[...].astype(x.dtype), self.bias[...].astype(x.dtype)
    return w * (x * n) + b + x


class Block(nnx.Module):
  """dwconv7x7 -> LN -> Linear(4d) -> act [-> GRN] -> Linear(d) [-> layer scale], plus residual."""

  def __init__(self, dim: int, variant: Variant, config: Any, *, dtype, conv_lowering: str | None,
               rngs: nnx.Rngs):
    self.dwconv = layers.Conv2d(dim, dim, 7, padding=3, groups=dim, dtype=dtype,
                                lowering=conv_lowering, rngs=rngs)
    self.norm = layers.layer_norm(dim, eps=variant.block_eps, dtype=dtype, rngs=rngs)
    self.pwconv1 = layers.linear(dim, 4 * dim, dtype=dtype, rngs=rngs)
    self.act = layers.activation(config.hidden_act)
    self.grn = GRN(4 * dim, rngs=rngs) if variant.grn else None
    self.pwconv2 = layers.linear(4 * dim, dim, dtype=dtype, rngs=rngs)
    self.layer_scale = (layers.LayerScale(dim, init=config.layer_scale_init_value)
                        if variant.layer_scale else None)

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x: [B, H, W, C] -> (x + branch, branch)."""
    h = self.pwconv1(self.norm(self.dwconv(x)))
    h = self.act(h)
    if self.grn is not None:
      h = self.grn(h)
    h = self.pwconv2(h)
    if self.layer_scale is not None:
      h = self.layer_scale(h)
    return x + h, h


class Downsample(nnx.Module):
  """LN then a stride-2 2x2 conv (stages 1..3)."""

  def __init__(self, cin: int, cout: int, eps: float, *, dtype, conv_lowering: str | None,
               rngs: nnx.Rngs):
    self.norm = layers.layer_norm(cin, eps=eps, dtype=dtype, rngs=rngs)
    self.conv = layers.Conv2d(cin, cout, 2, stride=2, dtype=dtype, lowering=conv_lowering,
                              rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.conv(self.norm(x))


class Stem(nnx.Module):
  """Non-overlapping patch conv then LN; [B, H, W, C] -> [B, H/p, W/p, D]."""

  def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], eps: float, *, dtype,
               conv_lowering: str | None, rngs: nnx.Rngs):
    self.patch_embeddings = layers.PatchEmbedding(cin, cout, kernel, dtype=dtype,
                                                  conv_lowering=conv_lowering, rngs=rngs)
    self.norm = layers.layer_norm(cout, eps=eps, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    tokens, (h, w) = self.patch_embeddings(x)
    return self.norm(tokens.reshape(x.shape[0], h, w, tokens.shape[-1]))


class Stage(nnx.Module):

  def __init__(self, cin: int, cout: int, depth: int, variant: Variant, config: Any, *,
               downsample: bool, dtype, conv_lowering: str | None, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, conv_lowering=conv_lowering, rngs=rngs)
    self.downsample = Downsample(cin, cout, variant.down_eps, **kw) if downsample else None
    self.blocks = nnx.List([Block(cout, variant, config, **kw) for _ in range(depth)])


class ConvNeXt(nnx.Module):
  """ConvNextModel / ConvNextV2Model / DINOv3ConvNextModel; input NHWC float images.

  conv_lowering: how the convolutions are lowered (layers.CONV_LOWERINGS); None: per platform.
  """

  def __init__(self, config: Any, *, dtype=jnp.float32, conv_lowering: str | None = None,
               rngs: nnx.Rngs):
    self.variant = Variant.from_config(config)
    self.num_channels = config.num_channels
    self.dtype = dtype
    v, sizes = self.variant, list(config.hidden_sizes)
    self.stem = Stem(config.num_channels, sizes[0], v.stem_kernel, v.down_eps, dtype=dtype,
                     conv_lowering=conv_lowering, rngs=rngs)
    stages = []
    for i, depth in enumerate(config.depths):
      cin = sizes[i - 1] if i > 0 else sizes[0]
      # v1/V2 skip the downsampling layer when neither channels nor resolution change (stage 0);
      # DINOv3 always downsamples after stage 0 (its stage 0 "downsample" is our stem).
      stages.append(Stage(cin, sizes[i], depth, v, config, downsample=i > 0, dtype=dtype,
                          conv_lowering=conv_lowering, rngs=rngs))
    self.stages = nnx.List(stages)
    self.norm = layers.layer_norm(sizes[-1], eps=config.layer_norm_eps, dtype=dtype, rngs=rngs)

  def __call__(self, pixel_values: jax.Array, *, sublayers: bool = False) -> ModelOutput:
    """pixel_values: [B, H, W, C] float -> ModelOutput (NHWC maps; see the module docstring)."""
    layers.check_pixel_values(pixel_values, num_channels=self.num_channels, model=type(self).__name__)
    x = pixel_values.astype(self.dtype)
    x = self.stem(x)
    blocks: dict[str, jax.Array] = {"stem": x}
    hidden = [pixel_values if self.variant.tokens_output else x]
    for s, stage in enumerate(self.stages):
      if stage.downsample is not None:
        x = stage.downsample(x)
      for b, block in enumerate(stage.blocks):
        x, branch = block(x)
        name = f"stage{s}.block{b:02d}"
        if sublayers:
          blocks[f"{name}.branch"] = branch
        blocks[name] = x
      hidden.append(x)
    pooled = jnp.mean(x, axis=(1, 2))
    if self.variant.tokens_output:
      b_, h_, w_, c_ = x.shape
      tokens = jnp.concatenate([pooled[:, None], x.reshape(b_, h_ * w_, c_)], axis=1)
      last = self.norm(tokens)
      pooler = last[:, 0]
    else:
      last, pooler = x, self.norm(pooled)
    return ModelOutput(hidden_states=tuple(hidden), blocks=blocks, last_hidden_state=last,
                       pooler_output=pooler)


def build(config: Any, *, dtype=jnp.float32, conv_lowering: str | None = None,
          rngs: nnx.Rngs | None = None) -> ConvNeXt:
  """The NNX model for a transformers ConvNext / ConvNextV2 / DINOv3ConvNext config
  (conv_lowering: see layers.CONV_LOWERINGS; None picks it per platform)."""
  return ConvNeXt(config, dtype=dtype, conv_lowering=conv_lowering,
                  rngs=rngs if rngs is not None else nnx.Rngs(0))


def torch_hooks(config: Any, *, sublayers: bool = True) -> dict[str, str]:
  """Our block names -> the transformers module whose forward output equals them (for forward
  hooks in parity checks, see repsim_jax.models.parity.run_torch; NCHW there).

  The residual branch is the output of the block's `drop_path` (an Identity at inference), which
  receives the branch after layer scale and before the add.
  """
  stem = _TORCH_NAMES[config.model_type][1] if config.model_type == "dinov3_convnext" else (
      "embeddings")
  return parity.stage_hooks(config.depths, _TORCH_NAMES[config.model_type][4], stem=stem,
                            branch="drop_path", sublayers=sublayers)


# --- torch -> NNX parameters -------------------------------------------------------------------

# torch module names per family: (stem conv, stem norm, downsample norm, downsample conv, block,
# depthwise conv, block norm, pointwise 1, pointwise 2, layer scale, final norm).
_TORCH_NAMES = {
    "convnext": ("embeddings.patch_embeddings", "embeddings.layernorm",
                 "encoder.stages.{s}.downsampling_layer.0", "encoder.stages.{s}.downsampling_layer.1",
                 "encoder.stages.{s}.layers.{b}", "dwconv", "layernorm", "pwconv1", "pwconv2",
                 "layer_scale_parameter", "layernorm"),
    "dinov3_convnext": ("model.stages.0.downsample_layers.0", "model.stages.0.downsample_layers.1",
                        "model.stages.{s}.downsample_layers.0", "model.stages.{s}.downsample_layers.1",
                        "model.stages.{s}.layers.{b}", "depthwise_conv", "layer_norm",
                        "pointwise_conv1", "pointwise_conv2", "gamma", "layer_norm"),
}
_TORCH_NAMES["convnextv2"] = _TORCH_NAMES["convnext"]


def convert(state_dict: Mapping[str, Any], config: Any) -> dict:
  """torch state dict (numpy arrays) -> our pure param dict (`nnx.state(model,
  nnx.Param).to_pure_dict()` layout): OIHW -> HWIO, Linear [out, in] -> [in, out].

  Task checkpoints (ConvNext*ForImageClassification: prefix "convnext." / "convnextv2.") are
  accepted, their classifier dropped; hub DINOv3 ConvNeXt names ("stages.*") are renamed as
  transformers does. Raises on missing weights and on weights the port does not use.
  """
  kind = config.model_type
  variant = Variant.from_config(config)
  if kind == "dinov3_convnext":
    sd = StateDict(state_dict, marker="model.stages.")
    sd.rename([(r"^stages\.", "model.stages.")])  # transformers' conversion_mapping
  else:
    sd = StateDict(state_dict, prefixes=(kind,), marker="embeddings.", ignore=("classifier.",))
  stem_conv, stem_norm, down_norm, down_conv, block, dw, bnorm, pw1, pw2, scale, norm = (
      _TORCH_NAMES[kind])

  stages = []
  for s, depth in enumerate(config.depths):
    blocks = []
    for b in range(depth):
      t = block.format(s=s, b=b)
      p = {"dwconv": sd.conv2d(f"{t}.{dw}", bias=True),
           "norm": sd.layer_norm(f"{t}.{bnorm}", bias=True),
           "pwconv1": sd.linear(f"{t}.{pw1}", bias=True),
           "pwconv2": sd.linear(f"{t}.{pw2}", bias=True)}
      if variant.grn:
        p["grn"] = {"weight": sd.pop(f"{t}.grn.weight").reshape(-1),
                    "bias": sd.pop(f"{t}.grn.bias").reshape(-1)}
      if variant.layer_scale:
        p["layer_scale"] = {"lambda1": sd.pop(f"{t}.{scale}")}
      blocks.append(p)
    stage: dict = {"blocks": layer_list(blocks)}
    if s > 0:
      stage["downsample"] = {"norm": sd.layer_norm(down_norm.format(s=s), bias=True),
                             "conv": sd.conv2d(down_conv.format(s=s), bias=True)}
    stages.append(stage)
  params = {"stem": {"patch_embeddings": {"projection": sd.conv2d(stem_conv, bias=True)},
                     "norm": sd.layer_norm(stem_norm, bias=True)},
            "stages": layer_list(stages),
            "norm": sd.layer_norm(norm, bias=True)}
  sd.check_consumed(kind)
  return params


def tiny_config(model_type: str, image_size: int):
  import transformers as tr
  config = tr.AutoConfig.for_model(model_type, image_size=image_size, **tiny.stage_sizes())
  return config, {"image_processor_type": "ConvNextImageProcessor",
                  "size": {"shortest_edge": image_size}, "crop_pct": 0.875, **tiny.IMAGENET_NORM}
