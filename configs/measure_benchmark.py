r"""The measure benchmark: every registered similarity measure tested on the shapes world.

  python -m experiments.measure_benchmark --workdir=runs/measure_benchmark
  python -m experiments.measure_benchmark --config=configs/measure_benchmark.py:runlocal \
      --workdir=runs/measure_benchmark_local

Trains the demo's three models (configs/demo.py) with seeds 0, 1, 2, extracts every block on the
held-out world and, for every measure in `repsim_jax.measures()`, scores layer identification
across seeds, layer monotonicity, sensitivity to the true colour factor and the cost per layer
pair, with a shuffled-image control; <workdir>/report.html ranks them. See
`repsim_jax.pipelines.measure_benchmark`. Offline; the default is sized for under 15 minutes on 2
CPU cores (a loaded machine takes longer). `runlocal` is a smoke run (the ViT and iGPT, ten
training steps, 150 images).
`--config.measures=a,b` restricts the benchmark to some measures.
"""
from __future__ import annotations

import ml_collections

from configs import demo
from configs.common import parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant, _ = parse_arg(arg)
  base = demo.get_config()
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.seeds = (0, 1, 2)
  c.world = {"n_train": 8000, "n_eval": 800, "size": 32}
  c.extract_batch_size = 100
  c.allow_numeric_path_change = base.allow_numeric_path_change  # held-out stores, as the demo's
  c.models = [m for m in base.models]
  for m in c.models:  # two thirds of the demo's steps: three seeds must fit the time budget
    m.steps = max(10, int(round(m.steps * 2 / 3)))
  # Held-out images the measures compare (rows). Kendall's tau (RSA's tau_a / tau_b, exact by
  # merge counting over the N (N - 1) / 2 RDM entries) costs ~100 ms per layer pair at 500 rows
  # on 2 cores, and the benchmark runs ~1200 pairs per measure: 300 keeps the whole benchmark
  # under 15 minutes there.
  c.n_images = 300
  c.k_neighbours = 10       # the colour factor's neighbours (the demo's neighbour sharing)
  c.measures = ()           # empty: every registered measure
  c.findings = {"min_identification": 0.6, "min_monotonicity": 0.3, "min_factor_gain": 0.2}
  if variant == "runlocal":  # the ViT and iGPT only: most of a smoke run is compilation
    c.models = [m for m in c.models if m.name != "convnext"]
    c.world.n_train, c.world.n_eval = 400, 150
    c.n_images = 150
    for m in c.models:
      m.steps, m.batch_size = 10, 16
  return c
