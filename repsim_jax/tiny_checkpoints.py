"""Tiny random checkpoints of every family, written by our own ports (no torch, no download).

For smoke runs (`runlocal` configs) and benchmarks that need the real loading path
(`repsim_jax.models.from_pretrained`): the architecture of each family at a few thousand
parameters, saved as a *native* checkpoint (`models.loading.save_pretrained`: config.json,
preprocessor_config.json and our parameter tree with orbax), the format the demo's trained models
use. Weights are drawn in numpy from a fixed seed like transformers' own initialisation (normal
with std 0.02, norm scales 1, biases 0), so building one compiles nothing.

Tests that compare with transformers torch build their checkpoints with torch's `save_pretrained`
instead (tests/torch_parity.py); those need the test extra.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

import numpy as np

IMAGENET_NORM = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
HALF_NORM = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3}


def _tiny_config(model_type: str, image_size: int) -> tuple[Any, dict[str, Any]]:
  """(transformers config, preprocessor_config.json contents) of a tiny `model_type`."""
  import transformers as tr
  vit_like = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, image_size=image_size,
                  patch_size=image_size // 4)
  stages = dict(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1])
  square = {"height": image_size, "width": image_size}
  if model_type == "vit":
    return (tr.ViTConfig(intermediate_size=64, **vit_like),
            {"image_processor_type": "ViTImageProcessor", "size": square, **HALF_NORM})
  if model_type == "dinov2":
    return (tr.Dinov2Config(mlp_ratio=2, **vit_like),
            {"image_processor_type": "BitImageProcessor", "size": {"shortest_edge": image_size},
             "crop_size": square, **IMAGENET_NORM})
  if model_type == "dinov3_vit":
    return (tr.DINOv3ViTConfig(intermediate_size=64, num_register_tokens=4, **vit_like),
            {"image_processor_type": "ViTImageProcessor", "size": square, **IMAGENET_NORM})
  if model_type in ("deit", "vit_mae"):  # MAE: the port never masks (see models/vit.py)
    cls = tr.DeiTConfig if model_type == "deit" else tr.ViTMAEConfig
    return (cls(intermediate_size=64, **vit_like),
            {"image_processor_type": "DeiTImageProcessor", "size": square, "crop_size": square,
             **IMAGENET_NORM})
  if model_type == "clip":
    return (tr.CLIPVisionConfig(intermediate_size=64, **vit_like),
            {"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": image_size},
             "crop_size": square})
  if model_type == "siglip":
    return (tr.SiglipVisionConfig(intermediate_size=64, **vit_like),
            {"image_processor_type": "SiglipImageProcessor", "size": square})
  if model_type == "dinov2_with_registers":
    return (tr.Dinov2WithRegistersConfig(mlp_ratio=2, num_register_tokens=2, **vit_like),
            {"image_processor_type": "BitImageProcessor", "size": {"shortest_edge": image_size},
             "crop_size": square, **IMAGENET_NORM})
  if model_type == "beit":
    return (tr.BeitConfig(intermediate_size=64, use_relative_position_bias=True, **vit_like),
            {"image_processor_type": "BeitImageProcessor", "size": square, **IMAGENET_NORM})
  if model_type == "swin":
    return (tr.SwinConfig(image_size=image_size, patch_size=2, embed_dim=8, depths=[2, 2],
                          num_heads=[2, 2], window_size=4),
            {"image_processor_type": "ViTImageProcessor", "size": square, **IMAGENET_NORM})
  if model_type in ("convnext", "convnextv2", "dinov3_convnext"):
    config = tr.AutoConfig.for_model(model_type, image_size=image_size, **stages)
    return (config, {"image_processor_type": "ConvNextImageProcessor",
                     "size": {"shortest_edge": image_size}, "crop_pct": 0.875, **IMAGENET_NORM})
  if model_type == "bit":
    return (tr.BitConfig(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                         num_groups=4, layer_type="bottleneck", global_padding="SAME",
                         embedding_dynamic_padding=True),
            {"image_processor_type": "BitImageProcessor", "size": {"shortest_edge": image_size},
             "crop_size": square, **HALF_NORM})
  if model_type == "imagegpt":
    side = 8
    clusters = np.random.default_rng(0).uniform(-1, 1, size=(16, 3)).astype(np.float32)
    return (tr.ImageGPTConfig(vocab_size=17, n_positions=side * side, n_embd=32, n_layer=4,
                              n_head=2),
            {"image_processor_type": "ImageGPTImageProcessor", "clusters": clusters.tolist(),
             "size": {"height": side, "width": side}})
  raise ValueError(f"no tiny config for model_type {model_type!r}; known: vit, deit, vit_mae, "
                   f"clip, siglip, dinov2, dinov2_with_registers, dinov3_vit, beit, swin, "
                   f"convnext, convnextv2, dinov3_convnext, bit, imagegpt")


def _random_like(path: tuple, shape: tuple[int, ...], dtype, rng: np.random.Generator):
  leaf = str(path[-1])
  if leaf == "scale":  # norm scales
    return np.ones(shape, dtype)
  if leaf == "bias":
    return np.zeros(shape, dtype)
  return (0.02 * rng.standard_normal(shape)).astype(dtype)


def tiny_random_checkpoint(model_type: str, path: str, *, image_size: int = 32,
                           seed: int = 0) -> str:
  """Writes a tiny random native checkpoint of `model_type` to `path` (once); returns `path`.

  The directory appears complete or not at all (written beside it, then renamed), so an
  interrupted run never leaves a checkpoint without weights.
  """
  import jax
  import jax.numpy as jnp
  from flax import nnx

  from repsim_jax.models import loading, registry
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.exists(os.path.join(path, "config.json")):
    return path
  config, preprocessor = _tiny_config(model_type, image_size)
  family = registry.family(model_type)
  model = nnx.eval_shape(lambda: family.build(config, dtype=jnp.float32, rngs=nnx.Rngs(0)))
  rng = np.random.default_rng(seed)
  abstract = nnx.state(model, nnx.Variable).to_pure_dict()
  params = jax.tree_util.tree_map_with_path(
      lambda p, v: _random_like(tuple(getattr(k, "key", getattr(k, "idx", k)) for k in p),
                                tuple(v.shape), np.dtype(v.dtype), rng), abstract)
  loading.load_params(model, params)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path))
  try:
    loading.save_pretrained(model, config, tmp, preprocessor_config=preprocessor,
                            metadata={"tiny_random": {"model_type": model_type, "seed": seed,
                                                      "image_size": image_size}})
    try:
      os.replace(tmp, path)
    except OSError:  # another process (multi-host, shared disk) wrote the same checkpoint first
      if not os.path.exists(os.path.join(path, "config.json")):
        raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return path


def tiny_torch_checkpoint(model_type: str, path: str | os.PathLike, *, image_size: int = 32,
                          seed: int = 0) -> str:
  """The same tiny architecture of `model_type`, written by transformers torch
  (`AutoModel.from_config` + `save_pretrained`, safetensors) with its preprocessor_config.json:
  a checkpoint as downloaded ones are, for comparisons with torch (`experiments.compare_torch`'s
  runlocal, the parity tests). Needs the torch extra. Returns `path`."""
  import json

  from repsim_jax.extras import import_torch
  torch = import_torch("writing a tiny transformers torch checkpoint")
  import transformers
  config, preprocessor = _tiny_config(model_type, image_size)
  torch.manual_seed(seed)
  path = os.path.abspath(os.path.expanduser(str(path)))
  transformers.AutoModel.from_config(config).save_pretrained(path)
  with open(os.path.join(path, "preprocessor_config.json"), "w") as f:
    json.dump(preprocessor, f)
  return path
