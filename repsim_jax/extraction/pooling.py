"""Pooling of block outputs to one vector (or a few tokens) per image, on device.

Transformer blocks are [B, T, D] with `num_prefix_tokens` leading non-patch tokens (CLS and
registers); convolutional blocks are NHWC [B, H, W, C].

  mean_patch  [B,T,D] -> [B,D]    mean over patch tokens T[num_prefix_tokens:]
  cls         [B,T,D] -> [B,D]    token 0
  mean        [B,T,D] -> [B,D]    mean over all tokens;  NHWC -> [B,C] (= gap)
  gap         NHWC    -> [B,C]    mean over H, W;  [B,T,D] -> mean over patch tokens (= mean_patch)
  tokens      [B,T,D] unchanged;  NHWC -> [B, H*W, C]  (per-token analyses, small N only)

Defaults: each family declares, per HF model_type, its default pooling and its prefix tokens
(`repsim_jax.models.registry.ModelType`): typically mean_patch (prefix tokens left out) for
ViT-like models with a [CLS] token, mean over all tokens for those without one, gap for
convolutional ones. Raghu et al.'s CKA uses the same per-block vectors; their localization and
per-token probes ask for `tokens`.

Reductions accumulate in float32 whatever the block dtype, so bfloat16 models pool exactly as
their float32 values would be averaged.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

MODES = ("mean_patch", "cls", "mean", "gap", "tokens")


def __getattr__(name: str):
  """DEFAULT_POOLING, PREFIX_TOKENS: model_type -> declared default, read off the families."""
  from repsim_jax.models import registry
  if name == "DEFAULT_POOLING":
    return {t: spec.pooling for t, spec in registry.model_types().items()}
  if name == "PREFIX_TOKENS":
    return {t: spec.prefix_tokens for t, spec in registry.model_types().items()}
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
  from repsim_jax.models import registry
  spec = registry.find(model_type)
  if spec is None:
    raise ValueError(f"no default pooling for model_type {model_type!r}; known: "
                     f"{sorted(registry.model_types())}; pass pooling= explicitly")
  return spec.pooling


def default_num_prefix_tokens(hf_config) -> int:
  """Tokens before the patches for a checkpoint's config.json (a dict): the prefix tokens its
  model_type declares (0 for types we do not port) plus its num_register_tokens."""
  from repsim_jax.models import registry
  spec = registry.find(hf_config.get("model_type", ""))
  declared = 0 if spec is None else spec.prefix_tokens
  return declared + int(hf_config.get("num_register_tokens", 0) or 0)
