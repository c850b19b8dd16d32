"""Similarity measures behind one protocol (`protocol.Measure`): declared once, derived everywhere.

    import repsim_jax
    repsim_jax.measures()                               # every name with its properties
    repsim_jax.measure("cka")(x, y)                      # a Python float
    repsim_jax.similarity_matrix(layers_a, layers_b, measure="procrustes-distance=angular")

Each module listed in MODULES declares its measures with `protocol.register` when imported;
adding a measure is one module, its test, and one line here (docs/design.md, "Adding a measure").

Derived for every measure (generic paths in `engine`; a measure's fast paths replace them where
it declares them, and are tested against them):

  similarity_matrix   [La, Lb]; each layer prepared once; layer pairs spread over processes and
                      devices, the same matrix on one device or many
  bootstrap           image-bootstrap replicates [B, La, Lb] and their interval
  subsets             the matrix on disjoint random subsets, mean ± Student-t interval
  permutation_null    the matrix with B's rows permuted (the same permutation for every layer)
  (calibration: `repsim_jax.metrics.calibration.permutation_test`, for any measure)
"""
from __future__ import annotations

import importlib
from typing import Any, Sequence

import numpy as np

from repsim_jax.measures import engine, protocol
from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics import intervals, validation

__all__ = ["Measure", "Properties", "register", "measure", "measures", "similarity_matrix",
           "bootstrap", "bootstrap_replicates", "subsets", "permutation_null", "MODULES"]

# One line per measure module (repsim_jax/measures/<module>.py).
MODULES: tuple[str, ...] = (
    "imbalance",
    "cka",
    "neighbours",
    "cca",
    "procrustes",
    "rv",
    "neighbourhood",
    "distance_matrices",
    "statistics",
    "feature_matching",
    "cka_kernels",
    "rsa",
    "shape",
    "predictivity",
)

_loaded = False


def _load() -> None:
  global _loaded
  if not _loaded:
    for name in MODULES:
      importlib.import_module(f"repsim_jax.measures.{name}")
    _loaded = True


def measure(name: str | Measure) -> Measure:
  """The measure registered as `name` (standardized name or alias): call it as `m(x, y)`."""
  _load()
  return protocol.get(name)


def measures() -> list[dict[str, Any]]:
  """One row per registered measure: name, aliases, kind, preparation, properties, options."""
  _load()
  return [{"name": m.name, "aliases": list(m.aliases), "kind": m.kind,
           "preparation": m.preparation, "perfect": m.perfect, "options": dict(m.options),
           "fast_paths": [f for f in ("matrix", "bootstrap", "permutation_null")
                          if getattr(m, f) is not None],
           "reference": m.reference, **m.properties.as_dict()}
          for m in protocol.registered()]


def _setup(name, layers_a, layers_b, options):
  m = measure(name)
  opts, fast = m.split_options(options)
  la, lb, same = engine.check_layers(m, layers_a, layers_b)
  return m, opts, fast, la, lb, same


def _fast(fn, *args, opts, fast):
  """A fast path's result, or None when absent or when it does not cover these options."""
  return None if fn is None else fn(*args, **opts, **fast)


def similarity_matrix(layers_a: Sequence, layers_b: Sequence | None = None, *,
                      measure: str | Measure = "cka", generic: bool = False,
                      **options) -> np.ndarray:
  """[La, Lb] float64: entry [i, j] = measure(layers_a[i], layers_b[j]).

  Args:
    layers_a, layers_b: sequences of [N, d_l] arrays (layers_b None: layers_a against itself).
    measure: a registered name or alias (`measures()` lists them).
    generic: use the generic path even where the measure has a `matrix` fast path (tests).
    **options: the measure's options and fast-path settings.

  Each layer is prepared once; a measure's `matrix` fast path (its own sharded kernel) is used
  where it declares one; otherwise the layer pairs are spread over processes and devices
  (`engine`). Every process returns the whole matrix.
  """
  m, opts, fast, la, lb, same = _setup(measure, layers_a, layers_b, options)
  if not generic:
    out = _fast(m.matrix, la, la if same else lb, opts=opts, fast=fast)
    if out is not None:
      return np.asarray(out, np.float64)
  return engine.evaluate(m, la, lb, [(None, None)], opts, same=same)[0]


def bootstrap_replicates(layers_a: Sequence, layers_b: Sequence | None = None, *, weights,
                         measure: str | Measure = "cka", generic: bool = False,
                         **options) -> np.ndarray:
  """float64 [B, La, Lb]: the measure on each resample, weights [B, N] integer counts.

  Generic path: replicate b compares the layers' rows np.repeat(arange(N), weights[b]) (a
  resampled image appears weights[b, i] times). A `bootstrap` fast path computes all replicates
  in one pass (II's weighted rank counts, CKA's weighted HSIC sums).
  """
  m, opts, fast, la, lb, same = _setup(measure, layers_a, layers_b, options)
  weights = np.asarray(weights)
  if not generic:
    out = _fast(m.bootstrap, la, la if same else lb, weights, opts=opts, fast=fast)
    if out is not None:
      return np.asarray(out, np.float64)
  n = len(la[0])
  rows = [np.repeat(np.arange(n), w) for w in weights]
  return engine.evaluate(m, la, lb, [(r, r) for r in rows], opts, same=same)


def bootstrap(layers_a: Sequence, layers_b: Sequence | None = None, *,
              measure: str | Measure = "cka", n_boot: int = 200, seed: int = 0,
              method: str = "halves", confidence: float = 0.95,
              n_splits: int = intervals.DEFAULT_SPLITS, generic: bool = False,
              **options) -> dict[str, np.ndarray]:
  """Interval of every entry of the [La, Lb] matrix, for any measure.

  The plain matrix, the bootstrap replicates and (method "halves") the split halves and quarters
  come out of one `bootstrap_replicates` pass (its fast path where the measure declares one), and
  `intervals.resampled_interval` reads the interval from them: the same interval, on the same
  draws, as `imbalance_bootstrap` and `cka_bootstrap`.

  Args:
    layers_a, layers_b, measure, **options: as in `similarity_matrix`.
    n_boot, seed: bootstrap replicates drawn by `intervals.bootstrap_weights`
      (scipy.stats.bootstrap's draws); the seed also draws the splits.
    method: "halves" (default: the sd at N from split halves and quarters; the percentile
      bootstrap of II and CKA missed its level in `benchmarks/bench_coverage.py`), "percentile"
      or "basic".
    confidence: the level.
    n_splits: random splits into halves ("halves" only).
    generic: force the generic path (tests).

  Returns:
    `intervals.resampled_interval`'s dict: "value" [La, Lb] (the plain matrix), "low", "high",
    "half_width", "std", "replicates" [B, La, Lb] (and with "halves" "halves", "quarters",
    "rate", "bootstrap_std").
  """
  m = globals()["measure"](measure)

  def weighted(la, lb, weights):
    return bootstrap_replicates(la, lb, weights=weights, measure=m, generic=generic, **options)

  k = int(m.resolve_options(options).get("k", 1))
  return intervals.resampled_interval(
      weighted, layers_a, layers_b, n_boot=n_boot, n_splits=n_splits, seed=seed,
      confidence=confidence, method=method,
      min_n=max(validation.MIN_INTERVAL_N, 4 * max(m.min_rows, k + 1)),
      what=f"an interval of {m.name} (quarters of at least {max(m.min_rows, k + 1)} images)")


def subsets(layers_a: Sequence, layers_b: Sequence | None = None, *,
            measure: str | Measure = "cka", subset_size: int, repeats: int | None = None,
            seed: int = 0, interval: dict | None = None, **options) -> dict[str, np.ndarray]:
  """The matrix on R disjoint random subsets (DADApy's subset_size / repeats), for any measure.

  Subsets from `intervals.disjoint_subsets`, summarised by `intervals.subsample_interval`
  (`interval`: its keywords, e.g. confidence).

  Returns:
    {"values" [R, La, Lb], "mean", "sem", "low", "high", "half_width", "subsets" [R, size]}.
  """
  same = layers_b is None or layers_b is layers_a
  n = np.shape(layers_a[0])[0]
  idx = intervals.disjoint_subsets(n, subset_size, repeats, seed)

  def on(layers, rows):
    return [np.asarray(x)[rows] for x in layers]

  values = []
  for rows in idx:
    sub_a = on(layers_a, rows)
    values.append(similarity_matrix(sub_a, sub_a if same else on(layers_b, rows),
                                    measure=measure, **options))
  out = intervals.subsample_interval(np.stack(values), **(interval or {}))
  out["subsets"] = idx
  return out


def permutation_null(layers_a: Sequence, layers_b: Sequence | None = None, *, perms,
                     measure: str | Measure = "cka", generic: bool = False,
                     **options) -> tuple[np.ndarray, np.ndarray]:
  """(observed [La, Lb], null [P, La, Lb]): the measure with B's rows permuted by each perm.

  Permutation p pairs row i of every layer of A with row perms[p, i] of every layer of B (the
  same permutation for every layer, as calibration over a layer grid needs). Generic path: A's
  layers prepared once, B's once per permutation; fast paths (II, linear CKA, mutual k-NN,
  CKNNA) permute inside their kernels.
  """
  m, opts, fast, la, lb, same = _setup(measure, layers_a, layers_b, options)
  n = len(la[0])
  perms = np.asarray(perms)
  if perms.ndim != 2 or perms.shape[1] != n or not np.all(np.sort(perms, axis=1) == np.arange(n)):
    raise ValueError(f"perms: expected permutations of range({n}) as rows [P, {n}], got "
                     f"{perms.dtype} {perms.shape}")
  if not generic:
    out = _fast(m.permutation_null, la, la if same else lb, perms, opts=opts, fast=fast)
    if out is not None:
      return np.asarray(out[0], np.float64), np.asarray(out[1], np.float64)
  values = engine.evaluate(m, la, lb, [(None, None)] + [(None, p) for p in perms], opts,
                           same=same)
  return values[0], values[1:]
