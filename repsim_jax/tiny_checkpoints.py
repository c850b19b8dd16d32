"""Tiny random checkpoints of every family, written by our own ports (no torch, no download).

For smoke runs (`runlocal` configs) and benchmarks that need the real loading path
(`repsim_jax.models.from_pretrained`): the architecture of each family at a few thousand
parameters, saved as a *native* checkpoint (`models.loading.save_pretrained`: config.json,
preprocessor_config.json and our parameter tree with orbax), the format the demo's trained models
use. Weights are drawn in numpy from a fixed seed like transformers' own initialisation (normal
with std 0.02, norm scales 1, biases 0, batch-norm statistics 0 and 1), so building one compiles nothing.

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


def vit_sizes(image_size: int) -> dict[str, int]:
  """The tiny transformer of the ViT-like families: 4 blocks of width 32, 2 heads, 4x4 patches."""
  return dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, image_size=image_size,
              patch_size=image_size // 4)


def stage_sizes() -> dict[str, list[int]]:
  """The tiny four-stage widths and depths of the convolutional families."""
  return dict(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 2, 1])


def square(image_size: int) -> dict[str, int]:
  return {"height": image_size, "width": image_size}


def tiny_config(model_type: str, image_size: int) -> tuple[Any, dict[str, Any]]:
  """(transformers config, preprocessor_config.json contents) of a tiny `model_type`, as its
  family declares (`tiny_config` of the family module); unknown types list the known ones."""
  from repsim_jax.models import registry
  return registry.family(model_type).tiny_config(model_type, image_size)


def _random_like(path: tuple, shape: tuple[int, ...], dtype, rng: np.random.Generator):
  leaf = str(path[-1])
  if leaf in ("scale", "var"):  # norm scales, batch-norm variances
    return np.ones(shape, dtype)
  if leaf in ("bias", "mean"):  # biases, batch-norm means
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
  config, preprocessor = tiny_config(model_type, image_size)
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
  config, preprocessor = tiny_config(model_type, image_size)
  torch.manual_seed(seed)
  path = os.path.abspath(os.path.expanduser(str(path)))
  transformers.AutoModel.from_config(config).save_pretrained(path)
  with open(os.path.join(path, "preprocessor_config.json"), "w") as f:
    json.dump(preprocessor, f)
  return path
