"""Information imbalance (Glielmo et al. 2022) between representations, exact and streaming.

Delta(A -> B) = 2/N * mean over points i and over i's first k neighbours j in A of r^B_ij, the
1-based rank of j among i's neighbours in B (self excluded). 0: A's neighbourhoods are B's;
about 1: unrelated.

Conventions (DADApy's, `MetricComparisons(..., maxk=N-1)`; with no distance ties the value is
identical):
  * neighbours in A: the k smallest distances, self excluded; among equal distances the lowest
    index is taken (deterministic, the same on 1 and on many devices);
  * rank in B, ties="min" (default): 1 + the number of points strictly closer to i than j;
    ties="average": the mean rank over the tie group, 1 + closer + (equal - 1) / 2.
  Exact duplicates make distances tie; they are counted and reported with a warning.

The matrix kernel is not a loop over pairs: each a-layer's neighbour lists are computed once
(`knn`), then each b-layer's distance blocks are computed once and the ranks of every a-layer's
neighbours are counted against them. Work is (La + Lb) * N^2 * d; memory per device is
O(block * N) plus one layer's points.

References:
  Glielmo, Zeni, Cheng, Tamás, Laio. "Ranking the information content of distance measures."
  PNAS Nexus 2022.
  Glielmo et al. "DADApy: Distance-based analysis of data-manifolds in Python." Patterns 2022.
"""
from __future__ import annotations

import contextlib
import time
import warnings
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax import sharding
from repsim_jax.metrics import _blocked, _validate, distances
from repsim_jax.metrics.neighbours import knn

__all__ = ["information_imbalance", "information_imbalance_matrix", "imbalance_ranks"]

TIES = ("min", "average")


def _rank_block(query_idx, neighbours, points, sqnorm, *, metric, ties):
  """Rank sums [b, La] (times 2 for ties="average", to stay integer) for one query block.

  neighbours: [b, La, k] indices of each query's neighbours in each a-layer.
  """
  scores = distances.score_block(query_idx, points, sqnorm, metric=metric)
  b, n_a, k = neighbours.shape
  picked = jnp.take_along_axis(scores, neighbours.reshape(b, n_a * k), axis=1)  # [b, La*k]

  def count(threshold, op):  # one a-layer column at a time keeps the temporaries at [b, n]
    return jnp.sum(op(scores, threshold[:, None]), axis=1, dtype=jnp.int32)

  closer = jax.lax.map(lambda t: count(t, jnp.less), picked.T).T  # [b, La*k]
  if ties == "min":
    ranks = 1 + closer
  else:  # 2 * (1 + closer + (equal - 1) / 2), equal counting j itself
    equal = jax.lax.map(lambda t: count(t, jnp.equal), picked.T).T
    ranks = 1 + 2 * closer + equal
  return ranks.reshape(b, n_a, k).sum(axis=2)


@contextlib.contextmanager
def _precision(dtype):
  if np.dtype(dtype) == np.float64:
    with jax.enable_x64(True):
      yield
  else:
    yield


def _check_dtype(dtype):
  if np.dtype(dtype) not in (np.float32, np.float64):
    raise ValueError(f"dtype must be float32 or float64, got {dtype}")


def _warn_duplicates(layers, names):
  for x, name in zip(layers, names):
    n_dup = _validate.duplicate_count(x)
    if n_dup:
      warnings.warn(f"{name}: {n_dup} of {len(x)} points are exact duplicates of another point; "
                    f"their distances tie (see the ties option)", stacklevel=3)


def imbalance_ranks(layers_a: Sequence, layers_b: Sequence, *, k: int = 1,
                    metric: str = "euclidean", ties: str = "min", block_size: int | None = None,
                    memory_budget_bytes: int | None = None, mesh=None, dtype=np.float32,
                    check_duplicates: bool = True,
                    progress: Callable[[str], None] | None = None) -> np.ndarray:
  """Per-point sums over k neighbours of the B-ranks: int64 [La, Lb, N].

  Delta[i, j] = 2 / (N^2 k) * ranks[i, j].sum(); with ties="average" the ranks are doubled
  (integers either way, so sums are exact and identical on any number of devices).
  Arguments as in `information_imbalance_matrix`.
  """
  distances.check_metric(metric)
  _check_dtype(dtype)
  if ties not in TIES:
    raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
  same = layers_b is layers_a
  layers_a = _validate.as_layers(layers_a, "layers_a")
  layers_b = layers_a if same else _validate.as_layers(layers_b, "layers_b")
  n = _validate.check_same_n([layers_a[0], layers_b[0]], ["layers_a", "layers_b"])
  _validate.check_k(k, n)
  if check_duplicates:
    _warn_duplicates(layers_a, [f"layers_a[{i}]" for i in range(len(layers_a))])
    if not same:
      _warn_duplicates(layers_b, [f"layers_b[{i}]" for i in range(len(layers_b))])
  mesh = sharding.row_mesh() if mesh is None else mesh
  bs = _blocked.choose_block_size(n, n, mesh.size, block_size=block_size,
                                  itemsize=np.dtype(dtype).itemsize,
                                  memory_budget_bytes=memory_budget_bytes)
  say = progress or (lambda msg: None)
  start = time.perf_counter()
  total = len(layers_a) + len(layers_b)
  with _precision(dtype):
    neighbours = []
    for i, x in enumerate(layers_a):
      _, idx = knn(x, k, metric=metric, block_size=bs, mesh=mesh, dtype=dtype)
      neighbours.append(idx)
      _report(say, "neighbours", i + 1, total, start)
    neighbours = np.stack(neighbours, axis=1).astype(np.int32)  # [N, La, k]
    ranks = []
    for j, y in enumerate(layers_b):
      points, sqnorm = distances.prepare(y, metric, dtype, name=f"layers_b[{j}]")
      r = _blocked.map_row_blocks(
          _rank_block, np.arange(n), (neighbours,), (points, sqnorm), mesh=mesh, block_size=bs,
          static=dict(metric=metric, ties=ties))
      ranks.append(np.asarray(r, np.int64).T)  # [La, N]
      _report(say, "ranks", len(layers_a) + j + 1, total, start)
  return np.stack(ranks, axis=1)


def _report(say, what, done, total, start):
  elapsed = time.perf_counter() - start
  eta = elapsed / done * (total - done)
  say(f"information imbalance: {done}/{total} layer passes ({what}), {done / elapsed:.2f} "
      f"layers/s, elapsed {elapsed:.1f}s, ETA {eta:.1f}s")


def ranks_to_imbalance(ranks: np.ndarray, k: int, ties: str = "min") -> np.ndarray:
  """Delta from `imbalance_ranks` output: 2/N * mean rank, in float64."""
  n = ranks.shape[-1]
  scale = 2.0 if ties == "average" else 1.0
  return 2.0 / n * ranks.sum(axis=-1, dtype=np.int64) / (scale * n * k)


def information_imbalance_matrix(layers_a: Sequence, layers_b: Sequence | None = None, *,
                                 k: int = 1, metric: str = "euclidean", ties: str = "min",
                                 block_size: int | None = None,
                                 memory_budget_bytes: int | None = None, mesh=None,
                                 dtype=np.float32, check_duplicates: bool = True,
                                 progress: Callable[[str], None] | None = None) -> np.ndarray:
  """Delta(layers_a[i] -> layers_b[j]) for every pair: float64 [La, Lb].

  Args:
    layers_a: sequence of La arrays [N, d_l] (widths may differ), the predicting spaces.
    layers_b: sequence of Lb arrays [N, d_l], the predicted spaces (default: layers_a).
    k: neighbours per point in the predicting space.
    metric: "euclidean" or "cosine" (1 - cosine similarity).
    ties: "min" (rank = 1 + number strictly closer) or "average" (mean rank of the tie group).
    block_size: query rows per block; default from `memory_budget_bytes` (1 GiB per device).
    mesh: 1-D "rows" mesh; default every device (all hosts once `jax.distributed` is up).
    dtype: np.float32 (default, matmuls at "highest") or np.float64 (reference runs).
    check_duplicates: warn, with a count, when a layer holds exactly repeated points.
    progress: called with a progress line after every layer pass.

  Returns:
    float64 [La, Lb] with entry [i, j] = Delta(layers_a[i] -> layers_b[j]).
  """
  layers_b = layers_a if layers_b is None else layers_b
  ranks = imbalance_ranks(layers_a, layers_b, k=k, metric=metric, ties=ties,
                          block_size=block_size, memory_budget_bytes=memory_budget_bytes,
                          mesh=mesh, dtype=dtype, check_duplicates=check_duplicates,
                          progress=progress)
  return ranks_to_imbalance(ranks, k, ties)


def information_imbalance(a, b, *, k: int = 1, metric: str = "euclidean", ties: str = "min",
                          **kwargs) -> float:
  """Delta(a -> b), DADApy's information imbalance with exact ranks.

  Args:
    a: [N, d_a] predicting representation; b: [N, d_b] predicted representation.
    k, metric, ties and the remaining keywords: as in `information_imbalance_matrix`.

  Returns:
    2/N * mean over i and i's k nearest neighbours j in a of the rank of j in b.
  """
  a = _validate.as_representation(a, "a")
  b = _validate.as_representation(b, "b")
  _validate.check_same_n([a, b], ["a", "b"])
  if kwargs.pop("check_duplicates", True):
    _warn_duplicates([a, b], ["a", "b"])
  return float(information_imbalance_matrix([a], [b], k=k, metric=metric, ties=ties,
                                            check_duplicates=False, **kwargs)[0, 0])
