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

import collections.abc
import contextlib
import time
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax import resources, sharding
from repsim_jax.metrics import _blocked, distances, imbalance_acevedo, validation
from repsim_jax.metrics import neighbours as neighbours_lib
from repsim_jax.metrics.neighbours import knn

__all__ = ["information_imbalance", "information_imbalance_pair", "information_imbalance_matrix",
           "imbalance_between_models", "imbalance_ranks"]

TIES = ("min", "average")
CONVENTIONS = ("dadapy", "acevedo")
_MIN_FUSED_BLOCK = 32  # below this many rows per block the fused pass is bandwidth-bound


_COUNT_TILE = 8  # query rows per tile of the rank count: a [8, N] tile stays in L2


def _count_ranks(scores, neighbours, ties):
  """Rank sums [b, La] of `neighbours` [b, La, k] in the score rows [b, N] of one b-layer.

  ties="average" returns twice the rank, so that everything stays an exact integer. The count
  compares every score with all La * k thresholds of its row; walking the block in tiles of 8 rows
  keeps each tile cache-resident across thresholds (2x faster than one pass per threshold, which
  at La = 24 cost twice the block's matmul).
  """
  b, n_a, k = neighbours.shape
  n = scores.shape[1]
  picked = jnp.take_along_axis(scores, neighbours.reshape(b, n_a * k), axis=1)  # [b, La*k]
  tile = _COUNT_TILE if b % _COUNT_TILE == 0 else 1

  def count(op):
    def one_tile(args):
      s, t = args  # [tile, N], [tile, La*k]
      return jnp.sum(op(s[:, None, :], t[:, :, None]), axis=2, dtype=jnp.int32)
    tiles = (scores.reshape(b // tile, tile, n), picked.reshape(b // tile, tile, n_a * k))
    return jax.lax.map(one_tile, tiles).reshape(b, n_a * k)

  closer = count(jnp.less)
  if ties == "min":
    ranks = 1 + closer
  else:  # 2 * (1 + closer + (equal - 1) / 2), `equal` counting j itself
    ranks = 1 + 2 * closer + count(jnp.equal)
  return ranks.reshape(b, n_a, k).sum(axis=2)


def _rank_block(query_idx, neighbours, points, sqnorm, *, metric, ties):
  """Two-phase kernel: ranks [b, La] of known neighbours in one b-layer."""
  scores = distances.score_block(query_idx, points, sqnorm, metric=metric)
  return _count_ranks(scores, neighbours, ties)


def _fused_block(query_idx, *layers, metric, ties, k, n_cand, a_ids, b_ids):
  """One pass for every layer: each layer's score block is computed once per query block.

  layers: (points, sqnorm) pairs of the union of a- and b-layers.
  Returns (candidate scores and indices [b, La, n_cand] of the a-layers, ranks [b, La, Lb]).
  """
  scores = [distances.score_block(query_idx, layers[2 * u], layers[2 * u + 1], metric=metric)
            for u in range(len(layers) // 2)]
  best = [neighbours_lib.smallest_k(scores[u], n_cand) for u in a_ids]
  cand_scores = jnp.stack([v for v, _ in best], axis=1)
  cand = jnp.stack([i for _, i in best], axis=1)
  ranks = [_count_ranks(scores[u], cand[:, :, :k], ties) for u in b_ids]
  return cand_scores, cand, jnp.stack(ranks, axis=2)


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


def warn_duplicates(layers, names, metric="euclidean"):
  """`layers` (a sequence of [N, d] arrays, lazy ones read one at a time) named `names` in the
  message: one warning for the whole call (not one per layer) when points repeat exactly, e.g.
  "exact duplicate points: 3 of 2000 in each of 19 layers", and one when a layer has no spread
  (`validation.warn_degenerate_layers`)."""
  validation.warn_degenerate_layers(layers, names, measure="imbalance", metric=metric,
                                    stacklevel=4)


def _warn_duplicate_layers(layers_a, layers_b, metric="euclidean"):
  """`warn_duplicates` over the distinct layers, each named by its first place."""
  union, _, _ = _union(layers_a, layers_b)
  if isinstance(union, (validation.LazyLayers, _Concat)):  # read one layer at a time
    names = ([f"layers_a[{i}]" for i in range(len(layers_a))]
             + ([] if union is layers_a else [f"layers_b[{j}]" for j in range(len(layers_b))]))
    warn_duplicates(union, names, metric)
    return
  names = {id(x): f"layers_a[{i}]" for i, x in reversed(list(enumerate(layers_a)))}
  for j, y in enumerate(layers_b):
    names.setdefault(id(y), f"layers_b[{j}]")
  warn_duplicates(union, [names[id(x)] for x in union], metric)


class _Concat(collections.abc.Sequence):
  """Lazy layer sequences one after the other, still lazy (the union of distinct lazy inputs, or
  every model's layers in `imbalance_between_models`)."""

  def __init__(self, *parts: validation.LazyLayers):
    self.parts = parts
    self.starts = np.cumsum([0] + [len(p) for p in parts])
    self.num_rows = parts[0].n

  def __len__(self) -> int:
    return int(self.starts[-1])

  def _locate(self, u: int) -> tuple[validation.LazyLayers, int]:
    u = range(len(self))[u]
    part = int(np.searchsorted(self.starts, u, side="right")) - 1
    return self.parts[part], u - int(self.starts[part])

  def __getitem__(self, u):
    part, i = self._locate(u)
    return part[i]

  def width(self, u: int) -> int:
    part, i = self._locate(u)
    return part.width(i)

  @property
  def widths(self) -> list[int]:
    return [self.width(u) for u in range(len(self))]


def _width(union, u: int) -> int:
  return union.width(u) if hasattr(union, "width") else union[u].shape[1]


def _union(layers_a, layers_b):
  """Distinct layers (by identity) and the positions of the a- and b-layers among them. Lazy
  layers (`validation.LazyLayers`) are not compared: the union is a's layers then b's, or a's
  alone when b is a."""
  if isinstance(layers_a, validation.LazyLayers):
    ids_a = tuple(range(len(layers_a)))
    if layers_b is layers_a:
      return layers_a, ids_a, ids_a
    return (_Concat(layers_a, layers_b), ids_a,
            tuple(range(len(layers_a), len(layers_a) + len(layers_b))))
  union, ids = [], {}
  def position(x):
    if id(x) not in ids:
      ids[id(x)] = len(union)
      union.append(x)
    return ids[id(x)]
  a_ids = tuple(position(x) for x in layers_a)
  b_ids = tuple(position(x) for x in layers_b)
  return union, a_ids, b_ids


def _device_bytes_free(mesh) -> int | None:
  """Free memory of a device of `mesh`, the smallest over the processes (they must all take the
  same schedule): the host's available memory for CPU devices; None where nothing reports it."""
  stats = sharding.local_memory_stats(mesh)
  unknown = np.iinfo(np.int64).max
  if "bytes_limit" in stats:
    free = int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
  elif all(d.platform == "cpu" for d in mesh.devices.flat):  # the devices' memory is the host's
    free = resources.available_memory_bytes() or unknown
  else:
    free = unknown
  free = sharding.agree_min(free)
  return None if free == unknown else free


class _Reporter:
  def __init__(self, say, total_passes):
    self.say, self.total, self.start = say, total_passes, time.perf_counter()

  def __call__(self, done, what):
    elapsed = time.perf_counter() - self.start
    eta = elapsed / max(done, 1e-9) * (self.total - done)
    self.say(f"information imbalance: {done:.1f}/{self.total} layer passes ({what}), "
             f"{done / max(elapsed, 1e-9):.2f} passes/s, elapsed {elapsed:.1f}s, ETA {eta:.1f}s")


def imbalance_ranks(layers_a: Sequence, layers_b: Sequence, *, k: int = 1,
                    metric: str = "euclidean", ties: str = "min", block_size: int | None = None,
                    memory_budget_bytes: int | None = None, mesh=None, dtype=np.float32,
                    check_duplicates: bool = True, fused: bool | None = None,
                    progress: Callable[[str], None] | None = None) -> np.ndarray:
  """Per-point sums over k neighbours of the B-ranks: int64 [La, Lb, N].

  Delta[i, j] = 2 / (N^2 k) * ranks[i, j].sum(); with ties="average" the ranks are doubled
  (integers either way, so sums are exact and identical on any number of devices).

  Two schedules give identical results. Fused (default when every distinct layer's points and
  score blocks fit): one pass per distinct layer computes its score block once per query block,
  takes its neighbours and counts the ranks of every a-layer's neighbours in it. Two-phase
  (otherwise, or fused=False): neighbour lists per a-layer, then one pass per b-layer. In float32,
  neighbours are re-ranked in float64 on the host (see `knn`); rows whose neighbours change are
  recounted exactly. Other arguments as in `information_imbalance_matrix`.
  """
  distances.check_metric(metric)
  _check_dtype(dtype)
  if ties not in TIES:
    raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
  same = layers_b is layers_a
  lazy = validation.is_lazy(layers_a) or validation.is_lazy(layers_b)
  if lazy:  # read one layer at a time; never every layer's raw values at once
    layers_a = validation.LazyLayers(layers_a, "layers_a")
    layers_b = layers_a if same else validation.LazyLayers(layers_b, "layers_b")
    n = validation.check_same_n([np.empty((layers_a.n, 0)), np.empty((layers_b.n, 0))],
                                ["layers_a", "layers_b"])
  else:
    layers_a = validation.as_layers(layers_a, "layers_a")
    layers_b = layers_a if same else validation.as_layers(layers_b, "layers_b")
    n = validation.check_same_n([layers_a[0], layers_b[0]], ["layers_a", "layers_b"])
  validation.check_k(k, n)
  if check_duplicates:
    _warn_duplicate_layers(layers_a, layers_b, metric)
  mesh = sharding.row_mesh() if mesh is None else mesh
  union, a_ids, b_ids = _union(layers_a, layers_b)
  itemsize = np.dtype(dtype).itemsize
  budget = memory_budget_bytes or _blocked.DEFAULT_MEMORY_BUDGET_BYTES
  fused_bs = _blocked.choose_block_size(n, n, mesh.size, block_size=block_size, itemsize=itemsize,
                                        memory_budget_bytes=budget // len(union))
  if fused is None:
    free = _device_bytes_free(mesh)
    points_bytes = sum(_width(union, u) for u in range(len(union))) * n * itemsize
    fused = fused_bs >= min(_MIN_FUSED_BLOCK, n) and (free is None or points_bytes < free // 2)
  say = progress or (lambda msg: None)
  with _precision(dtype):
    if fused:
      return _fused_ranks(union, a_ids, b_ids, k=k, metric=metric, ties=ties, mesh=mesh,
                          block_size=fused_bs, dtype=dtype, say=say)
    bs = _blocked.choose_block_size(n, n, mesh.size, block_size=block_size, itemsize=itemsize,
                                    memory_budget_bytes=budget)
    return _two_phase_ranks(layers_a, layers_b, k=k, metric=metric, ties=ties, mesh=mesh,
                            block_size=bs, dtype=dtype, say=say)


def _fused_ranks(union, a_ids, b_ids, *, k, metric, ties, mesh, block_size, dtype, say):
  refine = np.dtype(dtype) == np.float32
  report = _Reporter(say, len(union))
  # Each layer is read, prepared and copied to the devices in turn, so the host holds one
  # layer's prepared copy at a time (with lazy layers, one layer's raw values too).
  operands, host_sqnorms = [], []
  for u in range(len(union)):
    points, sqnorm = distances.prepare(union[u], metric, dtype, name=f"layer {u}")
    host_sqnorms.append((points.shape, sqnorm))
    operands += [sharding.replicate(points, mesh), sharding.replicate(sqnorm, mesh)]
    del points
  n = len(host_sqnorms[0][1])
  n_cand = min(k + neighbours_lib._REFINE_EXTRA, n - 1) if refine else k
  cand_scores, cand, ranks = _blocked.map_row_blocks(
      _fused_block, np.arange(n), (), tuple(operands), mesh=mesh, block_size=block_size,
      chunks=20, progress=lambda done, total: report(len(union) * done / total, "fused"),
      static=dict(metric=metric, ties=ties, k=int(k), n_cand=int(n_cand), a_ids=a_ids,
                  b_ids=b_ids))
  ranks = np.asarray(ranks, np.int64).transpose(1, 2, 0)  # [La, Lb, N]
  if refine and n_cand > k:
    rows = np.arange(n)
    moved = []  # (a-layer, rows whose neighbour set moved, their exact neighbours)
    for i, u in enumerate(a_ids):
      shape, sqnorm = host_sqnorms[u]
      bound = neighbours_lib.score_error_bound(jax.ShapeDtypeStruct(shape, dtype), sqnorm, rows)
      exact, _ = neighbours_lib._refine(union[u], rows, cand_scores[:, i], cand[:, i], k, metric,
                                        bound, mesh=mesh)
      changed = np.flatnonzero(np.any(np.sort(exact, 1) != np.sort(cand[:, i, :k], 1), axis=1))
      if changed.size:
        moved.append((i, changed, exact[changed]))
    for j, v in enumerate(b_ids):  # recount only the moved rows, on the staged b-layer
      for i, changed, nn in moved:
        ranks[i, j, changed] = _rank_pass_prepared(
            operands[2 * v], operands[2 * v + 1], changed, nn[:, None, :], metric=metric,
            ties=ties, mesh=mesh, block_size=_blocked.sparse_block_size(len(changed), mesh.size),
            bucket=True)[:, 0]
  return ranks


def _rank_pass(y, rows, nn, *, metric, ties, mesh, dtype, block_size, progress=None,
               bucket=False):
  points, sqnorm = distances.prepare(y, metric, dtype)
  return _rank_pass_prepared(points, sqnorm, rows, nn, metric=metric, ties=ties, mesh=mesh,
                             block_size=block_size, progress=progress, bucket=bucket)


def _rank_pass_prepared(points, sqnorm, rows, nn, *, metric, ties, mesh, block_size,
                        progress=None, bucket=False):
  """Ranks [rows, La] of the neighbours `nn` [rows, La, k] in one b-layer's prepared points."""
  r = _blocked.map_row_blocks(_rank_block, rows, (nn.astype(np.int32),), (points, sqnorm),
                              mesh=mesh, block_size=block_size,
                              static=dict(metric=metric, ties=ties), bucket=bucket,
                              chunks=1 if progress is None else 10, progress=progress)
  return np.asarray(r, np.int64)  # [rows, La]


def _two_phase_ranks(layers_a, layers_b, *, k, metric, ties, mesh, block_size, dtype, say):
  n = len(layers_a[0])
  report = _Reporter(say, len(layers_a) + len(layers_b))
  nn = []
  for i, x in enumerate(layers_a):
    nn.append(knn(x, k, metric=metric, block_size=block_size, mesh=mesh, dtype=dtype)[1])
    report(i + 1, "neighbours")
  nn = np.stack(nn, axis=1)  # [N, La, k]
  ranks = []
  for j, y in enumerate(layers_b):
    done = len(layers_a) + j
    ranks.append(_rank_pass(y, np.arange(n), nn, metric=metric, ties=ties, mesh=mesh,
                            dtype=dtype, block_size=block_size,
                            progress=lambda d, t: report(done + d / t, "ranks")).T)
  return np.stack(ranks, axis=1)  # [La, Lb, N]


def imbalance_between_models(layers_by_model: Mapping[str, Sequence], *,
                             layer_names: Mapping[str, Sequence[str]] | None = None,
                             **kwargs) -> dict[tuple[str, str], np.ndarray]:
  """{(A, B): II [L_A, L_B]} for every ordered pair of models, each with itself too.

  layers_by_model: {model: sequence of [N, d_l] arrays}, rows aligned across models. All layers
  of all models form one list and one `information_imbalance_matrix(union, union, **kwargs)`
  call (each distinct layer's neighbour pass runs once, not once per pair); pair (A, B) is a
  block of it, the same numbers as a call on A's and B's layers alone (exact ranks). Lazy layer
  sequences (e.g. `extraction.representations.StoreLayers`) are read one layer at a time, so
  memory holds the devices' copy of every layer and one layer's raw values, not every layer twice.
  A warning about duplicate points names the model and layer (`layer_names[model]`, else the
  layer's index).
  """
  models = list(layers_by_model)
  if any(validation.is_lazy(layers_by_model[m]) for m in models):  # stays lazy: read per layer
    union = _Concat(*(validation.LazyLayers(layers_by_model[m], m) for m in models))
  else:
    union = [x for m in models for x in layers_by_model[m]]
  offsets = np.cumsum([0] + [len(layers_by_model[m]) for m in models])
  if kwargs.pop("check_duplicates", True):
    warn_duplicates(union, [f"{m} {layer_names[m][i]}" if layer_names else f"{m} layer {i}"
                             for m in models for i in range(len(layers_by_model[m]))],
                    kwargs.get("metric", "euclidean"))
  full = information_imbalance_matrix(union, union, check_duplicates=False, **kwargs)
  return {(a, b): full[offsets[i]:offsets[i + 1], offsets[j]:offsets[j + 1]]
          for i, a in enumerate(models) for j, b in enumerate(models)}


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
                                 fused: bool | None = None,
                                 progress: Callable[[str], None] | None = None,
                                 convention: str = "dadapy", query_rows=None,
                                 seed: int = 0) -> np.ndarray:
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
    fused: schedule (see `imbalance_ranks`); None picks fused when it fits the budget.
    progress: called with progress lines (layer passes done, elapsed, ETA).
    convention: "dadapy" (default) or "acevedo" (see `information_imbalance`).
    query_rows: "acevedo" only: explicit query row indices; default `seed`'s random choice.
    seed: "acevedo" only: seeds the default query rows.

  Returns:
    float64 [La, Lb] with entry [i, j] = Delta(layers_a[i] -> layers_b[j]).
  """
  layers_b = layers_a if layers_b is None else layers_b
  if convention == "acevedo":
    return _acevedo_matrix(layers_a, layers_b, k=k, metric=metric, ties=ties,
                           query_rows=query_rows, seed=seed, block_size=block_size,
                           memory_budget_bytes=memory_budget_bytes, mesh=mesh, dtype=dtype,
                           check_duplicates=check_duplicates)
  if convention != "dadapy":
    raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
  if query_rows is not None:
    raise ValueError("query_rows: only the 'acevedo' convention splits query rows from "
                     "reference points; pass convention='acevedo'")
  ranks = imbalance_ranks(layers_a, layers_b, k=k, metric=metric, ties=ties,
                          block_size=block_size, memory_budget_bytes=memory_budget_bytes,
                          mesh=mesh, dtype=dtype, check_duplicates=check_duplicates,
                          fused=fused, progress=progress)
  return ranks_to_imbalance(ranks, k, ties)


def information_imbalance(a, b, *, k: int = 1, metric: str = "euclidean", ties: str = "min",
                          convention: str = "dadapy", query_rows=None, seed: int = 0,
                          **kwargs) -> float:
  """Delta(a -> b) with exact ranks, in DADApy's convention (default) or Acevedo et al.'s.

  The two conventions side by side (d^X: distances in space X; r: ranks of j among i's others):

    |                | convention="dadapy" (default)      | convention="acevedo"               |
    |----------------|------------------------------------|------------------------------------|
    | queries i      | all N points                       | query rows Q: `query_rows`, default|
    |                |                                    | 500 (20% of N if N < 2500) drawn   |
    |                |                                    | with `seed`                        |
    | ranked against | the other N - 1 points             | the disjoint rest R: n_ref = N - #Q|
    | ranks          | 1-based; ties="min": 1 + # closer, | 0-based rankdata(method="min") - 1 |
    |                | or ties="average"                  | in both spaces (# strictly closer) |
    | neighbours in a| the k nearest, lowest index first  | every j with r^a_ij < k: all tied  |
    |                | among equal distances              | nearest neighbours count           |
    | Delta          | 2/N * mean over (i, k neighbours)  | 2/(n_ref - 1) * mean over all      |
    |                |                                    | (i, neighbour) pairs               |

  Both are ~0 when a's neighbourhoods are b's and ~1 for unrelated spaces. DADApy's equals
  `MetricComparisons(..., maxk=N-1)` on tie-free data; Acevedo's transcribes the authors' code
  (`repsim_jax.metrics.imbalance_acevedo`), ties included.

  Args:
    a: [N, d_a] predicting representation; b: [N, d_b] predicted representation.
    k, metric, ties and the remaining keywords: as in `information_imbalance_matrix`.
    convention: "dadapy" or "acevedo" (ties must stay "min": the convention fixes them).
    query_rows: "acevedo" only: explicit query row indices (distinct, leaving >= 2 points).
    seed: "acevedo" only: seeds the default query rows (`imbalance_acevedo.default_query_rows`).

  Returns:
    Delta(a -> b) as a Python float.

  References:
    Acevedo et al. "An approach to identify the most semantically informative deep
    representations of text and images." arXiv:2505.17101, 2025.
  """
  a = validation.as_representation(a, "a")
  b = validation.as_representation(b, "b")
  validation.check_same_n([a, b], ["a", "b"])
  if kwargs.pop("check_duplicates", True):
    warn_duplicates([a, b], ["a", "b"], metric)
  return float(information_imbalance_matrix([a], [b], k=k, metric=metric, ties=ties,
                                            check_duplicates=False, convention=convention,
                                            query_rows=query_rows, seed=seed, **kwargs)[0, 0])


def information_imbalance_pair(a, b, **kwargs) -> tuple[float, float]:
  """(Delta(a -> b), Delta(b -> a)) in one fused pass over each space (DADApy returns both too).

  Keywords as in `information_imbalance_matrix`.
  """
  a = validation.as_representation(a, "a")
  b = validation.as_representation(b, "b")
  m = information_imbalance_matrix([a, b], [a, b], **kwargs)
  return float(m[0, 1]), float(m[1, 0])


def _acevedo_matrix(layers_a, layers_b, *, k, metric, ties, query_rows, seed, block_size,
                    memory_budget_bytes, mesh, dtype, check_duplicates):
  """`information_imbalance_matrix(..., convention="acevedo")`: see `imbalance_acevedo`."""
  distances.check_metric(metric)
  _check_dtype(dtype)
  if ties != "min":
    raise ValueError(f"ties={ties!r}: the 'acevedo' convention fixes ties to rankdata's 'min'")
  same = layers_b is layers_a
  layers_a = validation.as_layers(layers_a, "layers_a")
  layers_b = layers_a if same else validation.as_layers(layers_b, "layers_b")
  n = validation.check_same_n([layers_a[0], layers_b[0]], ["layers_a", "layers_b"])
  if check_duplicates:
    _warn_duplicate_layers(layers_a, layers_b, metric)
  rows = (imbalance_acevedo.default_query_rows(n, seed) if query_rows is None
          else imbalance_acevedo.check_query_rows(query_rows, n))
  union, a_ids, b_ids = _union(layers_a, layers_b)
  sums, counts = imbalance_acevedo.acevedo_rank_sums(
      union, a_ids, b_ids, rows, k=int(k), metric=metric, mesh=mesh, block_size=block_size,
      memory_budget_bytes=memory_budget_bytes, dtype=dtype)
  return 2.0 * sums / (counts[:, None] * (n - len(rows) - 1.0))
