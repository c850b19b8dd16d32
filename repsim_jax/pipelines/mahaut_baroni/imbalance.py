"""II between every layer of every model and every layer of every model, itself included
(Mahaut & Baroni 2026, Figs. 1, 10): one npz + JSON per ordered pair under
`<workdir>/imbalance/`, and image-bootstrap intervals of the headline numbers (`headline_intervals`;
one npz + JSON per model, `imbalance/ii_bootstrap_<model>`)."""
from __future__ import annotations

import time
from typing import Any

import numpy as np
from absl import logging

from repsim_jax.extraction.representations import Representations, layer_rows
from repsim_jax.metrics import validation
from repsim_jax.metrics.imbalance import imbalance_between_models, information_imbalance_matrix
from repsim_jax.metrics.imbalance_stats import smoothness
from repsim_jax.metrics.intervals import halves_interval, imbalance_bootstrap
from repsim_jax.pipelines.report import by_model, by_model_interval
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.imbalance import plot_imbalance_grid, plot_imbalance_heatmaps
from repsim_jax.results import fingerprint


def imbalance_kwargs(settings) -> dict[str, Any]:
  """`information_imbalance_matrix` keywords of the `analysis.imbalance` settings."""
  return dict(k=settings.k, metric=settings.metric, ties=settings.ties,
              memory_budget_bytes=int(settings.memory_budget_mb) << 20)


def largest_between_layers(matrix: np.ndarray) -> tuple[float, tuple[int, int]]:
  """The largest entry of a model's own [L, L] II matrix between two different layers, and its
  (row, column): a layer against itself (the diagonal) is no pair of layers."""
  masked = np.array(matrix, np.float64)
  np.fill_diagonal(masked, -np.inf)
  i, j = np.unravel_index(int(np.argmax(masked)), masked.shape)
  return float(masked[i, j]), (int(i), int(j))


def headline_intervals(layers, matrix: np.ndarray, representative, settings) -> dict[str, Any]:
  """Intervals of one model's headline numbers (`imbalance_bootstrap`'s default, "halves"), from
  its own layers.

  Only the rows of the model's own II matrix that the headline numbers read are resampled: the
  representative (early, middle, late) layers, whose curves give the smoothness, and the row of
  the matrix's largest entry, each against every layer of the model. One `imbalance_bootstrap`
  call gives all `settings.n_boot` bootstrap replicates and the split halves and quarters that
  the intervals are read from (`metrics.intervals.halves_interval`) from len(rows) + L distance
  passes (at most 4 + L; the whole own-layer matrix would take 2L, and the other model pairs of
  Fig. 10 get none), so at
  the paper's scale (4 models, 152 layers, N = 1e4) the intervals add ~168 passes to the matrices'
  152 (fused schedule) to 304 (two-phase). On top of the passes, every replicate adds N weighted
  counts per query row and layer (N^2 * (n_boot + 150) * L per model, 150 the default 100 halves
  and 50 quarters, whatever the number of rows): on CPU this term dominates. Ranks are counted with ties "min" (continuous
  activations have no distance ties).

  Args:
    layers: the model's L layers, [N, d_l] each, rows as in `matrix`.
    matrix: [L, L] its plain II matrix (`matrix[i, j]` = Δ(layer i → layer j)).
    representative: the (early, middle, late) layer indices.
    settings: `analysis.imbalance` (k, metric, memory_budget_mb, n_boot, seed, confidence).

  Returns:
    {"rows": [R] layer indices resampled (sorted), "argmax": (i*, j*) of `matrix`, "passes":
     distance passes, "value" / "low" / "high" [R, L] (the plain rows and their interval),
     "self_max": `halves_interval` of Δ at (i*, j*) (the layer pair where the plain matrix is
     largest; the maximum over all pairs per replicate would need the whole matrix),
     "smoothness": `halves_interval` of the mean over the representative rows of their
     smoothness (std of adjacent-layer differences), each with its "halves" and "quarters"}.
  """
  matrix = np.asarray(matrix, np.float64)
  argmax = largest_between_layers(matrix)[1]
  rows = sorted(set(int(r) for r in representative) | {argmax[0]})
  with validation.degenerate_warnings_off():  # the II matrices' step named them already
    boot = imbalance_bootstrap([layers[r] for r in rows], layers, n_boot=int(settings.n_boot),
                               seed=settings.seed, confidence=settings.confidence, k=settings.k,
                               metric=settings.metric,
                               memory_budget_bytes=int(settings.memory_budget_mb) << 20)
  at = [rows.index(int(r)) for r in representative]
  smooth = lambda m: smoothness(m[..., at, :], axis=-1).mean(axis=-1)
  largest = lambda m: m[..., rows.index(argmax[0]), argmax[1]]

  def interval(statistic, value):  # the statistic on every half and quarter, then its interval
    halves, quarters = statistic(boot["halves"]), statistic(boot["quarters"])
    out = halves_interval(value, halves, quarters, n=len(layers[0]),
                          confidence=settings.confidence)
    return dict(out, halves=halves, quarters=quarters)

  return {"rows": np.array(rows), "argmax": argmax, "passes": len(rows) + len(layers),
          "value": boot["value"], "low": boot["low"], "high": boot["high"],
          "self_max": interval(largest, matrix[argmax]),
          "smoothness": interval(smooth, smooth(matrix[rows]))}


def step(reps: Representations, settings, run: Run) -> dict:
  """II matrices {(A, B): [L_A, L_B]}, with the headline numbers and Figs. 1 and 10.

  By default one `imbalance_between_models` call (one engine call on the union of all layers,
  each pair a block of it), which reads lazy layers one at a time, so memory holds one copy of
  every layer (the engine's) instead of the step's copy too. With `settings.by_model_pair` one call per ordered pair instead: only
  two models' layers are in memory at a time (the engine takes arrays, not lazy layers), for M
  times the neighbour passes.

  With `settings.n_boot` > 0 the headline numbers (each model's largest own-layer II and its
  smoothness) get image-bootstrap intervals (`headline_intervals`: each model's own rows that they
  read, not the 16 pair matrices), shown as ± with a table of the intervals, and shaded in Fig. 1's
  A → A panels.
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
    matrices = imbalance_between_models(selected, layer_names=reps.layer_names, **kwargs)
  for (a, b), block in matrices.items():
    run.save(f"ii_{a}__{b}", {"imbalance": block, "layers_a": np.array(reps.layer_names[a]),
                              "layers_b": np.array(reps.layer_names[b]), "rows": rows,
                              "representative_a": np.array(reps.representative[a])},
             subdir="imbalance",
             inputs={**{f"a/{n}": v for n, v in prints[a].items()},
                     **{f"b/{n}": v for n, v in prints[b].items()}},
             extra={"a": a, "b": b, "n": len(rows), "k": cfg.k, "metric": cfg.metric,
                    "direction": f"{a} → {b}"})
  intervals, shaded = {}, {}
  if cfg.get("n_boot"):  # the headline numbers' intervals, from each model's own layers
    started = time.perf_counter()
    for m in reps.models:
      layers = list(reps.layers[m]) if len(rows) == reps.n else layer_rows(reps.layers[m], rows)
      iv = intervals[m] = headline_intervals(layers, matrices[(m, m)], reps.representative[m], cfg)
      del layers
      low, high = (np.full(matrices[(m, m)].shape, np.nan) for _ in range(2))
      low[iv["rows"]], high[iv["rows"]] = iv["low"], iv["high"]
      shaded[(m, m)] = (low, high)
      run.save(f"ii_bootstrap_{m}",
               {"rows": iv["rows"], "value": iv["value"], "low": iv["low"], "high": iv["high"],
                "layers_b": np.array(reps.layer_names[m]),
                **{f"{name}/{key}": iv[name][key] for name in ("self_max", "smoothness")
                   for key in ("value", "low", "high", "half_width", "std", "rate", "halves",
                               "quarters")}},
               subdir="imbalance", inputs=prints[m],
               extra={"model": m, "n": len(rows), "n_boot": cfg.n_boot, "seed": cfg.seed,
                      "confidence": cfg.confidence, "argmax": list(iv["argmax"]),
                      "passes": iv["passes"]})
    run.log("II intervals: %d bootstrap replicates and split halves and quarters, %d distance "
            "passes, %.1f s", cfg.n_boot,
            sum(iv["passes"] for iv in intervals.values()), time.perf_counter() - started)
  section = run.section("Information imbalance across layers and models (Figs. 1, 10)")
  caption = "Fig. 1: early / middle / late layer of A vs every layer of B" + (
      f" (A → A shaded: {cfg.confidence:.0%} interval)" if intervals else "")
  section.figure(caption,
                 lambda: plot_imbalance_grid(matrices, run.figure_path("fig01_imbalance_grid"),
                                             models=reps.models, representative=reps.representative,
                                             layer_names=reps.layer_names,
                                             intervals=shaded or None, palette=run.colours))
  if cfg.heatmaps:
    section.figure("Fig. 10: all layers x all layers, one heatmap per ordered pair, each on its "
                   "own colour scale (its range, in its title)",
                   lambda: plot_imbalance_heatmaps(matrices, run.figure_path("fig10"),
                                                   layer_names=reps.layer_names))
  self_max = {m: largest_between_layers(matrices[(m, m)])[0] for m in reps.models}
  smooth = {m: float(smoothness(matrices[(m, m)][reps.representative[m]], axis=-1).mean())
            for m in reps.models}

  def cell(values, name):  # the value and its interval where the intervals were computed
    if not intervals:
      return by_model(values)
    return by_model_interval(values, {m: (iv[name]["low"], iv[name]["high"])
                                      for m, iv in intervals.items()})

  section.row("largest II between any two layers of one model", "iGPT: all ≤ 0.15",
              cell(self_max, "self_max"))
  section.row("std of adjacent-layer II differences (own layers, mean of early/middle/late "
              "curves)", "ConvNeXt ≥ 0.1; others < 0.05", cell(smooth, "smoothness"))
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
  if intervals:
    bounds = lambda iv: f"[{iv['low']:.4f}, {iv['high']:.4f}]"
    section.table(
        ["model", "largest II (layers)", f"{cfg.confidence:.0%} interval", "smoothness",
         f"{cfg.confidence:.0%} interval"],
        [[m, f"{self_max[m]:.4f} ({reps.layer_names[m][iv['argmax'][0]]} → "
          f"{reps.layer_names[m][iv['argmax'][1]]})", bounds(iv["self_max"]),
          f"{smooth[m]:.4f}", bounds(iv["smoothness"])] for m, iv in intervals.items()])
    section.note(
        f"Intervals: the {cfg.confidence:.0%} interval of E[II at N = {len(rows)}]: the "
        "value ± z sd, the sd of II at N carried from the spread between complementary halves "
        "of the images (independent data sets of N/2) with the rate measured against disjoint "
        "quarters (metrics.intervals.halves_interval; benchmarks/bench_coverage.py measures "
        "its coverage), for each model's own layers only: the early / "
        "middle / late rows and the row of the largest II, against every layer of the model, "
        f"with {cfg.n_boot} image-bootstrap replicates (saved), "
        f"all from one pass: {sum(iv['passes'] for iv in intervals.values())} distance "
        f"passes in all, next to the {sum(len(reps.layers[m]) for m in reps.models)} layers of "
        "the matrices (one pass each, or two). The largest II's interval is that of Δ at the layer "
        "pair where it is largest; a layer against itself is not a pair. A symmetric interval is "
        "written value ± half-width, an asymmetric one value [low, high].")
  return {"matrices": matrices, "self_max": self_max, "smoothness": smooth,
          "intervals": intervals}
