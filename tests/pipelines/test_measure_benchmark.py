"""The measure benchmark's smoke run (configs/measure_benchmark.py:runlocal) end to end, as a
user starts it (a subprocess, the base install without the test extras): one table row per
registered measure, in the saved results, the report and the printed table.

The smoke run is slow (minutes on 2 cores, most of it compiling six small trainings): run it
with --runslow. The scores, table and findings are also checked on synthetic matrices (fast).
"""
import json
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from commands import run_command
from repsim_jax.measures import measures as registered_measures
from repsim_jax.pipelines import measure_benchmark as mb


@pytest.mark.slow
def test_runlocal_ranks_every_registered_measure(tmp_path):
  argv = [sys.executable, "-m", "experiments.measure_benchmark",
          "--config=configs/measure_benchmark.py:runlocal", "--workdir=runs/mb"]
  proc = run_command(argv, tmp_path, timeout=1800, base_install=True,
                     env={"REPSIM_XLA_CACHE": str(tmp_path / "xla_cache")})
  workdir = tmp_path / "runs" / "mb"
  saved = json.load(open(workdir / "measure_benchmark.json"))["values"]
  names = sorted(r["name"] for r in registered_measures())
  assert len(names) >= 17
  assert sorted(r["name"] for r in saved["rows"]) == names
  failed = [r for r in saved["rows"] if "error" in r]
  assert not failed, failed
  for r in saved["rows"]:
    for key in ("identification", "factor", "violation_rate"):
      assert 0 <= r["scores"][key] <= 1 and 0 <= r["control"][key] <= 1
    assert r["ms_per_pair"] > 0
  # per-layer statistics ignore which image is which: the control shows it
  blind = {r["name"] for r in saved["rows"] if r["order_blind"]}
  assert "magnitude-difference-distance" in blind
  assert "jaccard-k=10-metric=cosine-score" not in blind
  summary = (workdir / "summary.md").read_text()
  assert all(summary.count(f"| {n} |") == 1 for n in names)
  assert "Measures ranked" in (workdir / "report.html").read_text()
  assert os.path.exists(workdir / "figures" / "measure_ranking.png")
  printed = [line for line in proc.stdout.splitlines() if line.count(" | ") >= 10]
  assert len(printed) == len(names) + 1  # header and one row per measure


def _ideal_matrices(layout):
  """Similarity = minus the relative-depth gap between layers (any models, any seeds)."""
  def depth(m, seeds=(0,)):
    return np.concatenate([np.arange(layout.depth[m]) / (layout.depth[m] - 1) for _ in seeds])
  first = np.concatenate([depth(m) for m in layout.models])
  out = {"seed": -np.abs(np.subtract.outer(first, first))}
  for m in layout.models:
    out[m] = -np.abs(np.subtract.outer(depth(m), depth(m, layout.seeds[1:])))
  return out


def test_scores_of_an_ideal_measure_and_its_ranking():
  reps = {(m, s): [np.zeros((5, 2))] * depth for m, depth in (("a", 4), ("b", 3))
          for s in (0, 1, 2)}
  layout = mb.Layout(reps, ["a", "b"], [0, 1, 2])
  assert [(k, len(a), len(b)) for k, a, b in layout.blocks()] == [
      ("seed", 7, 7), ("a", 4, 8), ("b", 3, 6)]
  colour = {"a": np.array([0.9, 0.3, 0.2, 0.1]), "b": np.array([0.7, 0.2, 0.1])}
  scores = mb.scores_of(_ideal_matrices(layout), layout, colour)
  assert scores["identification"] == 1 and scores["monotonicity"] == pytest.approx(1)
  assert scores["violation_rate"] == 0 and scores["factor"] == 1
  flat = mb.scores_of({k: np.zeros_like(v) for k, v in _ideal_matrices(layout).items()}, layout,
                      colour)
  assert flat["identification"] == 0 and np.isnan(flat["monotonicity"])
  rows = [{"name": "ideal", "kind": "similarity", "scores": scores, "control": flat,
           "ms_per_pair": 1.0, "order_blind": False},
          {"name": "broken", "kind": "distance", "error": "ValueError: n too small"}]
  table = mb.table_rows(rows)
  assert [r[1] for r in table] == ["ideal", "broken"] and len(table[0]) == len(mb.COLUMNS)
  assert table[1][3].startswith("failed")
  cfg = SimpleNamespace(min_identification=0.6, min_monotonicity=0.3, min_factor_gain=0.2)
  assert all(f["holds"] for f in mb.findings(rows, "scores", cfg))
  assert not any(f["holds"] for f in mb.findings(rows, "control", cfg))
