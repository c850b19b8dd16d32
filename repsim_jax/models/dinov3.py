"""DINOv3 ViT (Siméoni et al. 2025) as transformers' `DINOv3ViTModel`, in Flax NNX.

model(pixel_values [B, H, W, C]) -> ModelOutput with
  hidden_states: (embeddings, block_00, ..., block_{L-1})  [B, 1 + R + N, D] (tokens: CLS, R
                 register tokens, N = (H//p) * (W//p) patches; the last entry is before the norm),
  last_hidden_state: norm(block_{L-1}),  pooler_output: last_hidden_state[:, 0].
There are no absolute position embeddings: 2-D rotary embeddings (RoPE) rotate the queries and
keys of the patch tokens only (CLS and registers are not rotated). Patch centres are placed on
[-1, 1] per axis, angles = 2 pi * coord * rope_theta^(-4 i / head_dim), y frequencies then x,
tiled twice. So any image size works with no interpolation (as torch; trailing pixels that do
not fill a patch are dropped). The MLP is gated (SwiGLU for hidden_act "silu") when
config.use_gated_mlp, else up_proj-act-down_proj; both sublayer branches have a layer scale.

References: Siméoni et al. 2025, "DINOv3", arXiv:2508.10104; Su et al. 2021, "RoFormer",
arXiv:2104.09864; transformers/models/dinov3_vit/modeling_dinov3_vit.py.
"""
from __future__ import annotations

import math

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
from repsim_jax.models.vit import convert_attention, encoder_block

# Pooling: mean over the patch tokens, [CLS] and the registers (from the config) left out.
MODEL_TYPES = {"dinov3_vit": ModelType(pooling="mean_patch", prefix_tokens=1)}
CONVERT_VERSION = 1

# DINOv3ViTImageProcessor (DINOv3 ViT and ConvNeXt): rescale to [0, 1] first, then resize the
# float image (bilinear, antialiased), then normalize. It exists only as a torchvision processor:
# we follow its order of operations and torch's interpolate(antialias=True) (PIL's filter).
IMAGE_PROCESSORS = {
    "DINOv3ViTImageProcessor": dict(
        resample=2, image_mean=pp.IMAGENET_DEFAULT_MEAN, image_std=pp.IMAGENET_DEFAULT_STD,
        size={"height": 224, "width": 224}, do_resize=True, do_rescale=True, do_normalize=True,
        rescale_before_resize=True),
}

# Hub checkpoints name the encoder layers "layer.N"; DINOv3ViTModel has them under "model.".
LEGACY_NAMES = [(r"^layer\.", "model.layer.")]


def rope_cos_sin(num_patches_h: int, num_patches_w: int, *, head_dim: int, theta: float
                 ) -> tuple[np.ndarray, np.ndarray]:
  """cos, sin [h*w, head_dim] (float32, computed as torch does in float32)."""
  inv_freq = (np.float32(1) / np.float32(theta) ** np.arange(0, 1, 4 / head_dim, dtype=np.float32)
              ).astype(np.float32)
  coords_h = np.arange(0.5, num_patches_h, dtype=np.float32) / np.float32(num_patches_h)
  coords_w = np.arange(0.5, num_patches_w, dtype=np.float32) / np.float32(num_patches_w)
  coords = np.stack(np.meshgrid(coords_h, coords_w, indexing="ij"), axis=-1).reshape(-1, 2)
  coords = np.float32(2.0) * coords - np.float32(1.0)
  angles = np.float32(2 * math.pi) * coords[:, :, None] * inv_freq[None, None, :]
  angles = np.tile(angles.reshape(angles.shape[0], -1), (1, 2)).astype(np.float32)
  return np.cos(angles), np.sin(angles)


class DINOv3ViTModel(nnx.Module):

  def __init__(self, config, *, dtype=jnp.float32, rngs: nnx.Rngs):
    dim = config.hidden_size
    self.dtype = dtype
    self.num_channels = config.num_channels
    self.head_dim = dim // config.num_attention_heads
    self.rope_theta = float(config.rope_theta)
    self.patch_embeddings = layers.PatchEmbedding(config.num_channels, dim, config.patch_size,
                                                  dtype=dtype, rngs=rngs)
    self.cls_token = nnx.Param(jnp.zeros((1, 1, dim), jnp.float32))
    self.register_tokens = nnx.Param(jnp.zeros((1, config.num_register_tokens, dim), jnp.float32))

    def mlp():
      if config.use_gated_mlp:
        return layers.GatedMLP(dim, config.intermediate_size, act=config.hidden_act,
                               use_bias=config.mlp_bias, dtype=dtype, rngs=rngs)
      return layers.MLP(dim, config.intermediate_size, act=config.hidden_act,
                        use_bias=config.mlp_bias, dtype=dtype, rngs=rngs)

    self.layers = nnx.List([
        encoder_block(dim=dim, num_heads=config.num_attention_heads, eps=config.layer_norm_eps,
                      qkv_bias=(config.query_bias, config.key_bias, config.value_bias),
                      out_bias=config.proj_bias, layer_scale=config.layerscale_value, mlp=mlp(),
                      dtype=dtype, rngs=rngs)
        for _ in range(config.num_hidden_layers)])
    self.norm = layers.layer_norm(dim, eps=config.layer_norm_eps, dtype=dtype, rngs=rngs)

  def __call__(self, pixel_values: jax.Array, *, sublayers: bool = False) -> ModelOutput:
    layers.check_pixel_values(pixel_values, num_channels=self.num_channels, model="DINOv3ViTModel")
    patches, (h, w) = self.patch_embeddings(pixel_values.astype(self.dtype))
    b, _, d = patches.shape
    prefix = jnp.concatenate([self.cls_token[...], self.register_tokens[...]], axis=1)
    x = jnp.concatenate([jnp.broadcast_to(prefix.astype(patches.dtype), (b,) + prefix.shape[1:]),
                         patches], axis=1)
    cos, sin = (jnp.asarray(a) for a in rope_cos_sin(h, w, head_dim=self.head_dim,
                                                     theta=self.rope_theta))
    num_prefix = prefix.shape[1]

    def rope(q, k):  # rotate the patch tokens only: [B, H, T, hd]
      def rotate(y):
        return jnp.concatenate([y[:, :, :num_prefix],
                                layers.apply_rotary(y[:, :, num_prefix:], cos, sin)], axis=2)
      return rotate(q), rotate(k)

    x, hidden, blocks = layers.run_encoder(self.layers, x, sublayers=sublayers, rope=rope)
    sequence = self.norm(x)
    return ModelOutput(hidden_states=tuple(hidden), blocks=blocks, last_hidden_state=sequence,
                       pooler_output=sequence[:, 0])


def build(config, *, dtype=jnp.float32, rngs: nnx.Rngs) -> DINOv3ViTModel:
  return DINOv3ViTModel(config, dtype=dtype, rngs=rngs)


def convert(state_dict, config) -> dict:
  sd = StateDict(state_dict, prefixes=("model", "dinov3"),
                 ignore=("classifier.", "embeddings.mask_token"))
  sd.rename(LEGACY_NAMES)
  dim = config.hidden_size

  def mlp(prefix: str) -> dict:
    if config.use_gated_mlp:
      return {n: sd.linear(f"{prefix}.{n}") for n in ("gate_proj", "up_proj", "down_proj")}
    return {"fc1": sd.linear(f"{prefix}.up_proj"), "fc2": sd.linear(f"{prefix}.down_proj")}

  registers = (sd.pop("embeddings.register_tokens") if "embeddings.register_tokens" in sd
               else np.zeros((1, 0, dim), np.float32))
  params = {
      "patch_embeddings": {"projection": sd.conv2d("embeddings.patch_embeddings")},
      "cls_token": sd.pop("embeddings.cls_token"),
      "register_tokens": registers,
      "layers": layer_list([{
          "norm1": sd.layer_norm(f"model.layer.{i}.norm1"),
          "attention": convert_attention(sd, f"model.layer.{i}.attention"),
          "layer_scale1": {"lambda1": sd.pop(f"model.layer.{i}.layer_scale1.lambda1")},
          "norm2": sd.layer_norm(f"model.layer.{i}.norm2"),
          "mlp": mlp(f"model.layer.{i}.mlp"),
          "layer_scale2": {"lambda1": sd.pop(f"model.layer.{i}.layer_scale2.lambda1")},
      } for i in range(config.num_hidden_layers)]),
      "norm": sd.layer_norm("norm"),
  }
  sd.check_consumed("dinov3_vit")
  return params


def torch_hooks(config, *, sublayers: bool = False) -> dict[str, parity.HookSpec]:
  return parity.encoder_hooks(config, "model.layer.{i}", attn="layer_scale1",
                              attn_module="attention", mid="norm2", mlp="layer_scale2",
                              sublayers=sublayers)


def tiny_config(model_type: str, image_size: int):
  import transformers as tr
  return (tr.DINOv3ViTConfig(intermediate_size=64, num_register_tokens=4,
                             **tiny.vit_sizes(image_size)),
          {"image_processor_type": "ViTImageProcessor", "size": tiny.square(image_size),
           **tiny.IMAGENET_NORM})
