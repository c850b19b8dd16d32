"""Intervals for II and CKA values: image bootstrap, split halves and disjoint subsamples.

What an interval covers: E[value at N], the mean of the estimate over fresh data sets of the
same N images (II drifts with N: E[Delta_100] and E[Delta_500] differ by more than their spread).
`benchmarks/bench_coverage.py` measures how often each interval below holds it.

* II, default `method="halves"` (`imbalance_bootstrap`, `halves_interval`): estimate ± t sd,
  where sd is the sampling sd of Delta at N carried from smaller, independent samples. Two
  complementary halves of the images are two independent data sets of N/2 images, so
  (Delta_h1 - Delta_h2)^2 / 2, averaged over random splits, is an unbiased estimate of
  Var(Delta at N/2); four disjoint quarters likewise give Var(Delta at N/4). The variance falls
  like N^-beta, beta = 1 asymptotically but up to ~3 for strongly dependent pairs at small N
  (there Delta ~ 2/N * mean rank with O(1) ranks), and beta falls towards 1 as N grows: the
  beta measured between N/4 and N/2 tends to overstate the one between N/2 and N, and 1 to
  understate it, so the extrapolation uses their midpoint (1 + beta_measured) / 2. The estimate
  itself is E[Delta at N]'s unbiased estimator, so only the sd has to be right. The quantile is
  Student's t on `halves_df` degrees of freedom (20.7 at the default 50 splits into halves and
  25 into quarters): the noise of var_half^1.5 var_quarter^-0.5 by the delta method.
  Why this calibration (`benchmarks/coverage_calibration.py`, judged on the saved per-data-set
  results of `bench_coverage.py --default_only`; benchmarks/results/coverage_2026-12-08.md):
  across the benchmark's cases the sd is unbiased to within ~6% (II) and 3% (CKA), and its
  noise is that of a chi-square on 14-22 degrees of freedom (the splits' 20.7 plus the data
  set's own), so with t the interval covers 0.93-0.96 (II, 300-500 data sets per case, one
  cell 0.927 ± 0.015; CKA 0.93-0.96, 2000). z instead of t covers 0.92-0.94 for CKA, whose sd
  is unbiased: t pays for the sd's noise, not for a bias. The true rate from N/2 to N (II: 0.9-1.4) follows the measured one from
  N/4 to N/2 (0.9-1.8) closely in some cases (a strong pair at N = 200: 1.45, then 1.38) and
  not at all in others (a clustered strong pair at N = 500: 1.83, then 1.24), so no rule through
  two sizes is exact, and the midpoint errs least either way. With the same quantile, rate 1
  covered 0.98 in the first case; the measured rate 0.89 in the second, and the two-term model
  Var(m) = a/m + b/m^2 through both sizes (Richardson extrapolation of m Var in 1/m, exact for
  U-statistics up to O(m^-3)) 0.87 there: II's variance also has an m^-3 term (Delta ~ 2/N times
  a mean rank of O(1) for strongly dependent pairs).
  Why not the bootstrap for II: a resample holds ~0.63N distinct images and every query's
  neighbourhood is re-drawn among them, so the replicates vary more than Delta at N does
  (percentile intervals too wide, covering ~0.98-0.99) and their mean drifts towards Delta on
  ~0.63N images (basic intervals, centred 2 Delta - that mean, miss: coverage down to ~0.7).
  Halves and quarters hold no copies. Coverage of every method: `benchmarks/bench_coverage.py`.
* Image bootstrap (`imbalance_bootstrap`, `cka_bootstrap`): B replicates of the N images drawn
  with replacement, exactly as `scipy.stats.bootstrap` draws them
  (`rng.integers(0, N, (B, N))` with `rng = np.random.default_rng(seed)`), summarised by the
  percentile (or basic) interval and the bootstrap standard error. Not CKA's default: the
  debiased CKA of a resample counts copies as distinct samples, and its percentile interval
  misses at N = 500 on clustered data (coverage ~0.87-0.89) and for a weakly dependent pair of
  128-wide layers (~0.47), where "halves" covers (0.94-0.96).
  All replicates come out of one pass over the data, never B recomputations: La + Lb distance
  passes for II (the resampled ranks are counted with multiplicities, see `imbalance_weighted`;
  copies of an image are not its own neighbours), and one pass over the rows' Gram blocks for
  CKA (`cka_weighted`); the halves and quarters are 0/1 replicates of the same pass.
* Disjoint subsamples (`imbalance_stats.imbalance_subsets`, `cka_subsets`): DADApy's
  `subset_size` / `repeats` protocol (Mahaut & Baroni 2026, Appendix B): the values on R
  disjoint random subsets, their mean, standard error (std ddof=1 / sqrt(R)) and the Student-t
  interval mean ± t_{R-1} sem. They estimate the value at N = subset_size, not at the full N
  (for a strongly dependent pair E[Delta_100] = 0.21 against E[Delta_500] = 0.16).
* `format_interval`: "value ± half-width" strings for tables.

References:
  Efron, Tibshirani. An Introduction to the Bootstrap. 1993 (percentile and basic intervals).
  Politis, Romano, Wolf. Subsampling. Springer 1999 (variance at a smaller size, rate-corrected).
  Shao, Wu. A general theory for jackknife variance estimation. Ann. Stat. 1989 (delete-d).
  Glielmo et al. DADApy. Patterns 2022 (subset_size / repeats).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import scipy.special

from repsim_jax.metrics import cka_weighted, imbalance_weighted, validation
from repsim_jax.metrics.kernel_alignment import cka_matrix

__all__ = ["bootstrap_indices", "bootstrap_weights", "bootstrap_interval", "split_weights",
           "halves_weights", "split_variances", "extrapolated_std", "halves_df",
           "halves_interval", "resampled_interval", "imbalance_bootstrap", "cka_bootstrap",
           "disjoint_subsets", "subsample_interval", "cka_subsets", "format_interval"]

METHODS = ("percentile", "basic")  # `bootstrap_interval`'s, from bootstrap replicates
INTERVAL_METHODS = ("halves",) + METHODS  # `imbalance_bootstrap` / `cka_bootstrap`'s
DEFAULT_SPLITS = 50  # random splits into halves (and half as many into quarters)


def halves_df(n_halves: int, n_quarters: int) -> float:
  """Degrees of freedom of `extrapolated_std`'s variance, for the Student-t quantile.

  Each of the S = n_halves splits gives one squared difference (h1 - h2)^2 / 2, a chi-square on
  1 degree of freedom times Var(n // 2), and each of the Q = n_quarters splits a ddof=1 variance
  on 3: var_half ~ chi-square_S / S, var_quarter ~ chi-square_{3Q} / 3Q (the splits of one data
  set are nearly independent draws). The variance at n is var_half^1.5 var_quarter^-0.5 times a
  constant (the midpoint rate), so by the delta method Var(log var_n) = 2.25 (2 / S) + 0.25
  (2 / 3Q), the noise of a chi-square variance on 1 / (2.25 / S + 0.25 / 3Q) degrees of freedom
  (Satterthwaite 1946): 20.7 at the default 50 and 25 splits. `benchmarks/coverage_calibration.py`
  measures 14-20 (the data set adds its own noise to the splits').
  """
  return 1.0 / (2.25 / n_halves + 0.25 / (3 * n_quarters))


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
  basic: 2 * estimate - those quantiles, swapped. At least `validation.MIN_BOOT` (20) replicates.
  For II prefer `halves_interval` (module docstring): its bootstrap replicates are too spread
  and off-centre.

  Returns:
    {"value", "low", "high", "half_width" ((high - low) / 2), "std" (ddof=1), "replicates"}.
  """
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  _check_confidence(confidence)
  estimate = np.asarray(estimate, np.float64)
  replicates = np.asarray(replicates, np.float64)
  validation.check_count(len(replicates), "n_boot", validation.MIN_BOOT,
                         "replicates an interval is read from; see validation.MIN_BOOT")
  alpha = (1 - confidence) / 2
  low, high = np.quantile(replicates, [alpha, 1 - alpha], axis=0)
  if method == "basic":
    low, high = 2 * estimate - high, 2 * estimate - low
  std = replicates.std(axis=0, ddof=1) if len(replicates) > 1 else np.zeros_like(estimate)
  return {"value": estimate, "low": low, "high": high, "half_width": (high - low) / 2,
          "std": std, "replicates": replicates}


def _check_confidence(confidence):
  if not 0 < confidence < 1:
    raise ValueError(f"confidence: expected 0 < confidence < 1, got {confidence}")


def split_weights(n: int, parts: int, n_splits: int, seed: int) -> np.ndarray:
  """[n_splits * parts, n] int32 0/1 weights: each split cuts one random permutation of the n
  images into `parts` disjoint pieces of n // parts images (the n % parts left over sit out),
  rows split by split (pieces of split s: rows s * parts ... s * parts + parts - 1).

  Draws: `np.random.default_rng([seed, parts]).permutation(n)`, once per split, so halves and
  quarters are independent of each other and of `bootstrap_indices(n, B, seed)`.
  """
  size = n // parts
  if size < 1:
    raise ValueError(f"N={n} points cannot be split into {parts} parts")
  rng = np.random.default_rng([seed, parts])
  out = np.zeros((n_splits * parts, n), np.int32)
  for s in range(n_splits):
    perm = rng.permutation(n)[:size * parts].reshape(parts, size)
    out[s * parts + np.arange(parts)[:, None], perm] = 1
  return out


def halves_weights(n: int, n_splits: int, seed: int) -> np.ndarray:
  """[2 S + 4 (S // 2), n] int32 0/1 weights: `split_weights(n, 2, S, seed)` (the halves), then
  `split_weights(n, 4, S // 2, seed)` (the quarters), the rows `halves_interval` reads."""
  return np.concatenate([split_weights(n, 2, n_splits, seed),
                         split_weights(n, 4, n_splits // 2, seed)])


def split_variances(halves, quarters) -> tuple[np.ndarray, np.ndarray]:
  """(Var at n // 2, Var at n // 4) [...]: unbiased estimates from the values on complementary
  halves [2 S, ...] and disjoint quarters [4 Q, ...] (`halves_weights` order)."""
  halves = np.asarray(halves, np.float64)
  quarters = np.asarray(quarters, np.float64)
  if len(halves) < 2 or len(halves) % 2 or len(quarters) < 4 or len(quarters) % 4:
    raise ValueError(f"halves, quarters: expected [2 S, ...] and [4 Q, ...] values, got "
                     f"{halves.shape} and {quarters.shape}")
  # Complementary halves are independent samples: E[(h1 - h2)^2] / 2 = Var(value at n // 2).
  var_half = np.mean((halves[0::2] - halves[1::2]) ** 2, axis=0) / 2
  # Four disjoint quarters: their ddof=1 variance is unbiased for Var(value at n // 4).
  var_quarter = quarters.reshape(len(quarters) // 4, 4, *quarters.shape[1:]).var(
      axis=1, ddof=1).mean(axis=0)
  return var_half, var_quarter


def extrapolated_std(var_half, var_quarter, n: int) -> tuple[np.ndarray, np.ndarray]:
  """(sd of the value at n, rate beta used: Var(n) = var_half * (n_half / n)^beta) [...] from the
  variances at n // 2 and n // 4 (module docstring)."""
  m_half, m_quarter = n // 2, n // 4
  var_half = np.asarray(var_half, np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    measured = np.log(var_quarter / var_half) / np.log(m_half / m_quarter)
  # The rate between n/2 and n lies between the asymptotic 1 and the rate measured one step
  # lower (it falls towards 1 as n grows): the midpoint, with the measurement kept in [0.5, 3].
  measured = np.clip(np.nan_to_num(measured, nan=1.0, posinf=3.0, neginf=0.5), 0.5, 3.0)
  rate = (1.0 + measured) / 2
  return np.sqrt(var_half * (m_half / n) ** rate), rate


def halves_interval(estimate, halves, quarters, *, n: int,
                    confidence: float = 0.95) -> dict[str, np.ndarray]:
  """Interval of E[value at N] from the values on split halves and quarters (module docstring).

  Args:
    estimate: [...] the value on all n images.
    halves: [2 S, ...] values on complementary halves (`split_weights(n, 2, S, seed)` order).
    quarters: [4 Q, ...] values on the four disjoint quarters of Q splits (`split_weights(n, 4,
      Q, seed)`).
    n: images in the full data set (the halves hold n // 2, the quarters n // 4).

  Returns:
    {"value", "low", "high", "half_width" (Student's t quantile on `halves_df` degrees of
     freedom * std), "std" (the sd of the value at n, `extrapolated_std`),
     "var_half", "var_quarter" (Var at n // 2 and n // 4, `split_variances`), "rate" (the
     exponent beta used: Var(n) = var_half * (n_half / n)^beta), "df" (`halves_df`)}.
  """
  _check_confidence(confidence)
  estimate = np.asarray(estimate, np.float64)
  var_half, var_quarter = split_variances(halves, quarters)
  std, rate = extrapolated_std(var_half, var_quarter, n)
  df = halves_df(len(halves) // 2, len(quarters) // 4)
  half = scipy.special.stdtrit(df, (1 + confidence) / 2) * std
  return {"value": estimate, "low": estimate - half, "high": estimate + half,
          "half_width": half, "std": std, "var_half": var_half, "var_quarter": var_quarter,
          "rate": rate, "df": df}


def _checked(layers_a, layers_b):
  """Host layer lists with the same N (layers_b None or layers_a: the same list)."""
  same = layers_b is None or layers_b is layers_a
  layers_a = validation.as_layers(layers_a, "layers_a")
  layers_b = layers_a if same else validation.as_layers(layers_b, "layers_b")
  validation.check_same_n([layers_a[0], layers_b[0]], ["layers_a[0]", "layers_b[0]"])
  return layers_a, layers_b


def resampled_interval(weighted, layers_a, layers_b, *, n_boot, n_splits, seed, confidence,
                       method, min_n, what, **kwargs):
  """The plain value, B bootstrap replicates and (method "halves") the split halves and
  quarters, all from one `weighted(layers_a, layers_b, weights [R, N], **kwargs) -> [R, ...]`
  pass; the interval of `method` (`imbalance_bootstrap`'s keys). The one interval path of II, CKA
  and every measure of the protocol (`repsim_jax.measures.bootstrap`)."""
  if method not in INTERVAL_METHODS:
    raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")
  _check_confidence(confidence)
  n = np.shape(layers_a[0])[0]
  validation.check_min_n(n, min_n, what)
  n_boot = validation.check_count(n_boot, "n_boot", validation.MIN_BOOT,
                                  "replicates an interval is read from; see validation.MIN_BOOT")
  blocks = [np.ones((1, n), np.int32), bootstrap_weights(n, n_boot, seed)]
  if method == "halves":
    n_splits = validation.check_count(n_splits, "n_splits", 2)
    blocks.append(halves_weights(n, n_splits, seed))
  values = weighted(layers_a, layers_b, np.concatenate(blocks), **kwargs)
  replicates = values[1:1 + n_boot]
  if method != "halves":
    return bootstrap_interval(values[0], replicates, confidence=confidence, method=method)
  split = values[1 + n_boot:]
  out = halves_interval(values[0], split[:2 * n_splits], split[2 * n_splits:], n=n,
                        confidence=confidence)
  out.update(replicates=replicates, halves=split[:2 * n_splits], quarters=split[2 * n_splits:],
             bootstrap_std=replicates.std(axis=0, ddof=1))
  return out


def imbalance_bootstrap(layers_a: Sequence, layers_b: Sequence | None = None, *,
                        n_boot: int = 200, seed: int = 0, confidence: float = 0.95,
                        method: str = "halves", n_splits: int = DEFAULT_SPLITS,
                        **kwargs) -> dict[str, np.ndarray]:
  """Interval of every Delta(layers_a[i] -> layers_b[j]), with its image-bootstrap replicates.

  Args:
    layers_a, layers_b: as in `information_imbalance_matrix` (layers_b None: layers_a);
      N >= max(`validation.MIN_INTERVAL_N`, 4 (k + 1)) images (a quarter needs k + 1).
    n_boot, seed: bootstrap replicates (>= `validation.MIN_BOOT`), drawn by `bootstrap_indices`;
      the seed also draws the splits (`split_weights`).
    confidence: the level (0.95: a 95% interval).
    method: "halves" (default: the sd at N from split halves and quarters, `halves_interval`,
      which covers E[Delta at N] at its level; see the module docstring), "percentile" (too wide
      for II) or "basic" (off-centre for II: warns).
    n_splits: random splits into halves (and n_splits // 2 into quarters), "halves" only.
    **kwargs: k, metric, dtype, mesh, block_size, memory_budget_bytes (`weighted_imbalance`).

  Returns:
    "value" [La, Lb] (the plain matrix, from the same pass), "low", "high", "half_width", "std"
    (the interval's sd of Delta at N), "replicates" [B, La, Lb] (bootstrap), and with "halves"
    also "halves" [2 S, La, Lb], "quarters" [4 (S // 2), La, Lb], "var_half", "var_quarter",
    "rate" (`halves_interval`) and "bootstrap_std".
  """
  if method == "basic":
    warnings.warn("method='basic' for II: the bootstrap replicates' mean drifts towards Delta on "
                  "the ~0.63N distinct images of a resample, so the basic interval (centred "
                  "2 Delta - that mean) misses E[Delta at N] well above its nominal rate "
                  "(benchmarks/bench_coverage.py); use method='halves'", stacklevel=2)
  k = int(kwargs.get("k", 1))
  layers_a, layers_b = _checked(layers_a, layers_b)
  validation.warn_degenerate_pairs(layers_a, layers_b, measure="imbalance",
                                   metric=kwargs.get("metric", "euclidean"))
  return resampled_interval(imbalance_weighted.weighted_imbalance, layers_a, layers_b, n_boot=n_boot,
                    n_splits=n_splits, seed=seed, confidence=confidence, method=method,
                    min_n=max(validation.MIN_INTERVAL_N, 4 * (k + 1)),
                    what=f"an II interval (k={k}: quarters of k + 1 images)", **kwargs)


def cka_bootstrap(layers_a: Sequence, layers_b: Sequence | None = None, *, n_boot: int = 200,
                  seed: int = 0, hsic: str | None = None, confidence: float = 0.95,
                  method: str = "halves", n_splits: int = DEFAULT_SPLITS,
                  **kwargs) -> dict[str, np.ndarray]:
  """Image-bootstrap interval of every linear CKA(layers_a[i], layers_b[j]).

  Args as in `imbalance_bootstrap` (N >= `validation.MIN_INTERVAL_N`); hsic: as in
  `cka_matrix`; method: "halves" (default: the percentile bootstrap covered only 0.47-0.89 in
  some of `benchmarks/bench_coverage.py`'s cases, halves 0.93-0.99), "percentile" or "basic";
  **kwargs: mesh, block_size, memory_budget_bytes, dtype (`weighted_cka`; its deprecated
  `debiased` too).

  Returns:
    `bootstrap_interval`'s dict with "value" [La, Lb] from the same pass (with "halves":
    `imbalance_bootstrap`'s keys).
  """
  layers_a, layers_b = _checked(layers_a, layers_b)
  validation.warn_degenerate_pairs(layers_a, layers_b, measure="cka")
  return resampled_interval(cka_weighted.weighted_cka, layers_a, layers_b, n_boot=n_boot,
                    n_splits=n_splits, seed=seed, confidence=confidence, method=method,
                    min_n=validation.MIN_INTERVAL_N, what="a CKA interval", hsic=hsic,
                    **kwargs)


def disjoint_subsets(n: int, subset_size: int, repeats: int | None, seed: int) -> np.ndarray:
  """[R, subset_size] row indices of R disjoint random subsets (default R = n // subset_size).

  One `np.random.default_rng(seed).permutation(n)`, cut into consecutive pieces.
  """
  if int(subset_size) != subset_size or subset_size < 2:
    raise ValueError(f"subset_size={subset_size}: expected an integer >= 2")
  if subset_size > n:
    raise ValueError(f"subset_size={subset_size} exceeds the N={n} points there are")
  fit = n // subset_size
  repeats = fit if repeats is None else int(repeats)
  if repeats < 1 or repeats > fit:
    raise ValueError(f"{repeats} disjoint subsets of {subset_size} points need "
                     f"{repeats * subset_size} points, but there are N={n} (at most {fit} "
                     f"subsets fit)")
  perm = np.random.default_rng(seed).permutation(n)
  return perm[: repeats * subset_size].reshape(repeats, subset_size)


def subsample_interval(values, *, confidence: float = 0.95) -> dict[str, np.ndarray]:
  """Mean, standard error and Student-t interval of values [R, ...] from R disjoint subsets.

  The interval is for the value at N = subset_size (E[value] over data sets of subset_size
  images), not at the full N: II drifts with N, so it does not cover the full-N value.

  Returns:
    {"values", "mean", "sem" (std ddof=1 / sqrt(R); 0 when R == 1), "low", "high",
     "half_width" (t_{R-1, (1 + confidence) / 2} * sem; 0 when R == 1)}.
  """
  _check_confidence(confidence)
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

  The interval is for the CKA at N = subset_size (E over data sets of subset_size images), not at
  the full N (debiased CKA drifts little with N, biased CKA falls with it).

  Args:
    layers_a, layers_b: sequences of [N, d_l] arrays with the same N (layers_b None: layers_a).
    subset_size, repeats, seed: see `disjoint_subsets`.
    **kwargs: passed to `cka_matrix` (debiased, batch_size, ...).

  Returns:
    `subsample_interval`'s dict ("values" [R, La, Lb], "mean", "sem", "low", "high",
    "half_width") and "subsets" [R, subset_size].
  """
  same = layers_b is None or layers_b is layers_a
  layers_a, layers_b = _checked(layers_a, layers_b)
  validation.warn_degenerate_pairs(layers_a, layers_b, measure="cka")
  subsets = disjoint_subsets(np.shape(layers_a[0])[0], subset_size, repeats, seed)

  def on(layers, idx):
    return [x[idx] for x in layers]

  values = []
  with validation.degenerate_warnings_off():  # said once above, not once per subset
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
