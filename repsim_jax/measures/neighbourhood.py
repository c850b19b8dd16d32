"""Neighbourhood measures: how much two representations agree on each image's nearest neighbours.

Six measures from two references, all computed from each layer's exact k-nearest-neighbour lists
(`repsim_jax.metrics.neighbours.knn`: streamed row blocks, sharded over devices, never an n x n
matrix; ties broken by the lower row index, identical on one device or many):

  ReSi (Klabunde et al. 2025, github.com/mklabunde/resi, repsim/measures/nearest_neighbor.py):
    jaccard-k=10-metric=cosine-score               mean_i |N_a(i) ∩ N_b(i)| / |N_a(i) ∪ N_b(i)|
    rank-similarity-k=10-metric=cosine-score       mean_i  sum_{j in N_a(i) ∩ N_b(i)}
                                                     2 / ((1 + |r_a(j) - r_b(j)|)(r_a(j) + r_b(j)))
                                                     / sum_{m=1}^{|N_a(i) ∩ N_b(i)|} 1/m
                                                   (r = 1-based rank in the neighbour list; a row
                                                   with no shared neighbour scores 0)
    second-order-cosine-k=10-metric=cosine-score   mean_i cos(d_a(i, U_i), d_b(i, U_i)),
                                                   U_i = N_a(i) ∪ N_b(i), d = the metric's
                                                   distances (cosine distance 1 - cos)
  platonic-rep (Huh et al. 2024, github.com/minyoungg/platonic-rep, metrics.py):
    cycle-knn-k=10-metric=cosine-score             mean_i [i in N_a(N_b(i))]  (the neighbours in
                                                   a of i's neighbours in b include i)
    lcs-knn-k=10-metric=cosine-score               mean_i LCS(N_a(i), N_b(i)) / k  (ordered lists)
    edit-distance-knn-k=10-metric=cosine-score     1 - mean_i Levenshtein(N_a(i), N_b(i)) / k

Conventions, and where they differ from the references' code:
* N(i) is the ordered list of i's k nearest neighbours (nearest first), self excluded by index.
  ReSi asks sklearn for k + 1 neighbours and drops the first column (with exact duplicates the
  dropped one may be a duplicate rather than i itself); platonic-rep fills the diagonal of the
  inner-product matrix with -1e8. Both leave ties to argpartition / torch argsort (unspecified);
  here the lower row index comes first, so ties are deterministic.
* metric: "cosine" (both references; platonic-rep takes inner products of L2-normalised rows,
  the same order) or "euclidean".
* lcs-knn is platonic-rep's mean LCS length divided by k, so that identical representations
  score 1 like the other neighbourhood scores (the reference returns the length, in [0, k]).
* second-order cosine: distances in float64 from the inputs (as sklearn's pairwise distances on
  float64 input); the cosine of two all-zero distance vectors (only possible with exact
  duplicates) is taken as 1 (identical), where scipy would return NaN.

Per layer, `prepare` computes the neighbour lists once ([n, k] int32; with the inputs for
second-order cosine); a pair costs O(n k^2). Permutation nulls (rows of b shuffled) reuse the
lists: the neighbours of row i in y[pi] are pi^-1 of y's neighbours of pi(i), a gather.

Not here: Geometry Score, IMD and RTD (ReSi) cannot be made exact and deterministic. Geometry
Score (Khrulkov & Oseledets 2018) averages relative living times over witness complexes built on
random landmark sets; IMD (Tsitsulin et al. 2020) estimates heat-kernel traces by stochastic
Lanczos quadrature with random probe vectors (ReSi averages repeats); RTD (Barannikov et al.
2022) averages barcodes over random 500-point batches and its reference needs CUDA (ripser++).
Each is a random estimate whose reference value changes from run to run, so no transcription
can be matched at 1e-5.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics import neighbours, validation

__all__ = ["neighbour_lists", "jaccard", "rank_similarity", "second_order_cosine", "cycle_knn",
           "lcs_knn", "edit_distance_knn", "list_permutation_null"]

_OPTIONS = {"k": 10, "metric": "cosine"}


def neighbour_lists(x, *, k: int = 10, metric: str = "cosine", mesh=None) -> np.ndarray:
  """x: [n, d] -> [n, k] int32: each row's k nearest neighbours, nearest first, self excluded,
  ties to the lower index (exact: `neighbours.knn` with float64 re-ranking)."""
  return neighbours.knn(x, k, metric=metric, mesh=mesh)[1].astype(np.int32)


def _lists(x, *, k, metric):
  return neighbour_lists(x, k=k, metric=metric)


def _lists_and_points(x, *, k, metric):
  x = validation.as_representation(x, "x")
  return {"lists": neighbour_lists(x, k=k, metric=metric), "x": x}


def _check_pair(a, b):
  if a.shape != b.shape:
    raise ValueError(f"neighbour lists: expected the same [n, k] for both representations, got "
                     f"{a.shape} and {b.shape} (same images, same k)")


def _matches(a, b):
  """[n, k] x [n, k] -> [n, k, k] bool: a[i, p] == b[i, q]."""
  return a[:, :, None] == b[:, None, :]


@jax.jit
def _jaccard(a, b):
  shared = jnp.sum(_matches(a, b), axis=(1, 2))
  return jnp.mean(shared / (2 * a.shape[1] - shared))


def jaccard(a, b, **unused_options) -> jax.Array:
  """Mean Jaccard index of the neighbour sets (lists [n, k] from `neighbour_lists`)."""
  _check_pair(a, b)
  return _jaccard(jnp.asarray(a), jnp.asarray(b))


@jax.jit
def _rank_similarity(a, b):
  k = a.shape[1]
  eq = _matches(a, b)
  rank = jnp.arange(1, k + 1, dtype=jnp.float32)
  ra, rb = rank[:, None], rank[None, :]
  weights = 2.0 / ((1.0 + jnp.abs(ra - rb)) * (ra + rb))  # [k, k]
  score = jnp.sum(jnp.where(eq, weights, 0.0), axis=(1, 2))
  shared = jnp.sum(eq, axis=(1, 2))
  harmonic = jnp.concatenate([jnp.ones(1), jnp.cumsum(1.0 / rank)])  # H(0) := 1, unused
  return jnp.mean(jnp.where(shared > 0, score / harmonic[shared], 0.0))


def rank_similarity(a, b, **unused_options) -> jax.Array:
  """ReSi's rank similarity of the ordered neighbour lists [n, k]."""
  _check_pair(a, b)
  return _rank_similarity(jnp.asarray(a), jnp.asarray(b))


def second_order_cosine(pa, pb, *, metric: str = "cosine", **unused_options) -> float:
  """ReSi's second-order cosine similarity (prepared {"lists": [n, k], "x": [n, d]} each).

  For each row i, the union U_i of both neighbour sets (up to 2k rows, the duplicates of a's list
  in b's masked out), its distances to i in a and in b (float64, `neighbours.exact_distances`),
  and the cosine between the two distance vectors; the mean over rows.
  """
  a, b = pa["lists"], pb["lists"]
  _check_pair(a, b)
  n, k = a.shape
  union = np.concatenate([a, b], axis=1)  # [n, 2k]
  keep = np.concatenate([np.ones((n, k), bool), ~_matches(b, a).any(axis=2)], axis=1)
  rows = np.arange(n)
  da = np.where(keep, neighbours.exact_distances(pa["x"], rows, union, metric), 0.0)
  db = np.where(keep, neighbours.exact_distances(pb["x"], rows, union, metric), 0.0)
  dot = np.einsum("nc,nc->n", da, db)
  norms = np.linalg.norm(da, axis=1) * np.linalg.norm(db, axis=1)
  return float(np.mean(np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 1.0)))


@jax.jit
def _cycle_knn(a, b):
  back = a[b]  # [n, k, k]: a's neighbours of each of i's neighbours in b
  return jnp.mean(jnp.any(back == jnp.arange(a.shape[0])[:, None, None], axis=(1, 2)))


def cycle_knn(a, b, **unused_options) -> jax.Array:
  """platonic-rep's cycle kNN: the fraction of rows i found among a's neighbours of i's
  neighbours in b (`knn_A[knn_B]`)."""
  _check_pair(a, b)
  return _cycle_knn(jnp.asarray(a), jnp.asarray(b))


def _dp_rows(a, b, first_row, first_col, cell):
  """Row-vectorised dynamic programme over the k x k grid of two lists per row: table[p][q]
  from cell(eq, diagonal, up, left) with table[0][q] = first_row(q), table[p][0] =
  first_col(p); returns table[k][k] per row ([n])."""
  n, k = a.shape
  prev = [jnp.full((n,), first_row(q), jnp.int32) for q in range(k + 1)]
  for p in range(1, k + 1):
    row = [jnp.full((n,), first_col(p), jnp.int32)]
    for q in range(1, k + 1):
      row.append(cell(a[:, p - 1] == b[:, q - 1], prev[q - 1], prev[q], row[q - 1]))
    prev = row
  return prev[k]


@jax.jit
def _lcs(a, b):
  length = _dp_rows(a, b, lambda q: 0, lambda p: 0,
                    lambda eq, diag, up, left: jnp.where(eq, diag + 1, jnp.maximum(up, left)))
  return jnp.mean(length) / a.shape[1]


def lcs_knn(a, b, **unused_options) -> jax.Array:
  """platonic-rep's LCS kNN divided by k: mean longest common subsequence of the ordered lists."""
  _check_pair(a, b)
  return _lcs(jnp.asarray(a), jnp.asarray(b))


@jax.jit
def _edit(a, b):
  dist = _dp_rows(a, b, lambda q: q, lambda p: p,
                  lambda eq, diag, up, left: jnp.minimum(jnp.minimum(up, left) + 1,
                                                         diag + jnp.where(eq, 0, 1)))
  return 1.0 - jnp.mean(dist) / a.shape[1]


def edit_distance_knn(a, b, **unused_options) -> jax.Array:
  """platonic-rep's edit-distance kNN: 1 - mean Levenshtein distance of the ordered lists / k
  (unit-cost insertions, deletions, substitutions, as torchaudio.functional.edit_distance)."""
  _check_pair(a, b)
  return _edit(jnp.asarray(a), jnp.asarray(b))


def list_permutation_null(pair, unpack=lambda p: p):
  """A `permutation_null` fast path for a measure of neighbour lists.

  Each layer's lists are computed once; under a permutation pi of y's rows, y[pi] has the lists
  argsort(pi)[lists_y[pi]] (ties keep the unpermuted lowest-index rule, as the fast paths of
  `knn_alignment`), so a permutation costs one gather and one pair evaluation.
  """
  def null(layers_a, layers_b, perms, **options):
    prep = functools.partial(_lists, k=options["k"], metric=options["metric"])
    la = [prep(x) for x in layers_a]
    lb = la if layers_b is layers_a else [prep(y) for y in layers_b]
    n = la[0].shape[0]
    perms = np.asarray(perms)
    if perms.ndim != 2 or perms.shape[1] != n or not np.all(np.sort(perms, 1) == np.arange(n)):
      raise ValueError(f"perms: expected permutations of range({n}) as rows [P, {n}], got "
                       f"{perms.dtype} {perms.shape}")
    observed = np.array([[float(pair(a, b)) for b in lb] for a in la])
    inverse = np.argsort(perms, axis=1)
    null = np.array([[[float(pair(a, inv[b[perm]])) for b in lb] for a in la]
                     for perm, inv in zip(perms, inverse)])
    return observed, null.reshape(len(perms), len(la), len(lb))
  return null


_PROPS = Properties(symmetric=True, invariances=("orthogonal", "isotropic_scaling", "permutation"))
_RESI = "Klabunde et al. 2025 (ReSi), github.com/mklabunde/resi repsim/measures/nearest_neighbor.py"
_PLATONIC = "Huh et al. 2024, github.com/minyoungg/platonic-rep metrics.py"


def _register(name, pair, properties, reference):
  register(Measure(
      name=name, kind="similarity", properties=properties, prepare=_lists,
      preparation="k-NN lists", pair=pair, perfect=1.0, options=dict(_OPTIONS), min_rows=11,
      reference=reference, permutation_null=list_permutation_null(pair)))


_register("jaccard-k=10-metric=cosine-score", jaccard, _PROPS, _RESI + " (jaccard_similarity)")
_register("rank-similarity-k=10-metric=cosine-score", rank_similarity, _PROPS,
          _RESI + " (rank_similarity)")
register(Measure(
    name="second-order-cosine-k=10-metric=cosine-score", kind="similarity", properties=_PROPS,
    prepare=_lists_and_points, preparation="k-NN lists and inputs", pair=second_order_cosine,
    perfect=1.0, options=dict(_OPTIONS), min_rows=11,
    reference=_RESI + " (second_order_cosine_similarity)"))
# cycle kNN compares a's lists of b's lists: not symmetric.
_register("cycle-knn-k=10-metric=cosine-score", cycle_knn,
          Properties(symmetric=False, invariances=_PROPS.invariances),
          _PLATONIC + " (AlignmentMetrics.cycle_knn)")
_register("lcs-knn-k=10-metric=cosine-score", lcs_knn, _PROPS,
          _PLATONIC + " (AlignmentMetrics.lcs_knn, divided by k)")
_register("edit-distance-knn-k=10-metric=cosine-score", edit_distance_knn, _PROPS,
          _PLATONIC + " (AlignmentMetrics.edit_distance_knn)")
