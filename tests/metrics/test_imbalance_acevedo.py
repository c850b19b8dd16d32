"""Information imbalance in the convention of Acevedo et al. 2025, against a numpy/scipy
transcription of the formula (query rows ranked against the disjoint rest, rankdata "min" ranks in
both spaces, every tied nearest neighbour counted, Delta = 2 mean / (n_ref - 1))."""
import warnings

import numpy as np
import pytest
import scipy.stats

import repsim_jax
from repsim_jax.metrics import imbalance_acevedo


def transcription(a, b, rows, k=1, metric="euclidean"):
  """The formula, written out with scipy.stats.rankdata on full float64 distance matrices."""
  ref = np.setdiff1d(np.arange(len(a)), rows)

  def dist(x):
    x = np.asarray(x, np.float64)
    if metric == "cosine":
      x = x / np.linalg.norm(x, axis=1, keepdims=True)
      return 1.0 - x[rows] @ x[ref].T
    return np.sqrt(((x[rows][:, None, :] - x[ref][None, :, :]) ** 2).sum(-1))

  rank_a = scipy.stats.rankdata(dist(a), method="min", axis=1)  # 1-based
  rank_b = scipy.stats.rankdata(dist(b), method="min", axis=1)
  pairs = rank_a <= k  # every reference point within the first k ranks, ties included
  return 2.0 * (rank_b - 1)[pairs].mean() / (len(ref) - 1)


def _lattice(seed, n=240):
  """Integer points with many exact duplicates and equal distances in both spaces."""
  rng = np.random.default_rng(seed)
  a = rng.integers(0, 4, size=(n, 2)).astype(np.float32)
  b = np.concatenate([a[:, :1], rng.integers(0, 3, size=(n, 2))], axis=1).astype(np.float32)
  return a, b


def _continuous(seed, n=200):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, 4))
  return [(z @ rng.normal(size=(4, d)) + 0.4 * rng.normal(size=(n, d))).astype(np.float32)
          for d in (5, 9, 3)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 3])
def test_equals_transcription_on_lattice_data_with_ties(dtype, k):
  a, b = _lattice(0)
  rows = imbalance_acevedo.default_query_rows(len(a), seed=3)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # the duplicate warning
    got = repsim_jax.information_imbalance_matrix([a, b], convention="acevedo", k=k, seed=3,
                                                  dtype=dtype)
  for i, x in enumerate((a, b)):
    for j, y in enumerate((a, b)):
      np.testing.assert_allclose(got[i, j], transcription(x, y, rows, k), rtol=0, atol=1e-6)
  # The ties matter: counting one nearest neighbour per query (lowest index) gives another value.
  ref = np.setdiff1d(np.arange(len(a)), rows)
  d_a = np.sqrt(((a[rows][:, None] - a[ref][None]) ** 2).sum(-1))
  ties = np.sum(d_a == d_a.min(axis=1, keepdims=True), axis=1)
  assert ties.max() > 5


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_equals_transcription_on_continuous_data(metric):
  layers = _continuous(1)
  rows = np.array([3, 17, 40, 41, 99, 150, 199, 0])
  got = repsim_jax.information_imbalance_matrix(layers, layers[:2], convention="acevedo",
                                                query_rows=rows, metric=metric, k=2,
                                                dtype=np.float64)
  for i, x in enumerate(layers):
    for j, y in enumerate(layers[:2]):
      np.testing.assert_allclose(got[i, j], transcription(x, y, np.sort(rows), 2, metric),
                                 rtol=1e-12)


def test_default_query_rows():
  for n, n_query in ((100, 20), (2499, 499), (2500, 500), (12345, 500)):
    rows = imbalance_acevedo.default_query_rows(n, seed=0)
    assert len(rows) == n_query == len(np.unique(rows)) and rows.min() >= 0 and rows.max() < n
  np.testing.assert_array_equal(imbalance_acevedo.default_query_rows(300, 5),
                                imbalance_acevedo.default_query_rows(300, 5))
  assert not np.array_equal(imbalance_acevedo.default_query_rows(300, 5),
                            imbalance_acevedo.default_query_rows(300, 6))
  # The single-pair API, the pair API and the matrix use the same rows for a seed.
  a, b, _ = _continuous(2)
  m = repsim_jax.information_imbalance_matrix([a, b], convention="acevedo", seed=4)
  assert repsim_jax.information_imbalance(a, b, convention="acevedo", seed=4) == m[0, 1]
  assert repsim_jax.information_imbalance_pair(a, b, convention="acevedo", seed=4) == (
      m[0, 1], m[1, 0])
  rows = imbalance_acevedo.default_query_rows(len(a), 4)
  assert repsim_jax.information_imbalance(a, b, convention="acevedo",
                                          query_rows=rows[::-1]) == m[0, 1]


def test_default_convention_is_unchanged_by_the_options():
  layers = _continuous(3, n=90)
  np.testing.assert_array_equal(
      repsim_jax.information_imbalance_matrix(layers, seed=7),
      repsim_jax.information_imbalance_matrix(layers))


def test_errors_name_the_input():
  layers = _continuous(4, n=40)
  with pytest.raises(ValueError, match="convention must be one of"):
    repsim_jax.information_imbalance_matrix(layers, convention="laio")
  with pytest.raises(ValueError, match="query_rows: only the 'acevedo' convention"):
    repsim_jax.information_imbalance_matrix(layers, query_rows=[0, 1])
  with pytest.raises(ValueError, match="fixes ties"):
    repsim_jax.information_imbalance_matrix(layers, convention="acevedo", ties="average")
  with pytest.raises(ValueError, match="query_rows: 1 repeated indices"):
    repsim_jax.information_imbalance_matrix(layers, convention="acevedo", query_rows=[1, 1, 2])
  with pytest.raises(ValueError, match=r"query_rows: expected at least one index in \[0, 40\)"):
    repsim_jax.information_imbalance_matrix(layers, convention="acevedo", query_rows=[0, 40])
  with pytest.raises(ValueError, match="leave 1 reference points"):
    repsim_jax.information_imbalance_matrix(layers, convention="acevedo",
                                            query_rows=np.arange(39))
  with pytest.raises(ValueError, match=r"k=39: the Acevedo convention needs 1 <= k <= n_ref=38"):
    repsim_jax.information_imbalance_matrix(layers, convention="acevedo", query_rows=[0, 1],
                                            k=39)
  with pytest.raises(ValueError, match=r"N=4 points give 0 query rows"):
    repsim_jax.information_imbalance(layers[0][:4], layers[1][:4], convention="acevedo")
