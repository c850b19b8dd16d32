r"""Information imbalance between every layer of two sets of representations.

Built-in synthetic example (a "model" whose layers lose information with depth):
  python -m experiments.imbalance --workdir=runs/imbalance

Your own activations (.npz with one array per layer, a folder of .npy files, or a glob):
  python -m experiments.imbalance --workdir=runs/ii \
    --config=configs/imbalance.py:inputs_a=acts/vit.npz,inputs_b=acts/dinov2.npz \
    --config.k=1 --config.metric=cosine

Several measures, each with its heatmap (any name or alias of `repsim_jax.measures()`), with
bootstrap intervals and permutation calibration:
  python -m experiments.imbalance --workdir=runs/many --config.measures=imbalance,cka,procrustes \
    --config.n_boot=100 --config.n_perm=100

Variants (after the colon): runlocal (tiny, seconds), n=..., k=..., metric=..., inputs_a=...,
inputs_b=..., subset_size=... (mean ± s.e.m. over disjoint subsets), measures=imbalance+cka
(names joined by "+" there; "," in --config.measures).
"""
from __future__ import annotations

import ml_collections

from configs.common import parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant, a = parse_arg(arg, inputs_a="", inputs_b="", n=0, k=1, metric="euclidean",
                         subset_size=0, measures="imbalance")
  c = ml_collections.ConfigDict()
  c.name = "imbalance"
  # Inputs: "" = the built-in synthetic example; else an .npz (arrays in file order are the
  # layers), a folder of .npy files (sorted by name) or a glob of .npy files.
  c.inputs_a = a["inputs_a"]
  c.inputs_b = a["inputs_b"]  # "" = the same layers as inputs_a
  c.layers_a = ""  # comma-separated layer names to keep ("" = all)
  c.layers_b = ""
  # Comma-separated measure names or aliases (repsim_jax.measures()); k, metric, ties, dtype,
  # block_size and memory_budget_mb below are information imbalance's settings.
  c.measures = str(a["measures"]).replace("+", ",")
  c.n = a["n"]  # 0 = all rows; else a seeded random subsample of n rows
  c.seed = 0
  c.k = a["k"]
  c.metric = a["metric"]  # euclidean | cosine
  c.ties = "min"  # min | average
  c.dtype = "float32"  # float32 | float64 (reference runs, slower)
  c.block_size = 0  # 0 = chosen from memory_budget_mb
  c.memory_budget_mb = 1024
  # Representation preprocessing, all off by default; clip_quantiles=(0.05, 0.95) clips each
  # sample to its own 5-95 % quantiles.
  c.preprocess = ml_collections.ConfigDict(
      {"clip_quantiles": (), "center": False, "l2_normalize": False})
  # > 0: mean ± s.e.m. over disjoint subsets of this size (the value at N = subset_size)
  c.subset_size = a["subset_size"]
  c.repeats = 0  # 0 = as many disjoint subsets as fit
  c.n_boot = 0  # > 0: image-bootstrap interval of every entry, each measure
  c.n_perm = 0  # > 0: permutation calibration (Gröger et al. 2026) of every measure
  c.alpha = 0.05  # its level (critical values, calibrated scores, FDR)
  c.synthetic = ml_collections.ConfigDict(
      {"n": 2000, "n_layers": 8, "latent_dim": 16, "drop": 2, "width": 32, "noise": 0.05})
  c.distributed = False  # jax.distributed.initialize() for multi-host runs
  c.plot = True
  if variant == "runlocal":
    c.synthetic.n = 300
    c.synthetic.n_layers = 4
  return c
