"""Permutation-calibrated similarity scores: p-values, critical values and the calibrated maximum.

The null distribution of a similarity score between two spaces comes from permuting the image
correspondence between them (image i of A paired with image perm[i] of B, the same permutation
for every layer of B): it keeps each space's geometry, width and depth, and removes only the
pairing, so the null already contains the inflation that N, widths and the number of layer pairs
give raw scores (Gröger, Wen & Brbić 2026).

For each pair of layers, with s the score oriented so that higher = more similar (s = -Delta for
information imbalance, a distance negated) and s_1..s_K its null values (Gröger et al.'s
Algorithm 1; `calibrated-similarity` 0.1.1 on PyPI computes the same numbers):

  p-value          (1 + #{k : s_k >= s}) / (1 + K)              (add-one: never 0, valid at K)
  critical value   tau = the ceil((1 - alpha)(K + 1))-th smallest of {s, s_1, ..., s_K}
  calibrated score clip((s - tau) / (s_max - tau), 0, 1): 0 at or below what chance reaches, 1
                   at the perfect value s_max (1; Delta = 0)

Until this version the critical value was np.quantile(null, 1 - alpha) ("linear" interpolation
of the null alone, the observed value left out); it is now the order statistic above, the one
definition of the paper and its package, which makes calibrated > 0 exactly when the test rejects
at level alpha. p-values are unchanged.

Over a layer grid (Algorithm 2: one permutation applied to every layer of B), any aggregate
T(S) of the [La, Lb] matrix is calibrated against its own null T(S_1), ..., T(S_K) the same way
(`aggregate_test`): "max" (the best-matching pair; this is `p_value_max`, `critical_max`,
`calibrated_max` per pair and `p_extreme`, `calibrated_extreme` for the observed best), "mean",
"row_max_mean" (each layer of A's best match, averaged) and "top_k_mean". Per-pair p-values over
the grid are also corrected by Benjamini-Hochberg (`benjamini_hochberg`, false discovery rate).

Nulls (`permutations`): rows permuted freely (the default); within classes (`labels`: image i
only trades places with images of its class, so the null keeps class structure); or by blocks
(`groups`: images of a group, e.g. several crops of one image, move together onto another
group of the same size).

Cost of a permutation, next to the plain matrix (see the null kernels): II counts every
permutation's ranks inside the same distance blocks (a sort per row, no extra distance pass);
CKA recomputes only the cross terms (one plain matrix's cross terms each); mutual k-NN and CKNNA
gather each layer's neighbour lists / Gram once computed; any other measure evaluates its pair
on B's permuted rows (`repsim_jax.measures.permutation_null`).

References:
  Gröger, Wen, Brbić. "Revisiting the Platonic Representation Hypothesis: An Aristotelian View."
  ICML 2026 (arXiv:2602.14486); PyPI calibrated-similarity 0.1.1.
  Phipson, Smyth. "Permutation P-values Should Never Be Zero." Stat. Appl. Genet. Mol. Biol. 2010.
  Benjamini, Hochberg. "Controlling the False Discovery Rate." JRSS B 1995.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from repsim_jax.metrics import validation

__all__ = ["permutations", "critical_value", "calibrate", "aggregate", "aggregate_test",
           "benjamini_hochberg", "permutation_test", "AGGREGATES", "MEASURES"]

# The aliases whose nulls were wired here before the measure protocol; permutation_test takes
# every registered measure (`repsim_jax.measures()`).
MEASURES = ("imbalance", "cka", "mutual_knn", "cknna")
AGGREGATES = ("max", "mean", "row_max_mean", "top_k_mean")
_EPSILON = 1e-12  # calibrated-similarity's floor on s_max - tau


def permutations(n: int, n_perm: int, seed: int, *, labels=None, groups=None) -> np.ndarray:
  """[n_perm, n] int64 permutations from `np.random.default_rng(seed)`, one draw at a time.

  Args:
    n, n_perm, seed: rows, draws, seed.
    labels: [n] class labels: each draw permutes rows within each class only (classes in
      sorted order, `rng.permutation(count)` each).
    groups: [n] group ids (e.g. the crops of one image): each draw moves whole groups onto
      groups of the same size (rows kept in order inside a group; groups of one size permuted
      among themselves, sizes in increasing order).
    Neither: `rng.permutation(n)` per draw (the plain row permutation).
  """
  if n_perm < 1:
    raise ValueError(f"n_perm: expected >= 1, got {n_perm}")
  if labels is not None and groups is not None:
    raise ValueError("labels and groups: give one (a within-class or a block permutation)")
  rng = np.random.default_rng(seed)
  if labels is None and groups is None:
    return np.stack([rng.permutation(n) for _ in range(n_perm)])
  ids = np.asarray(labels if labels is not None else groups)
  if ids.shape != (n,):
    raise ValueError(f"{'labels' if labels is not None else 'groups'}: expected [{n}], got "
                     f"{ids.shape}")
  members = [np.flatnonzero(ids == v) for v in np.unique(ids)]
  out = np.empty((n_perm, n), np.int64)
  for p in range(n_perm):
    if labels is not None:
      for rows in members:
        out[p, rows] = rows[rng.permutation(len(rows))]
    else:
      for size in sorted({len(rows) for rows in members}):
        blocks = [rows for rows in members if len(rows) == size]
        for rows, target in zip(blocks, rng.permutation(len(blocks))):
          out[p, rows] = blocks[target]
  return out


def critical_value(observed, null, *, alpha: float = 0.05) -> np.ndarray:
  """tau [...]: the ceil((1 - alpha)(K + 1))-th smallest of {observed, null_1..null_K}.

  observed [...], null [K, ...], both oriented (higher = more similar).
  """
  combined = np.sort(np.concatenate([np.asarray(observed, np.float64)[None],
                                     np.asarray(null, np.float64)]), axis=0)
  k = combined.shape[0] - 1
  idx = min(max(int(math.ceil((1.0 - alpha) * (k + 1))) - 1, 0), k)  # as the paper's package
  return combined[idx]


def _calibrated(s, tau, best):
  return np.clip((s - tau) / np.maximum(best - tau, _EPSILON), 0.0, 1.0)


def _p_value(null_values, obs):  # null_values [K, 1...] broadcast against obs
  return (1.0 + np.sum(null_values >= obs, axis=0)) / (1.0 + len(null_values))


def _check_alpha(alpha):
  if not 0 < alpha < 1:
    raise ValueError(f"alpha: expected 0 < alpha < 1, got {alpha}")


def calibrate(observed, null, *, lower_is_similar: bool = False, alpha: float = 0.05,
              perfect: float | None = None) -> dict[str, np.ndarray]:
  """P-values, critical values and calibrated scores from a permutation null (module docstring).

  Args:
    observed: [...] scores (e.g. [La, Lb]).
    null: [K, ...] the same scores under K permutations.
    lower_is_similar: True for a distance (information imbalance: Delta = 0, same neighbourhoods).
    alpha: level of the critical values (the order statistic tau of the module docstring).
    perfect: the score of identical spaces (default 0 when lower_is_similar, else 1).

  Returns:
    dict, in the metric's own units (Delta stays Delta) where a score is returned:
      "observed", "null", "null_mean", "null_std" (ddof=1) [...];
      "p_value", "critical", "calibrated" [...]: each pair against its own null;
      "null_extreme" [K]: per permutation the most similar score over all pairs;
      "p_value_max", "critical_max" (scalar), "calibrated_max" [...]: against that null
        (the "max" aggregate: family-wise error over the grid);
      "observed_extreme", "p_extreme", "calibrated_extreme": the observed most similar pair.
  """
  observed = np.asarray(observed, np.float64)
  null = np.asarray(null, np.float64)
  if null.shape[1:] != observed.shape or null.shape[0] < 1:
    raise ValueError(f"null: expected [P, {', '.join(map(str, observed.shape))}], got "
                     f"{null.shape}")
  bad = ~np.isfinite(null.reshape(len(null), -1))
  if bad.any():  # a NaN compares False with everything: it would silently count as "below"
    rows = np.flatnonzero(bad.any(axis=1))
    raise ValueError(f"null: {int(bad.sum())} NaN or infinite values, in permutations "
                     f"{rows[:5].tolist()}{' ...' if len(rows) > 5 else ''} of {len(null)}; a "
                     "permutation's score must be a number (p-values would treat it as never "
                     "reaching the observed one)")
  if not np.all(np.isfinite(observed)):
    raise ValueError(f"observed: {int(np.sum(~np.isfinite(observed)))} NaN or infinite values")
  _check_alpha(alpha)
  sign = -1.0 if lower_is_similar else 1.0
  perfect = (0.0 if lower_is_similar else 1.0) if perfect is None else float(perfect)
  s, z, best = sign * observed, sign * null, sign * perfect
  n_perm = null.shape[0]
  z_max = z.reshape(n_perm, -1).max(axis=1)
  extreme = s.max()
  crit = critical_value(s, z, alpha=alpha)
  crit_max = critical_value(extreme, z_max, alpha=alpha)
  z_max_b = z_max.reshape((n_perm,) + (1,) * observed.ndim)
  return {
      "observed": observed, "null": null, "null_mean": null.mean(axis=0),
      "null_std": null.std(axis=0, ddof=1) if n_perm > 1 else np.zeros_like(observed),
      "p_value": _p_value(z, s), "critical": sign * crit, "calibrated": _calibrated(s, crit, best),
      "null_extreme": sign * z_max, "p_value_max": _p_value(z_max_b, s),
      "critical_max": sign * crit_max, "calibrated_max": _calibrated(s, crit_max, best),
      "observed_extreme": sign * extreme, "p_extreme": _p_value(z_max, extreme),
      "calibrated_extreme": _calibrated(extreme, crit_max, best),
  }


def aggregate(scores, how: str = "max", *, top_k: int = 3) -> np.ndarray:
  """An aggregate of oriented (higher = more similar) grids [..., La, Lb] -> [...].

  max: the best pair; mean: every pair; row_max_mean: the mean over A's layers of each one's
  best match in B; top_k_mean: the mean of the top_k best pairs.
  """
  scores = np.asarray(scores, np.float64)
  flat = scores.reshape(scores.shape[:-2] + (-1,))
  if how == "max":
    return flat.max(axis=-1)
  if how == "mean":
    return flat.mean(axis=-1)
  if how == "row_max_mean":
    return scores.max(axis=-1).mean(axis=-1)
  if how == "top_k_mean":
    if not 1 <= top_k <= flat.shape[-1]:
      raise ValueError(f"top_k: expected 1 <= top_k <= {flat.shape[-1]} pairs, got {top_k}")
    return np.sort(flat, axis=-1)[..., -top_k:].mean(axis=-1)
  raise ValueError(f"aggregate must be one of {AGGREGATES}, got {how!r}")


def aggregate_test(observed, null, *, how: str = "max", top_k: int = 3,
                   lower_is_similar: bool = False, alpha: float = 0.05,
                   perfect: float | None = None) -> dict[str, np.ndarray]:
  """An aggregate of the [La, Lb] grid against its null (Gröger et al.'s Algorithm 2).

  observed [La, Lb], null [K, La, Lb] (every layer under the same permutation). The aggregate
  is taken on the oriented scores (a distance's "max" is its smallest value) and reported in
  the measure's units.

  Returns:
    {"observed" (scalar), "null" [K], "p_value", "critical" (tau), "calibrated"}.
  """
  _check_alpha(alpha)
  sign = -1.0 if lower_is_similar else 1.0
  perfect = (0.0 if lower_is_similar else 1.0) if perfect is None else float(perfect)
  t = aggregate(sign * np.asarray(observed, np.float64), how, top_k=top_k)
  t_null = aggregate(sign * np.asarray(null, np.float64), how, top_k=top_k)
  tau = critical_value(t, t_null, alpha=alpha)
  return {"observed": sign * t, "null": sign * t_null, "p_value": _p_value(t_null, t),
          "critical": sign * tau, "calibrated": _calibrated(t, tau, sign * perfect)}


def benjamini_hochberg(p_values, *, q: float = 0.05) -> dict[str, np.ndarray]:
  """Benjamini-Hochberg over every entry of p_values [...] (the layer grid as one family).

  Returns:
    {"q_value" [...]: the BH-adjusted p-values, min_{j >= rank} p_(j) m / j, at most 1;
     "reject" [...]: q_value <= q (controls the false discovery rate at q)}.
  """
  p = np.asarray(p_values, np.float64)
  flat = p.ravel()
  m = flat.size
  order = np.argsort(flat, kind="stable")
  scaled = flat[order] * m / np.arange(1, m + 1)
  adjusted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
  out = np.empty(m)
  out[order] = adjusted
  out = out.reshape(p.shape)
  return {"q_value": out, "reject": out <= q}


def _legacy(name: str, kwargs: dict) -> str:
  """The registered measure the pre-protocol names meant: "cka" with debiased/hsic, "cknna"
  with unbiased (both deprecated keywords, warned by `resolve_hsic`)."""
  from repsim_jax.metrics.kernel_alignment import resolve_hsic
  if name == "cka" and ("debiased" in kwargs or "hsic" in kwargs):
    song = resolve_hsic(kwargs.pop("hsic", None), kwargs.pop("debiased", None),
                        old_name="debiased", default="song", where="permutation_test")
    return f"cka-kernel=linear-hsic={'song' if song else 'gretton'}-score"
  if name == "cknna" and "unbiased" in kwargs:
    song = resolve_hsic(kwargs.pop("hsic", None), kwargs.pop("unbiased"), old_name="unbiased",
                        default="song", where="permutation_test")
    kwargs["hsic"] = "song" if song else "gretton"
  return name


def permutation_test(layers_a: Sequence, layers_b: Sequence | None = None, *,
                     measure: str = "imbalance", n_perm: int = 200, seed: int = 0,
                     alpha: float = 0.05, perms=None, labels=None, groups=None,
                     top_k: int = 3, generic: bool = False, **kwargs) -> dict[str, np.ndarray]:
  """Observed [La, Lb] scores with their permutation null, p-values and calibrated scores, for
  any registered measure.

  Args:
    layers_a, layers_b: sequences of [N, d_l] arrays (layers_b None: layers_a).
    measure: a registered name or alias (`repsim_jax.measures()`), e.g. "imbalance" (Delta(a ->
      b), lower = more similar), "cka" (linear, hsic="song"; `hsic="gretton"` picks the biased
      one), "mutual_knn", "cknna", "procrustes", ...
    n_perm, seed, labels, groups: the permutations, `permutations(N, n_perm, seed, labels=...,
      groups=...)`; or pass `perms` [P, N]. At least `validation.MIN_PERM` (10) of them: with
      P permutations no p-value is below 1 / (P + 1).
    alpha: level of the critical values and calibrated scores, and the FDR level.
    top_k: pairs averaged by the "top_k_mean" aggregate.
    generic: evaluate the pairs on permuted rows even where the measure has a fast null (tests).
    **kwargs: the measure's options (k, metric, ties, dtype, ... for imbalance; k, normalize,
      hsic for mutual_knn / cknna).

  Returns:
    `calibrate`'s dict, plus "perms" [P, N], "measure" (the standardized name),
    "aggregates" {how: `aggregate_test`'s dict} for every one of AGGREGATES, and
    "fdr": `benjamini_hochberg` of the per-pair p-values at q = alpha.
  """
  # imported here: the measure modules import the kernels this module sits beside
  from repsim_jax.measures import measure as get_measure, permutation_null
  try:
    m = get_measure(_legacy(measure, kwargs))
  except ValueError as e:
    raise ValueError(f"measure must be one of the registered measures: {e}") from None
  layers_b = layers_a if layers_b is None else layers_b
  n = np.shape(layers_a[0])[0]
  perms = (permutations(n, n_perm, seed, labels=labels, groups=groups) if perms is None
           else np.asarray(perms))
  validation.check_count(len(perms), "n_perm", validation.MIN_PERM,
                         "the smallest p-value of P permutations is 1 / (P + 1)")
  validation.warn_degenerate_pairs(layers_a, layers_b, measure=validation.constant_meaning_key(m.name),
                                   metric=kwargs.get("metric", "euclidean"))
  observed, null = permutation_null(layers_a, layers_b, perms=perms, measure=m, generic=generic,
                                    **kwargs)
  opts = dict(lower_is_similar=not m.higher_is_similar, alpha=alpha, perfect=m.perfect)
  out = calibrate(observed, null, **opts)
  out["aggregates"] = {how: aggregate_test(observed, null, how=how, top_k=min(top_k, observed.size),
                                           **opts) for how in AGGREGATES}
  out["fdr"] = benjamini_hochberg(out["p_value"], q=alpha)
  out["perms"] = perms
  out["measure"] = m.name
  return out

