"""Input checks of the CKA-family kernels (CKA, CCA, Procrustes, mutual k-NN).

Unlike `_validate` (numpy, used by the II kernels) these keep jax arrays on device, skip value
checks for tracers (the kernels stay jit-friendly), and leave lazy array-likes (memmaps) unread.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.metrics import _validate


def float_dtype(dtype: Any) -> np.dtype:
  """float64 stays float64 only when jax x64 is on; everything else computes in float32."""
  if jax.config.jax_enable_x64 and np.dtype(dtype) == np.float64:
    return np.dtype(np.float64)
  return np.dtype(np.float32)


def as_layer(x: Any, name: str) -> jax.Array:
  """`x` as a float jax array `[n, d]`; raises naming `name` on a wrong rank or non-finite values.

  The finiteness check is skipped for tracers so that the kernels stay usable under `jax.jit`.
  """
  if isinstance(x, jax.core.Tracer):
    if x.ndim != 2:
      raise ValueError(f"{name}: expected a 2-D array [n, d], got shape {x.shape}")
    return x.astype(float_dtype(x.dtype))
  arr = jnp.asarray(x)
  if arr.ndim != 2:
    raise ValueError(f"{name}: expected a 2-D array [n, d], got shape {arr.shape}")
  arr = arr.astype(float_dtype(arr.dtype))
  if not bool(jnp.all(jnp.isfinite(arr))):
    raise ValueError(f"{name}: contains NaN or infinite values")
  return arr


def check_same_n(shapes: Sequence[tuple[int, ...]], names: Sequence[str], *, min_n: int,
                 why: str) -> int:
  """All inputs must share the number of rows n >= min_n; returns n."""
  n = _validate.check_same_n([np.empty((s[0], 0)) for s in shapes], names)
  if n < min_n:
    raise ValueError(f"{names[0]}: n={n} rows, but {why} needs n >= {min_n}")
  return n


def as_layer_list(layers: Sequence[Any], name: str) -> list[Any]:
  """A non-empty sequence of `[n, d]` arrays (a single 2-D array is rejected: ambiguous)."""
  if hasattr(layers, "ndim"):
    raise ValueError(f"{name}: expected a sequence of [n, d] arrays (one per layer), got one "
                     f"array of shape {layers.shape}; wrap it in a list")
  layers = list(layers)
  if not layers:
    raise ValueError(f"{name}: expected at least one layer")
  for i, x in enumerate(layers):
    if len(x.shape) != 2:
      raise ValueError(f"{name}[{i}]: expected a 2-D array [n, d], got shape {tuple(x.shape)}")
  return layers


def layer_lists(layers_a: Sequence[Any], layers_b: Sequence[Any], *, min_n: int,
                why: str) -> tuple[list[jax.Array], list[jax.Array], bool]:
  """Checked jax layer lists for a [La, Lb] matrix; `same` when layers_b is layers_a."""
  same = layers_b is layers_a
  la = [as_layer(x, f"layers_a[{i}]") for i, x in enumerate(as_layer_list(layers_a, "layers_a"))]
  lb = la if same else [as_layer(x, f"layers_b[{j}]")
                        for j, x in enumerate(as_layer_list(layers_b, "layers_b"))]
  names = [f"layers_a[{i}]" for i in range(len(la))] + [f"layers_b[{j}]" for j in range(len(lb))]
  check_same_n([x.shape for x in la + lb], names, min_n=min_n, why=why)
  return la, lb, same
