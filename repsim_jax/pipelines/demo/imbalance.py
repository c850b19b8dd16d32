"""II between all layers of all models, each model's smoothness, and their report section."""
from __future__ import annotations

import numpy as np

from repsim_jax.metrics import validation
from repsim_jax.metrics.imbalance import imbalance_between_models
from repsim_jax.metrics.imbalance_stats import smoothness
from repsim_jax.metrics.intervals import bootstrap_interval, imbalance_bootstrap
from repsim_jax.pipelines.demo.findings import CONFIDENCE, adjacent_vs_distant
from repsim_jax.pipelines.demo.inputs import HeldOut
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.heatmap import data_range, layer_heatmap, scale_text
from repsim_jax.plotting.imbalance import plot_imbalance_grid


def permuted_rows(layers: dict[str, list[np.ndarray]], seed: int) -> dict[str, list[np.ndarray]]:
  """The control's layers: every layer's rows permuted independently (seeded)."""
  rng = np.random.default_rng(seed)
  return {m: [x[rng.permutation(len(x))] for x in xs] for m, xs in layers.items()}


def adjacency_interval(layers: dict[str, list[np.ndarray]], cfg, *, seed: int = 0):
  """A function of a model: the image-bootstrap interval (`findings.CONFIDENCE`,
  `cfg.n_boot` replicates) of adjacent - max_adjacent_ratio x distant II over its own layers, as
  (low, high). II on resampled images runs low (an image's copies are not its own neighbours),
  so the replicates sit beside the estimate and both the percentile interval and the basic
  (reflected) one can miss it, on opposite sides: their union is taken, which holds the estimate
  and is the more cautious of the two at either end."""
  def interval(model: str) -> tuple[float, float]:
    xs = layers[model]
    # only the replicates are read: "percentile" skips the split halves and quarters that the
    # default interval ("halves") would evaluate too; the II step named the degenerate layers
    with validation.degenerate_warnings_off():
      boot = imbalance_bootstrap(xs, xs, n_boot=int(cfg.get("n_boot", 50)), seed=seed, k=cfg.k,
                                 metric="euclidean", method="percentile")
    margin = lambda m: (lambda a, d: a - cfg.max_adjacent_ratio * d)(*adjacent_vs_distant(m))
    value, replicates = margin(boot["value"]), [margin(r) for r in boot["replicates"]]
    both = [bootstrap_interval(value, replicates, confidence=CONFIDENCE, method=method)
            for method in ("percentile", "basic")]
    return (float(min(b["low"] for b in both)), float(max(b["high"] for b in both)))
  return interval


def imbalance_analysis(layers: dict[str, list[np.ndarray]], cfg, *,
                       permute_rows_seed: int | None = None,
                       layer_names: dict[str, list[str]] | None = None
                       ) -> dict[tuple[str, str], np.ndarray]:
  """II between every layer of every model, as {(A, B): [L_A, L_B]} blocks of one matrix call.

  permute_rows_seed: the control: every layer's rows are permuted independently (the images no
  longer correspond across layers), which must wipe out the layer structure.
  """
  if permute_rows_seed is not None:
    layers = permuted_rows(layers, permute_rows_seed)
  # the control's permuted layers hold the same duplicate points: warned about once, not twice
  return imbalance_between_models(layers, k=cfg.k, metric="euclidean",
                                  check_duplicates=permute_rows_seed is None,
                                  layer_names=layer_names)


def step(held_out: HeldOut, settings, run: Run) -> dict:
  """{"imbalance": {(A, B): [L_A, L_B]}, "smoothness": {model: float}}."""
  cfg, names, models = settings, held_out.layer_names, held_out.models
  run.log(f"information imbalance between all {sum(len(v) for v in held_out.layers.values())} "
          f"layers of {len(models)} models (N={len(held_out.ids)}, k={cfg.k})")
  ii = imbalance_analysis(held_out.layers, cfg, layer_names=names)
  for (a, b), block in ii.items():
    run.save(f"ii_{a}__{b}", {"imbalance": block, "layers_a": np.array(names[a]),
                              "layers_b": np.array(names[b])}, subdir="imbalance",
             extra={"direction": f"{a} → {b}", "n": len(held_out.ids), "k": cfg.k})
  smooth = {m: float(smoothness(ii[(m, m)][held_out.representative[m]], axis=-1).mean())
            for m in models}
  s = run.section("Information imbalance between all layers")
  s.figure("Early / middle / late layer of A predicting every layer of B (A → B)",
           lambda: plot_imbalance_grid(ii, run.figure_path("imbalance_grid"), models=models,
                                       representative=held_out.representative,
                                       palette=run.colours))
  for m in models:
    low, high = data_range(ii[(m, m)])
    s.figure(f"II {m} → {m}, between every two of its layers; {scale_text(low, high)} (this "
             "matrix's range)", lambda: layer_heatmap(
        ii[(m, m)], row_labels=names[m], col_labels=names[m], title=f"II {m} → {m}",
        path=run.figure_path(f"ii_{m}"), cbar_label="Δ(row → column)", vmin=low, vmax=high))
  s.table(["model", "adjacent-layer II", "distant-layer II",
           "smoothness (std of adjacent II differences)"],
          [[m, *adjacent_vs_distant(ii[(m, m)]), smooth[m]] for m in models])
  return {"imbalance": ii, "smoothness": smooth}
