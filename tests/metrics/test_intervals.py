"""Bootstrap and subsample intervals of II and CKA against scipy.stats.bootstrap, plain numpy
loops over the resampled data, and scipy's t quantiles."""
import numpy as np
import pytest
import scipy.stats

import repsim_jax
from caught import warnings_said as _catch
from repsim_jax.metrics import cka_weighted, imbalance_weighted, intervals, neighbours


def _layers(seed, n, widths, offset=0.0):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, 3))
  return [(z @ rng.normal(size=(3, d)) + 0.6 * rng.normal(size=(n, d)) + offset).astype(np.float32)
          for d in widths]


def resampled_imbalance(a, b, w, k=1):
  """The documented definition on a multiset, as a plain loop: float64 distances, neighbours of
  i among the other images sorted by (distance, index) with each image repeated w_j times,
  ranks 1 + the weighted number of other images strictly closer in b."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  d_a = np.sqrt(((a[:, None] - a[None]) ** 2).sum(-1))
  d_b = np.sqrt(((b[:, None] - b[None]) ** 2).sum(-1))
  total = 0
  for i in np.flatnonzero(w):
    others = np.delete(np.arange(len(a)), i)
    order = others[np.lexsort((others, d_a[i, others]))]
    for j in np.repeat(order, w[order])[:k]:
      total += w[i] * (1 + w[others][d_b[i, others] < d_b[i, j]].sum())
  return 2.0 * total / (w.sum() ** 2 * k)


@pytest.mark.parametrize("k", [1, 3])
def test_weighted_imbalance_equals_a_loop_over_resampled_sets(k):
  a, b, c = _layers(0, 70, [3, 2, 4])
  rng = np.random.default_rng(1)
  weights = np.concatenate([
      np.ones((1, 70), int),  # the plain value
      intervals.bootstrap_weights(70, 4, seed=2),
      (rng.random((2, 70)) < 0.4).astype(int),  # subsets
      rng.integers(0, 4, (1, 70))])
  got = imbalance_weighted.weighted_imbalance([a, b], [b, c], weights, k=k, dtype=np.float64)
  for r, w in enumerate(weights):
    for i, x in enumerate((a, b)):
      for j, y in enumerate((b, c)):
        np.testing.assert_allclose(got[r, i, j], resampled_imbalance(x, y, w, k), rtol=1e-12)
  # w = 1 is the plain matrix, bit for bit, in float32 too; a 0/1 subset is the plain subset II.
  f32 = imbalance_weighted.weighted_imbalance([a, b], [b, c], weights, k=k)
  np.testing.assert_array_equal(f32[0], repsim_jax.information_imbalance_matrix([a, b], [b, c],
                                                                               k=k))
  subset = weights[5].astype(bool)
  np.testing.assert_array_equal(f32[5], repsim_jax.information_imbalance_matrix(
      [a[subset], b[subset]], [b[subset], c[subset]], k=k))


def test_candidate_lists_start_with_the_exact_neighbours():
  rng = np.random.default_rng(12)
  x = rng.normal(size=(80, 3)) * 40
  x[1] = x[0] + [1.0, 0, 0]
  x[2] = x[0] + [1.0 + 1e-9, 0, 0]  # a float32 tie with row 1 seen from row 0: refined
  cand = neighbours.candidate_lists(x, 2, 9)
  np.testing.assert_array_equal(cand[:, :2], neighbours.knn(x, 2)[1])
  d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
  np.fill_diagonal(d, np.inf)
  order = np.argsort(d, axis=1, kind="stable")[:, :9]
  assert np.mean(np.all(cand == order, axis=1)) > 0.9  # beyond k: float32 order, near-exact
  assert all(len(set(row)) == 9 for row in cand)
  y = rng.normal(size=(50, 4))  # no planted near-ties: float64 candidates are the exact order
  d = np.sqrt(((y[:, None] - y[None]) ** 2).sum(-1))
  np.fill_diagonal(d, np.inf)
  np.testing.assert_array_equal(neighbours.candidate_lists(y, 1, 6, dtype=np.float64),
                                np.argsort(d, axis=1, kind="stable")[:, :6])


def test_weighted_imbalance_widens_candidates_when_a_replicate_misses_them():
  a, b = _layers(3, 200, [3, 3])
  w = np.ones((1, 200), int)
  w[0, 1:180] = 0  # most images absent: some rows hold < 2 of their 17 candidates (here 9)
  w[0, 0] = 3
  got = imbalance_weighted.weighted_imbalance([a], [b], w, k=2, dtype=np.float64)
  np.testing.assert_allclose(got[0, 0, 0], resampled_imbalance(a, b, w[0], 2), rtol=1e-12)


def test_imbalance_bootstrap_equals_scipy_bootstrap():
  a, b = _layers(4, 50, [4, 2])
  ours = intervals.imbalance_bootstrap([a], [b], n_boot=40, seed=11, dtype=np.float64)
  for method in ("percentile", "basic"):
    ref = scipy.stats.bootstrap(
        (np.arange(50),), lambda idx: resampled_imbalance(a, b, np.bincount(idx, minlength=50)),
        n_resamples=40, vectorized=False, method=method, confidence_level=0.9,
        rng=np.random.default_rng(11))
    got = intervals.bootstrap_interval(ours["value"], ours["replicates"], confidence=0.9,
                                       method=method)
    np.testing.assert_allclose(ours["replicates"][:, 0, 0], ref.bootstrap_distribution,
                               rtol=1e-12)
    np.testing.assert_allclose([got["low"][0, 0], got["high"][0, 0]],
                               [ref.confidence_interval.low, ref.confidence_interval.high],
                               rtol=1e-12)
    np.testing.assert_allclose(got["std"][0, 0], ref.standard_error, rtol=1e-12)
  np.testing.assert_array_equal(ours["value"],
                                repsim_jax.information_imbalance_matrix([a], [b],
                                                                        dtype=np.float64))
  assert ours["low"][0, 0] < ours["value"][0, 0] < ours["high"][0, 0]


@pytest.mark.parametrize("debiased", [True, False])
def test_weighted_cka_equals_cka_of_resampled_rows(debiased):
  layers = _layers(5, 64, [5, 12, 3], offset=4.0)
  weights = np.concatenate([np.ones((1, 64), int), intervals.bootstrap_weights(64, 3, seed=1),
                            (np.random.default_rng(2).random((1, 64)) < 0.5).astype(int)])
  got = cka_weighted.weighted_cka(layers, layers[:2], weights, debiased=debiased, block_size=16)
  for r, w in enumerate(weights):
    rows = np.repeat(np.arange(64), w)
    want = repsim_jax.cka_matrix([x[rows] for x in layers], [y[rows] for y in layers[:2]],
                                 debiased=debiased)
    np.testing.assert_allclose(got[r], want, rtol=0, atol=2e-6)
  assert np.ptp(got[1:4, 0, 1]) > 1e-3  # the replicates differ


def test_cka_bootstrap_equals_scipy_bootstrap():
  x, y = _layers(6, 40, [6, 4])
  ref = scipy.stats.bootstrap(
      (np.arange(40),), lambda idx: repsim_jax.cka(x[idx], y[idx], debiased=True),
      n_resamples=30, vectorized=False, method="percentile", rng=np.random.default_rng(3))
  ours = repsim_jax.cka_bootstrap([x], [y], n_boot=30, seed=3, method="percentile")
  np.testing.assert_allclose(ours["replicates"][:, 0, 0], ref.bootstrap_distribution, atol=2e-6)
  np.testing.assert_allclose([ours["low"][0, 0], ours["high"][0, 0]],
                             [ref.confidence_interval.low, ref.confidence_interval.high],
                             atol=2e-6)
  np.testing.assert_allclose(ours["value"][0, 0], repsim_jax.cka(x, y, debiased=True), atol=1e-6)


def test_subsample_intervals_of_ii_and_cka():
  layers = _layers(7, 90, [4, 6])
  ii = repsim_jax.imbalance_subsets(layers, subset_size=30, seed=2, confidence=0.9)
  ck = repsim_jax.cka_subsets(layers, subset_size=30, seed=2, confidence=0.9, debiased=False)
  np.testing.assert_array_equal(ii["subsets"], ck["subsets"])
  assert len(np.unique(ii["subsets"])) == 90
  for out, fn in ((ii, repsim_jax.information_imbalance_matrix),
                  (ck, lambda ls: repsim_jax.cka_matrix(ls, ls, debiased=False))):
    for r, idx in enumerate(out["subsets"]):
      np.testing.assert_array_equal(out["values"][r], fn([x[idx] for x in layers]))
    sem = out["values"].std(0, ddof=1) / np.sqrt(3)
    half = scipy.stats.t.ppf(0.95, 2) * sem
    np.testing.assert_allclose(out["sem"], sem)
    np.testing.assert_allclose(out["low"], out["values"].mean(0) - half)
    np.testing.assert_allclose(out["high"], out["values"].mean(0) + half)


def test_bootstrap_weights_count_scipys_draws():
  idx = np.random.default_rng(9).integers(0, 30, (5, 30))
  w = intervals.bootstrap_weights(30, 5, seed=9)
  np.testing.assert_array_equal(w, [np.bincount(i, minlength=30) for i in idx])


def test_format_interval():
  assert repsim_jax.format_interval(0.31234, 0.0142) == "0.312 ± 0.014"
  assert repsim_jax.format_interval(12.34, 2.3) == "12.3 ± 2.3"
  assert repsim_jax.format_interval(0.5, 0.00004) == "0.500000 ± 0.000040"
  assert repsim_jax.format_interval(0.5, np.nan) == "0.500"
  assert repsim_jax.format_interval(0.25, 0.1, digits=2) == "0.25 ± 0.10"
  table = repsim_jax.format_interval(np.array([[0.1, 0.2]]), np.array([[0.01, 0.02]]))
  assert table.shape == (1, 2) and table[0, 1] == "0.200 ± 0.020"


def test_bad_inputs():
  a, b = _layers(8, 20, [3, 3])
  with pytest.raises(ValueError, match=r"weights: expected non-negative integers \[R, N=20\]"):
    imbalance_weighted.weighted_imbalance([a], [b], np.ones((2, 19), int))
  with pytest.raises(ValueError, match="fewer than k=3"):
    imbalance_weighted.weighted_imbalance([a], [b], np.eye(1, 20, dtype=int) * 3 + 0, k=3)
  with pytest.raises(ValueError, match="needs at least 4"):
    cka_weighted.weighted_cka([a], [b], np.eye(1, 20, dtype=int) * 3)
  with pytest.raises(ValueError, match="method must be one of"):
    intervals.bootstrap_interval(np.zeros(2), np.zeros((3, 2)), method="bca")
  with pytest.raises(ValueError, match="4 disjoint subsets of 6 points need 24 points"):
    repsim_jax.cka_subsets([a], subset_size=6, repeats=4, seed=0)


def test_split_weights_are_complementary_halves_and_disjoint_quarters():
  halves = intervals.split_weights(41, 2, 3, seed=4)
  quarters = intervals.split_weights(41, 4, 2, seed=4)
  assert halves.shape == (6, 41) and quarters.shape == (8, 41)
  np.testing.assert_array_equal(halves.sum(1), 20)
  np.testing.assert_array_equal(quarters.sum(1), 10)
  assert np.all(halves[0::2] + halves[1::2] <= 1)  # complementary: never both
  assert np.all(quarters.reshape(2, 4, 41).sum(1) <= 1)
  rng = np.random.default_rng([4, 2])  # the documented draws
  for s in range(3):
    perm = rng.permutation(41)
    np.testing.assert_array_equal(np.flatnonzero(halves[2 * s]), np.sort(perm[:20]))
    np.testing.assert_array_equal(np.flatnonzero(halves[2 * s + 1]), np.sort(perm[20:40]))


def test_halves_interval_of_ii_against_subsets_recomputed():
  """The default II interval: the values on the documented halves and quarters are the plain II
  of those subsets, and the interval follows the documented formula, in numpy."""
  a, b, c = _layers(13, 84, [4, 3, 5])
  out = repsim_jax.imbalance_bootstrap([a], [b, c], n_boot=20, n_splits=4, seed=3,
                                       dtype=np.float64)
  boot = repsim_jax.imbalance_bootstrap([a], [b, c], n_boot=20, seed=3, method="percentile",
                                        dtype=np.float64)
  np.testing.assert_array_equal(out["replicates"], boot["replicates"])  # method-independent
  np.testing.assert_array_equal(out["value"], boot["value"])
  subsets = np.concatenate([intervals.split_weights(84, 2, 4, 3),
                            intervals.split_weights(84, 4, 2, 3)]).astype(bool)
  values = np.array([repsim_jax.information_imbalance_matrix([a[s]], [b[s], c[s]],
                                                             dtype=np.float64)[0]
                     for s in subsets])
  np.testing.assert_allclose(out["halves"][:, 0], values[:8], rtol=1e-12)
  np.testing.assert_allclose(out["quarters"][:, 0], values[8:], rtol=1e-12)
  h, q = values[:8], values[8:]
  var_half = np.mean([(h[2 * s] - h[2 * s + 1]) ** 2 / 2 for s in range(4)], axis=0)
  var_quarter = np.mean([np.var(q[4 * s:4 * s + 4], axis=0, ddof=1) for s in range(2)], axis=0)
  rate = (1 + np.clip(np.log2(var_quarter / var_half), 0.5, 3)) / 2
  std = np.sqrt(var_half * 2.0 ** -rate)
  np.testing.assert_allclose(out["std"][0], std, rtol=1e-10)
  # Student's t on the delta-method degrees of freedom of var_half^1.5 var_quarter^-0.5 (4 splits
  # into halves: chi-square on 4; 2 into quarters: on 6), 20.7 at the default 50 and 25 splits
  df = 1 / (2.25 / 4 + 0.25 / 6)
  assert intervals.halves_df(50, 25) == pytest.approx(1 / (2.25 / 50 + 0.25 / 75))
  half = scipy.stats.t.ppf(0.975, df) * std
  np.testing.assert_allclose(out["half_width"][0], half, rtol=1e-10)
  np.testing.assert_allclose(out["low"][0], out["value"][0] - half, rtol=1e-10)
  np.testing.assert_allclose(out["high"][0], out["value"][0] + half, rtol=1e-10)
  assert np.all(out["low"] < out["value"]) and np.all(out["value"] < out["high"])


def test_basic_interval_of_ii_warns():
  a, b = _layers(14, 40, [3, 3])
  with pytest.warns(UserWarning, match="method='basic' for II.*use method='halves'"):
    repsim_jax.imbalance_bootstrap([a], [b], n_boot=20, method="basic")


def test_too_few_replicates_points_or_rows_raise():
  a, b = _layers(15, 30, [3, 3])
  with pytest.raises(ValueError, match=r"n_boot=5: expected an integer >= 20"):
    repsim_jax.imbalance_bootstrap([a], [b], n_boot=5)
  with pytest.raises(ValueError, match=r"n_boot=1: expected an integer >= 20"):
    repsim_jax.cka_bootstrap([a], [b], n_boot=1)
  with pytest.raises(ValueError, match=r"n_boot=3: expected an integer >= 20"):
    intervals.bootstrap_interval(np.zeros(2), np.zeros((3, 2)))
  with pytest.raises(ValueError, match=r"N=5 points: an II interval \(k=1.*needs at least N=20"):
    repsim_jax.imbalance_bootstrap([a[:5]], [b[:5]])
  with pytest.raises(ValueError, match=r"N=30 points: an II interval \(k=10.*at least N=44"):
    repsim_jax.imbalance_bootstrap([a], [b], k=10)
  with pytest.raises(ValueError, match=r"N=8 points: a CKA interval needs at least N=20"):
    repsim_jax.cka_bootstrap([a[:8]], [b[:8]])
  with pytest.raises(ValueError, match=r"same number of points n; got layers_a\[0\]: 30, "
                                       r"layers_b\[0\]: 29"):
    repsim_jax.cka_subsets([a], [b[:29]], subset_size=10, seed=0)
  with pytest.raises(ValueError, match=r"same number of points n; got layers_a\[0\]: 30, "
                                       r"layers_b\[0\]: 31"):
    repsim_jax.cka_subsets([a], [np.concatenate([b, b[:1]])], subset_size=10, seed=0)
  for fn in (repsim_jax.cka_subsets, repsim_jax.imbalance_subsets):
    with pytest.raises(ValueError, match=r"subset_size=60 exceeds the N=30 points"):
      fn([a], subset_size=60, seed=0)
    with pytest.raises(ValueError, match=r"4 disjoint subsets of 10 points need 40 points, but "
                                         r"there are N=30 \(at most 3 subsets fit\)"):
      fn([a], subset_size=10, repeats=4, seed=0)


def test_constant_and_duplicate_layers_warn_once_per_call():
  a, b = _layers(16, 40, [3, 4])
  flat = np.full((40, 5), 3.0, np.float32)
  near = (1000 + 1e-3 * np.random.default_rng(0).normal(size=(40, 5))).astype(np.float32)
  dup = a.copy()
  dup[1] = dup[0]
  calls = {
      "imbalance_bootstrap": lambda x: repsim_jax.imbalance_bootstrap([a, x], [b, x], n_boot=20,
                                                                      n_splits=2),
      "imbalance_subsets": lambda x: repsim_jax.imbalance_subsets([a, x], [b, x], subset_size=10,
                                                                  seed=0),
      "information_imbalance_matrix": lambda x: repsim_jax.information_imbalance_matrix(
          [a, x], [b, x]),
      "sample_size_curve": lambda x: repsim_jax.sample_size_curve([a, x], [b, x], sizes=[20, 40],
                                                                  n_subsamples=2, seed=0),
  }
  for name, call in calls.items():
    _, said = _catch(lambda: call(flat))
    constant = [m for m in said if m.startswith("constant or near-constant layers")]
    assert len(constant) == 1, (name, said)
    assert "layers_a[1] (constant)" in constant[0] and "reads as perfect prediction" in constant[0]
    _, said = _catch(lambda: call(near))
    assert sum("spread" in m and "of its scale" in m for m in said) == 1, (name, said)
    _, said = _catch(lambda: call(dup))
    duplicates = [m for m in said if m.startswith("exact duplicate points")]
    assert duplicates == ["exact duplicate points: 2 of 40 in 1 of 3 layers (layers_a[1]); "
                          "their distances tie (see the ties option)"], (name, said)
    assert not any(m.startswith("constant") for m in said)
  for call in (lambda x: repsim_jax.cka_bootstrap([a, x], [b], n_boot=20),
               lambda x: repsim_jax.cka_subsets([a, x], [b], subset_size=10, seed=0)):
    out, said = _catch(lambda: call(flat))
    assert [m for m in said if "constant" in m] == [
        "constant or near-constant layers (spread <= 1e-05 of the values): layers_a[1] "
        "(constant); CKA with it is 0 by convention (undefined: no variance to align), or "
        "rounding noise when near-constant"]
    _, said = _catch(lambda: call(dup))  # duplicates are ordinary samples for CKA
    assert said == []
  # What the warning says: a constant layer predicts like a perfect copy under ties "min".
  with pytest.warns(UserWarning):
    value = repsim_jax.information_imbalance(a, flat)
  assert value == pytest.approx(2 / 40)


def test_halves_interval_of_cka_reads_cka_of_the_split_subsets():
  layers = _layers(17, 48, [5, 3], offset=2.0)
  out = repsim_jax.cka_bootstrap(layers[:1], layers[1:], n_boot=20, n_splits=2, seed=5,
                                 method="halves")
  subsets = np.concatenate([intervals.split_weights(48, 2, 2, 5),
                            intervals.split_weights(48, 4, 1, 5)]).astype(bool)
  want = [repsim_jax.cka(layers[0][s], layers[1][s], debiased=True) for s in subsets]
  np.testing.assert_allclose(np.concatenate([out["halves"], out["quarters"]])[:, 0, 0], want,
                             atol=2e-6)
  ref = intervals.halves_interval(out["value"], out["halves"], out["quarters"], n=48)
  np.testing.assert_array_equal(out["low"], ref["low"])
  assert out["std"][0, 0] > 0 and out["low"][0, 0] < out["value"][0, 0] < out["high"][0, 0]
