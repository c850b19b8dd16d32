"""benchmarks/bench_paper_scale.py at a tiny N: its stores have the paper's layer counts and widths
(Mahaut & Baroni's Table 1: ViT-L/16 24 blocks + embeddings of 1024, ConvNeXt-XL 3+3+27+3 blocks
of 256..2048 + stem), carry what the extraction records, so the paper pipeline reuses them
instead of extracting, and the benchmark prints its per-step table."""
import json
import re
import sys

from commands import ROOT, run_command


def test_bench_paper_scale_stores_are_reused_and_shaped_like_the_paper(tmp_path):
  workdir = tmp_path / "bench"
  proc = run_command([sys.executable, str(ROOT / "benchmarks" / "bench_paper_scale.py"),
                      "--n=120", "--models=vit_l,convnext_xl", "--steps=imbalance,neighbourhoods",
                      f"--workdir={workdir}"], tmp_path, timeout=900)
  out = proc.stdout + proc.stderr
  reused = re.search(r"reusing the complete stores of (.*) under", out)
  assert reused and set(reused.group(1).split(", ")) == {"vit_l", "convnext_xl"}, out[-3000:]
  assert "extract:" not in out  # no model was loaded or run
  expected = {"vit_l": ["embeddings"] + [f"block_{i:02d}" for i in range(24)],
              "convnext_xl": None}
  widths = {}
  for model in expected:
    meta = json.loads((workdir / "stores" / model / "metadata.json").read_text())
    layers = json.loads((workdir / "stores" / model / "layers.json").read_text())
    assert meta["complete"] and meta["config"]["model"]["model_type"] == (
        "vit" if model == "vit_l" else "convnext")
    assert meta["config"]["model"]["id"] == {"vit_l": "google/vit-large-patch16-224",
                                             "convnext_xl": "facebook/convnext-xlarge-224-22k"}[model]
    assert meta["config"]["sampler"] == {"n": 120, "seed": 0}
    widths[model] = [spec["shape"][-1] for spec in layers.values()]
    if expected[model] is not None:
      assert list(layers) == expected[model]
  assert widths["vit_l"] == [1024] * 25
  assert widths["convnext_xl"] == [256] * 4 + [512] * 3 + [1024] * 27 + [2048] * 3
  table = out[out.index("Mahaut & Baroni analysis stage"):]
  for step in ("representations", "imbalance", "neighbourhoods"):
    assert re.search(rf"^{step}\s+[0-9.]+\s+[0-9.]+ [KMG]?B\s", table, re.M), table
  assert re.search(r"^total [0-9.]+ s .*peak RSS [0-9.]+ [MG]B$", table, re.M), table
  # the II it wrote is the pipeline's: a matrix per ordered pair, 25 x 37 for ViT -> ConvNeXt
  import numpy as np
  ii = np.load(workdir / "imbalance" / "ii_vit_l__convnext_xl.npz")["imbalance"]
  assert ii.shape == (25, 37) and np.all((ii > 0) & (ii < 1.5))
