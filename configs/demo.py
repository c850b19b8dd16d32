r"""The embedded default: the shapes-and-colours world end to end (no network, no downloads).

  python -m experiments.demo --workdir=runs/demo                    # 3.5 min on 2 CPU cores
  python -m experiments.demo --config=configs/demo.py:runlocal --workdir=runs/demo_local  # 2.5 min

Trains a ViT and a ConvNeXt to classify shape and an ImageGPT-style next-pixel model (our NNX
ports, optax), saves them with orbax, extracts every block on held-out images, and runs the
steps of `analysis.steps` (probes, true-factor neighbour sharing, II, CKA, neighbour grids, the
shuffled-label control); <workdir>/report.html has it all. See `repsim_jax.pipelines.demo`.
`runlocal` trains on 4000 images for half the steps and analyses 1000 held-out images.
"""
from __future__ import annotations

import ml_collections

from configs.common import parse_arg, resumable


def runlocal(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks a demo config in place to the smoke run (also what `--config.quick` asks for)."""
  c.world.n_train, c.world.n_eval = 4000, 1000
  for m in c.models:
    m.steps = max(10, int(round(m.steps * 0.5)))
  c.analysis.group_size = 30
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant, _ = parse_arg(arg)
  c = ml_collections.ConfigDict()
  c.quick = False  # deprecated: the `runlocal` variant (experiments.demo forwards to it)
  c.seed = 0
  c.world = {"n_train": 12_000, "n_eval": 2000, "size": 32}
  c.extract_batch_size = 100
  c.allow_numeric_path_change = False  # resume held-out stores under another numeric path
  # Tiny sizes of our ports; `arch` goes to transformers.AutoConfig.for_model(model_type, ...).
  c.models = [
      ml_collections.ConfigDict({"name": "vit", "objective": "shape", "model_type": "vit",
       "arch": {"hidden_size": 64, "num_hidden_layers": 6, "num_attention_heads": 4,
                "intermediate_size": 128, "image_size": 32, "patch_size": 8},
       "steps": 1500, "batch_size": 32, "lr": 2e-3}),
      ml_collections.ConfigDict({"name": "convnext", "objective": "shape", "model_type": "convnext",
       "arch": {"hidden_sizes": [16, 32, 48, 64], "depths": [1, 1, 2, 1], "image_size": 32,
                "layer_scale_init_value": 0.1},
       "steps": 400, "batch_size": 128, "lr": 3e-3}),
      ml_collections.ConfigDict({"name": "igpt", "objective": "next_pixel", "model_type": "imagegpt",
       "arch": {"n_embd": 48, "n_layer": 5, "n_head": 4}, "image_side": 12, "clusters": 16,
       "steps": 150, "batch_size": 32, "lr": 3e-3}),
  ]
  c.analysis = {
      # The steps to run, in order: modules of `repsim_jax.pipelines.demo`, all reading the
      # settings below; the findings need probes, neighbour_sharing, imbalance and control.
      "steps": ("probes", "neighbour_sharing", "imbalance", "cka", "neighbourhoods", "control"),
      "k": 1,                     # II neighbours (paper: k = 1)
      "k_neighbours": 10,         # neighbour category sharing (paper: 10)
      "group_size": 100,          # images per low / middle / high group of a true factor
      "k_grid": 9, "n_queries": 3,  # neighbour grids (paper: 9 neighbours)
      "probe_seed": 0, "probe_test_fraction": 0.2,
      # Findings (checks) and their margins; "first" = layer 0 (embedding / stem output).
      "min_probe_gain": 0.2,      # shape probe: last block - first layer
      "min_colour_drop": 0.1,    # classifiers: colour sharing first layer - last block
      "min_colour_kept_next_pixel": 0.85, "min_colour_next_pixel": 0.5,
      "max_adjacent_ratio": 0.8,  # adjacent-layer II < ratio * distant-layer II
      # a finding holds when its whole 95 % interval clears the margin; II's is an image
      # bootstrap with this many replicates (the others are normal approximations)
      "n_boot": 50,
  }
  resumable(c)
  return runlocal(c) if variant == "runlocal" else c
