"""The measure protocol: every registered measure by name, its matrix, bootstrap and permutation
null through the generic path equal to its fast path, and calibration equal to Gröger et al.'s
package (`calibrated-similarity` 0.1.1) given the same permutations."""
import warnings

import numpy as np
import pytest

import repsim_jax
from repsim_jax.measures import protocol
from repsim_jax.metrics import calibration, intervals

repsim_jax.measures()  # imports every module in MODULES (the registry below is then complete)
NAMES = protocol.names()
FAST_BOOTSTRAP = [m.name for m in protocol.registered() if m.bootstrap is not None]
FAST_NULL = [m.name for m in protocol.registered() if m.permutation_null is not None]
FAST_MATRIX = [m.name for m in protocol.registered() if m.matrix is not None]


def _layers(seed=0, n=48):
  """Two 'models' sharing a latent (distinct distances: no ties), widths below n (one width per
  model: each width pair compiles its own pair kernels)."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, 3))
  a = [(z @ rng.normal(size=(3, d)) + s * rng.normal(size=(n, d))).astype(np.float32)
       for d, s in ((5, 0.2), (5, 1.0))]
  b = [(z[:, :2] @ rng.normal(size=(2, d)) + s * rng.normal(size=(n, d))).astype(np.float32)
       for d, s in ((4, 0.3), (4, 2.0))]
  return a, b


def _options(name):
  """Small-N options (k below the default 10 of the kNN measures)."""
  return dict(k=4) if name.startswith(("mutual_knn", "cknna")) else {}


def test_names_aliases_and_the_listing():
  assert "information_imbalance-convention=dadapy-distance" in NAMES
  assert repsim_jax.measure("cka").name == "cka-kernel=linear-hsic=song-score"
  assert repsim_jax.measure("cka-biased").name == "cka-kernel=linear-hsic=gretton-score"
  assert repsim_jax.measure("procrustes").name == "procrustes-distance=squared_euclidean"
  rows = {r["name"]: r for r in repsim_jax.measures()}
  assert rows["pwcca-score"]["symmetric"] is False
  assert rows["procrustes-distance=angular"]["metric"] is True
  assert rows["information_imbalance-convention=dadapy-distance"]["kind"] == "distance"
  for r in rows.values():  # the name says what the number is
    assert r["name"].endswith("-score") == (r["kind"] == "similarity"), r["name"]
  with pytest.raises(ValueError, match="did you mean 'cka'"):
    repsim_jax.measure("ckaa")
  with pytest.raises(ValueError, match=r"unknown option\(s\) \['kk'\]"):
    repsim_jax.measure("imbalance")(*_layers()[0], kk=1)


def test_pairs_are_floats_and_equal_the_old_functions():
  (x, y), _ = _layers()
  from repsim_jax.metrics import cca, knn_alignment, procrustes
  want = {
      "procrustes": float(procrustes.procrustes(x, y)),
      "svcca": float(cca.svcca(x, y)), "pwcca": float(cca.pwcca(x, y)),
      "mutual_knn": float(knn_alignment.mutual_knn(x, y, k=4)),
      "cknna": float(knn_alignment.cknna(x, y, k=4)),
      "cka-biased": float(repsim_jax.cka(x, y)),
      "imbalance": repsim_jax.information_imbalance(x, y),
  }
  for alias, value in want.items():
    got = repsim_jax.measure(alias)(x, y, **_options(repsim_jax.measure(alias).name))
    assert type(got) is float and got == value, alias
  for fn in (repsim_jax.procrustes, repsim_jax.svcca, repsim_jax.pwcca):
    assert type(fn(x, y)) is float
  assert type(repsim_jax.mutual_knn(x, y, k=4)) is float
  assert type(repsim_jax.cknna(x, y, k=4)) is float
  # NBS and the angular distance from the same nuclear norm: 1 - d / 2 and arccos of it
  nbs = repsim_jax.measure("nbs")(x, y)
  assert abs(nbs - (1 - want["procrustes"] / 2)) < 1e-6
  assert abs(repsim_jax.measure("procrustes-angular")(x, y) - np.arccos(nbs)) < 1e-6


def test_hsic_keyword_and_the_deprecated_ones():
  (x, y), _ = _layers()
  from repsim_jax.metrics import kernel_alignment, knn_alignment
  song = float(kernel_alignment.cka(x, y, hsic="song"))
  with pytest.warns(DeprecationWarning, match="debiased= is deprecated"):
    assert float(kernel_alignment.cka(x, y, debiased=True)) == song
  with pytest.warns(DeprecationWarning, match="unbiased= is deprecated"):
    old = float(knn_alignment.cknna(x, y, k=4, unbiased=False))
  assert old == float(knn_alignment.cknna(x, y, k=4, hsic="gretton"))
  with pytest.raises(ValueError, match="hsic must be one of"):
    repsim_jax.cka_matrix([x], [y], hsic="unbiased")
  with warnings.catch_warnings(), pytest.raises(ValueError, match="contradicts"):
    warnings.simplefilter("ignore")
    repsim_jax.cka(x, y, hsic="gretton", debiased=True)


@pytest.mark.parametrize("name", NAMES)
def test_generic_matrix_equals_pairs_and_fast_path(name):
  a, b = _layers(1)
  opts = _options(name)
  m = repsim_jax.measure(name)
  generic = repsim_jax.similarity_matrix(a, b, measure=name, generic=True, **opts)
  pairs = np.array([[m(x, y, **opts) for y in b] for x in a])
  np.testing.assert_array_equal(generic, pairs)
  fast = repsim_jax.similarity_matrix(a, b, measure=name, **opts)
  # float32 rounding, relative for the unbounded distances (Bures, euclidean shape metrics)
  np.testing.assert_allclose(fast, generic, rtol=1e-6, atol=1e-6)
  # layers_b None: the grid of A with itself, each unordered pair once for symmetric measures
  both = repsim_jax.similarity_matrix(a, measure=name, generic=True, **opts)
  want = np.array([[m(x, y, **opts) for y in a] for x in a])
  np.testing.assert_allclose(both, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", FAST_BOOTSTRAP)
def test_generic_bootstrap_equals_fast_path(name):
  a, b = _layers(2)
  n = len(a[0])
  weights = intervals.bootstrap_weights(n, 3, seed=1)
  if name.startswith("information_imbalance"):
    # Its weighted counts leave the query's own copies out (`imbalance_weighted`); with 0/1
    # weights (subsamples) there are no copies and both are the plain Delta of the rows kept.
    weights = np.stack([np.random.default_rng(s).permutation(n) < n - 9 for s in range(3)]
                       ).astype(np.int32)
  fast = _replicates(a, b, weights, name, generic=False)
  generic = _replicates(a, b, weights, name, generic=True)
  np.testing.assert_allclose(fast, generic, rtol=0, atol=2e-6)


def _replicates(a, b, weights, name, generic):
  from repsim_jax.measures import bootstrap_replicates
  return bootstrap_replicates(a, b, weights=weights, measure=name, generic=generic,
                              **_options(name))


def test_bootstrap_and_subset_intervals_for_any_measure():
  a, b = _layers(3)
  out = repsim_jax.measure_bootstrap(a, b, measure="procrustes", n_boot=20, seed=2,
                                     method="percentile")
  weights = intervals.bootstrap_weights(len(a[0]), 20, 2)
  m = repsim_jax.measure("procrustes")
  rows = [np.repeat(np.arange(len(a[0])), w) for w in weights]
  want = np.array([[[m(x[r], y[r]) for y in b] for x in a] for r in rows])
  np.testing.assert_array_equal(out["replicates"], want)
  np.testing.assert_array_equal(out["value"], repsim_jax.procrustes_matrix(a, b))
  ref = intervals.bootstrap_interval(out["value"], want)
  np.testing.assert_array_equal(out["low"], ref["low"])
  # CKA through the protocol: the same numbers as the dedicated function
  cka = repsim_jax.measure_bootstrap(a, b, measure="cka", n_boot=20, seed=2)
  np.testing.assert_allclose(cka["replicates"],
                             repsim_jax.cka_bootstrap(a, b, n_boot=20, seed=2)["replicates"],
                             atol=1e-12)
  ii = repsim_jax.measure_bootstrap(a, b, measure="imbalance", n_boot=20, seed=2)
  want = repsim_jax.imbalance_bootstrap(a, b, n_boot=20, seed=2)
  for key in ("value", "replicates", "low", "high"):  # integer rank counts: the same bits
    np.testing.assert_array_equal(ii[key], want[key])
  sub = repsim_jax.measure_subsets(a, b, measure="svcca", subset_size=16, seed=1)
  idx = intervals.disjoint_subsets(len(a[0]), 16, None, 1)
  np.testing.assert_array_equal(sub["subsets"], idx)
  np.testing.assert_allclose(sub["values"][1], repsim_jax.svcca_matrix(
      [x[idx[1]] for x in a], [y[idx[1]] for y in b]), atol=0)
  ii = repsim_jax.measure_subsets(a, b, measure="imbalance", subset_size=16, seed=1)
  np.testing.assert_array_equal(
      ii["mean"], repsim_jax.imbalance_subsets(a, b, subset_size=16, seed=1)["mean"])


@pytest.mark.parametrize("name", FAST_NULL)
def test_generic_permutation_null_equals_fast_path(name):
  a, b = _layers(4)
  perms = calibration.permutations(len(a[0]), 4, seed=3)
  from repsim_jax.measures import permutation_null
  fast = permutation_null(a, b, perms=perms, measure=name, **_options(name))
  generic = permutation_null(a, b, perms=perms, measure=name, generic=True, **_options(name))
  np.testing.assert_allclose(fast[0], generic[0], rtol=0, atol=2e-6)
  np.testing.assert_allclose(fast[1], generic[1], rtol=0, atol=2e-6)


def test_structured_nulls():
  labels = np.array([0, 1, 0, 2, 1, 0, 2, 2, 1, 0])
  perms = calibration.permutations(10, 20, 0, labels=labels)
  assert np.all(labels[perms] == labels)  # rows only trade places within their class
  assert len({tuple(p) for p in perms}) > 10
  groups = np.repeat(np.arange(4), 3)  # 4 images x 3 crops
  perms = calibration.permutations(12, 20, 1, groups=groups)
  blocks = perms.reshape(20, 4, 3)
  assert np.all(blocks == blocks[:, :, :1] + np.arange(3))  # crops move together, in order
  assert np.all(np.sort(blocks[:, :, 0] // 3, axis=1) == np.arange(4))
  with pytest.raises(ValueError, match="give one"):
    calibration.permutations(12, 2, 0, labels=groups, groups=groups)


def test_benjamini_hochberg_against_the_textbook_steps():
  p = np.array([[0.01, 0.04], [0.03, 0.20], [0.002, 0.5]])
  out = calibration.benjamini_hochberg(p, q=0.05)
  # sorted: .002 .01 .03 .04 .2 .5 -> * 6 / rank: .012 .03 .06 .06 .24 .5, running min from the top
  np.testing.assert_allclose(out["q_value"], [[0.03, 0.06], [0.06, 0.24], [0.012, 0.5]])
  np.testing.assert_array_equal(out["reject"], [[True, False], [False, False], [True, False]])


def _perm_fn(perms):
  import torch
  queue = iter(perms)
  return lambda n, device: torch.as_tensor(next(queue))


@pytest.mark.parametrize("name, sign", [("cka", 1), ("procrustes", -1), ("imbalance", -1),
                                        ("mutual_knn", 1)])
def test_calibration_equals_calibrated_similarity(name, sign):
  """Algorithms 1 and 2 of `calibrated-similarity` with our permutations: a distance d enters
  as the similarity perfect_gap - d (1 - Delta; 2 - squared Procrustes with s_max = 2)."""
  torch = pytest.importorskip("torch")
  cs = pytest.importorskip("calibrated_similarity")
  a, b = _layers(5, n=40)
  b = [b[0], a[1] + np.random.default_rng(0).normal(size=a[1].shape).astype(np.float32)]
  m = repsim_jax.measure(name)
  opts = _options(m.name)
  perms = calibration.permutations(40, 19, seed=6)
  out = calibration.permutation_test(a, b, measure=name, perms=perms, alpha=0.1, top_k=2,
                                     **opts)
  shift = 0.0 if sign > 0 else (2.0 if name == "procrustes" else 1.0)
  smax = 1.0 if sign > 0 else shift

  def oriented(v):
    return shift + sign * np.asarray(v)

  def sim(x, y):
    return torch.tensor(float(oriented(m(x.numpy(), y.numpy(), **opts))))

  ta, tb = [torch.as_tensor(x) for x in a], [torch.as_tensor(y) for y in b]
  for i in range(2):
    for j in range(2):
      scal, p, tau = cs.calibrate(ta[i], tb[j], sim, K=19, alpha=0.1, smax=smax,
                                  perm_fn=_perm_fn(perms))
      assert abs(float(scal) - out["calibrated"][i, j]) < 1e-6
      assert abs(float(p) - out["p_value"][i, j]) < 1e-6
      assert abs(float(tau) - oriented(out["critical"][i, j])) < 1e-6
  aggs = {"max": "max", "mean": "mean", "row_max_mean": lambda s: s.max(dim=1).values.mean(),
          "top_k_mean": lambda s: s.flatten().sort().values[-2:].mean()}
  for how, agg in aggs.items():
    scal, p, tau = cs.calibrate_layers(ta, tb, sim, agg=agg, K=19, alpha=0.1, smax=smax,
                                       perm_fn=_perm_fn(perms))
    got = out["aggregates"][how]  # oriented as theirs: max of shift - d is shift - min d
    assert abs(float(scal) - got["calibrated"]) < 1e-6, how
    assert abs(float(p) - got["p_value"]) < 1e-6, how
    assert abs(float(tau) - oriented(got["critical"])) < 1e-6, how
  np.testing.assert_allclose(out["aggregates"]["max"]["calibrated"], out["calibrated_extreme"])
  assert out["aggregates"]["max"]["p_value"] == out["p_extreme"]
