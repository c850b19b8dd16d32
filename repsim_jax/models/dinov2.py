"""DINOv2 (Oquab et al. 2023) and DINOv2 with registers (Darcet et al. 2024) as transformers'
`Dinov2Model` and `Dinov2WithRegistersModel`, in Flax NNX.

model(pixel_values [B, H, W, C]) -> ModelOutput with
  hidden_states: (embeddings, block_00, ..., block_{L-1})  [B, 1 + R + N, D] (tokens: CLS, R
                 register tokens (0 for plain DINOv2), N patches; the last entry is before the
                 layernorm),
  last_hidden_state: layernorm(block_{L-1}),  pooler_output: last_hidden_state[:, 0].
Blocks: x + ls1(attn(norm1 x)), then + ls2(mlp(norm2 .)); the MLP is SwiGLU (hidden size
(int(D * mlp_ratio * 2/3) + 7) // 8 * 8) when config.use_swiglu_ffn (ViT-g), else fc-gelu-fc.
Any image size works: as in torch, the position embeddings (of CLS and the patches; registers
have none and are inserted after CLS once positions are added) are resized bicubically
(align_corners=False; A = -0.75 without antialias for DINOv2, torch's antialiased bicubic with
A = -0.5 for the register models) to (H // p, W // p) patches whenever the patch count differs
from the config's or H != W; trailing pixels that do not fill a patch are dropped.

References: Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision",
arXiv:2304.07193; Darcet et al. 2024, "Vision Transformers Need Registers", arXiv:2309.16588;
transformers/models/{dinov2,dinov2_with_registers}/modeling_*.py.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from repsim_jax import tiny_checkpoints as tiny
from repsim_jax.models import layers, parity
from repsim_jax.models.convert import StateDict, layer_list
from repsim_jax.models.outputs import ModelOutput
from repsim_jax.models.registry import ModelType
from repsim_jax.models.vit import (LEGACY_ATTENTION_NAMES, ClsPosEmbedding, convert_attention,
                                   convert_cls_pos_embedding, encoder_block)

# Pooling: mean over the patch tokens, [CLS] and the registers (from the config) left out.
MODEL_TYPES = {"dinov2": ModelType(pooling="mean_patch", prefix_tokens=1),
               "dinov2_with_registers": ModelType(pooling="mean_patch", prefix_tokens=1)}
CONVERT_VERSION = 1

LEGACY_NAMES = [
    *LEGACY_ATTENTION_NAMES,
    (r"mlp\.weights_out", "mlp.down_proj"),
]


def swiglu_hidden_size(config) -> int:
  hidden = int(config.hidden_size * config.mlp_ratio)
  return (int(hidden * 2 / 3) + 7) // 8 * 8


class Dinov2Model(nnx.Module):
  """Dinov2Model or Dinov2WithRegistersModel (config.model_type decides)."""


  def __init__(self, config, *, dtype=jnp.float32, rngs: nnx.Rngs):
    dim = config.hidden_size
    registers = config.model_type == "dinov2_with_registers"
    self.name = "Dinov2WithRegistersModel" if registers else "Dinov2Model"
    self.num_channels = config.num_channels
    self.embeddings = ClsPosEmbedding(
        num_channels=config.num_channels, dim=dim, image_size=config.image_size,
        patch_size=config.patch_size, dtype=dtype, rngs=rngs, antialias=registers,
        num_register_tokens=config.num_register_tokens if registers else 0)

    def mlp():
      if config.use_swiglu_ffn:
        return layers.GatedMLP(dim, swiglu_hidden_size(config), act="silu", dtype=dtype, rngs=rngs)
      return layers.MLP(dim, int(dim * config.mlp_ratio), act=config.hidden_act, dtype=dtype,
                        rngs=rngs)

    self.layers = nnx.List([
        encoder_block(dim=dim, num_heads=config.num_attention_heads, eps=config.layer_norm_eps,
                      qkv_bias=config.qkv_bias, layer_scale=config.layerscale_value, mlp=mlp(),
                      dtype=dtype, rngs=rngs)
        for _ in range(config.num_hidden_layers)])
    self.layernorm = layers.layer_norm(dim, eps=config.layer_norm_eps, dtype=dtype, rngs=rngs)

  def __call__(self, pixel_values: jax.Array, *, sublayers: bool = False) -> ModelOutput:
    layers.check_pixel_values(pixel_values, num_channels=self.num_channels, model=self.name)
    x = self.embeddings(pixel_values, interpolate=True, model=self.name)
    x, hidden, blocks = layers.run_encoder(self.layers, x, sublayers=sublayers)
    sequence = self.layernorm(x)
    return ModelOutput(hidden_states=tuple(hidden), blocks=blocks, last_hidden_state=sequence,
                       pooler_output=sequence[:, 0])


def build(config, *, dtype=jnp.float32, rngs: nnx.Rngs) -> Dinov2Model:
  return Dinov2Model(config, dtype=dtype, rngs=rngs)


def _convert_mlp(sd: StateDict, prefix: str, config) -> dict:
  if not config.use_swiglu_ffn:
    return {"fc1": sd.linear(f"{prefix}.fc1"), "fc2": sd.linear(f"{prefix}.fc2")}
  if f"{prefix}.weights_in.weight" in sd:  # legacy fused [gate; up] projection
    w, b = sd.pop(f"{prefix}.weights_in.weight"), sd.pop(f"{prefix}.weights_in.bias")
    h = w.shape[0] // 2
    gate = {"kernel": w[:h].T.copy(), "bias": b[:h]}
    up = {"kernel": w[h:].T.copy(), "bias": b[h:]}
  else:
    gate, up = sd.linear(f"{prefix}.gate_proj"), sd.linear(f"{prefix}.up_proj")
  return {"gate_proj": gate, "up_proj": up, "down_proj": sd.linear(f"{prefix}.down_proj")}


def convert(state_dict, config) -> dict:
  sd = StateDict(state_dict, prefixes=("dinov2", "dinov2_with_registers"),
                 ignore=("classifier.", "embeddings.mask_token"))
  sd.rename(LEGACY_NAMES)
  params = {
      "embeddings": convert_cls_pos_embedding(sd),
      "layers": layer_list([{
          "norm1": sd.layer_norm(f"encoder.layer.{i}.norm1"),
          "attention": convert_attention(sd, f"encoder.layer.{i}.attention"),
          "layer_scale1": {"lambda1": sd.pop(f"encoder.layer.{i}.layer_scale1.lambda1")},
          "norm2": sd.layer_norm(f"encoder.layer.{i}.norm2"),
          "mlp": _convert_mlp(sd, f"encoder.layer.{i}.mlp", config),
          "layer_scale2": {"lambda1": sd.pop(f"encoder.layer.{i}.layer_scale2.lambda1")},
      } for i in range(config.num_hidden_layers)]),
      "layernorm": sd.layer_norm("layernorm"),
  }
  sd.check_consumed(config.model_type)
  return params


def torch_hooks(config, *, sublayers: bool = False) -> dict[str, parity.HookSpec]:
  return parity.encoder_hooks(config, "encoder.layer.{i}", attn="layer_scale1",
                              attn_module="attention", mid="norm2", mlp="layer_scale2",
                              sublayers=sublayers)


def tiny_config(model_type: str, image_size: int):
  import transformers as tr
  sizes = dict(mlp_ratio=2, **tiny.vit_sizes(image_size))
  config = (tr.Dinov2Config(**sizes) if model_type == "dinov2" else
            tr.Dinov2WithRegistersConfig(num_register_tokens=2, **sizes))
  return config, {"image_processor_type": "BitImageProcessor",
                  "size": {"shortest_edge": image_size}, "crop_size": tiny.square(image_size),
                  **tiny.IMAGENET_NORM}
