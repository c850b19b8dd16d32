"""Statistics around information imbalance, for Appendix B of Mahaut & Baroni (2026).

* `imbalance_subsets`: II on disjoint random subsets, mean ± standard error and a t interval
  (DADApy's `subset_size` / `repeats` semantics, but every subset has exactly `subset_size`
  points, ranks are exact inside each subset, and asking for more points than exist is an error
  rather than a silent truncation).
* `sample_size_curve`: std of II over independent random subsamples as N grows (Fig. 11).
* `smoothness`: std of adjacent-layer differences of an II curve (Sec. 3.2.3, Fig. 12).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from repsim_jax.metrics import intervals, validation
from repsim_jax.metrics.imbalance import information_imbalance_matrix

__all__ = ["imbalance_subsets", "sample_size_curve", "smoothness", "smoothness_curve"]


def imbalance_subsets(layers_a: Sequence, layers_b: Sequence | None = None, *, subset_size: int,
                      repeats: int | None = None, seed: int, confidence: float = 0.95,
                      **kwargs) -> dict[str, np.ndarray]:
  """II matrices on `repeats` disjoint random subsets of exactly `subset_size` points.

  The interval is for the value at N = subset_size (E[Delta] over data sets of subset_size
  images), not at the full N: II drifts with N (a strongly dependent pair: E[Delta_100] = 0.21,
  E[Delta_500] = 0.16), so for the full-N value use `intervals.imbalance_bootstrap`.

  Args:
    layers_a, layers_b: as in `information_imbalance_matrix` ([N, d_l] each).
    subset_size: points per subset.
    repeats: number of disjoint subsets (default: N // subset_size, all that fit).
    seed: seeds the permutation that forms the subsets (`intervals.disjoint_subsets`).
    confidence: level of the Student-t interval (`intervals.subsample_interval`).
    **kwargs: passed to `information_imbalance_matrix` (k, metric, ...). Duplicate points and
      constant layers warn once for the call (not once per subset).

  Returns:
    {"values": [R, La, Lb], "mean": [La, Lb], "sem": [La, Lb] (std with ddof=1 / sqrt(R); 0 when
    R == 1), "low", "high", "half_width" (mean ± t_{R-1} sem), "subsets": [R, subset_size] row
    indices}. One II matrix per subset: R (N/R)^2 distance work in all, less than one full pass.
  """
  layers_a = validation.as_layers(layers_a, "layers_a")
  layers_b = layers_a if layers_b is None else validation.as_layers(layers_b, "layers_b")
  n = validation.check_same_n([layers_a[0], layers_b[0]], ["layers_a", "layers_b"])
  subsets = intervals.disjoint_subsets(n, subset_size, repeats, seed)
  _warn_once(layers_a, layers_b, kwargs)
  values = np.stack([
      information_imbalance_matrix([x[idx] for x in layers_a], [y[idx] for y in layers_b],
                                   **kwargs) for idx in subsets])
  out = intervals.subsample_interval(values, confidence=confidence)
  out["subsets"] = subsets
  return out


def _warn_once(layers_a, layers_b, kwargs):
  """Duplicate points and constant layers warn once for the call, not once per subsample: the
  check runs here on all N points and `check_duplicates=False` goes into `kwargs`."""
  if kwargs.pop("check_duplicates", True):
    validation.warn_degenerate_pairs(layers_a, None if layers_b is layers_a else layers_b,
                                     measure="imbalance", metric=kwargs.get("metric",
                                                                            "euclidean"))
  kwargs["check_duplicates"] = False


def sample_size_curve(layers_a: Sequence, layers_b: Sequence | None = None, *,
                      sizes: Sequence[int], n_subsamples: int = 10, seed: int,
                      **kwargs) -> dict[str, np.ndarray]:
  """II over `n_subsamples` independent random subsamples for each sample size (Fig. 11).

  Duplicate points and constant layers warn once for the call. Each subsample draws `size`
  points without replacement, independently of the others (so they
  may overlap once size > N / n_subsamples, as in the paper's protocol of 10 samples of the data).
  A size equal to N is every point in every subsample: that matrix is computed once (the
  subsamples are identical, their std is 0 up to rounding).

  Returns:
    {"sizes": [S], "values": [S, R, La, Lb], "mean": [S, La, Lb], "std": [S, La, Lb] (ddof=1)}.
  """
  layers_a = validation.as_layers(layers_a, "layers_a")
  layers_b = layers_a if layers_b is None else validation.as_layers(layers_b, "layers_b")
  n = validation.check_same_n([layers_a[0], layers_b[0]], ["layers_a", "layers_b"])
  if max(sizes) > n:
    raise ValueError(f"sizes: largest sample size {max(sizes)} exceeds N={n}")
  _warn_once(layers_a, layers_b, kwargs)
  rng = np.random.default_rng(seed)
  values = np.empty((len(sizes), n_subsamples, len(layers_a), len(layers_b)))
  full = None  # a subsample of all N points is all of them: computed once, not per subsample
  for s, size in enumerate(sizes):
    for r in range(n_subsamples):
      idx = np.sort(rng.choice(n, size=int(size), replace=False))
      if int(size) == n:
        if full is None:
          full = information_imbalance_matrix(layers_a, layers_b, **kwargs)
        values[s, r] = full
        continue
      values[s, r] = information_imbalance_matrix(
          [x[idx] for x in layers_a], [y[idx] for y in layers_b], **kwargs)
  return {"sizes": np.asarray(sizes), "values": values, "mean": values.mean(axis=1),
          "std": values.std(axis=1, ddof=1)}


def smoothness(curves: np.ndarray, axis: int = -1) -> np.ndarray:
  """Std of adjacent-layer differences along `axis` (lower = smoother); needs >= 3 layers.

  For an II matrix [La, Lb] this gives one value per predicting layer (curves along the predicted
  model's layers), as in the paper's Sec. 3.2.3.
  """
  curves = np.asarray(curves, dtype=np.float64)
  if curves.shape[axis] < 3:
    raise ValueError(f"smoothness needs at least 3 layers along axis {axis}, got "
                     f"{curves.shape[axis]}")
  return np.std(np.diff(curves, axis=axis), axis=axis)


def smoothness_curve(layers_a: Sequence, layers_b: Sequence | None = None, *,
                     sizes: Sequence[int], n_seeds: int = 10, seed: int,
                     **kwargs) -> dict[str, np.ndarray]:
  """Smoothness of II curves vs N over `n_seeds` random subsamples (Fig. 12).

  Returns:
    {"sizes": [S], "values": [S, R, La] smoothness of each predicting layer's curve,
     "mean": [S, La], "std": [S, La]}.
  """
  curve = sample_size_curve(layers_a, layers_b, sizes=sizes, n_subsamples=n_seeds, seed=seed,
                            **kwargs)
  values = smoothness(curve["values"], axis=-1)
  return {"sizes": curve["sizes"], "values": values, "mean": values.mean(axis=1),
          "std": values.std(axis=1, ddof=1)}
