"""Small shared pieces of the ports: the matmul precision, torch-like Linear and LayerNorm,
LayerScale, and the input check of every image model.

Every matmul and convolution runs with precision "highest", so float32 results match the torch
reference to ~1e-6; `dtype` sets the compute dtype (e.g. bfloat16) while parameters stay float32.
Layer-norm statistics are always computed in float32, as in transformers.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

PRECISION = jax.lax.Precision.HIGHEST


def linear(in_features: int, out_features: int, *, use_bias: bool = True, dtype=jnp.float32,
           rngs: nnx.Rngs) -> nnx.Linear:
  """nnx.Linear with float32 parameters, compute in `dtype`, precision "highest"."""
  return nnx.Linear(in_features, out_features, use_bias=use_bias, dtype=dtype,
                    param_dtype=jnp.float32, precision=PRECISION, rngs=rngs)


def layer_norm(dim: int, *, eps: float, use_bias: bool = True, dtype=jnp.float32,
               rngs: nnx.Rngs) -> nnx.LayerNorm:
  """torch.nn.LayerNorm: biased variance E[(x - mean)^2] (not the fast E[x^2] - mean^2)."""
  return nnx.LayerNorm(dim, epsilon=eps, use_bias=use_bias, use_fast_variance=False, dtype=dtype,
                       param_dtype=jnp.float32, rngs=rngs)


class LayerScale(nnx.Module):
  """x * lambda1 per channel (Touvron et al. 2021, CaiT)."""

  def __init__(self, dim: int, *, init: float = 1.0):
    self.lambda1 = nnx.Param(jnp.full((dim,), init, jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    return x * self.lambda1[...].astype(x.dtype)


def check_pixel_values(pixel_values: jax.Array, *, num_channels: int, model: str) -> None:
  """Clear errors for wrong rank, channel count or dtype of NHWC float images."""
  shape = tuple(pixel_values.shape)
  if len(shape) != 4:
    raise ValueError(f"{model}: pixel_values must be NHWC [batch, height, width, {num_channels}], "
                     f"got shape {shape}")
  if shape[-1] != num_channels:
    hint = " (looks like NCHW; transpose to NHWC)" if shape[1] == num_channels else ""
    raise ValueError(f"{model}: pixel_values must have {num_channels} channels in the last axis "
                     f"(NHWC), got shape {shape}{hint}")
  if not jnp.issubdtype(pixel_values.dtype, jnp.floating):
    raise TypeError(f"{model}: pixel_values must be floating point (preprocessed, normalised "
                    f"images), got dtype {pixel_values.dtype}")
