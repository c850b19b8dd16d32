"""Neighbour category sharing: how much neighbourhoods are organised around image properties
(Mahaut & Baroni 2026, §3.3, Figs. 3 and 14).

For each property (e.g. the low-level features of `repsim_jax.imaging.features`, or a generated
world's true factors) the `group_size` images with the lowest, the middle and the highest values
form three categories (nine for three properties, an image may be in several);
`neighbour_sharing_by_layer` measures, per layer, the fraction of an image's k nearest neighbours
that share at least one category with it, and `random_sharing_baseline` gives the exact value of
that fraction if neighbours were drawn at random.

References:
  Mahaut & Baroni 2026, "Similarity of Processing Steps in Vision Model Representations", §3.3,
    Figs. 3 and 14.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from repsim_jax.metrics.neighbours import knn

LEVELS = ("low", "middle", "high")


def property_levels(values, *, group_size: int = 100) -> np.ndarray:
  """Low / middle / high groups of one property: values [n] -> bool [n, 3] (columns as `LEVELS`).

  Images are ranked by value (stable sort, so ties go to the lower index): the first
  `group_size` are "low", the last `group_size` "high", and "middle" is the `group_size` ranks
  starting at (n - group_size) // 2. With n >= 3 * group_size the three groups are disjoint.
  """
  values = np.asarray(values)
  if values.ndim != 1:
    raise ValueError(f"values: expected a 1-D array [n], got shape {values.shape}")
  n = values.shape[0]
  if not 0 < group_size <= n:
    raise ValueError(f"group_size: expected 1..n={n}, got {group_size}")
  if not np.all(np.isfinite(values)):
    raise ValueError("values: expected finite numbers, got NaN or inf")
  order = np.argsort(values, kind="stable")
  start = (n - group_size) // 2
  levels = np.zeros((n, 3), bool)
  levels[order[:group_size], 0] = True
  levels[order[start:start + group_size], 1] = True
  levels[order[n - group_size:], 2] = True
  return levels


def lowlevel_categories(features: Mapping[str, np.ndarray], *,
                        group_size: int = 100) -> tuple[np.ndarray, list[str]]:
  """The 3 x len(features) categories: membership bool [n, 3P] and names "<property>:<level>".

  features: {property: [n]} (e.g. from `lowlevel_features`), all of the same length.
  """
  names, columns = [], []
  lengths = {k: np.shape(v) for k, v in features.items()}
  if len({s for s in lengths.values()}) != 1:
    raise ValueError(f"features: expected equal-length 1-D arrays, got shapes {lengths}")
  for prop, values in features.items():
    columns.append(property_levels(values, group_size=group_size))
    names += [f"{prop}:{level}" for level in LEVELS]
  return np.concatenate(columns, axis=1), names


def _check_membership(membership) -> np.ndarray:
  membership = np.asarray(membership)
  if membership.ndim != 2 or membership.dtype != bool:
    raise ValueError(f"membership: expected bool [n, categories], got {membership.dtype} "
                     f"{membership.shape}")
  return membership


def category_sharing(neighbours, membership, *, queries=None) -> np.ndarray:
  """Fraction of each query's neighbours that share at least one category with it.

  neighbours: int [m, k] row indices into `membership` (bool [n, c]); queries: int [m] (default
  arange(n), i.e. neighbours of every row). Returns float [m]:
  mean_j [ C(query) ∩ C(neighbours[i, j]) ≠ ∅ ].
  """
  membership = _check_membership(membership)
  neighbours = np.asarray(neighbours)
  queries = np.arange(neighbours.shape[0]) if queries is None else np.asarray(queries)
  if neighbours.ndim != 2 or queries.shape != neighbours.shape[:1]:
    raise ValueError(f"neighbours: expected [m, k] with m = len(queries) = {queries.shape[0]}, "
                     f"got shape {neighbours.shape}")
  shared = np.any(membership[queries][:, None, :] & membership[neighbours], axis=-1)
  return shared.mean(axis=1)


def random_sharing_baseline(membership) -> float:
  """Exact expected `category_sharing` if each image's neighbours were a random subset of the others.

  For image i let s_i = #{j != i : C_i ∩ C_j ≠ ∅}. A uniformly random neighbour (any k, drawn
  without replacement from the n - 1 other images) shares a category with probability
  s_i / (n - 1), so the mean over images is

      baseline = sum_i s_i / (n (n - 1)) = (sum_{p, q : p ∩ q ≠ ∅} n_p n_q - n_+) / (n (n - 1)),

  where images are grouped by their exact category set p with n_p members and n_+ is the number of
  images with at least one category (each shares with itself, which the first sum counts). With
  9 disjoint categories of 100 images this is 8.91e4 / (900 * 899) = 11.0 %; overlaps raise it (the
  paper reports 15.2 % for its data). Costs O(#distinct sets^2), never n x n.

  membership: bool [n, c] for the n images among which neighbours are searched.
  """
  membership = _check_membership(membership)
  n = membership.shape[0]
  if n < 2:
    raise ValueError(f"membership: expected at least 2 images, got {n}")
  patterns, counts = np.unique(membership, axis=0, return_counts=True)
  overlap = (patterns.astype(np.int64) @ patterns.T.astype(np.int64)) > 0
  pairs = counts.astype(np.float64) @ overlap @ counts.astype(np.float64)
  n_plus = counts[patterns.any(axis=1)].sum()
  return float((pairs - n_plus) / (n * (n - 1)))


def neighbour_sharing_by_layer(layers: Sequence, membership, *, k: int = 10,
                               metric: str = "cosine",
                               block_size: int | None = None) -> np.ndarray:
  """Per layer, per image: fraction of its k nearest neighbours sharing a category with it.

  layers: sequence of L arrays [n, d_l] (representations of the same n images, rows aligned with
  `membership` bool [n, c]). Neighbours via `repsim_jax.metrics.neighbours.knn` (self excluded,
  ties to the lower index). Returns float [L, n]; its mean over images is the Fig. 3 value.
  """
  membership = _check_membership(membership)
  out = []
  for l, x in enumerate(layers):
    if np.shape(x)[0] != membership.shape[0]:
      raise ValueError(f"layers[{l}]: expected {membership.shape[0]} rows (one per image in "
                       f"membership), got shape {np.shape(x)}")
    _, idx = knn(x, k, metric=metric, block_size=block_size)
    out.append(category_sharing(np.asarray(idx), membership))
  return np.stack(out)


def lowlevel_neighbour_analysis(layers_by_model: Mapping[str, Sequence], features: Mapping[str, np.ndarray],
                                *, group_size: int = 100, k: int = 10, metric: str = "cosine",
                                block_size: int | None = None) -> dict[str, dict]:
  """Figs. 3 and 14: neighbour category sharing per layer, overall and per property.

  layers_by_model: {model: [L_m arrays [n, d_l]]}, rows aligned with `features` {property: [n]}
  (e.g. the paper's 2k images). Categories come from `lowlevel_categories(features, group_size)`.

  "overall" (Fig. 3): the images in at least one of the 3P categories (the paper's 900, fewer
  when they overlap), neighbours searched among them, a neighbour counts if it shares any category.
  Per property (Fig. 14): the analysis repeated on that property alone: the images in one of its 3
  categories, neighbours among them, sharing its category.

  Returns {scope: {"images": int [n_s] (rows used), "baseline": float (exact random baseline),
  "sharing": {model: float [L_m] (mean over images)}, "per_image": {model: float [L_m, n_s]}}}
  for scope in ("overall",) + property names.
  """
  membership, _ = lowlevel_categories(features, group_size=group_size)
  scopes = {"overall": membership}
  for p, prop in enumerate(features):
    scopes[prop] = membership[:, 3 * p:3 * p + 3]
  result = {}
  for scope, cols in scopes.items():
    rows = np.flatnonzero(cols.any(axis=1))
    sub = cols[rows]
    per_image = {
        model: neighbour_sharing_by_layer([np.asarray(x)[rows] for x in layers], sub, k=k,
                                          metric=metric, block_size=block_size)
        for model, layers in layers_by_model.items()}
    result[scope] = {
        "images": rows,
        "baseline": random_sharing_baseline(sub),
        "sharing": {m: v.mean(axis=1) for m, v in per_image.items()},
        "per_image": per_image,
    }
  return result
