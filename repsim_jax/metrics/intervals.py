"""Intervals for II and CKA values: image bootstrap and disjoint subsamples, pairs and matrices.

* Image bootstrap (`imbalance_bootstrap`, `cka_bootstrap`): B replicates of the N images drawn
  with replacement, exactly as `scipy.stats.bootstrap` draws them
  (`rng.integers(0, N, (B, N))` with `rng = np.random.default_rng(seed)`), summarised by the
  percentile (or basic) interval and the bootstrap standard error. All replicates come out of one
  pass over the data, never B recomputations: La + Lb distance passes for II (the resampled
  ranks are counted with multiplicities, see `imbalance_weighted`; copies of an image are not
  its own neighbours), and one pass over the rows' Gram blocks for CKA (`cka_weighted`).
* Disjoint subsamples (`imbalance_stats.imbalance_subsets`, `cka_subsets`): DADApy's
  `subset_size` / `repeats` protocol (Mahaut & Baroni 2026, Appendix B): the values on R
  disjoint random subsets, their mean, standard error (std ddof=1 / sqrt(R)) and the Student-t
  interval mean ± t_{R-1} sem. They describe the estimate at N = subset_size.
* `format_interval`: "value ± half-width" strings for tables.

References:
  Efron, Tibshirani. An Introduction to the Bootstrap. 1993 (percentile and basic intervals).
  Glielmo et al. DADApy. Patterns 2022 (subset_size / repeats).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.special

from repsim_jax.metrics import cka_weighted, imbalance_weighted
from repsim_jax.metrics.kernel_alignment import cka_matrix

__all__ = ["bootstrap_indices", "bootstrap_weights", "bootstrap_interval", "imbalance_bootstrap",
           "cka_bootstrap", "disjoint_subsets", "subsample_interval", "cka_subsets",
           "format_interval"]

METHODS = ("percentile", "basic")


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
  """[n_boot, n] resampled image indices, drawn as `scipy.stats.bootstrap` draws them."""
  if n_boot < 1:
    raise ValueError(f"n_boot: expected >= 1, got {n_boot}")
  return np.random.default_rng(seed).integers(0, n, (n_boot, n))


def bootstrap_weights(n: int, n_boot: int, seed: int) -> np.ndarray:
  """[n_boot, n] int32: how often each image appears in each `bootstrap_indices` replicate."""
  idx = bootstrap_indices(n, n_boot, seed)
  rows = np.repeat(np.arange(n_boot), n)
  out = np.zeros((n_boot, n), np.int32)
  np.add.at(out, (rows, idx.ravel()), 1)
  return out


def bootstrap_interval(estimate, replicates, *, confidence: float = 0.95,
                       method: str = "percentile") -> dict[str, np.ndarray]:
  """Two-sided interval from bootstrap replicates [B, ...] (scipy.stats.bootstrap's formulas).

  percentile: the alpha/2 and 1 - alpha/2 quantiles of the replicates (numpy/scipy "linear");
  basic: 2 * estimate - those quantiles, swapped.

  Returns:
    {"value", "low", "high", "half_width" ((high - low) / 2), "std" (ddof=1), "replicates"}.
  """
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  if not 0 < confidence < 1:
    raise ValueError(f"confidence: expected 0 < confidence < 1, got {confidence}")
  estimate = np.asarray(estimate, np.float64)
  replicates = np.asarray(replicates, np.float64)
  alpha = (1 - confidence) / 2
  low, high = np.quantile(replicates, [alpha, 1 - alpha], axis=0)
  if method == "basic":
    low, high = 2 * estimate - high, 2 * estimate - low
  std = replicates.std(axis=0, ddof=1) if len(replicates) > 1 else np.zeros_like(estimate)
  return {"value": estimate, "low": low, "high": high, "half_width": (high - low) / 2,
          "std": std, "replicates": replicates}


def imbalance_bootstrap(layers_a: Sequence, layers_b: Sequence | None = None, *,
                        n_boot: int = 200, seed: int = 0, confidence: float = 0.95,
                        method: str = "percentile", **kwargs) -> dict[str, np.ndarray]:
  """Image-bootstrap interval of every Delta(layers_a[i] -> layers_b[j]).

  Args:
    layers_a, layers_b: as in `information_imbalance_matrix` (layers_b None: layers_a).
    n_boot, seed: replicates, drawn by `bootstrap_indices`.
    confidence, method: see `bootstrap_interval`.
    **kwargs: k, metric, dtype, mesh, block_size, memory_budget_bytes (`weighted_imbalance`).

  Returns:
    `bootstrap_interval`'s dict: "value" [La, Lb] (the plain matrix, from the same pass),
    "replicates" [B, La, Lb], "low", "high", "half_width", "std".
  """
  n = np.shape(layers_a[0])[0]
  weights = np.concatenate([np.ones((1, n), np.int32), bootstrap_weights(n, n_boot, seed)])
  values = imbalance_weighted.weighted_imbalance(layers_a, layers_b, weights, **kwargs)
  return bootstrap_interval(values[0], values[1:], confidence=confidence, method=method)


def cka_bootstrap(layers_a: Sequence, layers_b: Sequence | None = None, *, n_boot: int = 200,
                  seed: int = 0, hsic: str | None = None, confidence: float = 0.95,
                  method: str = "percentile", **kwargs) -> dict[str, np.ndarray]:
  """Image-bootstrap interval of every linear CKA(layers_a[i], layers_b[j]).

  Args as in `imbalance_bootstrap`; hsic: as in `cka_matrix`; **kwargs: mesh, block_size,
  memory_budget_bytes, dtype (`weighted_cka`; its deprecated `debiased` too).

  Returns:
    `bootstrap_interval`'s dict with "value" [La, Lb] from the same pass.
  """
  n = np.shape(layers_a[0])[0]
  weights = np.concatenate([np.ones((1, n), np.int32), bootstrap_weights(n, n_boot, seed)])
  values = cka_weighted.weighted_cka(layers_a, layers_b, weights, hsic=hsic, **kwargs)
  return bootstrap_interval(values[0], values[1:], confidence=confidence, method=method)


def disjoint_subsets(n: int, subset_size: int, repeats: int | None, seed: int) -> np.ndarray:
  """[R, subset_size] row indices of R disjoint random subsets (default R = n // subset_size).

  One `np.random.default_rng(seed).permutation(n)`, cut into consecutive pieces.
  """
  fit = n // subset_size if subset_size > 0 else 0
  repeats = fit if repeats is None else int(repeats)
  if subset_size < 2 or repeats < 1 or repeats > fit:
    raise ValueError(f"{repeats} disjoint subsets of {subset_size} points need "
                     f"{repeats * subset_size} points, but there are N={n}")
  perm = np.random.default_rng(seed).permutation(n)
  return perm[: repeats * subset_size].reshape(repeats, subset_size)


def subsample_interval(values, *, confidence: float = 0.95) -> dict[str, np.ndarray]:
  """Mean, standard error and Student-t interval of values [R, ...] from R disjoint subsets.

  Returns:
    {"values", "mean", "sem" (std ddof=1 / sqrt(R); 0 when R == 1), "low", "high",
     "half_width" (t_{R-1, (1 + confidence) / 2} * sem; 0 when R == 1)}.
  """
  if not 0 < confidence < 1:
    raise ValueError(f"confidence: expected 0 < confidence < 1, got {confidence}")
  values = np.asarray(values, np.float64)
  r = len(values)
  mean = values.mean(axis=0)
  if r > 1:
    sem = values.std(axis=0, ddof=1) / np.sqrt(r)
    half = scipy.special.stdtrit(r - 1, (1 + confidence) / 2) * sem  # Student-t quantile
  else:
    sem = half = np.zeros_like(mean)
  return {"values": values, "mean": mean, "sem": sem, "low": mean - half, "high": mean + half,
          "half_width": half}


def cka_subsets(layers_a: Sequence, layers_b: Sequence | None = None, *, subset_size: int,
                repeats: int | None = None, seed: int, confidence: float = 0.95,
                **kwargs) -> dict[str, np.ndarray]:
  """CKA matrices on R disjoint random subsets (the II counterpart: `imbalance_subsets`).

  Args:
    layers_a, layers_b: sequences of [N, d_l] arrays (layers_b None: layers_a).
    subset_size, repeats, seed: see `disjoint_subsets`.
    **kwargs: passed to `cka_matrix` (debiased, batch_size, ...).

  Returns:
    `subsample_interval`'s dict ("values" [R, La, Lb], "mean", "sem", "low", "high",
    "half_width") and "subsets" [R, subset_size].
  """
  same = layers_b is None or layers_b is layers_a
  subsets = disjoint_subsets(np.shape(layers_a[0])[0], subset_size, repeats, seed)

  def on(layers, idx):
    return [np.asarray(x)[idx] for x in layers]

  values = []
  for idx in subsets:
    sub_a = on(layers_a, idx)
    values.append(cka_matrix(sub_a, sub_a if same else on(layers_b, idx), **kwargs))
  values = np.stack(values)
  out = subsample_interval(values, confidence=confidence)
  out["subsets"] = subsets
  return out


def format_interval(value, half_width, *, digits: int | None = None) -> str | np.ndarray:
  """"value ± half-width" with matching decimals (e.g. "0.312 ± 0.014"), for tables.

  Args:
    value, half_width: scalars or arrays of the same shape (e.g. an interval's "value" and
      "half_width"); NaN half-widths print the value alone.
    digits: decimals; default: the half-width's first two significant digits (at least one
      decimal), so the value is not given more precisely than its uncertainty.

  Returns:
    a str for scalars, else an object array of str of the same shape.
  """
  value, half = np.broadcast_arrays(np.asarray(value, np.float64),
                                    np.asarray(half_width, np.float64))

  def one(v, h):
    if digits is not None:
      d = digits
    elif np.isfinite(h) and h > 0:
      d = max(1, 1 - int(np.floor(np.log10(h))))
    else:
      d = 3
    return f"{v:.{d}f}" if not np.isfinite(h) else f"{v:.{d}f} ± {h:.{d}f}"

  out = np.empty(value.shape, object)
  for idx in np.ndindex(value.shape):
    out[idx] = one(value[idx], half[idx])
  return out[()] if out.ndim == 0 else out
