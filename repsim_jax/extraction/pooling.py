"""Pooling of block outputs to one vector (or a few tokens) per image, on device.

Transformer blocks are [B, T, D] with `num_prefix_tokens` leading non-patch tokens (CLS and
registers); convolutional blocks are NHWC [B, H, W, C].

  mean_patch  [B,T,D] -> [B,D]    mean over patch tokens T[num_prefix_tokens:]
  cls         [B,T,D] -> [B,D]    token 0
  mean        [B,T,D] -> [B,D]    mean over all tokens;  NHWC -> [B,C] (= gap)
  gap         NHWC    -> [B,C]    mean over H, W;  [B,T,D] -> mean over patch tokens (= mean_patch)
  tokens      [B,T,D] unchanged;  NHWC -> [B, H*W, C]  (per-token analyses, small N only)

Per-family defaults (`DEFAULT_POOLING`): the ViT-like families with a [CLS] token (ViT, DeiT,
MAE, CLIP, DINOv2 with or without registers, DINOv3, BEiT, Data2Vec-vision) -> mean_patch, their
prefix tokens (`default_num_prefix_tokens`: [CLS], DeiT's distillation token, the register tokens
read from the checkpoint config) left out; BEiT's own pooler is this mean too. SigLIP and Swin
have no [CLS] -> mean over all tokens (Swin's pooler). ImageGPT -> mean (no CLS token; the iGPT
paper's linear probes average the sequence); ConvNeXt, ConvNeXt V2, DINOv3-ConvNeXt, BiT -> gap.
Raghu et al.'s CKA uses the same per-block vectors; their localization and per-token probes
ask for `tokens`.

Reductions accumulate in float32 whatever the block dtype, so bfloat16 models pool exactly as
their float32 values would be averaged.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

MODES = ("mean_patch", "cls", "mean", "gap", "tokens")

# HF model_type -> prefix tokens before the patches ([CLS], DeiT's distillation token); register
# tokens come on top, from the config (`default_num_prefix_tokens`).
PREFIX_TOKENS = {
    "vit": 1, "deit": 2, "vit_mae": 1, "clip": 1, "clip_vision_model": 1, "dinov2": 1,
    "dinov2_with_registers": 1, "dinov3_vit": 1, "beit": 1, "data2vec-vision": 1,
}

DEFAULT_POOLING = {
    **{model_type: "mean_patch" for model_type in PREFIX_TOKENS},
    "siglip": "mean", "siglip_vision_model": "mean", "swin": "mean",
    "imagegpt": "mean",
    "convnext": "gap", "convnextv2": "gap", "dinov3_convnext": "gap", "bit": "gap",
}


def pool(x: jax.Array, mode: str, *, num_prefix_tokens: int = 1) -> jax.Array:
  """Pools one block output; see the module docstring for the modes and shapes."""
  if mode not in MODES:
    raise ValueError(f"unknown pooling {mode!r}; expected one of {MODES}")
  if x.ndim == 4:  # NHWC
    if mode in ("gap", "mean"):
      return jnp.mean(x, axis=(1, 2), dtype=jnp.float32)
    if mode == "tokens":
      return x.reshape(x.shape[0], x.shape[1] * x.shape[2], x.shape[3])
    raise ValueError(f"pooling {mode!r} needs tokens [B, T, D]; got a conv map NHWC {x.shape} "
                     f"(use 'gap' or 'tokens')")
  if x.ndim != 3:
    raise ValueError(f"pooling expects [B, T, D] or NHWC, got shape {x.shape}")
  if mode == "tokens":
    return x
  if mode == "cls":
    return x[:, 0].astype(jnp.float32)
  if mode == "mean":
    return jnp.mean(x, axis=1, dtype=jnp.float32)
  if not 0 <= num_prefix_tokens < x.shape[1]:
    raise ValueError(f"num_prefix_tokens={num_prefix_tokens} leaves no patch tokens in {x.shape}")
  return jnp.mean(x[:, num_prefix_tokens:], axis=1, dtype=jnp.float32)


def default_pooling(model_type: str) -> str:
  """The documented default pooling for a HF `model_type`."""
  if model_type not in DEFAULT_POOLING:
    raise ValueError(f"no default pooling for model_type {model_type!r}; known: "
                     f"{sorted(DEFAULT_POOLING)}; pass pooling= explicitly")
  return DEFAULT_POOLING[model_type]


def default_num_prefix_tokens(hf_config) -> int:
  """Tokens before the patches for a checkpoint's config.json (a dict): [CLS] and DeiT's
  distillation token by model_type (`PREFIX_TOKENS`, 0 for other types) plus its
  num_register_tokens (DINOv2 with registers, DINOv3)."""
  model_type = hf_config.get("model_type", "")
  return PREFIX_TOKENS.get(model_type, 0) + int(hf_config.get("num_register_tokens", 0) or 0)
