"""Tiny random Hugging Face checkpoints (config.json + safetensors + preprocessor config).

For smoke runs (`runlocal` configs), tests and benchmarks that need the real loading path
(`repsim_jax.models.from_pretrained`) without any download: the architecture of each family at a
few thousand parameters, random weights from a fixed torch seed.
"""
from __future__ import annotations

import os
from typing import Any


def _tiny_config(model_type: str, image_size: int) -> tuple[Any, Any]:
  """(transformers config, image processor) of a tiny model of `model_type`."""
  import transformers as tr
  vit_like = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, image_size=image_size,
                  patch_size=image_size // 4)
  stages = dict(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1])
  norm = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
  square = {"height": image_size, "width": image_size}
  if model_type == "vit":
    return (tr.ViTConfig(intermediate_size=64, **vit_like),
            tr.ViTImageProcessor(size=square, image_mean=[0.5] * 3, image_std=[0.5] * 3))
  if model_type == "dinov2":
    return (tr.Dinov2Config(mlp_ratio=2, **vit_like),
            tr.BitImageProcessor(size={"shortest_edge": image_size}, crop_size=square, **norm))
  if model_type == "dinov3_vit":
    return (tr.DINOv3ViTConfig(intermediate_size=64, num_register_tokens=4, **vit_like),
            tr.ViTImageProcessor(size=square, **norm))
  if model_type in ("convnext", "convnextv2", "dinov3_convnext"):
    cls = {"convnext": tr.ConvNextConfig, "convnextv2": tr.ConvNextV2Config,
           "dinov3_convnext": tr.DINOv3ConvNextConfig}[model_type]
    return (cls(image_size=image_size, **stages),
            tr.ConvNextImageProcessor(size={"shortest_edge": image_size}, crop_pct=0.875, **norm))
  if model_type == "bit":
    return (tr.BitConfig(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], num_groups=4,
                         layer_type="bottleneck", global_padding="SAME",
                         embedding_dynamic_padding=True),
            tr.BitImageProcessor(size={"shortest_edge": image_size}, crop_size=square,
                                 image_mean=[0.5] * 3, image_std=[0.5] * 3))
  if model_type == "imagegpt":
    import numpy as np
    side = 8
    clusters = np.random.default_rng(0).uniform(-1, 1, size=(16, 3)).astype(np.float32)
    return (tr.ImageGPTConfig(vocab_size=17, n_positions=side * side, n_embd=32, n_layer=4,
                              n_head=2),
            tr.ImageGPTImageProcessor(clusters=clusters, size={"height": side, "width": side}))
  raise ValueError(f"no tiny config for model_type {model_type!r}")


def tiny_random_checkpoint(model_type: str, path: str, *, image_size: int = 32,
                           seed: int = 0) -> str:
  """Writes a tiny random checkpoint of `model_type` to `path` (once) and returns `path`."""
  if os.path.exists(os.path.join(path, "config.json")):
    return path
  import torch
  import transformers as tr
  config, processor = _tiny_config(model_type, image_size)
  torch.manual_seed(seed)
  model = tr.AutoModel.from_config(config)
  os.makedirs(path, exist_ok=True)
  processor.save_pretrained(path)
  model.save_pretrained(path)  # config.json last-but-one; we test for it above
  return path
