"""HF `config.model_type` -> the family module that ports it. The modules are the registry.

Every module of `repsim_jax.models` that defines `MODEL_TYPES` is a family; it declares
everything the shared machinery needs about its models, and nothing outside it lists them
(only `configs/encoders.py` catalogues checkpoints by name):

  MODEL_TYPES: dict[str, ModelType]   the HF model types it serves, each with its defaults
  build(config, *, dtype, rngs, **options) -> nnx.Module    from a transformers config
  convert(state_dict, config) -> dict  torch names -> our parameter tree (numpy arrays)
  torch_hooks(config, *, sublayers) -> {our block name: parity.HookSpec}
                                       which torch module gives which of our outputs (parity)
  tiny_config(model_type, image_size) -> (transformers config, preprocessor_config.json dict)
                                       the family at a few thousand parameters (smoke runs,
                                       parity tests)
and optionally
  build_options(params, config) -> dict   build arguments read off a converted tree
  CONVERT_VERSION: int                    bumped when `convert` changes (invalidates caches)
  IMAGE_PROCESSORS: {name: defaults}      HF image processors the family brings
                                          (`preprocessing.from_config_dict`)
  reference_forward_kwargs(model, batch_size, image_hw, *, attentions=False) -> dict
                                          extra arguments that make the torch model compute
                                          what the port does (MAE without masking)
  synthetic_inputs(config, n, *, seed) -> (inputs, description)
                                          parity inputs when a checkpoint has no processor and
                                          the model does not take images (ImageGPT's token ids)

How to add a family: docs/design.md.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
import types


@dataclasses.dataclass(frozen=True)
class ModelType:
  """What one HF model_type declares to the shared machinery.

  pooling: default pooling of its blocks (`extraction.pooling.MODES`).
  prefix_tokens: tokens before the patches ([CLS], DeiT's distillation token); register tokens
    come on top, from the checkpoint's config (`num_register_tokens`).
  feature_maps: its hidden states are feature maps, NHWC in our port (torch's NCHW transposed
    for comparisons).
  torch_class: the transformers class that loads a checkpoint's image encoder with its hidden
    states (the vision tower of an image-text checkpoint; AutoModel otherwise).
  """
  pooling: str
  prefix_tokens: int = 0
  feature_maps: bool = False
  torch_class: str = "AutoModel"


@functools.cache
def _scan() -> dict[str, tuple[str, ModelType]]:
  """model_type -> (module name, declaration), from every family module of this package."""
  package = importlib.import_module("repsim_jax.models")
  found: dict[str, tuple[str, ModelType]] = {}
  for info in pkgutil.iter_modules(package.__path__):
    if info.ispkg or info.name.startswith("_"):
      continue
    name = f"{package.__name__}.{info.name}"
    declared = getattr(importlib.import_module(name), "MODEL_TYPES", None)
    if not isinstance(declared, dict):
      continue
    for model_type, spec in declared.items():
      if model_type in found:
        raise RuntimeError(f"model_type {model_type!r} is declared by both {found[model_type][0]} "
                           f"and {name}")
      found[model_type] = (name, spec)
  return found


def model_types() -> dict[str, ModelType]:
  """Every ported model_type and its declaration, sorted by name."""
  return {t: spec for t, (_, spec) in sorted(_scan().items())}


def find(model_type: str) -> ModelType | None:
  """The declaration of a ported model_type, or None (e.g. a torch-backend-only model)."""
  entry = _scan().get(model_type)
  return None if entry is None else entry[1]


def family(model_type: str) -> types.ModuleType:
  """The port module for a HF `model_type`; unknown types list the supported ones."""
  entry = _scan().get(model_type)
  if entry is None:
    raise ValueError(f"unknown model_type {model_type!r}; supported: "
                     f"{', '.join(sorted(_scan()))}")
  return importlib.import_module(entry[0])


def families() -> list[types.ModuleType]:
  """Every family module, once each, by module name."""
  return [importlib.import_module(name) for name in sorted({m for m, _ in _scan().values()})]


def __getattr__(name: str):
  if name == "FAMILIES":  # model_type -> module name, derived from the declarations
    return {t: module for t, (module, _) in sorted(_scan().items())}
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
