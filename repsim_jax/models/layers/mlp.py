"""The transformer MLPs: fc1-act-fc2, and the gated (SwiGLU) one."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from repsim_jax.models.layers.activations import activation
from repsim_jax.models.layers.core import linear

class MLP(nnx.Module):
  """fc2(act(fc1(x))): the standard transformer MLP. x: [..., D] -> [..., out_dim or D]."""

  def __init__(self, dim: int, hidden: int, *, act: str = "gelu", out_dim: int | None = None,
               use_bias: bool = True, dtype=jnp.float32, rngs: nnx.Rngs):
    self.act = activation(act)
    self.fc1 = linear(dim, hidden, use_bias=use_bias, dtype=dtype, rngs=rngs)
    self.fc2 = linear(hidden, out_dim or dim, use_bias=use_bias, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fc2(self.act(self.fc1(x)))


class GatedMLP(nnx.Module):
  """down_proj(act(gate_proj(x)) * up_proj(x)): SwiGLU when act="silu" (Shazeer 2020)."""

  def __init__(self, dim: int, hidden: int, *, act: str = "silu", use_bias: bool = True,
               dtype=jnp.float32, rngs: nnx.Rngs):
    self.act = activation(act)
    self.gate_proj = linear(dim, hidden, use_bias=use_bias, dtype=dtype, rngs=rngs)
    self.up_proj = linear(dim, hidden, use_bias=use_bias, dtype=dtype, rngs=rngs)
    self.down_proj = linear(hidden, dim, use_bias=use_bias, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))
