"""ViT (Dosovitskiy et al. 2021) as transformers' `ViTModel`, in Flax NNX.

model(pixel_values [B, H, W, C]) -> ModelOutput with
  hidden_states: (embeddings, block_00, ..., block_{L-1})  [B, 1 + N, D], as torch's
                 output_hidden_states=True (the last entry is before the final layernorm),
  last_hidden_state: layernorm(block_{L-1}),  pooler_output: act(dense(CLS)) when the
  checkpoint has a pooler (None otherwise, as ViTModel(add_pooling_layer=False)).
Images must have the config's size unless interpolate_pos_encoding=True, which resizes the
position embeddings bicubically exactly as torch does.

References: Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", arXiv:2010.11929;
transformers/models/vit/modeling_vit.py.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from repsim_jax.models import layers
from repsim_jax.models.convert import StateDict, layer_list
from repsim_jax.models.outputs import ModelOutput

MODEL_TYPES = ("vit",)
CONVERT_VERSION = 1

# Hub checkpoints use the pre-v5 names; transformers renames them on load (conversion_mapping).
LEGACY_ATTENTION_NAMES = [  # shared with DINOv2
    (r"attention\.attention\.query", "attention.q_proj"),
    (r"attention\.attention\.key", "attention.k_proj"),
    (r"attention\.attention\.value", "attention.v_proj"),
    (r"attention\.output\.dense", "attention.o_proj"),
]
LEGACY_NAMES = [
    (r"^encoder\.layer\.", "layers."),
    *LEGACY_ATTENTION_NAMES,
    (r"intermediate\.dense", "mlp.fc1"),
    (r"\.output\.dense", ".mlp.fc2"),
]


class ClsPosEmbedding(nnx.Module):
  """Patch embedding + [CLS] token + learned position embeddings (ViT, DINOv2).

  interpolate: "never" (error unless the image has the config's size), "on_request", or
  "always" (DINOv2). Interpolation follows transformers: the patch position grid is resized
  bicubically (align_corners=False) to (H//p, W//p) unless the patch count already matches and
  H == W.
  """

  def __init__(self, *, num_channels: int, dim: int, image_size, patch_size, dtype, rngs):
    self.image_size = layers.pair(image_size, "image_size")
    self.patch_size = layers.pair(patch_size, "patch_size")
    self.dtype = dtype
    self.patch_embeddings = layers.PatchEmbedding(num_channels, dim, self.patch_size, dtype=dtype,
                                                  rngs=rngs)
    n = (self.image_size[0] // self.patch_size[0]) * (self.image_size[1] // self.patch_size[1])
    self.cls_token = nnx.Param(jnp.zeros((1, 1, dim), jnp.float32))
    self.position_embeddings = nnx.Param(jnp.zeros((1, n + 1, dim), jnp.float32))

  def position_embedding(self, height: int, width: int, num_patches: int) -> jax.Array:
    pos = self.position_embeddings[...]
    num_positions = pos.shape[1] - 1
    if num_patches == num_positions and height == width:
      return pos
    side = int(num_positions ** 0.5)
    grid = pos[0, 1:].reshape(side, side, -1)
    grid = layers.resize_bicubic(grid, (height // self.patch_size[0], width // self.patch_size[1]))
    return jnp.concatenate([pos[:, :1], grid.reshape(1, -1, pos.shape[-1])], axis=1)

  def __call__(self, pixel_values: jax.Array, *, interpolate: bool, model: str) -> jax.Array:
    _, height, width, _ = pixel_values.shape
    if not interpolate and (height, width) != self.image_size:
      raise ValueError(f"{model}: input image size {height}x{width} does not match the model's "
                       f"{self.image_size[0]}x{self.image_size[1]}; resize the images or pass "
                       f"interpolate_pos_encoding=True (bicubic, as torch)")
    x, _ = self.patch_embeddings(pixel_values.astype(self.dtype))
    cls = jnp.broadcast_to(self.cls_token[...].astype(x.dtype), (x.shape[0], 1, x.shape[-1]))
    x = jnp.concatenate([cls, x], axis=1)
    return x + self.position_embedding(height, width, x.shape[1] - 1).astype(x.dtype)


def encoder_block(*, dim: int, num_heads: int, mlp: nnx.Module, eps: float, qkv_bias=True,
                  out_bias: bool = True, layer_scale: float | None = None, dtype, rngs
                  ) -> layers.EncoderBlock:
  """The pre-norm block of ViT / DINOv2 / DINOv3 (layer_scale: initial value, or None)."""
  return layers.EncoderBlock(
      norm1=layers.layer_norm(dim, eps=eps, dtype=dtype, rngs=rngs),
      attention=layers.MultiHeadAttention(dim, num_heads, qkv_bias=qkv_bias, out_bias=out_bias,
                                          dtype=dtype, rngs=rngs),
      norm2=layers.layer_norm(dim, eps=eps, dtype=dtype, rngs=rngs),
      mlp=mlp,
      layer_scale1=None if layer_scale is None else layers.LayerScale(dim, init=layer_scale),
      layer_scale2=None if layer_scale is None else layers.LayerScale(dim, init=layer_scale))


class ViTModel(nnx.Module):

  def __init__(self, config, *, dtype=jnp.float32, rngs: nnx.Rngs, add_pooling_layer: bool = True):
    dim = config.hidden_size
    self.num_channels = config.num_channels
    self.embeddings = ClsPosEmbedding(num_channels=config.num_channels, dim=dim,
                                      image_size=config.image_size, patch_size=config.patch_size,
                                      dtype=dtype, rngs=rngs)
    self.layers = nnx.List([
        encoder_block(dim=dim, num_heads=config.num_attention_heads, eps=config.layer_norm_eps,
                      qkv_bias=config.qkv_bias, dtype=dtype, rngs=rngs,
                      mlp=layers.MLP(dim, config.intermediate_size, act=config.hidden_act,
                                     dtype=dtype, rngs=rngs))
        for _ in range(config.num_hidden_layers)])
    self.layernorm = layers.layer_norm(dim, eps=config.layer_norm_eps, dtype=dtype, rngs=rngs)
    self.pooler = (layers.linear(dim, config.pooler_output_size, dtype=dtype, rngs=rngs)
                   if add_pooling_layer else None)
    self.pooler_act = config.pooler_act

  def __call__(self, pixel_values: jax.Array, *, sublayers: bool = False,
               interpolate_pos_encoding: bool = False) -> ModelOutput:
    layers.check_pixel_values(pixel_values, num_channels=self.num_channels, model="ViTModel")
    x = self.embeddings(pixel_values, interpolate=interpolate_pos_encoding, model="ViTModel")
    x, hidden, blocks = layers.run_encoder(self.layers, x, sublayers=sublayers)
    sequence = self.layernorm(x)
    pooled = (layers.activation(self.pooler_act)(self.pooler(sequence[:, 0]))
              if self.pooler is not None else None)
    return ModelOutput(hidden_states=tuple(hidden), blocks=blocks, last_hidden_state=sequence,
                       pooler_output=pooled)


def build(config, *, dtype=jnp.float32, rngs: nnx.Rngs, add_pooling_layer: bool = True
          ) -> ViTModel:
  return ViTModel(config, dtype=dtype, rngs=rngs, add_pooling_layer=add_pooling_layer)


def build_options(params: dict, config) -> dict:
  """Task checkpoints (ViTForImageClassification) have no pooler: build without one."""
  return {"add_pooling_layer": "pooler" in params}


def convert_cls_pos_embedding(sd: StateDict) -> dict:
  """`ClsPosEmbedding` parameters from torch's `embeddings.*` (ViT and DINOv2 name them alike)."""
  return {
      "cls_token": sd.pop("embeddings.cls_token"),
      "position_embeddings": sd.pop("embeddings.position_embeddings"),
      "patch_embeddings": {"projection": sd.conv2d("embeddings.patch_embeddings.projection")},
  }


def convert_attention(sd: StateDict, prefix: str) -> dict:
  return {name: sd.linear(f"{prefix}.{name}") for name in ("q_proj", "k_proj", "v_proj", "o_proj")}


def convert(state_dict, config) -> dict:
  sd = StateDict(state_dict, prefixes=("vit",),
                 ignore=("classifier.", "decoder.", "embeddings.mask_token"))
  sd.rename(LEGACY_NAMES)
  params = {
      "embeddings": convert_cls_pos_embedding(sd),
      "layers": layer_list([{
          "norm1": sd.layer_norm(f"layers.{i}.layernorm_before"),
          "attention": convert_attention(sd, f"layers.{i}.attention"),
          "norm2": sd.layer_norm(f"layers.{i}.layernorm_after"),
          "mlp": {"fc1": sd.linear(f"layers.{i}.mlp.fc1"), "fc2": sd.linear(f"layers.{i}.mlp.fc2")},
      } for i in range(config.num_hidden_layers)]),
      "layernorm": sd.layer_norm("layernorm"),
  }
  if "pooler.dense.weight" in sd:
    params["pooler"] = sd.linear("pooler.dense")
  sd.check_consumed("vit")
  return params
