"""A checkpoint's port vs its transformers torch model, layer by layer (experiments.compare_torch).

`compare_checkpoint(path)`:
  1. resolves the checkpoint (directory or cached hub id), loads our port (`from_pretrained`) and
     the torch reference (`transformers.AutoModel`, or the vision tower of a CLIP / SigLIP
     checkpoint: `torch_backend.vision_model_class`; eager attention, float32, eval mode; MAE
     without masking);
  2. makes `n_images` deterministic synthetic RGB images (smooth colour gradients, a few
     sinusoids and noise, uint8, `image_size` square) and preprocesses them once with the
     checkpoint's own processor (`preprocessing.load_preprocessor`); both models get the same
     array (NHWC for ours, NCHW for torch; ImageGPT: the same token ids). A checkpoint without
     preprocessor_config.json gets images at the config's image size normalised with mean = std
     = 0.5 (ImageGPT: random cluster ids), and the report says so;
  3. captures every hidden state, last_hidden_state, pooler_output and every block (with
     `sublayers`: attention/MLP branches, residual stream, attention probabilities) on both
     sides with forward hooks and returns one `parity.Row` per tensor.

Error measure (parity.compare): max_abs = max|ours - torch|, rel = max_abs / max|torch|; a row
fails when max_abs > rtol * max|torch| + atol.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

from repsim_jax.models import parity, preprocessing, registry

CONV_TYPES = ("convnext", "convnextv2", "dinov3_convnext", "bit")

# model_type -> (block path, attention-branch module, attention module, module whose input is
# the residual stream after the attention add, MLP-branch module), paths of the base torch model
# (branches may be parity.HookSpec tuples relative to the block).
_VIT = ("layers.{i}", "attention", "attention", "layernorm_after", "mlp")
_CLIP = ("encoder.layers.{i}", "self_attn", "self_attn", "layer_norm2", "mlp")
_DINOV2 = ("encoder.layer.{i}", "layer_scale1", "attention", "norm2", "layer_scale2")
# BEiT scales both branches by lambda_1 / lambda_2 outside any module; drop_path (identity at
# inference) receives each scaled branch, the attention one on its first call.
_BEIT_BRANCHES = (("drop_path", "input", 0), "attention", "layernorm_after", ("drop_path", "input", 1))
_TRANSFORMER_PATHS = {
    "vit": _VIT, "deit": _VIT, "vit_mae": _VIT,
    "clip": _CLIP, "clip_vision_model": _CLIP, "siglip": _CLIP, "siglip_vision_model": _CLIP,
    "dinov2": _DINOV2, "dinov2_with_registers": _DINOV2,
    "dinov3_vit": ("model.layer.{i}", "layer_scale1", "attention", "norm2", "layer_scale2"),
    "beit": ("layers.{i}", *_BEIT_BRANCHES),
    "data2vec-vision": ("encoder.layer.{i}", *_BEIT_BRANCHES),
}


def torch_hooks(config: Any, *, sublayers: bool = False) -> dict[str, parity.HookSpec]:
  """Our block names -> torch submodules of the base model (see parity.HookSpec).

  A family module may define its own `torch_hooks(config, *, sublayers)` (the convolutional
  families and ImageGPT do); it wins over the transformer table here.
  """
  model_type = config.model_type
  fam = registry.family(model_type)
  if hasattr(fam, "torch_hooks"):
    return fam.torch_hooks(config, sublayers=sublayers)
  if model_type not in _TRANSFORMER_PATHS:
    raise ValueError(f"no torch hook table for model_type {model_type!r}")
  layer, attn, attn_module, mid, mlp = _TRANSFORMER_PATHS[model_type]
  # a full CLIP / SigLIP checkpoint is compared through its vision tower
  num_layers = getattr(config, "vision_config", config).num_hidden_layers
  return {"embeddings": (layer.format(i=0), "input"),
          **parity.transformer_hooks(num_layers, layer, attn=attn,
                                     attn_module=attn_module, mid=mid, mlp=mlp,
                                     sublayers=sublayers)}


def forward_kwargs(reference, inputs: np.ndarray, sublayers: bool) -> dict[str, Any]:
  """Forward arguments of the torch reference: MAE without masking (see
  torch_backend.reference_forward_kwargs); Data2Vec-vision returns its attention probabilities
  only when asked."""
  from repsim_jax.models import torch_backend
  image_hw = tuple(inputs.shape[1:3]) if inputs.ndim == 4 else None  # NHWC images
  kwargs = torch_backend.reference_forward_kwargs(reference, len(inputs), image_hw)
  if sublayers and reference.config.model_type == "data2vec-vision":
    kwargs["output_attentions"] = True
  return kwargs


def synthetic_images(n: int, size: int, *, seed: int = 0) -> list[np.ndarray]:
  """n uint8 [size, size, 3] images: colour gradients + sinusoids + noise (deterministic)."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size] / size
  images = []
  for _ in range(n):
    phase, freq = rng.uniform(0, 2 * np.pi, 3), rng.uniform(1, 8, 3)
    channels = [0.5 + 0.25 * np.sin(2 * np.pi * freq[c] * (xx * np.cos(phase[c]) + yy * np.sin(phase[c])))
                + 0.25 * (xx if c == 0 else yy if c == 1 else 1 - xx) for c in range(3)]
    image = np.stack(channels, -1) * 255 + rng.normal(0, 12, (size, size, 3))
    images.append(np.clip(image, 0, 255).astype(np.uint8))
  return images


@dataclasses.dataclass
class Comparison:
  rows: list[parity.Row]
  model_type: str
  checkpoint: str
  inputs: str  # how the inputs were made

  @property
  def ok(self) -> bool:
    return all(r.ok for r in self.rows)


def _config_image_size(config: Any, default: int) -> int:
  size = getattr(config, "image_size", None)
  if isinstance(size, (list, tuple)):
    size = size[0]
  return int(size or default)


def make_inputs(ckpt: str, config: Any, *, n_images: int, image_size: int | None, seed: int
                ) -> tuple[np.ndarray, str]:
  """The preprocessed batch both models get, and a line describing it."""
  size = image_size or 256
  if os.path.isfile(os.path.join(ckpt, "preprocessor_config.json")):
    processor = preprocessing.load_preprocessor(ckpt)
    batch = processor(synthetic_images(n_images, size, seed=seed))
    return batch, f"{n_images} synthetic {size}x{size} images through {processor.name}"
  if config.model_type == "imagegpt":
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, config.vocab_size - 1, (n_images, config.n_positions))
    return ids, "random cluster ids (no preprocessor_config.json)"
  size = image_size or _config_image_size(getattr(config, "vision_config", config), 224)
  images = np.stack(synthetic_images(n_images, size, seed=seed)).astype(np.float32)
  return ((images / 255 - 0.5) / 0.5).astype(np.float32), (
      f"{n_images} synthetic {size}x{size} images, (x/255 - 0.5)/0.5 (no preprocessor_config.json)")


def compare_checkpoint(path_or_hub_id: str, *, n_images: int = 4, image_size: int | None = None,
                       rtol: float = 1e-4, atol: float = 1e-6, sublayers: bool = False,
                       dtype: Any = None, seed: int = 0, use_cache: bool = True,
                       cache_dir: str | None = None) -> Comparison:
  """Runs both models on the same preprocessed inputs; see the module docstring."""
  import jax.numpy as jnp
  from repsim_jax.extras import import_torch
  torch = import_torch("comparing a port with its transformers torch model")
  import transformers

  from repsim_jax.models import loading, torch_backend

  ckpt = str(loading.resolve_checkpoint(path_or_hub_id))
  config = transformers.AutoConfig.from_pretrained(ckpt)
  ours = loading.from_pretrained(ckpt, dtype=dtype or jnp.float32, use_cache=use_cache,
                                 cache_dir=cache_dir)
  reference = torch_backend.vision_model_class(config.model_type).from_pretrained(
      ckpt, attn_implementation="eager", dtype=torch.float32).eval()
  inputs, how = make_inputs(ckpt, config, n_images=n_images, image_size=image_size, seed=seed)

  out = parity.flatten_output(loading.jit_forward(ours, sublayers=sublayers)(jnp.asarray(inputs)))
  conv = config.model_type in CONV_TYPES
  torch_inputs = torch.from_numpy(np.ascontiguousarray(
      inputs if inputs.ndim == 2 else inputs.transpose(0, 3, 1, 2)))
  ref = parity.run_torch(reference, torch_inputs, torch_hooks(config, sublayers=sublayers),
                         channels_last=conv, **forward_kwargs(reference, inputs, sublayers))
  if "pooler_output" not in out:
    # A task checkpoint has no pooler weights: our port omits it, AutoModel adds a random one.
    ref.pop("pooler_output", None)
  rows = parity.compare({k: np.asarray(v, np.float32) for k, v in out.items()}, ref, rtol=rtol,
                        atol=atol)
  return Comparison(rows=rows, model_type=config.model_type, checkpoint=ckpt, inputs=how)
