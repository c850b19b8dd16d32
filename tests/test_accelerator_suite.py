"""benchmarks/accelerator_suite.py runs (here on the CPU, --scale=tiny) and its numbers agree with
its torch references: II equal to the blocked torch implementation of the same formula within
float32 rank ties, extraction equal to transformers torch, minibatch CKA equal to the per-pair
torch loop."""
import re
import sys

import pytest

from commands import ROOT, run_command


def test_accelerator_suite_runs_on_cpu(tmp_path):
  pytest.importorskip("torch")
  pytest.importorskip("sklearn")
  proc = run_command([sys.executable, str(ROOT / "benchmarks" / "accelerator_suite.py"),
                      "--scale=tiny"], tmp_path, timeout=900)
  out = proc.stdout
  for what in ("matmul 256^3 float32", "II pair", "II matrix", "extraction ViT", "minibatch CKA",
               "probes", "accelerator suite done"):
    assert what in out, (what, out)
  ratios = [float(r) for r in re.findall(r"= ([0-9.]+)x", out)]
  assert len(ratios) >= 7 and all(r > 0 for r in ratios), out
  n = 300  # tiny II size: float32 near-ties may move a rank by one (2 / N^2 each)
  for diff in re.findall(r"max \|ours - torch\| ([0-9.e+-]+)", out):
    assert float(diff) <= 3 * 2 / n ** 2, out
  assert float(re.search(r"extraction.*max rel diff ([0-9.e+-]+)", out).group(1)) < 1e-4
  assert float(re.search(r"minibatch CKA.*max diff ([0-9.e+-]+)", out).group(1)) < 1e-5
