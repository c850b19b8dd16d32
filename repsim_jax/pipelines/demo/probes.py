"""Shape and colour (background hue) probes per layer."""
from __future__ import annotations

import numpy as np

from repsim_jax.analysis.logistic_probes import multiclass_probe_accuracy
from repsim_jax.pipelines.demo.findings import table_per_layer
from repsim_jax.pipelines.demo.inputs import HeldOut
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.probes import plot_ood_probes


def probe_analysis(layers: dict[str, list[np.ndarray]], labels: np.ndarray, cfg, *,
                   shuffle_seed: int | None = None) -> dict[str, np.ndarray]:
  """{model: accuracy per layer} of a multi-class linear probe (shared hyperparameters)."""
  labels = np.asarray(labels)
  if shuffle_seed is not None:
    labels = np.random.default_rng(shuffle_seed).permutation(labels)
  return {m: multiclass_probe_accuracy(xs, labels, seed=cfg.probe_seed,
                                       test_fraction=cfg.probe_test_fraction)
          for m, xs in layers.items()}


def step(held_out: HeldOut, settings, run: Run) -> dict:
  """{"shape_probe", "colour_probe": {model: accuracy per layer}}."""
  shape_probe = probe_analysis(held_out.layers, held_out.factors["shape"], settings)
  colour_probe = probe_analysis(held_out.layers, held_out.factors["background_hue"], settings)
  run.save("probes", {**{f"shape/{m}": v for m, v in shape_probe.items()},
                      **{f"colour/{m}": v for m, v in colour_probe.items()}})
  s = run.section("Probes: shape and colour (background hue) per layer")
  s.figure("Linear probe accuracy per layer", lambda: plot_ood_probes(
      {"shape (5 classes)": shape_probe, "background hue (8 classes)": colour_probe},
      run.figure_path("probes"), title="Linear probes per layer (held-out images)",
      palette=run.colours))
  s.table(*table_per_layer(
      {**{f"{m}: shape": v for m, v in shape_probe.items()},
       **{f"{m}: background hue": v for m, v in colour_probe.items()}}, lambda x: f"{x:.1%}",
      what="held-out probe accuracy (model: label)"))
  return {"shape_probe": shape_probe, "colour_probe": colour_probe}
