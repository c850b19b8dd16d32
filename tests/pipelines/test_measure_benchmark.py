"""The measure benchmark's smoke run (configs/measure_benchmark.py:runlocal) end to end, as a
user starts it (a subprocess, the base install without the test extras): one table row per
registered measure, in the saved results, the report and the printed table.

Slow (several minutes on 2 cores: nine small trainings' compilation dominate); run with --runslow.
"""
import json
import os
import sys

import pytest

from commands import run_command
from repsim_jax.measures import measures as registered_measures


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
