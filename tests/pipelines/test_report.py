"""The one report builder and the run context's steps: report.html (figures embedded) and
summary.md come from the same sections; figures are drawn only where the run writes; steps are
found by name."""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest

from repsim_jax.pipelines.report import Report
from repsim_jax.pipelines.run import Run, find_step, step_names
from repsim_jax.plotting.heatmap import layer_heatmap


def test_html_and_markdown_from_the_same_sections(tmp_path):
  report = Report("A title")
  s = report.section("Numbers")
  s.note("N = 10 images")
  s.row("largest II", "all ≤ 0.15", "vit: 0.120")
  s.table(["model", "holds", "value"], [["vit", True, 0.25], ["igpt", False, 1.5]])
  drawn = s.figure("a heatmap", lambda: layer_heatmap(
      np.eye(3), row_labels=list("abc"), col_labels=list("abc"), title="t",
      path=str(tmp_path / "figures" / "heat")))
  paths = report.write(str(tmp_path))
  markdown = open(paths["markdown"]).read()
  html = open(paths["html"]).read()
  for text in ("A title", "Numbers", "N = 10 images", "largest II", "all ≤ 0.15", "vit: 0.120",
               "0.250", "1.500"):
    assert text in markdown and text in html.replace("&lt;", "<"), text
  assert "| statement | paper | ours |" in markdown and "| vit | yes | 0.250 |" in markdown
  assert "![a heatmap](figures/heat.png)" in markdown and "(figures/heat.pdf)" in markdown
  # the PNG itself is in the page; the files are linked beside it
  png = open(drawn[0], "rb").read()
  embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
  assert [base64.b64decode(e) for e in embedded] == [png]
  assert "href='figures/heat.png'" in html and "href='figures/heat.pdf'" in html


def test_figures_are_drawn_only_where_the_report_draws(tmp_path):
  calls = []
  section = Report("t", draw=False).section("s")
  assert section.figure("never", lambda: calls.append(1) or ["x.png"]) == [] and calls == []
  assert section.figures == []


def test_run_finds_steps_by_name_and_keeps_their_results(tmp_path):
  package = "repsim_jax.pipelines.demo"
  assert find_step(package, "cka").__module__ == f"{package}.cka"
  with pytest.raises(ValueError, match=r"unknown step 'nope'.*'cka'.*'control'"):
    find_step(package, "nope")
  assert step_names(("imbalance,probes", " ood ")) == ["imbalance", "probes", "ood"]
  run = Run("t", tmp_path, config={"a": 1}, inputs={"checkpoint/m": "abc"})
  path = run.save("r", {"x": np.arange(3)}, subdir="sub", inputs={"ids": "def"})
  assert path == str(tmp_path / "sub" / "r.npz") and run.files == [path]
  meta = json.load(open(tmp_path / "sub" / "r.json"))
  assert meta["config"] == {"a": 1} and meta["inputs"] == {"checkpoint/m": "abc", "ids": "def"}
  text = run.finish()
  assert (tmp_path / "report.html").exists() and (tmp_path / "summary.md").exists()
  assert "report.html" in text and str(tmp_path / "summary.md") in run.files


def test_asymmetric_intervals_are_written_with_their_bounds():
  from repsim_jax.pipelines.report import by_model_interval, interval_text
  # symmetric about the value: value ± half-width, decimals from the half-width
  assert interval_text(0.31234, 0.2981, 0.3265) == "0.312 ± 0.014"
  # skewed (a ± of 0.0073 would suggest a negative lower bound): the bounds themselves
  text = interval_text(0.0030, 0.0007, 0.0152)
  assert text == "0.0030 [0.0007, 0.0152]"
  low, high = map(float, re.search(r"\[(.*), (.*)\]", text).groups())
  assert low > 0 and low < 0.0030 < high
  assert interval_text(0.5, np.nan, np.nan) == "0.500"
  assert by_model_interval({"vit": 0.0030, "igpt": 0.2}, {"vit": (0.0007, 0.0152)}) == (
      "vit: 0.0030 [0.0007, 0.0152]; igpt: 0.200")


def test_headings_and_setup_lines_are_prose():
  from repsim_jax.pipelines.report import dataset_text, prose
  described = {"kind": "generated", "n": 48, "size": [40, 36], "num_classes": 4, "seed": 0}
  assert dataset_text(described) == "48 generated images (size 40 x 36, num classes 4, seed 0)"
  assert prose({"debiased": True, "batch_size": 16, "n_samples": None}) == "debiased, batch size 16"
  for text in (dataset_text(described), dataset_text({"kind": "tfds", "name": "cifar100"}),
               prose({"a": {"b": [1, 2]}})):
    assert not set(text) & set("{}[]`'\""), text


def test_self_pairs_are_no_largest_pair():
  from repsim_jax.pipelines.mahaut_baroni.imbalance import largest_between_layers
  m = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.4], [0.05, 0.6, 0.95]])  # diagonal largest
  assert largest_between_layers(m) == (0.6, (2, 1))


def test_heatmap_scale_is_the_data_range():
  from repsim_jax.plotting.heatmap import data_range, scale_text
  assert data_range(np.array([[0.002, 0.1], [np.nan, 0.05]]), np.array([[0.131]])) == (0.002,
                                                                                        0.131)
  assert scale_text(0.002, 0.131) == "colour scale 0.002 to 0.131"


def test_demo_findings_need_their_interval_to_clear_the_margin():
  """A point estimate past its margin is not enough: 0.002 vs 0.003 II passes the 80 % rule,
  but not when the bootstrap interval of adjacent - 0.8 x distant reaches above 0."""
  import ml_collections
  from repsim_jax.pipelines.demo.findings import accuracy_gain_interval, findings, mean_interval
  cfg = ml_collections.ConfigDict({
      "probe_test_fraction": 0.2, "min_probe_gain": 0.2, "min_colour_drop": 0.1,
      "min_colour_kept_next_pixel": 0.85, "min_colour_next_pixel": 0.5,
      "max_adjacent_ratio": 0.8})
  ii = np.array([[0.0, 0.002, 0.003], [0.002, 0.0, 0.002], [0.003, 0.002, 0.0]])
  rng = np.random.default_rng(0)
  results = {"shape_probe": {"a": np.array([0.30, 0.55])},
             "colour_sharing": {"a": np.array([0.5, 0.3])},
             "colour_sharing_per_image": {"a": np.stack([rng.uniform(0.3, 0.7, 200),
                                                         rng.uniform(0.1, 0.5, 200)])},
             "imbalance": {("a", "a"): ii}}
  asked = []

  def interval(model):
    asked.append(model)
    return -0.0005, 0.0003  # straddles 0: not established

  out = findings(results, ["a"], [], cfg, n_images=100, adjacency_interval=interval)
  probe, colour, adjacency = out
  # gain 25 points, but on 20 test images its interval reaches far below the 20-point margin
  low, high = accuracy_gain_interval(0.30, 0.55, 20)
  assert low < 0.2 < 0.25 < high and not probe["holds"]
  assert f"[{100 * low:.1f}, {100 * high:.1f}] points" in probe["measured"]
  low, _ = mean_interval(results["colour_sharing_per_image"]["a"][0]
                         - results["colour_sharing_per_image"]["a"][1])
  assert colour["holds"] == (low > 0.1) and colour["holds"]
  assert asked == ["a"] and not adjacency["holds"] and "[-0.0005, 0.0003]" in adjacency["measured"]
  out = findings(results, ["a"], [], cfg, n_images=10_000,
                 adjacency_interval=lambda m: (-0.0009, -0.0002))
  assert out[0]["holds"] and out[2]["holds"]
