"""The shuffled-label control: the findings' measurements with probe and neighbour labels
shuffled over images and every layer's rows permuted for II; no finding may hold on it."""
from __future__ import annotations

from repsim_jax.pipelines.demo.findings import findings
from repsim_jax.pipelines.demo.imbalance import (adjacency_interval, imbalance_analysis,
                                                 permuted_rows)
from repsim_jax.pipelines.demo.inputs import HeldOut
from repsim_jax.pipelines.demo.neighbour_sharing import colour_sharing
from repsim_jax.pipelines.demo.probes import probe_analysis
from repsim_jax.pipelines.run import Run

TITLE = "shuffled-label control"


def step(held_out: HeldOut, settings, run: Run) -> dict:
  """{"control": the findings on the control, "control_results": its measurements}."""
  cfg, layers, factors = settings, held_out.layers, held_out.factors
  seed = run.config.seed + 7
  sharing, _, per_image = colour_sharing(layers, factors["background_hue"], cfg,
                                         shuffle_seed=seed)
  control = {"shape_probe": probe_analysis(layers, factors["shape"], cfg, shuffle_seed=seed),
             "colour_sharing": sharing, "colour_sharing_per_image": per_image,
             "imbalance": imbalance_analysis(layers, cfg, permute_rows_seed=seed)}
  run.save("control", {**{f"shape/{m}": v for m, v in control["shape_probe"].items()},
                       **{f"colour/{m}": v for m, v in control["colour_sharing"].items()},
                       **{f"imbalance/{a}__{b}": v for (a, b), v in control["imbalance"].items()}},
           extra={"shuffle_seed": seed})
  interval = adjacency_interval(permuted_rows(layers, seed), cfg, seed=seed)
  return {"control": findings(control, held_out.classifiers, held_out.next_pixel, cfg,
                              n_images=len(held_out.ids), adjacency_interval=interval),
          "control_results": control}
