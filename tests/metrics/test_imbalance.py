"""Information imbalance against DADApy, a numpy brute force, and across device counts."""
import collections.abc
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import scipy.stats

import repsim_jax
from locations import HELPERS, REFERENCE
from repsim_jax.metrics import imbalance, neighbours

N = 240
WIDTHS = [3, 12, 40, 7]
KS = [1, 3, 5]
METRICS = ["euclidean", "cosine"]
DADAPY_VENV = os.environ.get("REPSIM_DADAPY_VENV",
                             os.path.expanduser("~/.cache/repsim_jax/dadapy-venv"))


def _layers(seed=0, n=N, widths=WIDTHS):
  """Continuous data with shared structure so that II values are spread over (0, 1)."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, 6))
  out = []
  for w in widths:
    proj = rng.normal(size=(6, w))
    out.append((np.tanh(z @ proj) + 0.3 * rng.normal(size=(n, w))).astype(np.float32))
  return out


def brute_force(a, b, k, metric="euclidean", ties="min"):
  """Plain numpy: full float64 distance matrices, stable argsort, explicit rank counting."""
  def dist(x):
    x = np.asarray(x, np.float64)
    if metric == "cosine":
      x = x / np.linalg.norm(x, axis=1, keepdims=True)
      d = 1 - x @ x.T
    else:
      d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0))
    np.fill_diagonal(d, np.inf)
    return d
  da, db = dist(a), dist(b)
  n = len(a)
  nn = np.argsort(da, axis=1, kind="stable")[:, :k]
  ranks = []
  for i in range(n):
    row = db[i][np.arange(n) != i]
    full = scipy.stats.rankdata(row, method="average" if ties == "average" else "min")
    lookup = dict(zip(np.flatnonzero(np.arange(n) != i), full))
    ranks.append([lookup[j] for j in nn[i]])
  return 2.0 / n * np.mean(ranks)


@pytest.fixture(scope="module")
def dadapy_values(tmp_path_factory):
  python = os.path.join(DADAPY_VENV, "bin", "python")
  if not os.path.exists(python):
    pytest.fail(f"DADApy reference venv missing at {DADAPY_VENV}: run "
                f"`bash tests/reference/install_dadapy.sh` (part of the README test command)")
  tmp = tmp_path_factory.mktemp("dadapy")
  layers = _layers()
  pairs = np.array([(a, b) for a in range(len(layers)) for b in range(len(layers))])
  np.savez(tmp / "cases.npz", n_layers=len(layers), pairs=pairs, ks=KS, metrics=METRICS,
           **{f"L{i}": x for i, x in enumerate(layers)})
  script = str(REFERENCE / "dadapy_imbalance.py")
  subprocess.run([python, script, str(tmp / "cases.npz"), str(tmp / "out.npz")], check=True)
  with np.load(tmp / "out.npz") as z:
    return layers, pairs, {k: z[k] for k in z.files}


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", KS)
def test_matrix_equals_dadapy_float64(dadapy_values, metric, k):
  layers, pairs, ref = dadapy_values
  ours = repsim_jax.information_imbalance_matrix(layers, layers, k=k, metric=metric,
                                                 dtype=np.float64)
  expected = ref[f"ii_{metric}_k{k}"].reshape(ours.shape)
  np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=0)
  assert ours.min() < 0.2 and ours.max() > 0.5  # the cases are not all trivially 0 or 1


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", KS)
def test_float32_matches_dadapy_to_a_rank(dadapy_values, metric, k):
  layers, pairs, ref = dadapy_values
  ours = repsim_jax.information_imbalance_matrix(layers, k=k, metric=metric)
  expected = ref[f"ii_{metric}_k{k}"].reshape(ours.shape)
  # float32 distances may swap a near-tie; one rank off at one point moves Delta by 2/(N^2 k).
  one_rank = 2.0 / (N * N * k)
  assert np.abs(ours - expected).max() <= 3 * one_rank


@pytest.mark.parametrize("metric", METRICS)
def test_single_pair_equals_dadapy_public_api(dadapy_values, metric):
  layers, pairs, ref = dadapy_values
  for k in KS:
    for (a, b), (ab, ba) in zip(pairs[:2], ref[f"public_{metric}_k{k}"]):
      got_ab = repsim_jax.information_imbalance(layers[a], layers[b], k=k, metric=metric,
                                                dtype=np.float64)
      got_ba = repsim_jax.information_imbalance(layers[b], layers[a], k=k, metric=metric,
                                                dtype=np.float64)
      np.testing.assert_allclose([got_ab, got_ba], [ab, ba], rtol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_matches_numpy_brute_force(metric):
  a, b = _layers(seed=3, n=90, widths=[5, 9])
  for k in (1, 4):
    want = brute_force(a, b, k, metric)
    got = repsim_jax.information_imbalance(a, b, k=k, metric=metric, dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_block_size_and_budget_do_not_change_the_result():
  layers = _layers(seed=4, n=150, widths=[4, 8, 6])
  ref = repsim_jax.information_imbalance_matrix(layers, k=2)
  for kwargs in (dict(block_size=1), dict(block_size=7), dict(memory_budget_bytes=1)):
    np.testing.assert_array_equal(repsim_jax.information_imbalance_matrix(layers, k=2, **kwargs),
                                  ref)


def test_rectangular_matrix_and_direction():
  a = _layers(seed=5, n=120, widths=[6, 10])
  b = _layers(seed=6, n=120, widths=[3, 5, 8])
  m = repsim_jax.information_imbalance_matrix(a, b, k=1, dtype=np.float64)
  assert m.shape == (2, 3)
  for i in range(2):
    for j in range(3):
      np.testing.assert_allclose(m[i, j], brute_force(a[i], b[j], 1), rtol=1e-12)


def test_ties_and_duplicates():
  rng = np.random.default_rng(7)
  base = rng.integers(0, 3, size=(60, 2)).astype(np.float32)  # many exact distance ties
  other = rng.normal(size=(60, 3)).astype(np.float32)
  with pytest.warns(UserWarning, match=r"exact duplicate points: 60 of 60 in 1 of 2 layers \(b\)"):
    got_min = repsim_jax.information_imbalance(other, base, k=2, dtype=np.float64)
  np.testing.assert_allclose(got_min, brute_force(other, base, 2), rtol=1e-12)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    got_avg = repsim_jax.information_imbalance(other, base, k=2, ties="average",
                                               dtype=np.float64)
  np.testing.assert_allclose(got_avg, brute_force(other, base, 2, ties="average"), rtol=1e-12)
  assert got_avg > got_min  # averaging over tie groups can only raise ranks
  # Neighbours in a tied space: lowest index among equal distances.
  grid = np.array([[0.0], [1.0], [1.0], [-1.0], [5.0]])
  _, idx = neighbours.knn(grid, 2, dtype=np.float64, block_size=2)
  np.testing.assert_array_equal(idx[0], [1, 2])  # 1, 2, 3 all at distance 1: lowest two
  np.testing.assert_array_equal(idx[1], [2, 0])


def test_imbalance_is_zero_for_same_neighbourhoods_and_about_one_for_noise():
  x = _layers(seed=8, n=300, widths=[10])[0]
  assert repsim_jax.information_imbalance(x, 3.0 * x + 1.0) == pytest.approx(2.0 / 300)
  noise = np.random.default_rng(9).normal(size=x.shape)
  assert 0.8 < repsim_jax.information_imbalance(x, noise) < 1.2


def test_integer_input_is_cast():
  x = np.random.default_rng(10).integers(-50, 50, size=(50, 6))
  y = np.random.default_rng(11).integers(-50, 50, size=(50, 4))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    got = repsim_jax.information_imbalance(x, y)
    want = repsim_jax.information_imbalance(x.astype(np.float32), y.astype(np.float32))
  assert got == want


@pytest.mark.parametrize("bad, match", [
    (lambda a, b: (np.where(np.arange(a.size).reshape(a.shape) < 3, np.nan, a), b),
     r"a: 3 non-finite values \(3 NaN, 0 inf\)"),
    (lambda a, b: (a, np.where(np.arange(b.size).reshape(b.shape) == 0, np.inf, b)),
     r"b: 1 non-finite values \(0 NaN, 1 inf\)"),
    (lambda a, b: (a[:-1], b), r"same number of points"),
    (lambda a, b: (a[:, 0], b), r"a: expected a 2-D array"),
    (lambda a, b: (a[None], b), r"a: expected a 2-D array"),
    (lambda a, b: (a.astype(str), b), r"a: expected a numeric array"),
])
def test_bad_input_single_pair(bad, match):
  a, b = _layers(seed=12, n=20, widths=[3, 4])
  a, b = bad(a, b)
  with pytest.raises(ValueError, match=match):
    repsim_jax.information_imbalance(a, b)


def test_bad_input_matrix_and_options():
  layers = _layers(seed=13, n=20, widths=[3, 4])
  bad = [layers[0], np.where(np.arange(80).reshape(20, 4) % 7 == 0, np.nan, layers[1])]
  with pytest.raises(ValueError, match=r"layers_b\[1\]: 12 non-finite values"):
    repsim_jax.information_imbalance_matrix(layers, bad)
  with pytest.raises(ValueError, match=r"k=20 needs at least 21 points, got n=20"):
    repsim_jax.information_imbalance_matrix(layers, k=20)
  with pytest.raises(ValueError, match="k must be a positive integer"):
    repsim_jax.information_imbalance_matrix(layers, k=0)
  with pytest.raises(ValueError, match="sequence of"):
    repsim_jax.information_imbalance_matrix(layers[0])
  with pytest.raises(ValueError, match="metric must be one of"):
    repsim_jax.information_imbalance_matrix(layers, metric="manhattan")
  with pytest.raises(ValueError, match="ties must be one of"):
    repsim_jax.information_imbalance_matrix(layers, ties="max")
  with pytest.raises(ValueError, match="cosine distance is undefined for 1 all-zero rows"):
    zero = layers[0].copy()
    zero[4] = 0
    repsim_jax.information_imbalance(zero, layers[1], metric="cosine")


_DEVICE_SCRIPT = textwrap.dedent("""
    import os, sys, json
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import numpy as np, jax
    sys.path[:0] = sys.argv[1].split(os.pathsep)
    from test_imbalance import _layers
    import repsim_jax
    from repsim_jax.metrics import neighbours
    assert jax.device_count() == 8, jax.devices()
    layers = _layers(seed=14, n=203, widths=[5, 11, 7])
    out = {}
    for metric in ("euclidean", "cosine"):
      m = repsim_jax.information_imbalance_matrix(layers, k=3, metric=metric, block_size=8)
      out[metric] = m.tolist()
    out["knn"] = neighbours.knn(layers[1], 4, block_size=4)[1].tolist()
    print(json.dumps(out))
""")


def test_eight_devices_equal_one_device():
  tests_dir = os.pathsep.join([os.path.dirname(os.path.abspath(__file__)), str(HELPERS)])
  proc = subprocess.run([sys.executable, "-c", _DEVICE_SCRIPT, tests_dir], capture_output=True,
                        text=True, check=True)
  eight = json.loads(proc.stdout.strip().splitlines()[-1])
  layers = _layers(seed=14, n=203, widths=[5, 11, 7])
  for metric in ("euclidean", "cosine"):
    one = repsim_jax.information_imbalance_matrix(layers, k=3, metric=metric, block_size=64)
    np.testing.assert_array_equal(np.array(eight[metric]), one)  # bit-identical
  np.testing.assert_array_equal(np.array(eight["knn"]), neighbours.knn(layers[1], 4)[1])


def test_fused_and_two_phase_schedules_agree_and_refinement_fixes_float32_ties():
  rng = np.random.default_rng(15)
  a = rng.normal(size=(60, 3)) * 50
  # Point 0's two nearest neighbours differ by 1e-9 in distance: a tie in float32, not in
  # float64. Without the float64 re-ranking, float32 would pick index 1 (lowest index).
  a[0], a[1], a[2] = [1000.0, 0, 0], [1000.0 + 1 + 1e-9, 0, 0], [1000.0, 1.0, 0]
  b = rng.normal(size=(60, 4))
  want = repsim_jax.information_imbalance_matrix([a, b], k=1, dtype=np.float64)
  for fused in (True, False):
    got = repsim_jax.information_imbalance_matrix([a, b], k=1, fused=fused)
    np.testing.assert_array_equal(got, want)
  assert neighbours.knn(a, 1)[1][0, 0] == 2
  layers = _layers(seed=16, n=130, widths=[4, 9, 6])
  for k, ties in ((1, "min"), (3, "average")):
    np.testing.assert_array_equal(
        imbalance.imbalance_ranks(layers, layers[1:], k=k, ties=ties, fused=True),
        imbalance.imbalance_ranks(layers, layers[1:], k=k, ties=ties, fused=False))
  ab, ba = repsim_jax.information_imbalance_pair(layers[0], layers[1])
  assert ab == repsim_jax.information_imbalance(layers[0], layers[1])
  assert ba == repsim_jax.information_imbalance(layers[1], layers[0])


class _OnDemand(collections.abc.Sequence):
  """A lazy layer sequence (like extraction's StoreLayers): each index makes a fresh copy, and
  the copies still alive are tracked, so a test sees how many raw layers the engine holds."""

  def __init__(self, layers):
    self.layers, self.alive, self.most = layers, 0, 0

  def __len__(self):
    return len(self.layers)

  def __getitem__(self, i):
    import weakref
    x = _Tracked(self.layers[i])
    self.alive += 1
    self.most = max(self.most, self.alive)
    weakref.finalize(x, self._released)
    return x

  def _released(self):
    self.alive -= 1


class _Tracked(np.ndarray):
  def __new__(cls, x):
    return np.array(x, copy=True).view(cls)


def test_lazy_layers_equal_arrays_and_are_read_one_at_a_time():
  """Lazy layer sequences (read when indexed) give the same ranks as lists of arrays, in both
  schedules and between models, with at most two raw layers alive at once (the one being read
  and the one being released); the duplicate warning still counts every layer."""
  layers = _layers(seed=21, n=150, widths=[4, 9, 6, 5])
  layers[2][7] = layers[2][8]  # one duplicate pair in one layer
  with pytest.warns(UserWarning, match=r"exact duplicate points: 2 of 150 in 1 of 4 layers"):
    want = imbalance.imbalance_ranks(layers, layers, k=2, fused=True)
  for fused in (True, False):
    lazy = _OnDemand(layers)
    with pytest.warns(UserWarning, match=r"exact duplicate points: 2 of 150 in 1 of 4 layers"):
      got = imbalance.imbalance_ranks(lazy, lazy, k=2, fused=fused)
    np.testing.assert_array_equal(got, want)
    assert lazy.most <= 2
  a, b = _OnDemand(layers[:2]), _OnDemand(layers[2:])
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    np.testing.assert_array_equal(imbalance.imbalance_ranks(a, b, k=1),
                                  imbalance.imbalance_ranks(layers[:2], layers[2:], k=1))
    want_models = repsim_jax.imbalance_between_models({"p": layers[:2], "q": layers[2:]})
    lazy_models = {"p": _OnDemand(layers[:2]), "q": _OnDemand(layers[2:])}
    got_models = repsim_jax.imbalance_between_models(lazy_models)
  for pair, matrix in want_models.items():
    np.testing.assert_array_equal(got_models[pair], matrix)
  assert max(s.most for s in lazy_models.values()) <= 2
  with pytest.raises(ValueError, match=r"layers_a\[1\]: 3 non-finite values"):
    bad = [layers[0], layers[1].copy()]
    bad[1][:3, 0] = np.nan
    imbalance.imbalance_ranks(_OnDemand(bad), _OnDemand(bad), k=1)
