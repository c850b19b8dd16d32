"""Appendix B statistics, representation preprocessing, and the II experiment end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import repsim_jax
from repsim_jax.data import synthetic_layers
from repsim_jax.metrics import distances, imbalance_stats
from repsim_jax import imbalance_driver
from configs import imbalance as imbalance_config


def _layers():
  return synthetic_layers.information_loss_layers(120, n_layers=4, latent_dim=8, drop=2,
                                                  width=12, seed=1)


def test_subsets_are_disjoint_and_exact():
  layers = _layers()
  out = imbalance_stats.imbalance_subsets(layers, subset_size=40, seed=3, k=1)
  assert out["values"].shape == (3, 4, 4) and out["subsets"].shape == (3, 40)
  assert len(np.unique(out["subsets"])) == 120  # disjoint, covering all N
  for r, idx in enumerate(out["subsets"]):
    np.testing.assert_array_equal(
        out["values"][r], repsim_jax.information_imbalance_matrix([x[idx] for x in layers]))
  np.testing.assert_allclose(out["mean"], out["values"].mean(0))
  np.testing.assert_allclose(out["sem"], out["values"].std(0, ddof=1) / np.sqrt(3))
  with pytest.raises(ValueError, match="4 disjoint subsets of 40 points need 160 points"):
    imbalance_stats.imbalance_subsets(layers, subset_size=40, repeats=4, seed=3)


def test_sample_size_curve_and_smoothness_against_numpy():
  layers = _layers()
  curve = imbalance_stats.sample_size_curve(layers, sizes=[30, 60], n_subsamples=3, seed=0)
  assert curve["values"].shape == (2, 3, 4, 4)
  rng = np.random.default_rng(0)  # the documented draw order: per size, per subsample
  for s, size in enumerate([30, 60]):
    for r in range(3):
      idx = np.sort(rng.choice(120, size=size, replace=False))
      np.testing.assert_array_equal(
          curve["values"][s, r], repsim_jax.information_imbalance_matrix([x[idx] for x in layers]))
  np.testing.assert_allclose(curve["std"], curve["values"].std(axis=1, ddof=1))
  m = np.array([[0.1, 0.3, 0.2, 0.6], [0.0, 0.1, 0.2, 0.3]])
  np.testing.assert_allclose(imbalance_stats.smoothness(m), [np.std([0.2, -0.1, 0.4]), 0.0],
                             atol=1e-12)
  sm = imbalance_stats.smoothness_curve(layers, sizes=[30, 60], n_seeds=3, seed=0)
  np.testing.assert_allclose(sm["values"], np.std(np.diff(curve["values"], axis=-1), axis=-1))
  with pytest.raises(ValueError, match="at least 3 layers"):
    imbalance_stats.smoothness(m[:, :2])


def test_preprocess_against_numpy():
  x = np.random.default_rng(2).normal(size=(30, 50)) * 3 + 1
  got = distances.preprocess(x, clip_quantiles=(0.05, 0.95))
  lo, hi = np.quantile(x, 0.05, axis=1), np.quantile(x, 0.95, axis=1)
  np.testing.assert_allclose(got, np.minimum(np.maximum(x, lo[:, None]), hi[:, None]))
  np.testing.assert_allclose(distances.preprocess(x, center=True).mean(0), 0, atol=1e-12)
  np.testing.assert_allclose(np.linalg.norm(distances.preprocess(x, l2_normalize=True), axis=1), 1)
  with pytest.raises(ValueError, match="clip_quantiles"):
    distances.preprocess(x, clip_quantiles=(0.9, 0.1))


def test_synthetic_ground_truth():
  m = repsim_jax.information_imbalance_matrix(
      synthetic_layers.information_loss_layers(400, n_layers=5, seed=0))
  upper, lower = m[np.triu_indices(5, 1)], m.T[np.triu_indices(5, 1)]
  assert np.all(upper < lower)  # early layers predict late ones better than the reverse
  assert np.all(np.diff(m[0, 1:]) > 0) and np.all(np.diff(m[-1, ::-1][1:]) > 0)


def test_run_on_user_files_writes_results(tmp_path):
  layers = _layers()
  np.savez(tmp_path / "a.npz", **{f"blk{i}": x for i, x in enumerate(layers)})
  os.makedirs(tmp_path / "b")
  for i, x in enumerate(layers[:2]):
    np.save(tmp_path / "b" / f"layer{i}.npy", x[:, ::-1] * 2.0)
  config = imbalance_config.get_config(f"inputs_a={tmp_path / 'a.npz'},inputs_b={tmp_path / 'b'}")
  config.k = 2
  out = imbalance_driver.run(config, str(tmp_path / "work"))
  want = repsim_jax.information_imbalance_matrix(layers, [x[:, ::-1] * 2.0 for x in layers[:2]],
                                                 k=2)
  np.testing.assert_array_equal(out["imbalance"], want)
  with np.load(tmp_path / "work" / "imbalance.npz") as z:
    np.testing.assert_array_equal(z["imbalance"], want)
    assert list(z["layers_a"]) == ["blk0", "blk1", "blk2", "blk3"]
  meta = json.loads((tmp_path / "work" / "imbalance.json").read_text())
  assert meta["config"]["k"] == 2 and "jax" in meta["versions"]
  assert set(meta["inputs"]) == {"a/blk0", "a/blk1", "a/blk2", "a/blk3", "b/layer0", "b/layer1"}
  assert (tmp_path / "work" / "imbalance.png").stat().st_size > 0


def test_cli_end_to_end_and_failed_run_leaves_only_error_log(tmp_path):
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  cmd = [sys.executable, "-m", "experiments.imbalance", f"--workdir={tmp_path / 'ok'}",
         "--config=configs/imbalance.py:runlocal", "--config.metric=cosine"]
  subprocess.run(cmd, cwd=root, check=True, capture_output=True)
  meta = json.loads((tmp_path / "ok" / "imbalance.json").read_text())
  assert meta["config"]["metric"] == "cosine"
  assert sorted(os.listdir(tmp_path / "ok")) == ["imbalance.json", "imbalance.npz",
                                                 "imbalance.pdf", "imbalance.png"]
  bad = np.stack([np.arange(20.0), np.full(20, np.nan)], axis=1)
  np.savez(tmp_path / "bad.npz", good=np.random.default_rng(0).normal(size=(20, 2)), broken=bad)
  cmd = [sys.executable, "-m", "experiments.imbalance", f"--workdir={tmp_path / 'bad'}",
         f"--config=configs/imbalance.py:inputs_a={tmp_path / 'bad.npz'}"]
  proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
  assert proc.returncode != 0
  assert os.listdir(tmp_path / "bad") == ["error.log"]
  log = (tmp_path / "bad" / "error.log").read_text()
  assert "bad.npz layer 'broken': 20 non-finite values (20 NaN, 0 inf)" in log


def test_run_reads_layers_straight_from_an_activation_store(tmp_path):
  from repsim_jax.store import ActivationStore
  layers = _layers()
  config = {"model": {"id": "synthetic"}, "pooling": "mean", "dataset": {"kind": "test"}}
  store = ActivationStore.open_or_create(str(tmp_path / "store"), config=config,
                                         ids=[f"img{i}" for i in range(120)], chunk_rows=50)
  store.ensure_layers({f"block_{i:02d}": {"shape": [12], "pooling": "mean"} for i in range(4)})
  for k in range(3):
    start, stop = store.chunk_bounds(k)
    store.write_chunk(k, {f"block_{i:02d}": x[start:stop] for i, x in enumerate(layers)})
  store.finalize()
  cfg = imbalance_config.get_config(f"inputs_a={tmp_path / 'store'}")
  cfg.layers_a = "block_03,block_00"
  out = imbalance_driver.run(cfg, str(tmp_path / "work"))
  assert out["layers_a"] == ["block_03", "block_00"]
  np.testing.assert_array_equal(
      out["imbalance"], repsim_jax.information_imbalance_matrix([layers[3], layers[0]]))
