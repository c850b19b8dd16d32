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
