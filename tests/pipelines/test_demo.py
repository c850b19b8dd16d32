"""The embedded default (experiments.demo, configs/demo.py:runlocal) end to end, and its pieces.

The quick run is the README's runlocal demo command started as a subprocess from a temporary
directory with its relative --workdir (as a new user runs it); the tests read what it wrote. It
trains three small models on the shapes world, and the qualitative findings the world was built
to show must hold, while the same checks on the shuffled-label control must fail.
"""
import json
import logging
import os

import numpy as np
import pytest

from commands import readme_command, run_command
from configs import demo as demo_config
from repsim_jax.pipelines import demo
from repsim_jax.pipelines.demo.findings import adjacent_vs_distant
from repsim_jax.pipelines.demo.training import colour_clusters
from repsim_jax.results import load_result


def _arrays(path, prefix):
  arrays, _ = load_result(path)
  return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
  cwd = tmp_path_factory.mktemp("demo")
  argv = readme_command("python -m experiments.demo --config=configs/demo.py:runlocal")
  proc = run_command(argv, cwd, timeout=1200, base_install=True,
                     env={"REPSIM_XLA_CACHE": str(cwd / "xla_cache")})
  workdir = str(cwd / "runs" / "demo_local")
  saved = json.load(open(os.path.join(workdir, "findings.json")))["values"]
  control = os.path.join(workdir, "control")
  names = ("vit", "convnext", "igpt")
  result = {
      "report": os.path.join(workdir, "report.html"), "stdout": proc.stdout,
      "findings": saved["findings"], "control": saved["control"],
      "shape_probe": _arrays(os.path.join(workdir, "probes"), "shape/"),
      "colour_sharing": _arrays(os.path.join(workdir, "neighbour_sharing"), "colour/"),
      "imbalance": {(a, b): load_result(os.path.join(workdir, "imbalance", f"ii_{a}__{b}"))[0][
          "imbalance"] for a in names for b in names},
      "control_results": {
          "shape_probe": _arrays(control, "shape/"),
          "imbalance": {tuple(k.split("__")): v
                        for k, v in _arrays(control, "imbalance/").items()}},
  }
  return result, workdir


def _by_prefix(findings, prefix):
  return [f for f in findings if f["statement"].startswith(prefix)]


def test_quick_run_writes_the_report_and_every_figure(quick_run):
  result, workdir = quick_run
  html = open(result["report"]).read()
  for name in ("probes", "neighbour_sharing", "imbalance_grid", "cka", "neighbours_0", "ii_vit",
               "ii_convnext", "ii_igpt"):
    assert os.path.isfile(os.path.join(workdir, "figures", f"{name}.png")), name
    assert os.path.isfile(os.path.join(workdir, "figures", f"{name}.pdf")), name
    assert f"figures/{name}.png" in html
  # The closing summary lists each finding as the saved findings.json has it.
  for f in result["findings"]:
    assert f"[{'yes' if f['holds'] else 'NO '}] {f['statement']}: {f['measured']}" in \
        result["stdout"]
  assert f"report: {result['report']}" in result["stdout"]
  # The trained models are native checkpoints, read back through the normal model path.
  for m in ("vit", "convnext", "igpt"):
    assert os.path.isdir(os.path.join(workdir, "checkpoints", m, "params"))
    assert os.path.isdir(os.path.join(workdir, "stores", m))


def test_shape_emerges_with_depth_in_both_classifiers(quick_run):
  result, _ = quick_run
  for name in ("vit", "convnext"):
    acc = result["shape_probe"][name]
    assert acc[-1] > acc[0] + 0.2, (name, acc)
    # and the check built on it holds on the run, not on the shuffled-label control
    assert _by_prefix(result["findings"], f"{name}: shape-probe")[0]["holds"]
    assert not _by_prefix(result["control"], f"{name}: shape-probe")[0]["holds"]
    control = result["control_results"]["shape_probe"][name]
    # 5 balanced classes: chance 20 %, +-3.7 % per layer on the 120 test images of the quick run
    assert np.mean(control) < 0.27 and np.all(control < 0.36), control


def test_colour_neighbours_fall_in_classifiers_not_in_next_pixel_model(quick_run):
  result, _ = quick_run
  share = result["colour_sharing"]
  for name in ("vit", "convnext"):
    assert share[name][0] - share[name][-1] > 0.1, (name, share[name])
  assert share["igpt"][-1] > 0.85 * share["igpt"][0] and share["igpt"][-1] > 0.5
  for f, c in zip(_by_prefix(result["findings"], ""), _by_prefix(result["control"], "")):
    if "colour" in f["statement"] and "next pixel" not in f["statement"]:
      assert f["holds"] and not c["holds"], (f, c)


def test_adjacent_layers_predict_each_other_better_than_distant_ones(quick_run):
  result, _ = quick_run
  for name in ("vit", "convnext", "igpt"):
    adjacent, distant = adjacent_vs_distant(result["imbalance"][(name, name)])
    assert adjacent < 0.8 * distant, (name, adjacent, distant)
    control = result["control_results"]["imbalance"][(name, name)]
    # permuted rows: no layer predicts another, II ~ 1 everywhere
    assert np.mean(control) > 0.8
  for f, c in zip(result["findings"], result["control"]):
    if "adjacent-layer II" in f["statement"]:
      assert f["holds"] and not c["holds"], (f, c)


def test_rerun_reuses_checkpoints_and_stores(quick_run, caplog):
  result, workdir = quick_run
  config = demo_config.get_config("runlocal")
  with caplog.at_level(logging.INFO):
    again = demo.run(config, workdir)
  assert caplog.text.count("reusing the trained checkpoint") == 3
  for name in ("vit", "convnext", "igpt"):
    np.testing.assert_array_equal(again["shape_probe"][name], result["shape_probe"][name])
  config.models[0].lr = 1e-3  # another training config: refused, never silently mixed
  with pytest.raises(ValueError, match="trained with another config"):
    demo.run(config, workdir)


def test_adjacent_vs_distant_is_the_mean_over_layer_gaps():
  rng = np.random.default_rng(0)
  m = rng.uniform(size=(6, 6))
  adjacent, distant = adjacent_vs_distant(m)
  pairs = [(i, j) for i in range(6) for j in range(6)]
  assert adjacent == pytest.approx(np.mean([m[i, j] for i, j in pairs if abs(i - j) == 1]))
  assert distant == pytest.approx(np.mean([m[i, j] for i, j in pairs if abs(i - j) >= 3]))


def test_colour_clusters_match_scikit_learn_kmeans():
  from sklearn.cluster import KMeans
  rng = np.random.default_rng(0)
  centres = rng.integers(0, 255, size=(4, 3))
  pixels = np.clip(centres[rng.integers(0, 4, 4000)] + rng.normal(0, 6, (4000, 3)), 0, 255)
  images = pixels.astype(np.uint8).reshape(10, 20, 20, 3)
  ours = colour_clusters(images, 4, seed=0)
  x = images.reshape(-1, 3).astype(np.float32) / 127.5 - 1.0
  ref = KMeans(4, n_init=10, random_state=0).fit(x).cluster_centers_
  ref = ref[np.argsort(ref.sum(axis=1))]
  np.testing.assert_allclose(ours, ref, atol=1e-3)
