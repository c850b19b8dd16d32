"""II between every layer of every model and every layer of every model, itself included
(Mahaut & Baroni 2026, Figs. 1, 10): one npz + JSON per ordered pair under
`<workdir>/imbalance/`."""
from __future__ import annotations

from typing import Any

import numpy as np
from absl import logging

from repsim_jax.extraction.representations import Representations, layer_rows
from repsim_jax.metrics.imbalance import imbalance_between_models, information_imbalance_matrix
from repsim_jax.metrics.imbalance_stats import smoothness
from repsim_jax.pipelines.report import by_model
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.imbalance import plot_imbalance_grid, plot_imbalance_heatmaps
from repsim_jax.results import fingerprint


def imbalance_kwargs(settings) -> dict[str, Any]:
  """`information_imbalance_matrix` keywords of the `analysis.imbalance` settings."""
  return dict(k=settings.k, metric=settings.metric, ties=settings.ties,
              memory_budget_bytes=int(settings.memory_budget_mb) << 20)


def step(reps: Representations, settings, run: Run) -> dict:
  """II matrices {(A, B): [L_A, L_B]}, with the headline numbers and Figs. 1 and 10.

  By default one `imbalance_between_models` call (one engine call on the union of all layers,
  each pair a block of it), which reads lazy layers one at a time, so memory holds one copy of
  every layer (the engine's) instead of the step's copy too. With `settings.by_model_pair` one call per ordered pair instead: only
  two models' layers are in memory at a time (the engine takes arrays, not lazy layers), for M
  times the neighbour passes.
  """
  cfg = settings
  rows = np.arange(reps.n)
  if cfg.n and cfg.n < reps.n:
    rows = np.sort(np.random.default_rng(cfg.seed).choice(reps.n, cfg.n, replace=False))
  kwargs = dict(progress=logging.info, **imbalance_kwargs(cfg))
  run.log("II over %d models, %d layers in all, N=%d, k=%d, %s%s", len(reps.models),
          sum(len(reps.layers[m]) for m in reps.models), len(rows), cfg.k, cfg.metric,
          ", one model pair at a time" if cfg.get("by_model_pair") else "")
  fingerprints = lambda m, layers: dict(zip(reps.layer_names[m], map(fingerprint, layers))) if (
      run.is_writer) else {}
  prints, matrices = {}, {}
  if cfg.get("by_model_pair"):
    for a in reps.models:
      layers_a = layer_rows(reps.layers[a], rows)
      prints[a] = fingerprints(a, layers_a)
      for b in reps.models:
        layers_b = layers_a if b == a else layer_rows(reps.layers[b], rows)
        matrices[(a, b)] = information_imbalance_matrix(layers_a, layers_b, **kwargs)
        del layers_b
  else:
    if len(rows) == reps.n:  # every row: the engine reads the layers one at a time (lazy ones)
      selected = dict(reps.layers)
    else:
      selected = {m: layer_rows(reps.layers[m], rows) for m in reps.models}
    prints = {m: fingerprints(m, selected[m]) for m in reps.models}
    matrices = imbalance_between_models(selected, **kwargs)
  for (a, b), block in matrices.items():
    run.save(f"ii_{a}__{b}", {"imbalance": block, "layers_a": np.array(reps.layer_names[a]),
                              "layers_b": np.array(reps.layer_names[b]), "rows": rows,
                              "representative_a": np.array(reps.representative[a])},
             subdir="imbalance",
             inputs={**{f"a/{n}": v for n, v in prints[a].items()},
                     **{f"b/{n}": v for n, v in prints[b].items()}},
             extra={"a": a, "b": b, "n": len(rows), "k": cfg.k, "metric": cfg.metric,
                    "direction": f"{a} → {b}"})
  section = run.section("Information imbalance across layers and models (Figs. 1, 10)")
  section.figure("Fig. 1: early / middle / late layer of A vs every layer of B",
                 lambda: plot_imbalance_grid(matrices, run.figure_path("fig01_imbalance_grid"),
                                             models=reps.models, representative=reps.representative,
                                             layer_names=reps.layer_names))
  if cfg.heatmaps:
    section.figure("Fig. 10: all layers x all layers, one heatmap per ordered pair",
                   lambda: plot_imbalance_heatmaps(matrices, run.figure_path("fig10"),
                                                   layer_names=reps.layer_names))
  self_max = {m: float(matrices[(m, m)].max()) for m in reps.models}
  smooth = {m: float(smoothness(matrices[(m, m)][reps.representative[m]], axis=-1).mean())
            for m in reps.models}
  section.row("largest II between any two layers of one model", "iGPT: all ≤ 0.15",
              by_model(self_max))
  section.row("std of adjacent-layer II differences (own layers, mean of early/middle/late "
              "curves)", "ConvNeXt ≥ 0.1; others < 0.05", by_model(smooth))
  # distance rule: where in B the early / middle / late layer of A is best predicted (lowest II)
  table = []
  for a in reps.models:
    for b in reps.models:
      depth = np.arange(matrices[(a, b)].shape[1]) / max(matrices[(a, b)].shape[1] - 1, 1)
      best = [f"{depth[int(np.argmin(matrices[(a, b)][l]))]:.2f}" for l in reps.representative[a]]
      table.append([f"{a} → {b}", *best])
  section.table(["pair", "early: best relative depth of B", "middle", "late"], table)
  section.note(f"N = {len(rows)} images, k = {cfg.k}, {cfg.metric} distance. Paper: layers at "
               "similar relative depths predict each other best (distance rule), except that any "
               "layer predicts all iGPT layers about equally.")
  return {"matrices": matrices, "self_max": self_max, "smoothness": smooth}
