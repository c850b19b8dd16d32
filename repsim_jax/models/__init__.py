"""Flax NNX ports of vision models with PyTorch (transformers) parity; see loading.from_pretrained."""
from repsim_jax.models.loading import from_pretrained, jit_forward, load_params
from repsim_jax.models.outputs import ModelOutput, block_names, forward_order
from repsim_jax.models.preprocessing import load_preprocessor

__all__ = ["from_pretrained", "jit_forward", "load_params", "load_preprocessor", "ModelOutput",
           "block_names", "forward_order"]
