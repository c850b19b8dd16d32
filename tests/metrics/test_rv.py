"""The RV coefficient, added as one module: its pair against the closed form in numpy, its
declared invariances, and everything the protocol derives (matrix, bootstrap and subset
intervals, calibration, the command line and its report) against brute-force numpy."""
import json
import os
import subprocess
import sys

import numpy as np

import repsim_jax
from locations import ROOT
from repsim_jax.metrics import calibration, intervals


def np_rv(x, y):
  """Robert & Escoufier 1976 in numpy float64, the trace form on the centred data."""
  x, y = (np.asarray(v, np.float64) for v in (x, y))
  x, y = x - x.mean(0), y - y.mean(0)
  sx, sy = x @ x.T, y @ y.T
  return np.trace(sx @ sy) / np.sqrt(np.trace(sx @ sx) * np.trace(sy @ sy))


def _layers(seed=0, n=40):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, 3))
  return [(z @ rng.normal(size=(3, d)) + s * rng.normal(size=(n, d))).astype(np.float32)
          for d, s in ((4, 0.1), (6, 0.5), (5, 2.0))]


def test_pair_against_numpy_and_declared_invariances():
  x, y, w = _layers()
  rv = repsim_jax.measure("rv")
  assert rv.name == "rv-score" and rv.kind == "similarity"
  for a, b in ((x, y), (y, w), (x, x)):
    assert abs(rv(a, b) - np_rv(a, b)) < 1e-6
  assert abs(rv(x, y) - repsim_jax.cka(x, y)) < 1e-6  # = linear CKA, biased HSIC
  q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(4, 4)))
  moved = (x @ q.astype(np.float32)) * 2.5 + 7.0  # orthogonal, isotropic scaling, translation
  assert set(rv.properties.invariances) == {"orthogonal", "isotropic_scaling", "translation"}
  assert abs(rv(moved, y) - rv(x, y)) < 1e-5
  assert rv(np.ones_like(x), y) == 0.0  # constant: no shared variance, never NaN


def test_matrix_intervals_and_calibration_from_the_declaration():
  a, b = _layers(2)[:2], _layers(3)
  want = np.array([[np_rv(x, y) for y in b] for x in a])
  np.testing.assert_allclose(repsim_jax.similarity_matrix(a, b, measure="rv"), want, atol=1e-6)
  boot = repsim_jax.measure_bootstrap(a, b, measure="rv", n_boot=20, seed=4)
  rows = [np.repeat(np.arange(40), w) for w in intervals.bootstrap_weights(40, 20, 4)]
  reps = np.array([[[np_rv(x[r], y[r]) for y in b] for x in a] for r in rows])
  np.testing.assert_allclose(boot["replicates"], reps, atol=1e-6)
  sub = repsim_jax.measure_subsets(a, b, measure="rv", subset_size=20, seed=1)
  idx = intervals.disjoint_subsets(40, 20, None, 1)
  np.testing.assert_allclose(sub["values"], [[[np_rv(x[i], y[i]) for y in b] for x in a]
                                             for i in idx], atol=1e-6)
  perms = calibration.permutations(40, 10, seed=5)
  test = calibration.permutation_test(a, b, measure="rv", perms=perms, alpha=0.2)
  null = np.array([[[np_rv(x, y[p]) for y in b] for x in a] for p in perms])
  np.testing.assert_allclose(test["null"], null, atol=1e-6)
  np.testing.assert_array_equal(test["p_value"], (1 + np.sum(null >= want, axis=0)) / 11)
  tau = np.sort(np.concatenate([want[None], null]), axis=0)[8]  # ceil(0.8 * 11) = 9th smallest
  np.testing.assert_allclose(test["critical"], tau, atol=1e-6)


def test_command_line_and_report(tmp_path):
  cmd = [sys.executable, "-m", "experiments.imbalance", f"--workdir={tmp_path}",
         "--config=configs/imbalance.py:runlocal", "--config.measures=imbalance,rv",
         "--config.synthetic.n=60", "--config.n_boot=20", "--config.n_perm=10"]
  subprocess.run(cmd, cwd=str(ROOT), check=True, capture_output=True)
  from configs import imbalance as imbalance_config
  from repsim_jax.data import synthetic_layers
  s = imbalance_config.get_config("runlocal").synthetic
  layers = synthetic_layers.information_loss_layers(
      60, n_layers=s.n_layers, latent_dim=s.latent_dim, drop=s.drop, width=s.width,
      noise=s.noise, seed=0)
  with np.load(tmp_path / "imbalance.npz") as z:
    np.testing.assert_allclose(z["rv"], [[np_rv(x, y) for y in layers] for x in layers],
                               atol=1e-6)
    assert {"rv_half_width", "rv_calibrated", "rv_q_value", "rv_max_p_value"} <= set(z.files)
  meta = json.loads((tmp_path / "imbalance.json").read_text())
  assert meta["values"]["measures"]["rv"] == "rv-score"
  assert os.path.getsize(tmp_path / "imbalance_rv.png") > 0
  assert "rv-score" in (tmp_path / "summary.md").read_text()
