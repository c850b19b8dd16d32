"""Semantic coherence of neighbourhoods with ManyNames annotator labels (Fig. 4).

Per layer: sample `n_queries` images (seeded), find each one's k nearest neighbours among all
images, and compute the Jaccard index |A ∩ B| / |A ∪ B| between the query's label set A (the
names annotators gave it) and each neighbour's label set B. The layer's value is the mean ± std
(ddof=0) over all n_queries x k (query, neighbour) pairs, the paper's "standard deviations across
the 50 images and their 10 nearest neighbors".

Label sets are plain Python sets (or any iterables of hashable labels), one per image, so the
analysis does not depend on how ManyNames is read (see `repsim_jax.data.manynames`).

References:
  Mahaut & Baroni 2026, "Similarity of Processing Steps in Vision Model Representations", §3.4,
    Fig. 4.
  Silberer, Zarrieß & Boleda 2020, "Object Naming in Language and Vision: A Survey and a New
    Dataset" (ManyNames), LREC.
"""
from __future__ import annotations

from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np

from repsim_jax.analysis.neighbourhoods import query_neighbours

LabelSets = Sequence[Iterable[Hashable]] | Mapping[int, Iterable[Hashable]]


def as_label_sets(labels: LabelSets) -> list[frozenset]:
  """Label sets as a list indexed by image row.

  labels: a sequence (row i -> labels of image i) or a mapping whose keys are exactly the rows
  0..n-1. Every set must be non-empty (Jaccard is undefined for two empty sets).
  """
  if isinstance(labels, Mapping):
    n = len(labels)
    if set(labels) != set(range(n)):
      raise ValueError("labels: a mapping must have the image rows 0..n-1 as keys")
    labels = [labels[i] for i in range(n)]
  out = [frozenset(s) if not isinstance(s, (str, bytes)) else frozenset([s]) for s in labels]
  empty = [i for i, s in enumerate(out) if not s]
  if empty:
    raise ValueError(f"labels: expected non-empty label sets, rows {empty[:10]} are empty")
  return out


def jaccard_index(a: Iterable[Hashable], b: Iterable[Hashable]) -> float:
  """|A ∩ B| / |A ∪ B| of two label sets (1.0 for two empty sets, by convention)."""
  a, b = set(a), set(b)
  union = len(a | b)
  return len(a & b) / union if union else 1.0


def pairwise_jaccard(label_sets: Sequence[frozenset], left, right) -> np.ndarray:
  """Jaccard index of label_sets[left[...]] vs label_sets[right[...]], elementwise.

  left, right: int arrays of the same shape. Vectorised through multi-hot rows over the
  vocabulary of the images involved only (a few hundred rows, not the whole dataset).
  """
  left, right = np.asarray(left), np.asarray(right)
  if left.shape != right.shape:
    raise ValueError(f"left, right: expected the same shape, got {left.shape} and {right.shape}")
  rows, inverse = np.unique(np.concatenate([left.ravel(), right.ravel()]), return_inverse=True)
  vocab = {lab: j for j, lab in enumerate(sorted(set().union(*(label_sets[r] for r in rows)),
                                                 key=repr))}
  hot = np.zeros((len(rows), len(vocab)), bool)
  for i, r in enumerate(rows):
    hot[i, [vocab[lab] for lab in label_sets[r]]] = True
  a, b = hot[inverse[:left.size]], hot[inverse[left.size:]]
  inter = (a & b).sum(axis=1)
  union = (a | b).sum(axis=1)
  return (inter / union).reshape(left.shape)


def sample_queries(n: int, n_queries: int = 50, *, seed: int = 0) -> np.ndarray:
  """`n_queries` distinct rows of n, drawn with numpy's default_rng(seed) (sorted)."""
  if not 0 < n_queries <= n:
    raise ValueError(f"n_queries: expected 1..n={n}, got {n_queries}")
  return np.sort(np.random.default_rng(seed).choice(n, n_queries, replace=False))


def semantic_coherence(layers: Sequence, labels: LabelSets, *, n_queries: int = 50, k: int = 10,
                       seed: int = 0, queries=None, metric: str = "cosine",
                       block_size: int | None = None) -> dict[str, np.ndarray]:
  """Jaccard index of annotator labels between sampled images and their neighbours, per layer.

  layers: sequence of L arrays [n, d_l] (one model, rows aligned with `labels`); labels: one label
  set per row (see `as_label_sets`). queries: int [m] rows (default `sample_queries(n, n_queries,
  seed=seed)`, the same for every layer and model). Neighbours: k nearest by `metric` among all n
  images, query excluded (`query_neighbours`).

  Returns {"queries": [m], "neighbours": int [L, m, k], "jaccard": [L, m, k], "mean": [L],
  "std": [L]} with mean / std over the m * k pairs of each layer.
  """
  label_sets = as_label_sets(labels)
  n = len(label_sets)
  queries = sample_queries(n, n_queries, seed=seed) if queries is None else np.asarray(queries)
  neighbours = []
  for l, x in enumerate(layers):
    if np.shape(x)[0] != n:
      raise ValueError(f"layers[{l}]: expected {n} rows (one per label set), got {np.shape(x)}")
    neighbours.append(query_neighbours(x, queries, k, metric=metric, block_size=block_size)[1])
  neighbours = np.stack(neighbours)
  jac = pairwise_jaccard(label_sets, np.broadcast_to(queries[None, :, None], neighbours.shape),
                         neighbours)
  return {"queries": queries, "neighbours": neighbours, "jaccard": jac,
          "mean": jac.mean(axis=(1, 2)), "std": jac.std(axis=(1, 2))}
