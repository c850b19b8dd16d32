"""Input checks shared by the metric kernels: every error names the input and what was expected."""
from __future__ import annotations

from typing import Sequence

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
