"""transformers' activation functions (`config.hidden_act`) in jax, same formulas."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

def _gelu_exact(x):
  """x/2 (1 + erf(x / sqrt 2)): torch's exact GELU, in torch's own form.

  jax.nn.gelu(approximate=False) writes the same function with erfc(-x / sqrt 2), which XLA:CPU
  evaluates with an exp, two divisions and four selects per element; erf is a short polynomial.
  """
  return x * (0.5 * (1.0 + jax.lax.erf(x * np.sqrt(0.5).astype(x.dtype))))


def _gelu_tanh(x):
  return jax.nn.gelu(x, approximate=True)


def _quick_gelu(x):
  return x * jax.nn.sigmoid(1.702 * x)


# transformers ACT2FN names -> jax functions (same formulas as transformers.activations).
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": _gelu_exact,
    "gelu_python": _gelu_exact,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_tanh,
    "quick_gelu": _quick_gelu,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """The jax function for a transformers activation name (`config.hidden_act`)."""
  if name not in ACTIVATIONS:
    raise ValueError(f"unsupported activation {name!r}; supported: {', '.join(sorted(ACTIVATIONS))}")
  return ACTIVATIONS[name]
