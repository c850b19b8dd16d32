"""Input checks shared by the metric kernels: every error names the input and what was expected.

Two families, for the two kinds of kernels:

* host checks (`as_representation`, `as_layers`, `check_same_n`, `check_k`, `duplicate_count`):
  numpy in, numpy out; the II and k-NN kernels stream blocks from host arrays, so the values are
  checked here once (NaN / inf, shapes, k against n);
* resampling checks (`check_count`, `check_min_n`, `warn_degenerate_layers`): the bootstrap,
  subset and permutation entry points refuse too few replicates or points, and say once per call
  when a layer has repeated points or no spread (what the value then means);
* device checks (`as_layer`, `as_layer_list`, `layer_lists`, `check_rows`, `float_dtype`): the
  CKA family (CKA, CCA, Procrustes, mutual k-NN) keeps jax arrays on device, skips value checks
  for tracers (the kernels stay jit-friendly), and leaves lazy array-likes (memmaps) unread.
"""
from __future__ import annotations

import collections.abc
import contextlib
import warnings
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


# Fewest bootstrap replicates an interval is read from: the standard error of the replicates'
# standard deviation is ~1 / sqrt(2 (B - 1)) of it, 16% at B = 20 (and 5% at the default 200);
# below 20 the 2.5% / 97.5% quantiles are interpolated between the two most extreme replicates.
MIN_BOOT = 20
# Fewest permutations of a permutation test: with P permutations the smallest p-value is
# 1 / (P + 1) and the critical value is read off P null values; below 10 no p-value can fall
# under 0.1 (P = 1 gives p = 0.5 whatever the data).
MIN_PERM = 10
# Fewest points an interval is computed from (bootstrap, half-samples): below it a resample often
# holds too few distinct images (N = 5: a replicate of 5 copies of one image ~1 draw in 600).
MIN_INTERVAL_N = 20
# A layer whose spread (root mean square deviation from its mean row) is at most this fraction of
# its root mean square value is "near-constant": in float32 its rows differ by a few rounding steps
# (float32 resolution is 6e-8 of a value), so distances and Gram entries are rounding noise.
NEAR_CONSTANT_RTOL = 1e-5


def check_count(count, name: str, minimum: int, why: str = "") -> int:
  """`count` (replicates, permutations) as an int >= minimum, else an error naming both."""
  if int(count) != count or count < minimum:
    raise ValueError(f"{name}={count}: expected an integer >= {minimum}" + (f" ({why})"
                                                                              if why else ""))
  return int(count)


def check_min_n(n: int, minimum: int, what: str) -> None:
  """An error naming N and the minimum when `what` (e.g. "an II bootstrap interval") has too few
  points."""
  if n < minimum:
    raise ValueError(f"N={n} points: {what} needs at least N={minimum}")


def spread_ratio(x, metric: str = "euclidean", chunk: int = 4096) -> float:
  """Root mean square deviation of the rows from their mean over the root mean square value
  (rows scaled to unit length first for the cosine metric): 0 for a constant layer. Float64 in
  row chunks (no float64 copy of a large layer)."""
  def rows(start):
    c = np.asarray(x[start:start + chunk], np.float64)
    if metric == "cosine":
      norms = np.linalg.norm(c, axis=1, keepdims=True)
      c = c / np.where(norms > 0, norms, 1.0)
    return c
  n = len(x)
  total = sum(rows(s).sum(axis=0) for s in range(0, n, chunk))
  mean = total / n
  square = sum(float(np.sum(rows(s) ** 2)) for s in range(0, n, chunk))
  spread = sum(float(np.sum((rows(s) - mean) ** 2)) for s in range(0, n, chunk))
  return 0.0 if square == 0 else float(np.sqrt(spread / square))


# What a value means when a layer has no spread, per kind of measure (the warnings say it).
CONSTANT_MEANING = {
    "imbalance": "every distance in it ties (or is rounding noise), so its neighbours are "
                 "arbitrary: Delta from it says nothing, and Delta to it is ~2/N with ties 'min' "
                 "(every point its neighbours' rank 1), which reads as perfect prediction",
    "cka": "CKA with it is 0 by convention (undefined: no variance to align), or rounding noise "
           "when near-constant",
    "knn": "its neighbour lists are arbitrary (every distance ties or is rounding noise)",
    "subspace": "its principal components are arbitrary (no variance to explain), and its "
                "Procrustes and CKA similarities are 0 by convention (or rounding noise), not a "
                "measured absence of shared structure",
    "other": "the measure's value with it is set by convention or by rounding noise, not by "
             "shared structure",
}


def constant_meaning_key(measure_name: str) -> str:
  """The `CONSTANT_MEANING` key for a registered measure's name: its family where the warning has
  a specific sentence ("imbalance", "cka", "knn"), "other" elsewhere."""
  if measure_name.startswith("information_imbalance"):
    return "imbalance"
  if measure_name.startswith("cka"):
    return "cka"
  if "knn" in measure_name:
    return "knn"
  return "other"


def warn_degenerate_layers(layers, names: Sequence[str], *, measure: str,
                           duplicates: bool = True, metric: str = "euclidean",
                           stacklevel: int = 3) -> None:
  """At most one warning for each of (a) exact duplicate points and (b) constant or near-constant
  layers over the whole call (not one per layer or per resample), e.g.
  "exact duplicate points: 3 of 2000 in each of 19 layers".

  Args:
    layers: a sequence of [n, d] arrays (read one at a time: lazy layers are fine).
    names: one name per layer, for the messages.
    measure: a key of `CONSTANT_MEANING` ("imbalance", "cka", "knn", "subspace"): what the
      constant-layer warning says the value means.
    duplicates: also count exact duplicate rows (ranks and neighbours tie; not for CKA).
    metric: "cosine" judges the spread of the unit rows.
  """
  counts, flat, n = {}, [], 0
  for u, name in enumerate(names):  # one layer at a time (lazy layers are read here)
    x = np.asarray(layers[u])
    n = len(x)
    if duplicates:
      counts[name] = duplicate_count(x)
    ratio = spread_ratio(x, metric)
    if ratio <= NEAR_CONSTANT_RTOL:
      flat.append(f"{name} ({'constant' if ratio == 0 else f'spread {ratio:.1e} of its scale'})")
  hit = {name: c for name, c in counts.items() if c}
  if hit:
    values = sorted(set(hit.values()))
    amount = f"{values[0]}" if len(values) == 1 else f"{values[0]}-{values[-1]}"
    if len(hit) == len(counts) and len(values) == 1:
      where = f"in each of {len(hit)} layers"
    else:
      listed = ", ".join(f"{k}: {v}" if len(values) > 1 else k for k, v in list(hit.items())[:6])
      where = f"in {len(hit)} of {len(counts)} layers ({listed}{', ...' if len(hit) > 6 else ''})"
    warnings.warn(f"exact duplicate points: {amount} of {n} {where}; their distances tie (see the "
                  f"ties option)", stacklevel=stacklevel)
  if flat:
    listed = ", ".join(flat[:6]) + (", ..." if len(flat) > 6 else "")
    warnings.warn(f"constant or near-constant layers (spread <= {NEAR_CONSTANT_RTOL:g} of the "
                  f"values): {listed}; {CONSTANT_MEANING[measure]}", stacklevel=stacklevel)


def warn_degenerate_pairs(layers_a: Sequence, layers_b: Sequence | None = None, *, measure: str,
                          metric: str = "euclidean") -> None:
  """`warn_degenerate_layers` once over the distinct layers of a [La, Lb] call (each named by its
  first place): duplicates for the rank and neighbour measures, constant layers for all."""
  layers, names = [], []
  for name, group in (("layers_a", layers_a), ("layers_b", layers_b or ())):
    for i in range(len(group)):
      x = group[i]
      if not any(x is y for y in layers):
        layers.append(x)
        names.append(f"{name}[{i}]")
  warn_degenerate_layers(layers, names, measure=measure, metric=metric,
                         duplicates=measure != "cka", stacklevel=4)


# the start of `warn_degenerate_layers`' two messages
DEGENERATE_MESSAGES = r"(exact duplicate points|constant or near-constant layers)"


@contextlib.contextmanager
def degenerate_warnings_off():
  """`warn_degenerate_layers`' warnings silenced inside the block, for a caller that gave them
  already and named the layers its own way (a pipeline names model or file and layer, where a
  kernel says layers_a[13]): a resampling call then does not repeat them under other names."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=DEGENERATE_MESSAGES)
    yield


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
