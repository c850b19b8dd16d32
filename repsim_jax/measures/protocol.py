"""The measure protocol: one declaration per similarity measure, everything else derived from it.

A measure is declared once, as a `Measure`:

    register(Measure(
        name="rv-score",                   # standardized name, parameters in the name
        aliases=("rv",),
        kind="similarity",                 # or "distance"
        properties=Properties(symmetric=True, invariances=("orthogonal", "isotropic_scaling",
                                                             "translation")),
        preparation="centred features",    # what `prepare` computes, in words (for listings)
        prepare=center,                    # [n, d] -> any pytree, computed once per layer
        pair=rv_pair,                      # (prepared_x, prepared_y, **options) -> scalar
        perfect=1.0,                       # value for identical representations
        reference="Robert & Escoufier 1976; ...",
    ))

From the declaration alone the package derives, for every registered measure:
`measure(name)(x, y) -> float`, `measures()` (the listing with properties),
`similarity_matrix(layers_a, layers_b, measure=name) -> np.ndarray [La, Lb]` (each layer prepared
once), bootstrap and subset intervals, permutation calibration, the command line and the report
heatmap. A measure with a faster whole-matrix, resampled or permuted computation supplies it as a
fast path (`matrix`, `bootstrap`, `permutation_null`); the generic paths are the reference those
fast paths are tested against.

Names follow the similarity repository (Cloos et al., github nacloos/similarity-repository):
lower-case words joined by '-', each parameter written `key=value`, a suffix saying what the
number is: `-score` for a similarity (larger = more similar), `-distance` or `-distance=angular`
for a distance (smaller = more similar); e.g. `cka-kernel=linear-hsic=gretton-score`,
`procrustes-distance=angular`, `rsa-rdm=correlation-compare=spearman`.

Options: a measure may declare keyword `options` with their defaults (II's `k` and `metric`);
`prepare` and `pair` receive the options as keywords. The defaults are the ones the name states.
`fast_options` are the settings only its fast paths take (block sizes, memory budgets, a mesh):
they change how the numbers are computed, not which numbers.

Generic paths evaluate `prepare` and `pair` on one device of one process at a time (the layer
pairs are what is distributed), so a `pair` must not start collectives of its own.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable, Mapping

import numpy as np

__all__ = ["INVARIANCES", "KINDS", "Properties", "Measure", "register", "get", "names",
           "registered"]

# ReSi's invariance vocabulary (Klabunde et al. 2023/2025).
INVARIANCES = ("orthogonal", "isotropic_scaling", "invertible_linear", "permutation",
               "translation", "affine")
KINDS = ("similarity", "distance")


@dataclasses.dataclass(frozen=True)
class Properties:
  """What a measure guarantees (ReSi's declared properties).

  metric: a distance that is a metric (identity, symmetry, triangle inequality) on the
    equivalence classes of its invariances.
  symmetric: m(x, y) == m(y, x).
  invariances: subset of INVARIANCES that leave the value unchanged when applied to either input
    (orthogonal: x -> x Q; isotropic_scaling: x -> c x; invertible_linear: x -> x A;
    permutation: of the feature columns; translation: x -> x + b; affine: x -> c x Q + b).
  """
  metric: bool = False
  symmetric: bool = True
  invariances: tuple[str, ...] = ()

  def __post_init__(self):
    unknown = sorted(set(self.invariances) - set(INVARIANCES))
    if unknown:
      raise ValueError(f"invariances: unknown {unknown}; expected a subset of {INVARIANCES}")

  def as_dict(self) -> dict[str, Any]:
    return {"metric": self.metric, "symmetric": self.symmetric,
            **{f"invariant_{inv}": inv in self.invariances for inv in INVARIANCES}}


def _identity(x, **unused_options):
  return x


@dataclasses.dataclass(frozen=True)
class Measure:
  """One similarity measure, declared once (module docstring).

  Attributes:
    name: standardized name, parameters in it, ending in `-score` or `-distance[=...]`.
    pair: (prepared_x, prepared_y, **options) -> a scalar (0-d array or float). Prefer a
      jit-friendly function of arrays: the generic paths call it inside jax transforms where
      they can, and on host values otherwise.
    kind: "similarity" (larger = more similar) or "distance" (smaller = more similar).
    properties: `Properties`.
    prepare: [n, d] float array -> any pytree, computed once per layer (default: identity).
    preparation: what `prepare` computes, in a few words ("centred features", "kNN lists",
      "RDM", "nothing").
    aliases: short names (`cka`, `imbalance`).
    perfect: the value for identical representations (1 for most scores, 0 for distances);
      calibration scales between the null's critical value and this.
    options: keyword options with their defaults, passed to `prepare` and `pair`.
    fast_options: settings only the fast paths take, with their defaults (not passed to
      `prepare` or `pair`).
    min_rows: the fewest rows (images) the measure is defined on.
    reference: the definition's source and the anchor code it is tested against.
    matrix: fast path (layers_a, layers_b, **options) -> np.ndarray [La, Lb].
    bootstrap: fast path (layers_a, layers_b, weights [B, N] int counts, **options) -> [B, La, Lb]:
      the measure on each bootstrap replicate (row i counted weights[b, i] times).
    permutation_null: fast path (layers_a, layers_b, perms [P, N], **options) ->
      (observed [La, Lb], null [P, La, Lb]) with layers_b's rows permuted by each perm.
  """
  name: str
  pair: Callable[..., Any]
  kind: str = "similarity"
  properties: Properties = Properties()
  prepare: Callable[..., Any] = _identity
  preparation: str = "nothing"
  aliases: tuple[str, ...] = ()
  perfect: float | None = None
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  fast_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  min_rows: int = 2
  reference: str = ""
  matrix: Callable[..., np.ndarray] | None = None
  bootstrap: Callable[..., np.ndarray] | None = None
  permutation_null: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"{self.name}: kind must be one of {KINDS}, got {self.kind!r}")
    suffix_ok = (self.name.endswith("-score") if self.kind == "similarity"
                 else "-distance" in self.name)
    if not suffix_ok:
      raise ValueError(f"{self.name}: a {self.kind}'s name ends in "
                       f"{'-score' if self.kind == 'similarity' else '-distance[=...]'}")
    if self.perfect is None:
      object.__setattr__(self, "perfect", 1.0 if self.kind == "similarity" else 0.0)

  @property
  def higher_is_similar(self) -> bool:
    return self.kind == "similarity"

  def resolve_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
    """The declared defaults updated by `options`; an unknown option is an error that lists
    the declared ones."""
    opts, _ = self.split_options(options)
    return opts

  def split_options(self, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(measure options, fast-path settings), each with its declared defaults filled in."""
    unknown = sorted(set(options) - set(self.options) - set(self.fast_options))
    if unknown:
      raise ValueError(f"measure {self.name!r}: unknown option(s) {unknown}; it takes "
                       f"{sorted({**self.options, **self.fast_options}) or 'no options'}")
    return ({**self.options, **{k: v for k, v in options.items() if k in self.options}},
            {**self.fast_options,
             **{k: v for k, v in options.items() if k in self.fast_options}})

  def __call__(self, x, y, **options) -> float:
    """The measure between two representations [n, d_x], [n, d_y], as a Python float."""
    opts = self.resolve_options(options)
    return float(self.pair(self.prepare(x, **opts), self.prepare(y, **opts), **opts))

  def oriented(self, values):
    """`values` with larger = more similar (a distance negated): what calibration ranks."""
    return np.asarray(values, np.float64) * (1.0 if self.higher_is_similar else -1.0)


_REGISTRY: dict[str, Measure] = {}
_ALIASES: dict[str, str] = {}


def register(m: Measure) -> Measure:
  """Adds a measure to the registry (at import of its module); names and aliases are unique."""
  for key in (m.name, *m.aliases):
    owner = _REGISTRY.get(key) or _REGISTRY.get(_ALIASES.get(key, ""))
    if owner is not None and owner is not m:
      raise ValueError(f"measure name {key!r} is already registered (by {owner.name!r})")
  _REGISTRY[m.name] = m
  for alias in m.aliases:
    _ALIASES[alias] = m.name
  return m


def get(name: str | Measure) -> Measure:
  """The registered measure for a standardized name or an alias; unknown names get close
  matches."""
  if isinstance(name, Measure):
    return name
  key = _ALIASES.get(name, name)
  if key in _REGISTRY:
    return _REGISTRY[key]
  close = difflib.get_close_matches(name, [*_REGISTRY, *_ALIASES], n=3, cutoff=0.5)
  hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
  raise ValueError(f"unknown measure {name!r}{hint} (repsim_jax.measures() lists "
                   f"{len(_REGISTRY)} measures)")


def names() -> list[str]:
  """Every registered standardized name, sorted."""
  return sorted(_REGISTRY)


def registered() -> list[Measure]:
  return [_REGISTRY[n] for n in names()]
