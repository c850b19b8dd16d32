"""Image neighbourhoods at the early, middle and late layer of each model (Figs. 2, 15-17).

For chosen query images, the k (paper: 9) nearest neighbours by cosine similarity among all N
images (paper: 1e5) in the representation of a few layers of every model, found with the blocked
top-k of `repsim_jax.metrics.neighbours.knn` (never an N x N matrix), and how many neighbours the
models (and the layers of one model) have in common.

References:
  Mahaut & Baroni 2026, "Similarity of Processing Steps in Vision Model Representations", §3.2,
    Fig. 2 and App. E (Figs. 15-17).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from repsim_jax.metrics.neighbours import knn
from repsim_jax.models.outputs import representative_indices

LAYER_NAMES = ("early", "middle", "late")


def representative_layers(n_layers: int) -> tuple[int, int, int]:
  """(early, middle, late) layer indices: the second, the middle (n // 2) and the penultimate,
  as everywhere else (`repsim_jax.models.outputs.representative_indices`)."""
  return representative_indices(n_layers)


def query_neighbours(x, queries, k: int, *, metric: str = "cosine",
                     block_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """k nearest neighbours of the rows `queries` of x among all rows of x, the query excluded.

  x: [n, d]; queries: int [m]. Returns (distances [m, k], indices [m, k]) from `knn`: closest
  first, ties to the lower index, the query excluded by index (an exact duplicate image still
  counts as a neighbour, as in the paper's Fig. 17).
  """
  queries = np.asarray(queries)
  if queries.ndim != 1 or queries.size == 0:
    raise ValueError(f"queries: expected a non-empty 1-D array of row indices, got {queries!r}")
  dist, idx = knn(x, k, metric=metric, queries=queries, exclude_self=True, block_size=block_size)
  return np.asarray(dist), np.asarray(idx)


def neighbourhoods(layers_by_model: Mapping[str, Sequence], queries, *, k: int = 9,
                   layers: Mapping[str, Sequence[int]] | None = None, metric: str = "cosine",
                   block_size: int | None = None) -> dict:
  """Nearest neighbours of the query images at a few layers of every model.

  layers_by_model: {model: sequence of per-layer arrays [n, d_l]} (rows = the same n images in
  every model; only the chosen layers are read, so lazy store arrays work). queries: int [q] row
  indices. layers: {model: R layer indices}; default `representative_layers` (early, middle,
  late) of each model. Returns {"models": [M] names, "layers": int [M, R], "indices": int
  [M, R, q, k], "distances": [M, R, q, k] (knn's distance: 1 - cosine similarity for "cosine")}.
  """
  models = list(layers_by_model)
  chosen = {m: list(layers[m]) if layers is not None else list(
      representative_layers(len(layers_by_model[m]))) for m in models}
  if len({len(v) for v in chosen.values()}) != 1:
    raise ValueError(f"layers: expected the same number of layers for every model, got {chosen}")
  indices, distances = [], []
  for m in models:
    per_layer = [query_neighbours(layers_by_model[m][l], queries, k, metric=metric,
                                  block_size=block_size) for l in chosen[m]]
    distances.append(np.stack([d for d, _ in per_layer]))
    indices.append(np.stack([i for _, i in per_layer]))
  return {"models": models, "layers": np.array([chosen[m] for m in models]),
          "indices": np.stack(indices), "distances": np.stack(distances)}


def count_shared(a, b) -> np.ndarray:
  """|set(a[..., :]) ∩ set(b[..., :])| over the last axis: int [..., k] x [..., k] -> [...].

  Neighbour lists hold distinct indices, so this counts common neighbours.
  """
  a, b = np.asarray(a), np.asarray(b)
  return (a[..., :, None] == b[..., None, :]).any(axis=-1).sum(axis=-1)


def shared_neighbour_counts(indices) -> dict[str, np.ndarray]:
  """How many neighbours models (and layers) share, from `neighbourhoods(...)["indices"]`.

  indices: int [M, R, q, k]. Returns
    "between_models": int [R, q, M, M], entry [r, i, a, b] = neighbours of query i at layer row r
      common to models a and b (the diagonal is k);
    "all_models": int [R, q], neighbours common to every model;
    "across_layers": int [M, q, R, R], common to two layer rows of the same model.
  """
  idx = np.asarray(indices)
  if idx.ndim != 4:
    raise ValueError(f"indices: expected [models, layers, queries, k], got shape {idx.shape}")
  per_row = np.moveaxis(idx, 0, 2)  # [R, q, M, k]
  between = count_shared(per_row[:, :, :, None], per_row[:, :, None, :])
  across = count_shared(np.moveaxis(idx, 1, 2)[:, :, :, None], np.moveaxis(idx, 1, 2)[:, :, None])
  first = per_row[:, :, 0]  # [R, q, k]: a neighbour common to all is one of the first model's
  common = (first[:, :, None, :, None] == per_row[:, :, :, None, :]).any(axis=-1).all(axis=2)
  return {"between_models": between, "all_models": common.sum(axis=-1), "across_layers": across}
