"""Differences of one-number summaries of each representation (ReSi's statistics measures).

Each layer is summarised once by `prepare` (a float64 scalar); the pair is the absolute difference
(Klabunde et al. 2025, github.com/mklabunde/resi, repsim/measures/statistics.py):

  magnitude-difference-distance       | ||mean_i x_i|| - ||mean_i y_i|| |
  concentricity-difference-distance   | mean_i cos(x_i, mean x) - mean_i cos(y_i, mean y) |
                                      (a zero row, or a zero mean, has cosine 0, as sklearn's
                                      normalisation of zero vectors gives)
  uniformity-difference-distance      | U(x) - U(y) |,  U(x) = log( sum_ij exp(-2 ||x_i - x_j||^2)
                                      / n^2 )  (Wang & Isola 2020, t = 2; diagonal included)

The uniformity sum streams row blocks of the squared distances (`distance_matrices.row_sums`,
float32 Gram trick on centred points, float64 block sums): no n x n matrix.
"""
from __future__ import annotations

import numpy as np

from repsim_jax.measures import distance_matrices
from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics import validation

__all__ = ["magnitude", "concentricity", "uniformity"]


def _as_float64(x) -> np.ndarray:
  return np.asarray(validation.as_representation(x, "x"), np.float64)


def magnitude(x, **unused_options) -> float:
  """||mean_i x_i|| in float64."""
  return float(np.linalg.norm(_as_float64(x).mean(axis=0)))


def _unit_rows(x):
  norms = np.linalg.norm(x, axis=-1, keepdims=True)
  return x / np.where(norms > 0, norms, 1.0)


def concentricity(x, **unused_options) -> float:
  """mean_i cos(x_i, mean x) in float64."""
  x = _as_float64(x)
  return float(np.mean(_unit_rows(x) @ _unit_rows(x.mean(axis=0))))


def uniformity(x, *, t: float = 2.0, **unused_options) -> float:
  """log(mean_ij exp(-t ||x_i - x_j||^2)), streamed over row blocks."""
  points = distance_matrices.prepare_points(x)
  sums = distance_matrices.row_sums(points, ("exp_sq", float(t)))
  return float(np.log(sums.sum() / points.shape[0] ** 2))


def absolute_difference(a: float, b: float, **unused_options) -> float:
  return abs(a - b)


_SOURCE = "Klabunde et al. 2025 (ReSi), github.com/mklabunde/resi repsim/measures/statistics.py"
for _name, _summary, _words, _invariances in (
    ("magnitude-difference-distance", magnitude, "norm of the mean row",
     ("orthogonal", "permutation")),
    ("concentricity-difference-distance", concentricity, "mean cosine to the mean row",
     ("orthogonal", "isotropic_scaling", "permutation")),
    ("uniformity-difference-distance", uniformity, "log mean Gaussian potential",
     ("orthogonal", "permutation", "translation"))):
  register(Measure(
      name=_name, kind="distance", pair=absolute_difference, prepare=_summary,
      preparation=_words, properties=Properties(symmetric=True, invariances=_invariances),
      perfect=0.0, min_rows=2, reference=f"{_SOURCE} ({_summary.__name__})"))
