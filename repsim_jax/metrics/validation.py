"""Input checks shared by the metric kernels: every error names the input and what was expected.

Two families, for the two kinds of kernels:

* host checks (`as_representation`, `as_layers`, `check_same_n`, `check_k`, `duplicate_count`):
  numpy in, numpy out; the II and k-NN kernels stream blocks from host arrays, so the values are
  checked here once (NaN / inf, shapes, k against n);
* device checks (`as_layer`, `as_layer_list`, `layer_lists`, `check_rows`, `float_dtype`): the
  CKA family (CKA, CCA, Procrustes, mutual k-NN) keeps jax arrays on device, skips value checks
  for tracers (the kernels stay jit-friendly), and leaves lazy array-likes (memmaps) unread.
"""
from __future__ import annotations

import collections.abc
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def as_representation(x, name: str) -> np.ndarray:
  """`x` as a 2-D float array `[n, d]`; integers are cast, NaN/inf and bad shapes are refused."""
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{name}: expected a 2-D array [n, d], got shape {x.shape}")
  if x.shape[0] == 0 or x.shape[1] == 0:
    raise ValueError(f"{name}: expected a non-empty array [n, d], got shape {x.shape}")
  if not np.issubdtype(x.dtype, np.floating):
    if not (np.issubdtype(x.dtype, np.integer) or x.dtype == bool):
      raise ValueError(f"{name}: expected a numeric array, got dtype {x.dtype}")
    x = x.astype(np.float32)
  bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
  if bad:
    n_nan = int(np.isnan(x).sum())
    raise ValueError(f"{name}: {bad} non-finite values ({n_nan} NaN, {bad - n_nan} inf) in an "
                     f"array of shape {x.shape}")
  return x


def as_layers(layers, name: str) -> list[np.ndarray]:
  """A sequence of `[n, d_l]` arrays with the same n; errors name the layer."""
  if isinstance(layers, np.ndarray) and layers.ndim == 2:
    raise ValueError(f"{name}: expected a sequence of [n, d] arrays (one per layer), got a "
                     f"single 2-D array; wrap it in a list")
  layers = [as_representation(x, f"{name}[{i}]") for i, x in enumerate(layers)]
  if not layers:
    raise ValueError(f"{name}: expected at least one layer")
  check_same_n(layers, [f"{name}[{i}]" for i in range(len(layers))])
  return layers


def is_lazy(layers) -> bool:
  """True for a sequence of layers that reads each layer when indexed (e.g.
  `repsim_jax.extraction.representations.StoreLayers`) rather than a list, tuple or array."""
  return (isinstance(layers, collections.abc.Sequence)
          and not isinstance(layers, (list, tuple, str, np.ndarray)))


class LazyLayers(collections.abc.Sequence):
  """Layers read one at a time, when indexed, each checked as `as_representation` (errors name
  `name[i]`): the II kernels take these when every layer at once would not fit in memory.

  `layers` is any sequence whose items are [n, d] arrays; its optional attributes `num_rows` and
  `widths` (per layer) give n and the widths without reading a layer."""

  def __init__(self, layers: Sequence, name: str):
    if isinstance(layers, LazyLayers):
      layers = layers.layers
    if len(layers) == 0:
      raise ValueError(f"{name}: expected at least one layer")
    self.layers, self.name = layers, name
    rows = getattr(layers, "num_rows", None)
    self.n = int(rows) if rows is not None else int(np.shape(layers[0])[0])

  def __len__(self) -> int:
    return len(self.layers)

  def __getitem__(self, i):
    if isinstance(i, slice):
      return [self[j] for j in range(len(self))[i]]
    x = as_representation(self.layers[i], f"{self.name}[{i}]")
    if x.shape[0] != self.n:
      raise ValueError(f"all representations must have the same number of points n; got "
                       f"{self.name}[0]: {self.n}, {self.name}[{i}]: {x.shape[0]}")
    return x

  def width(self, i: int) -> int:
    """Layer i's width, read from `widths` when the source has it (else by reading the layer)."""
    widths = getattr(self.layers, "widths", None)
    return int(widths[i]) if widths is not None else int(np.shape(self.layers[i])[1])


def check_same_n(arrays: Sequence[np.ndarray], names: Sequence[str]) -> int:
  ns = {int(np.shape(x)[0]) for x in arrays}
  if len(ns) > 1:
    detail = ", ".join(f"{nm}: {np.shape(x)[0]}" for nm, x in zip(names, arrays))
    raise ValueError(f"all representations must have the same number of points n; got {detail}")
  return ns.pop()


def check_k(k: int, n: int, name: str = "k") -> None:
  if int(k) != k or k < 1:
    raise ValueError(f"{name} must be a positive integer, got {k!r}")
  if k > n - 1:
    raise ValueError(f"{name}={k} needs at least {k + 1} points, got n={n}")


def duplicate_count(x: np.ndarray) -> int:
  """How many rows of `x` have an exact copy elsewhere in `x` (all members of each group)."""
  rows = np.ascontiguousarray(x).view(np.dtype((np.void, x.dtype.itemsize * x.shape[1])))
  _, inverse, counts = np.unique(rows.ravel(), return_inverse=True, return_counts=True)
  return int(np.sum(counts[inverse] > 1))


# ----------------------------------------------------------------------------- device checks


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


def check_rows(shapes: Sequence[tuple[int, ...]], names: Sequence[str], *, min_n: int,
                 why: str) -> int:
  """All inputs must share the number of rows n >= min_n; returns n."""
  n = check_same_n([np.empty((s[0], 0)) for s in shapes], names)
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
  check_rows([x.shape for x in la + lb], names, min_n=min_n, why=why)
  return la, lb, same
