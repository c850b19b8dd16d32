"""How much to trust a similarity measure: tests on layer x layer matrices of trained models.

Every function takes *oriented* similarity matrices (larger = more similar: a distance measure's
matrix negated, `oriented`), arrays in and numbers out.

  layer_identification   Kornblith et al. 2019 (sec. 6.1): between two networks that differ only
                         in their random initialisation, the fraction of layers i of the first
                         whose most similar layer of the second is layer i. A tie with another
                         layer counts as a miss (a measure that cannot tell layers apart scores 0).
  layer_monotonicity     ReSi (Klabunde et al. 2025, repsim/benchmark/monotonicity_experiment.py):
                         within one model, for each source layer, the Spearman correlation between
                         similarity and layer distance over the later layers and, separately, over
                         the earlier ones, sign-flipped so +1 means "farther layers are less
                         similar", averaged (NaN, from fewer than two targets or constant values,
                         left out); and the violation rate: of all (source, nearer, farther)
                         triples on one side of the source, the fraction where the nearer layer is
                         strictly less similar than the farther one.
  factor_sensitivity     Of the layers of model A driven by a known factor (its per-layer factor
                         score in the top half of A's range), the fraction whose most similar
                         layer of model B is also factor-driven in B; `chance` is the fraction of
                         B's layers that are.
"""
from __future__ import annotations

import numpy as np

__all__ = ["oriented", "average_ranks", "layer_identification", "layer_monotonicity",
           "factor_driven", "factor_sensitivity"]


def oriented(matrix, higher_is_similar: bool) -> np.ndarray:
  """The matrix as similarities: as is for a similarity, negated for a distance."""
  m = np.asarray(matrix, np.float64)
  return m if higher_is_similar else -m


def layer_identification(sim) -> float:
  """sim: [L, L] oriented similarities between the layers of two seeds of one architecture."""
  sim = np.asarray(sim, np.float64)
  if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
    raise ValueError(f"sim: expected a square [L, L] matrix, got {sim.shape}")
  others = np.where(np.eye(len(sim), dtype=bool), -np.inf, sim)
  return float(np.mean(np.diag(sim) > others.max(axis=1)))


def average_ranks(values) -> np.ndarray:
  """1-based ranks, ties given their mean rank (scipy.stats.rankdata's "average")."""
  values = np.asarray(values)
  order = np.argsort(values, kind="stable")
  _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
  ranks = np.empty(len(values))
  ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
  return ranks


def _spearman(sims, gaps):
  """-Spearman correlation (Pearson of average ranks); NaN for fewer than two or constant
  values, as scipy.stats.spearmanr."""
  if len(sims) < 2 or np.ptp(sims) == 0 or np.ptp(gaps) == 0:
    return np.nan
  return -float(np.corrcoef(average_ranks(sims), average_ranks(gaps))[0, 1])


def layer_monotonicity(sim) -> tuple[float, float]:
  """sim: [L, L] oriented similarities between the layers of one model -> (Spearman, violation
  rate) as ReSi defines them (module docstring)."""
  sim = np.asarray(sim, np.float64)
  n = len(sim)
  corrs, violations, total = [], 0, 0
  for src in range(n):
    for targets in (np.arange(src + 1, n), np.arange(src - 1, -1, -1)):  # nearest first
      s = sim[src, targets]
      corrs.append(_spearman(s, np.abs(targets - src)))
      for i in range(len(s)):
        violations += int(np.sum(s[i] < s[i + 1:]))
        total += len(s) - i - 1
  corr = float(np.nanmean(corrs)) if np.any(np.isfinite(corrs)) else float("nan")
  return corr, violations / total if total else float("nan")


def factor_driven(scores) -> np.ndarray:
  """[L] bool: layers whose factor score lies in the top half of the model's range."""
  scores = np.asarray(scores, np.float64)
  lo, hi = scores.min(), scores.max()
  return scores >= (lo + hi) / 2 if hi > lo else np.ones(len(scores), bool)


def factor_sensitivity(sim, scores_a, scores_b) -> tuple[float, float]:
  """sim: [La, Lb] oriented similarities between the layers of models A and B; scores_*: their
  per-layer factor scores -> (hit rate over A's factor-driven layers, chance)."""
  sim = np.asarray(sim, np.float64)
  driven_a, driven_b = factor_driven(scores_a), factor_driven(scores_b)
  if sim.shape != (len(driven_a), len(driven_b)):
    raise ValueError(f"sim: expected [{len(driven_a)}, {len(driven_b)}], got {sim.shape}")
  rows = sim[driven_a]
  best = rows == rows.max(axis=1, keepdims=True)  # ties: every best layer must be driven
  hits = np.all(~best | driven_b[None, :], axis=1)
  return float(hits.mean()), float(driven_b.mean())
