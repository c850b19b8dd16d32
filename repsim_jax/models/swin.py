"""Swin Transformer (Liu et al. 2021) as transformers' `SwinModel`, in Flax NNX.

model(pixel_values [B, H, W, C]) -> ModelOutput with
  hidden_states: (embeddings, stage 0, ..., stage S-1 outputs)  [B, h_s * w_s, C_s] tokens in
                 row-major grid order, as torch's output_hidden_states=True: each stage's
                 output after its patch merging (the last stage has none),
  blocks: "embeddings" and "stage{s}.block{bb}" for every block of every stage ([B, h_s * w_s,
                 C_s], before merging), with sublayers also ".attn", ".mid", ".mlp" and
                 ".attn_probs" ([B * windows, heads, w², w²], torch's layout),
  last_hidden_state: layernorm(last stage),  pooler_output: its mean over tokens.
Embeddings: the image is zero-padded on the bottom / right to a multiple of the patch size,
patchified, layer-normed (eps 1e-5) and, with config.use_absolute_embeddings, given learned
positions (bicubically resized on request). Block b of a stage attends within windows of
config.window_size², shifted by window_size // 2 for odd b (`layers.WindowAttention`: padding,
cyclic shift, relative position bias and the shifted-window mask as torch; stages whose grid is
no larger than a window attend globally without shift). Patch merging between stages zero-pads
an odd grid, concatenates each 2x2 neighbourhood ([0,0], [1,0], [0,1], [1,1]), LN (eps 1e-5),
then a bias-free linear 4C -> 2C. Any image size works whose last-stage grid is at least one
window (as in torch).

References: Liu et al. 2021, "Swin Transformer: Hierarchical Vision Transformer using Shifted
Windows", arXiv:2103.14030; transformers/models/swin/modeling_swin.py.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from repsim_jax import tiny_checkpoints as tiny
from repsim_jax.models import layers, parity
from repsim_jax.models.convert import StateDict, layer_list
from repsim_jax.models.outputs import ModelOutput
from repsim_jax.models.registry import ModelType
from repsim_jax.models.vit import convert_encoder_block, resize_position_embeddings

# Pooling: no [CLS]; every token (Swin's own pooler).
MODEL_TYPES = {"swin": ModelType(pooling="mean")}
CONVERT_VERSION = 1

# Hub checkpoints (and save_pretrained) use the pre-v5 names.
LEGACY_NAMES = [
    (r"attention\.self\.relative_position_bias_table",
     "attention.relative_position_bias.relative_position_bias_table"),
    (r"attention\.self\.query", "attention.q_proj"),
    (r"attention\.self\.key", "attention.k_proj"),
    (r"attention\.self\.value", "attention.v_proj"),
    (r"attention\.output\.dense", "attention.o_proj"),
    (r"intermediate\.dense", "mlp.fc1"),
    (r"\.output\.dense", ".mlp.fc2"),
]


class PatchMerging(nnx.Module):
  """[B, h*w, C] on an (h, w) grid -> [B, ceil(h/2) * ceil(w/2), 2C] (see the module docstring)."""

  def __init__(self, dim: int, *, dtype, rngs):
    self.norm = layers.layer_norm(4 * dim, eps=1e-5, dtype=dtype, rngs=rngs)
    self.reduction = layers.linear(4 * dim, 2 * dim, use_bias=False, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, grid: tuple[int, int]) -> jax.Array:
    b, _, c = x.shape
    h, w = grid
    x = jnp.pad(x.reshape(b, h, w, c), ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
    x = jnp.concatenate([x[:, row::2, col::2] for col in range(2) for row in range(2)], axis=-1)
    return self.reduction(self.norm(x.reshape(b, -1, 4 * c)))


class Stage(nnx.Module):

  def __init__(self, config, dim: int, depth: int, num_heads: int, *, downsample: bool, dtype,
               rngs):
    eps, window = config.layer_norm_eps, config.window_size
    self.blocks = nnx.List([
        layers.EncoderBlock(
            norm1=layers.layer_norm(dim, eps=eps, dtype=dtype, rngs=rngs),
            attention=layers.WindowAttention(dim, num_heads, window_size=window,
                                             shift_size=0 if i % 2 == 0 else window // 2,
                                             qkv_bias=config.qkv_bias, dtype=dtype, rngs=rngs),
            norm2=layers.layer_norm(dim, eps=eps, dtype=dtype, rngs=rngs),
            mlp=layers.MLP(dim, int(config.mlp_ratio * dim), act=config.hidden_act, dtype=dtype,
                           rngs=rngs))
        for i in range(depth)])
    self.downsample = PatchMerging(dim, dtype=dtype, rngs=rngs) if downsample else None


class SwinModel(nnx.Module):

  def __init__(self, config, *, dtype=jnp.float32, rngs: nnx.Rngs):
    dim = config.embed_dim
    self.dtype = dtype
    self.num_channels = config.num_channels
    self.image_size = layers.pair(config.image_size, "image_size")
    self.patch_size = layers.pair(config.patch_size, "patch_size")
    self.patch_embeddings = layers.PatchEmbedding(config.num_channels, dim, self.patch_size,
                                                  pad_partial=True, dtype=dtype, rngs=rngs)
    self.norm = layers.layer_norm(dim, eps=1e-5, dtype=dtype, rngs=rngs)
    n = (self.image_size[0] // self.patch_size[0]) * (self.image_size[1] // self.patch_size[1])
    self.position_embeddings = (nnx.Param(jnp.zeros((1, n, dim), jnp.float32))
                                if config.use_absolute_embeddings else None)
    num_stages = len(config.depths)
    self.stages = nnx.List([
        Stage(config, dim * 2 ** s, depth, config.num_heads[s], downsample=s < num_stages - 1,
              dtype=dtype, rngs=rngs)
        for s, depth in enumerate(config.depths)])
    self.layernorm = layers.layer_norm(dim * 2 ** (num_stages - 1), eps=config.layer_norm_eps,
                                       dtype=dtype, rngs=rngs)

  def __call__(self, pixel_values: jax.Array, *, sublayers: bool = False,
               interpolate_pos_encoding: bool = False) -> ModelOutput:
    layers.check_pixel_values(pixel_values, num_channels=self.num_channels, model="SwinModel")
    _, height, width, _ = pixel_values.shape
    x, grid = self.patch_embeddings(pixel_values.astype(self.dtype))
    x = self.norm(x)
    if self.position_embeddings is not None:
      pos = self.position_embeddings[...]
      if interpolate_pos_encoding:
        pos = resize_position_embeddings(pos, num_prefix_tokens=0, image_hw=(height, width),
                                         patch_size=self.patch_size)
      elif pos.shape[1] != x.shape[1]:
        raise ValueError(f"SwinModel: {height}x{width} images give {x.shape[1]} patches, the "
                         f"position embeddings {pos.shape[1]}; pass interpolate_pos_encoding=True")
      x = x + pos.astype(x.dtype)
    hidden, blocks = [x], {"embeddings": x}
    for s, stage in enumerate(self.stages):
      x, _, stage_blocks = layers.run_encoder(stage.blocks, x, sublayers=sublayers, grid=grid,
                                              name=f"stage{s}.block{{i:02d}}", input_name=None)
      blocks.update(stage_blocks)
      if stage.downsample is not None:
        x = stage.downsample(x, grid)
        grid = ((grid[0] + 1) // 2, (grid[1] + 1) // 2)
      hidden.append(x)
    sequence = self.layernorm(x)
    return ModelOutput(hidden_states=tuple(hidden), blocks=blocks, last_hidden_state=sequence,
                       pooler_output=jnp.mean(sequence, axis=1))


def build(config, *, dtype=jnp.float32, rngs: nnx.Rngs) -> SwinModel:
  return SwinModel(config, dtype=dtype, rngs=rngs)


def torch_hooks(config: Any, *, sublayers: bool = False) -> dict[str, parity.HookSpec]:
  """Our block names -> SwinModel submodules (see parity.HookSpec). The attention branch is
  the input of drop_path (identity at inference); the MLP branch the output of mlp."""
  hooks: dict[str, parity.HookSpec] = {"embeddings": ("encoder.layers.0.blocks.0", "input")}
  for s, depth in enumerate(config.depths):
    hooks.update(parity.transformer_hooks(
        depth, f"encoder.layers.{s}.blocks.{{i}}", attn=("drop_path", "input"),
        attn_module="attention", mid="layernorm_after", mlp="mlp", sublayers=sublayers,
        name=f"stage{s}.block{{i:02d}}"))
  return hooks


def convert(state_dict, config) -> dict:
  sd = StateDict(state_dict, prefixes=("swin",),
                 ignore=("classifier.", "decoder.", "embeddings.mask_token"))
  sd.rename(LEGACY_NAMES)
  sd.discard("relative_position_index")

  def block(p: str) -> dict:
    params = convert_encoder_block(sd, p)
    params["attention"]["relative_position_bias"] = {"relative_position_bias_table": sd.pop(
        f"{p}.attention.relative_position_bias.relative_position_bias_table")}
    return params

  stages = []
  for s, depth in enumerate(config.depths):
    stage = {"blocks": layer_list([block(f"encoder.layers.{s}.blocks.{b}") for b in range(depth)])}
    if s < len(config.depths) - 1:
      stage["downsample"] = {"norm": sd.layer_norm(f"encoder.layers.{s}.downsample.norm"),
                             "reduction": sd.linear(f"encoder.layers.{s}.downsample.reduction")}
    stages.append(stage)
  params = {"patch_embeddings": {"projection": sd.conv2d("embeddings.patch_embeddings.projection")},
            "norm": sd.layer_norm("embeddings.norm"), "stages": layer_list(stages),
            "layernorm": sd.layer_norm("layernorm")}
  if config.use_absolute_embeddings:
    params["position_embeddings"] = sd.pop("embeddings.position_embeddings")
  sd.check_consumed("swin")
  return params


def tiny_config(model_type: str, image_size: int):
  import transformers as tr
  return (tr.SwinConfig(image_size=image_size, patch_size=2, embed_dim=8, depths=[2, 2],
                        num_heads=[2, 2], window_size=4),
          {"image_processor_type": "ViTImageProcessor", "size": tiny.square(image_size),
           **tiny.IMAGENET_NORM})
