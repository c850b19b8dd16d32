"""benchmarks/bench_coverage.py --default_only and benchmarks/coverage_calibration.py: the cheap
path computes exactly the library's default interval, and the offline table reads the saved raw
results back into the same coverage, recomputed here by hand."""
import importlib.util

import numpy as np
import pytest
import scipy.stats

import repsim_jax
from locations import ROOT
from repsim_jax.metrics import intervals


def _load(name):
  spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_default_only_is_the_library_default_interval():
  bench = _load("bench_coverage")
  a, b = bench.draw("shared", 48, 4, np.random.default_rng(0))
  full = {"II": repsim_jax.imbalance_bootstrap(a, b, n_boot=20, seed=7, k=2, metric="cosine"),
          "CKA": repsim_jax.cka_bootstrap(a, b, n_boot=20, seed=7)}
  for measure, want in full.items():
    got = bench.default_of(measure, a, b, 2, "cosine", 7)  # no bootstrap replicates
    for key in ("value", "low", "high", "std", "var_half", "var_quarter", "rate"):
      np.testing.assert_allclose(got[key], want[key][0], rtol=1e-6, atol=1e-12,
                                 err_msg=f"{measure} {key}")


def test_raw_results_give_the_coverage_table(tmp_path):
  bench, calibration = _load("bench_coverage"), _load("coverage_calibration")
  rows, raw = bench.run_default_case("clusters", 40, 4, 1, "euclidean", ["II"], 6, seed=3)
  np.savez(tmp_path / "raw.npz", **raw)
  key = "II|clusters d=4 N=40 k=1 euclidean|"
  est, std = raw[key + "estimate"], raw[key + "std"]
  assert est.shape == std.shape == (6, 3) and int(raw[key + "seed"]) == 3
  truth = np.array([np.delete(est, s, axis=0).mean(axis=0) for s in range(6)])  # leave-one-out
  np.testing.assert_allclose(raw[key + "truth"], truth, rtol=1e-12)
  np.testing.assert_allclose(std ** 2, raw[key + "var_half"] * 2.0 ** -raw[key + "rate"],
                             rtol=1e-12)
  df = 1 / (2.25 / 50 + 0.25 / 75)  # the default 50 splits into halves, 25 into quarters
  covered = np.abs(est - truth) <= scipy.stats.t.ppf(0.975, df) * std
  np.testing.assert_array_equal(rows[0][3], covered.mean(axis=0))
  cells = calibration.load([tmp_path / "raw.npz"])
  got = calibration.evaluate(cells)[0]
  np.testing.assert_array_equal(got["coverage"]["midpoint", "satt"], covered.mean(axis=0))
  np.testing.assert_allclose(got["sd"], est.std(axis=0, ddof=1), rtol=1e-12)
  line = calibration.library_table(cells).splitlines()[-1]
  assert line.startswith("| II | clusters d=4 N=40 k=1 euclidean | 6 | 3 | ")
  assert [cell.split(" ± ")[0] for cell in line.split(" | ")[4:]] == [
      f"{c:.3f}" for c in covered.mean(axis=0)]
  # measured rate 2 between N/4 and N/2: the midpoint 1.5 from N/2 to N
  assert calibration.var_at_n("midpoint", 4.0, 16.0) == pytest.approx(4.0 * 2.0 ** -1.5)
