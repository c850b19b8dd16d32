"""model_type (config.json) -> the module that ports it. The module is the registry.

Each family module defines:
  MODEL_TYPES: tuple[str, ...]               HF `config.model_type` values it handles
  build(config, *, dtype, rngs) -> nnx.Module  from a transformers config object
  convert(state_dict, config) -> nested dict   torch names -> our parameter tree (numpy arrays)
"""
from __future__ import annotations

import importlib
import types

FAMILIES: dict[str, str] = {
    "vit": "repsim_jax.models.vit",
    "deit": "repsim_jax.models.vit",
    "vit_mae": "repsim_jax.models.vit",
    "clip": "repsim_jax.models.clip",
    "clip_vision_model": "repsim_jax.models.clip",
    "siglip": "repsim_jax.models.clip",
    "siglip_vision_model": "repsim_jax.models.clip",
    "dinov2": "repsim_jax.models.dinov2",
    "dinov2_with_registers": "repsim_jax.models.dinov2",
    "beit": "repsim_jax.models.beit",
    "data2vec-vision": "repsim_jax.models.beit",
    "swin": "repsim_jax.models.swin",
    "dinov3_vit": "repsim_jax.models.dinov3",
    "convnext": "repsim_jax.models.convnext",
    "convnextv2": "repsim_jax.models.convnext",
    "dinov3_convnext": "repsim_jax.models.convnext",
    "imagegpt": "repsim_jax.models.imagegpt",
    "bit": "repsim_jax.models.bit",
}


def family(model_type: str) -> types.ModuleType:
  """The port module for a HF `model_type`; unknown types list the supported ones."""
  if model_type not in FAMILIES:
    raise ValueError(f"unknown model_type {model_type!r}; supported families: "
                     f"{', '.join(sorted(FAMILIES))}")
  return importlib.import_module(FAMILIES[model_type])
