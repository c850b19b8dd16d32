"""Permutation-calibrated similarity scores: p-values, critical values and the calibrated maximum.

The null distribution of a similarity score between two spaces comes from permuting the image
correspondence between them (image i of A paired with image perm[i] of B, the same permutation
for every layer of B): it keeps each space's geometry, width and depth, and removes only the
pairing, so the null already contains the inflation that N, widths and the number of layer pairs
give raw scores (Gröger, Wen & Brbić 2026).

For each pair of layers, with s the score oriented so that higher = more similar (s = -Delta for
information imbalance, lower = more similar) and s_1..s_P its null values:

  p-value          (1 + #{p : s_p >= s}) / (1 + P)              (add-one: never 0, valid at P)
  critical value   the (1 - alpha) quantile of the null
  calibrated score (s - critical) / (perfect - critical), clipped to [0, 1]: 0 at or below
                   what chance reaches, 1 at the perfect value (1; Delta = 0)

and the same against the null of the maximum over all layer pairs, M_p = max_ij s_p[i, j]
(the statistic a "best-matching layer" claim uses): `p_value_max`, `critical_max`,
`calibrated_max` control the family-wise error over the whole [La, Lb] matrix, and
`p_extreme` / `calibrated_extreme` calibrate the observed best pair itself.

Cost of a permutation, next to the plain matrix (see the null kernels): II counts every
permutation's ranks inside the same distance blocks (a sort per row, no extra distance pass);
CKA recomputes only the cross terms (one plain matrix's cross terms each); mutual k-NN and CKNNA
gather each layer's neighbour lists / Gram once computed.

References:
  Gröger, Wen, Brbić. "Revisiting the Platonic Representation Hypothesis: An Aristotelian View."
  ICML 2026 (arXiv:2602.14486).
  Phipson, Smyth. "Permutation P-values Should Never Be Zero." Stat. Appl. Genet. Mol. Biol. 2010.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from repsim_jax.metrics import imbalance_null, kernel_alignment, knn_alignment, validation

__all__ = ["permutations", "calibrate", "permutation_test", "MEASURES"]

MEASURES = ("imbalance", "cka", "mutual_knn", "cknna")


def permutations(n: int, n_perm: int, seed: int) -> np.ndarray:
  """[n_perm, n] int64 permutations: `np.random.default_rng(seed).permutation(n)`, n_perm times."""
  if n_perm < 1:
    raise ValueError(f"n_perm: expected >= 1, got {n_perm}")
  rng = np.random.default_rng(seed)
  return np.stack([rng.permutation(n) for _ in range(n_perm)])


def calibrate(observed, null, *, lower_is_similar: bool = False, alpha: float = 0.05,
              perfect: float | None = None) -> dict[str, np.ndarray]:
  """P-values, critical values and calibrated scores from a permutation null (module docstring).

  Args:
    observed: [...] scores (e.g. [La, Lb]).
    null: [P, ...] the same scores under P permutations.
    lower_is_similar: True for information imbalance (Delta: 0 = same neighbourhoods).
    alpha: level of the critical values (their (1 - alpha) null quantile, numpy's "linear").
    perfect: the score of identical spaces (default 0 when lower_is_similar, else 1).

  Returns:
    dict, in the metric's own units (Delta stays Delta) where a score is returned:
      "observed", "null", "null_mean", "null_std" (ddof=1) [...];
      "p_value", "critical", "calibrated" [...]: each pair against its own null;
      "null_extreme" [P]: per permutation the most similar score over all pairs;
      "p_value_max", "critical_max" (scalar), "calibrated_max" [...]: against that null;
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
  if not 0 < alpha < 1:
    raise ValueError(f"alpha: expected 0 < alpha < 1, got {alpha}")
  sign = -1.0 if lower_is_similar else 1.0
  perfect = (0.0 if lower_is_similar else 1.0) if perfect is None else float(perfect)
  s, z, best = sign * observed, sign * null, sign * perfect
  n_perm = null.shape[0]
  z_max = z.reshape(n_perm, -1).max(axis=1)

  def p_value(null_values, obs):  # null_values [P, 1...] broadcast against obs
    return (1.0 + np.sum(null_values >= obs, axis=0)) / (1.0 + n_perm)

  def calibrated(obs, crit):
    with np.errstate(divide="ignore", invalid="ignore"):
      out = (obs - crit) / (best - crit)
    return np.clip(np.where(best > crit, out, 0.0), 0.0, 1.0)

  crit = np.quantile(z, 1 - alpha, axis=0)
  crit_max = np.quantile(z_max, 1 - alpha)
  z_max_b = z_max.reshape((n_perm,) + (1,) * observed.ndim)
  extreme = s.max()
  return {
      "observed": observed, "null": null, "null_mean": null.mean(axis=0),
      "null_std": null.std(axis=0, ddof=1) if n_perm > 1 else np.zeros_like(observed),
      "p_value": p_value(z, s), "critical": sign * crit, "calibrated": calibrated(s, crit),
      "null_extreme": sign * z_max, "p_value_max": p_value(z_max_b, s),
      "critical_max": sign * crit_max, "calibrated_max": calibrated(s, crit_max),
      "observed_extreme": sign * extreme, "p_extreme": p_value(z_max, extreme),
      "calibrated_extreme": calibrated(extreme, crit_max),
  }


def permutation_test(layers_a: Sequence, layers_b: Sequence | None = None, *,
                     measure: str = "imbalance", n_perm: int = 200, seed: int = 0,
                     alpha: float = 0.05, perms=None, **kwargs) -> dict[str, np.ndarray]:
  """Observed [La, Lb] scores with their permutation null, p-values and calibrated scores.

  Args:
    layers_a, layers_b: sequences of [N, d_l] arrays (layers_b None: layers_a).
    measure: "imbalance" (Delta(a -> b), lower = more similar), "cka" (linear; `debiased=True`
      by default), "mutual_knn" or "cknna" (Huh et al. 2024).
    n_perm, seed: the permutations, `permutations(N, n_perm, seed)`; or pass `perms` [P, N].
      At least `validation.MIN_PERM` (10) of them: with P permutations no p-value is below
      1 / (P + 1).
    alpha: level of the critical values and calibrated scores.
    **kwargs: the measure's options (k, metric, ties, dtype, ... for imbalance; debiased for
      cka; k, normalize (and unbiased) for mutual_knn / cknna).

  Returns:
    `calibrate`'s dict, plus "perms" [P, N].
  """
  if measure not in MEASURES:
    raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
  layers_b = layers_a if layers_b is None else layers_b
  n = np.shape(layers_a[0])[0]
  perms = permutations(n, n_perm, seed) if perms is None else np.asarray(perms)
  validation.check_count(len(perms), "n_perm", validation.MIN_PERM,
                         "the smallest p-value of P permutations is 1 / (P + 1)")
  validation.warn_degenerate_pairs(
      layers_a, layers_b, measure="knn" if measure in ("mutual_knn", "cknna") else measure,
      metric=kwargs.get("metric", "euclidean"))
  if measure == "imbalance":
    observed, null = imbalance_null.imbalance_permutation_null(layers_a, layers_b, perms,
                                                               **kwargs)
  elif measure == "cka":
    observed, null = kernel_alignment.cka_permutation_null(layers_a, layers_b, perms, **kwargs)
  elif measure == "mutual_knn":
    observed, null = knn_alignment.mutual_knn_permutation_null(layers_a, layers_b, perms, **kwargs)
  else:
    observed, null = knn_alignment.cknna_permutation_null(layers_a, layers_b, perms, **kwargs)
  out = calibrate(observed, null, lower_is_similar=measure == "imbalance", alpha=alpha)
  out["perms"] = perms
  return out

