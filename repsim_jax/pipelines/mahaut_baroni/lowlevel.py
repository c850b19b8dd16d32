"""Low-level features in neighbourhoods (Mahaut & Baroni 2026, Figs. 3, 14): edge density, colour
warmth and texture complexity of the images, and how often neighbours share a category of them."""
from __future__ import annotations

import numpy as np

from repsim_jax.analysis.category_sharing import lowlevel_neighbour_analysis
from repsim_jax.extraction.representations import Representations, layer_rows
from repsim_jax.imaging.features import lowlevel_features
from repsim_jax.pipelines.mahaut_baroni.inputs import ImageRows
from repsim_jax.pipelines.report import percent_by_model
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.category_sharing import plot_neighbour_sharing


def step(reps: Representations, settings, run: Run) -> dict:
  """Features of `n_images` seeded images at `image_size`, their low / middle / high categories,
  and per layer the share of neighbours in a common category, overall and per property."""
  cfg = settings
  section = run.section("Low-level features in neighbourhoods (Figs. 3, 14)")
  n = min(int(cfg.n_images), reps.n)
  rows = np.sort(np.random.default_rng(cfg.seed).choice(reps.n, n, replace=False))
  run.log("low-level features of %d images at %s", n, tuple(cfg.image_size))
  images = ImageRows(reps.source, reps.ids, size=tuple(cfg.image_size)).stack(rows)
  features = lowlevel_features(images, sigma=cfg.sigma, low_threshold=cfg.low_threshold,
                               high_threshold=cfg.high_threshold, batch_size=cfg.batch_size,
                               progress=run.progress("mahaut_baroni/lowlevel_features", n))
  result = lowlevel_neighbour_analysis({m: layer_rows(reps.layers[m], rows) for m in reps.models},
                                       features, group_size=cfg.group_size, k=cfg.k,
                                       metric=cfg.metric)
  arrays = {"rows": rows, **{f"feature/{p}": v for p, v in features.items()}}
  for scope, r in result.items():
    arrays[f"{scope}/images"] = r["images"]
    arrays[f"{scope}/baseline"] = r["baseline"]
    for m in reps.models:
      arrays[f"{scope}/sharing/{m}"] = r["sharing"][m]
  run.save("lowlevel", arrays, subdir="lowlevel",
           extra={"baseline": {s: r["baseline"] for s, r in result.items()},
                  "n_images": n, "k": cfg.k, "group_size": cfg.group_size})
  overall = result["overall"]
  section.figure("Fig. 3: neighbours sharing a low-level category",
                 lambda: plot_neighbour_sharing({"all 9 categories": (overall["sharing"],
                                                                      overall["baseline"])},
                                                run.figure_path("fig03_lowlevel"), k=cfg.k,
                                                palette=run.colours))
  section.figure("Fig. 14: per property",
                 lambda: plot_neighbour_sharing({s: (r["sharing"], r["baseline"])
                                                 for s, r in result.items() if s != "overall"},
                                                run.figure_path("fig14_lowlevel_properties"),
                                                k=cfg.k, palette=run.colours))
  pick = lambda which: {m: float(overall["sharing"][m][reps.representative[m][which]])
                        for m in reps.models}
  section.row("random baseline (exact, from the category overlaps)", "15.2 %",
              f"{100 * overall['baseline']:.1f} % ({len(overall['images'])} images in a category)")
  section.row("early layer: neighbours sharing a category", "> 48 % for all models",
              percent_by_model(pick(0)))
  section.row("middle layer", "iGPT rises to 51 %", percent_by_model(pick(1)))
  section.row("late layer", "drops for ViT and ConvNeXt; DINOv2, iGPT stay high",
              percent_by_model(pick(2)))
  return result
