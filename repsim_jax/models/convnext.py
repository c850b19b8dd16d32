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
import numpy as np
from flax import nnx

from repsim_jax.models.outputs import ModelOutput

MODEL_TYPES = ("convnext", "convnextv2", "dinov3_convnext")

_HIGHEST = jax.lax.Precision.HIGHEST


# TODO(models merge): take these from repsim_jax.models.layers once it lands.
def _activation(name: str):
  table = {
      "gelu": lambda x: jax.nn.gelu(x, approximate=False),
      "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
      "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
      "relu": jax.nn.relu,
      "silu": jax.nn.silu,
      "swish": jax.nn.silu,
      "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
  }
  if name not in table:
    raise ValueError(f"hidden_act {name!r} is not supported; expected one of {sorted(table)}")
  return table[name]


class LayerScale(nnx.Module):
  def __init__(self, dim: int, *, init_values: float, rngs: nnx.Rngs):
    self.gamma = nnx.Param(jnp.full((dim,), init_values, jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    return x * self.gamma[...].astype(x.dtype)


@dataclasses.dataclass(frozen=True)
class Variant:
  """What distinguishes the three ConvNeXt families (see the module docstring)."""
  name: str
  grn: bool            # ConvNeXt V2: global response normalisation in the MLP
  layer_scale: bool    # v1 (when layer_scale_init_value > 0) and DINOv3
  block_eps: float     # LN inside blocks
  down_eps: float      # LN of the stem and of the downsampling layers
  stem_kernel: int
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
                       f"{MODEL_TYPES}")
    patch = config.patch_size
    if not isinstance(patch, int):
      if patch[0] != patch[1]:
        raise ValueError(f"config.patch_size {patch!r}: only square patches are supported")
      patch = patch[0]
    v2 = kind == "convnextv2"
    return cls(kind, grn=v2, layer_scale=not v2 and config.layer_scale_init_value > 0,
               block_eps=1e-6, down_eps=1e-6, stem_kernel=patch, tokens_output=False)


def _layer_norm(dim: int, eps: float, dtype, rngs: nnx.Rngs) -> nnx.LayerNorm:
  # use_fast_variance=False: E[(x-m)^2] as torch, not E[x^2]-m^2 (loses digits for large means).
  return nnx.LayerNorm(dim, epsilon=eps, dtype=dtype, use_fast_variance=False, rngs=rngs)


class GRN(nnx.Module):
  """Global response normalisation (ConvNeXt V2), NHWC.

  g = ||x||_2 over (H, W) per channel; x + weight * x * g / (mean_c(g) + 1e-6) + bias.
  """

  def __init__(self, dim: int, *, rngs: nnx.Rngs):
    self.weight = nnx.Param(jnp.zeros((dim,), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((dim,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    g = jnp.sqrt(jnp.sum(jnp.square(x), axis=(1, 2), keepdims=True))
    n = g / (jnp.mean(g, axis=-1, keepdims=True) + 1e-6)
    w, b = self.weight[...].astype(x.dtype), self.bias[...].astype(x.dtype)
    return w * (x * n) + b + x


class Block(nnx.Module):
  """dwconv7x7 -> LN -> Linear(4d) -> act [-> GRN] -> Linear(d) [-> layer scale], plus residual."""

  def __init__(self, dim: int, variant: Variant, config: Any, *, dtype, rngs: nnx.Rngs):
    self.dwconv = nnx.Conv(dim, dim, (7, 7), padding=3, feature_group_count=dim, dtype=dtype,
                           precision=_HIGHEST, rngs=rngs)
    self.norm = _layer_norm(dim, variant.block_eps, dtype, rngs)
    self.pwconv1 = nnx.Linear(dim, 4 * dim, dtype=dtype, precision=_HIGHEST, rngs=rngs)
    self.act = _activation(config.hidden_act)
    self.grn = GRN(4 * dim, rngs=rngs) if variant.grn else None
    self.pwconv2 = nnx.Linear(4 * dim, dim, dtype=dtype, precision=_HIGHEST, rngs=rngs)
    self.layer_scale = (LayerScale(dim, init_values=config.layer_scale_init_value, rngs=rngs)
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

  def __init__(self, cin: int, cout: int, eps: float, *, dtype, rngs: nnx.Rngs):
    self.norm = _layer_norm(cin, eps, dtype, rngs)
    self.conv = nnx.Conv(cin, cout, (2, 2), strides=2, padding="VALID", dtype=dtype,
                         precision=_HIGHEST, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.conv(self.norm(x))


class Stem(nnx.Module):
  """Non-overlapping patch conv then LN."""

  def __init__(self, cin: int, cout: int, kernel: int, eps: float, *, dtype, rngs: nnx.Rngs):
    self.conv = nnx.Conv(cin, cout, (kernel, kernel), strides=kernel, padding="VALID", dtype=dtype,
                         precision=_HIGHEST, rngs=rngs)
    self.norm = _layer_norm(cout, eps, dtype, rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.norm(self.conv(x))


class Stage(nnx.Module):

  def __init__(self, cin: int, cout: int, depth: int, variant: Variant, config: Any, *,
               downsample: bool, dtype, rngs: nnx.Rngs):
    self.downsample = (Downsample(cin, cout, variant.down_eps, dtype=dtype, rngs=rngs)
                       if downsample else None)
    self.blocks = nnx.List([Block(cout, variant, config, dtype=dtype, rngs=rngs)
                            for _ in range(depth)])


class ConvNeXt(nnx.Module):
  """ConvNextModel / ConvNextV2Model / DINOv3ConvNextModel; input NHWC float images."""

  def __init__(self, config: Any, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.variant = Variant.from_config(config)
    self.num_channels = config.num_channels
    self.dtype = dtype
    v, sizes = self.variant, list(config.hidden_sizes)
    self.stem = Stem(config.num_channels, sizes[0], v.stem_kernel, v.down_eps, dtype=dtype,
                     rngs=rngs)
    stages = []
    for i, depth in enumerate(config.depths):
      cin = sizes[i - 1] if i > 0 else sizes[0]
      # v1/V2 skip the downsampling layer when neither channels nor resolution change (stage 0);
      # DINOv3 always downsamples after stage 0 (its stage 0 "downsample" is our stem).
      stages.append(Stage(cin, sizes[i], depth, v, config, downsample=i > 0, dtype=dtype,
                          rngs=rngs))
    self.stages = nnx.List(stages)
    self.norm = _layer_norm(sizes[-1], config.layer_norm_eps, dtype, rngs)

  def __call__(self, pixel_values: jax.Array, *, sublayers: bool = False) -> ModelOutput:
    """pixel_values: [B, H, W, C] float -> ModelOutput (NHWC maps; see the module docstring)."""
    _check_pixels(pixel_values, self.num_channels)
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


def _check_pixels(x: jax.Array, num_channels: int) -> None:
  if x.ndim != 4 or x.shape[-1] != num_channels:
    raise ValueError(f"pixel_values: expected NHWC [batch, height, width, {num_channels}], got "
                     f"shape {tuple(x.shape)}")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"pixel_values: expected a float array (preprocessed images), got "
                     f"{x.dtype}")


def build(config: Any, *, dtype=jnp.float32, rngs: nnx.Rngs | None = None) -> ConvNeXt:
  """The NNX model for a transformers ConvNext / ConvNextV2 / DINOv3ConvNext config."""
  return ConvNeXt(config, dtype=dtype, rngs=rngs if rngs is not None else nnx.Rngs(0))


# --- torch -> NNX parameters -------------------------------------------------------------------

def _conv(w: np.ndarray) -> np.ndarray:
  """torch OIHW -> flax HWIO."""
  return np.transpose(w, (2, 3, 1, 0))


def _torch_names(config: Any) -> dict[str, str]:
  """Our module prefixes -> torch module prefixes (per variant)."""
  if config.model_type == "dinov3_convnext":
    return {"stem.conv": "model.stages.0.downsample_layers.0",
            "stem.norm": "model.stages.0.downsample_layers.1",
            "down.norm": "model.stages.{s}.downsample_layers.0",
            "down.conv": "model.stages.{s}.downsample_layers.1",
            "block": "model.stages.{s}.layers.{b}",
            "dwconv": "depthwise_conv", "bnorm": "layer_norm", "pw1": "pointwise_conv1",
            "pw2": "pointwise_conv2", "scale": "gamma", "norm": "layer_norm"}
  return {"stem.conv": "embeddings.patch_embeddings", "stem.norm": "embeddings.layernorm",
          "down.norm": "encoder.stages.{s}.downsampling_layer.0",
          "down.conv": "encoder.stages.{s}.downsampling_layer.1",
          "block": "encoder.stages.{s}.layers.{b}",
          "dwconv": "dwconv", "bnorm": "layernorm", "pw1": "pwconv1", "pw2": "pwconv2",
          "scale": "layer_scale_parameter", "norm": "layernorm"}


def convert(state_dict: Mapping[str, Any], config: Any) -> dict:
  """torch state dict (ConvNext*Model names, numpy or torch tensors) -> our pure param dict.

  A state dict of a *ForImageClassification model (prefix "convnext." / "convnextv2.") is
  accepted too; the classifier is dropped. Raises KeyError naming any missing tensor.
  """
  sd = {k: np.asarray(v) for k, v in state_dict.items()}
  for prefix in ("convnext.", "convnextv2."):
    if any(k.startswith(prefix) for k in sd):
      sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
  n = _torch_names(config)
  variant = Variant.from_config(config)

  def get(name: str) -> np.ndarray:
    if name not in sd:
      raise KeyError(f"torch state dict has no {name!r} (model_type {config.model_type!r})")
    return sd[name]

  def conv(t: str) -> dict:
    return {"kernel": _conv(get(f"{t}.weight")), "bias": get(f"{t}.bias")}

  def linear(t: str) -> dict:
    return {"kernel": get(f"{t}.weight").T, "bias": get(f"{t}.bias")}

  def norm(t: str) -> dict:
    return {"scale": get(f"{t}.weight"), "bias": get(f"{t}.bias")}

  params: dict = {"stem": {"conv": conv(n["stem.conv"]), "norm": norm(n["stem.norm"])},
                  "stages": {}, "norm": norm(n["norm"])}
  for s, depth in enumerate(config.depths):
    stage: dict = {"blocks": {}}
    if s > 0:
      stage["downsample"] = {"norm": norm(n["down.norm"].format(s=s)),
                             "conv": conv(n["down.conv"].format(s=s))}
    for b in range(depth):
      t = n["block"].format(s=s, b=b)
      block = {"dwconv": conv(f"{t}.{n['dwconv']}"), "norm": norm(f"{t}.{n['bnorm']}"),
               "pwconv1": linear(f"{t}.{n['pw1']}"), "pwconv2": linear(f"{t}.{n['pw2']}")}
      if variant.grn:
        block["grn"] = {"weight": get(f"{t}.grn.weight").reshape(-1),
                        "bias": get(f"{t}.grn.bias").reshape(-1)}
      if variant.layer_scale:
        block["layer_scale"] = {"gamma": get(f"{t}.{n['scale']}")}
      stage["blocks"][b] = block
    params["stages"][s] = stage
  return params
