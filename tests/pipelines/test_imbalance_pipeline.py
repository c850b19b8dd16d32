"""The II experiment end to end (repsim_jax.pipelines.imbalance, experiments.imbalance): user
files, an activation store, the command line and its error.log."""
import json
import os
import subprocess
import sys

import numpy as np

import repsim_jax
from configs import imbalance as imbalance_config
from locations import ROOT
from repsim_jax.data import synthetic_layers
from repsim_jax.pipelines import imbalance as imbalance_pipeline


def _layers():
  return synthetic_layers.information_loss_layers(120, n_layers=4, latent_dim=8, drop=2,
                                                  width=12, seed=1)


def test_run_on_user_files_writes_results(tmp_path):
  layers = _layers()
  np.savez(tmp_path / "a.npz", **{f"blk{i}": x for i, x in enumerate(layers)})
  os.makedirs(tmp_path / "b")
  for i, x in enumerate(layers[:2]):
    np.save(tmp_path / "b" / f"layer{i}.npy", x[:, ::-1] * 2.0)
  config = imbalance_config.get_config(f"inputs_a={tmp_path / 'a.npz'},inputs_b={tmp_path / 'b'}")
  config.k = 2
  out = imbalance_pipeline.run(config, str(tmp_path / "work"))
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
  root = str(ROOT)
  cmd = [sys.executable, "-m", "experiments.imbalance", f"--workdir={tmp_path / 'ok'}",
         "--config=configs/imbalance.py:runlocal", "--config.metric=cosine"]
  subprocess.run(cmd, cwd=root, check=True, capture_output=True)
  meta = json.loads((tmp_path / "ok" / "imbalance.json").read_text())
  assert meta["config"]["metric"] == "cosine"
  assert sorted(os.listdir(tmp_path / "ok")) == ["imbalance.json", "imbalance.npz",
                                                 "imbalance.pdf", "imbalance.png", "metrics.jsonl",
                                                 "report.html", "summary.md"]
  steps = [json.loads(line) for line in open(tmp_path / "ok" / "metrics.jsonl")]
  assert [r["step"] for r in steps] == ["inputs", "information imbalance", "write"] and all(
      r["seconds"] > 0 and r["peak_rss_bytes"] > 2**20 for r in steps)  # time, peak memory
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
  from repsim_jax.extraction.store import ActivationStore
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
  out = imbalance_pipeline.run(cfg, str(tmp_path / "work"))
  assert out["layers_a"] == ["block_03", "block_00"]
  np.testing.assert_array_equal(
      out["imbalance"], repsim_jax.information_imbalance_matrix([layers[3], layers[0]]))


def test_several_measures_with_intervals_and_calibration(tmp_path):
  """--config.measures=imbalance,cka,procrustes: one matrix, interval and calibration per
  measure through the protocol, one heatmap each, a report section each."""
  from repsim_jax.metrics import calibration
  config = imbalance_config.get_config("runlocal,measures=imbalance+cka")
  config.measures = "imbalance,cka,procrustes"  # as --config.measures=imbalance,cka,procrustes
  config.synthetic.n, config.synthetic.n_layers = 60, 3
  config.n_boot, config.n_perm = 20, 10
  out = imbalance_pipeline.run(config, str(tmp_path))
  s = config.synthetic
  layers = synthetic_layers.information_loss_layers(s.n, n_layers=s.n_layers, latent_dim=s.latent_dim,
                                      drop=s.drop, width=s.width, noise=s.noise, seed=config.seed)
  np.testing.assert_array_equal(out["imbalance"],
                                repsim_jax.information_imbalance_matrix(layers, layers))
  np.testing.assert_array_equal(out["cka"], repsim_jax.cka_matrix(layers, layers))
  np.testing.assert_array_equal(out["procrustes"], repsim_jax.procrustes_matrix(layers, layers))
  with np.load(tmp_path / "imbalance.npz") as z:
    boot = repsim_jax.measure_bootstrap(layers, layers, measure="procrustes", n_boot=20, seed=0)
    np.testing.assert_array_equal(z["procrustes_half_width"], boot["half_width"])
    test = calibration.permutation_test(layers, layers, measure="cka", n_perm=10, seed=0)
    np.testing.assert_array_equal(z["cka_calibrated"], test["calibrated"])
    np.testing.assert_array_equal(z["imbalance_p_value"], calibration.permutation_test(
        layers, layers, measure="imbalance", n_perm=10, seed=0)["p_value"])
    assert z["cka_max_p_value"] == test["aggregates"]["max"]["p_value"]
  for name in ("imbalance.png", "imbalance_cka.png", "imbalance_procrustes.png"):
    assert (tmp_path / name).stat().st_size > 0
  summary = (tmp_path / "summary.md").read_text()
  assert "cka-kernel=linear-hsic=song-score" in summary and "Permutation calibration" in summary


def test_best_predicted_layer_is_another_layer_for_one_input():
  """With inputs_a alone every layer predicts itself best (Δ = 2/N): no finding, left out."""
  matrix = np.array([[0.01, 0.3, 0.5], [0.2, 0.01, 0.4], [0.6, 0.25, 0.01]])
  best, mean = imbalance_pipeline.best_predicted(matrix, same_layers=True)
  assert list(best) == [1, 0, 1]
  np.testing.assert_allclose(mean, [0.4, 0.3, 0.425])
  best, mean = imbalance_pipeline.best_predicted(matrix, same_layers=False)
  assert list(best) == [0, 1, 2]
  np.testing.assert_allclose(mean, matrix.mean(axis=1))


def test_a_best_among_equals_says_so():
  """A row whose columns tie (a layer with one neighbourhood for every layer of B) has no best
  layer: the table says how many tie with the one it names."""
  matrix = np.array([[0.16, 0.16, 0.16], [0.2, 0.1, 0.1], [0.3, 0.2, 0.1]])
  best, _ = imbalance_pipeline.best_predicted(matrix, same_layers=False)
  assert list(imbalance_pipeline.tied_with_best(matrix, best, same_layers=False)) == [2, 1, 0]
  best, _ = imbalance_pipeline.best_predicted(matrix, same_layers=True)  # diagonal left out
  assert list(best) == [1, 2, 1]
  assert list(imbalance_pipeline.tied_with_best(matrix, best, same_layers=True)) == [1, 0, 0]


def test_a_k_near_n_is_warned_about_in_the_report(tmp_path):
  """Δ tends to 1 for every pair as k approaches N: the report says so."""
  config = imbalance_config.get_config("runlocal")
  config.synthetic.n, config.k, config.plot = 40, 39, False
  out = imbalance_pipeline.run(config, str(tmp_path))
  assert np.all(out["imbalance"][~np.eye(4, dtype=bool)] > 0.9)
  summary = (tmp_path / "summary.md").read_text()
  assert "Warning: k=39 is at least half of N=40" in summary
