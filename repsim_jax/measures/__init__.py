"""Similarity measures behind one protocol (`protocol.Measure`): declared once, derived everywhere.

    import repsim_jax
    repsim_jax.measures()                               # every name with its properties
    repsim_jax.measure("cka")(x, y)                      # a Python float
    repsim_jax.similarity_matrix(layers_a, layers_b, measure="procrustes-distance=angular")

Each module listed in MODULES declares its measures with `protocol.register` when imported;
adding a measure is one module, its test, and one line here.
"""
from __future__ import annotations

import importlib
from typing import Any, Sequence

import numpy as np

from repsim_jax.measures import protocol
from repsim_jax.measures.protocol import Measure, Properties, register

__all__ = ["Measure", "Properties", "register", "measure", "measures", "similarity_matrix",
           "MODULES"]

# One line per measure module (repsim_jax/measures/<module>.py).
MODULES: tuple[str, ...] = (
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
           **m.properties.as_dict()}
          for m in protocol.registered()]


def similarity_matrix(layers_a: Sequence, layers_b: Sequence | None = None, *,
                      measure: str | Measure = "cka", **options) -> np.ndarray:
  """[La, Lb] float64: entry [i, j] = measure(layers_a[i], layers_b[j]).

  Each layer is prepared once; a measure's `matrix` fast path is used where it declares one.
  layers_b None: layers_a against itself.
  """
  m = globals()["measure"](measure)
  opts = m.resolve_options(options)
  layers_b = layers_a if layers_b is None else layers_b
  if m.matrix is not None:
    return np.asarray(m.matrix(layers_a, layers_b, **opts), np.float64)
  prep_a = [m.prepare(x, **opts) for x in layers_a]
  prep_b = prep_a if layers_b is layers_a else [m.prepare(y, **opts) for y in layers_b]
  return np.array([[float(m.pair(pa, pb, **opts)) for pb in prep_b] for pa in prep_a],
                  np.float64)
