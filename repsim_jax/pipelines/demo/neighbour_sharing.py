"""Neighbours sharing a category, per layer: the image's true background colour, and the paper's
low / middle / high categories of the world's true colour warmth, texture and clutter."""
from __future__ import annotations

import numpy as np

from repsim_jax.analysis.category_sharing import (lowlevel_neighbour_analysis,
                                                  neighbour_sharing_by_layer,
                                                  random_sharing_baseline)
from repsim_jax.pipelines.demo.findings import table_per_layer
from repsim_jax.pipelines.demo.inputs import HeldOut
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.category_sharing import plot_neighbour_sharing

TITLE = "neighbour sharing"


def colour_sharing(layers: dict[str, list[np.ndarray]], hue: np.ndarray, cfg, *,
                   shuffle_seed: int | None = None
                   ) -> tuple[dict[str, np.ndarray], float, dict[str, np.ndarray]]:
  """({model: fraction of the k neighbours with the image's background hue, per layer},
  exact random baseline, {model: the same per layer and image, [L, N]})."""
  hue = np.asarray(hue)
  if shuffle_seed is not None:
    hue = np.random.default_rng(shuffle_seed).permutation(hue)
  membership = hue[:, None] == np.unique(hue)[None, :]
  per_image = {m: neighbour_sharing_by_layer(xs, membership, k=cfg.k_neighbours)
               for m, xs in layers.items()}
  sharing = {m: v.mean(axis=1) for m, v in per_image.items()}
  return sharing, random_sharing_baseline(membership), per_image


def step(held_out: HeldOut, settings, run: Run) -> dict:
  """{"colour_sharing": {model: per layer}, "colour_baseline": float, "lowlevel": {scope:
  {"baseline", "sharing"}}}."""
  cfg, factors = settings, held_out.factors
  colour_share, colour_baseline, per_image = colour_sharing(held_out.layers,
                                                           factors["background_hue"], cfg)
  true_factors = {"colour warmth": factors["warmth"], "texture": factors["texture"],
                  "clutter": factors["clutter"].astype(np.float64)}
  low = lowlevel_neighbour_analysis(held_out.layers, true_factors, group_size=cfg.group_size,
                                    k=cfg.k_neighbours)
  run.save("neighbour_sharing",
           {**{f"colour/{m}": v for m, v in colour_share.items()},
            **{f"{s}/{m}": v for s, r in low.items() for m, v in r["sharing"].items()}},
           extra={"colour_baseline": colour_baseline,
                  "baselines": {s: r["baseline"] for s, r in low.items()}})
  s = run.section("Neighbours sharing a category, per layer")
  panels = {"background hue": (colour_share, colour_baseline)}
  panels.update({scope: (v["sharing"], v["baseline"]) for scope, v in low.items()})
  s.figure(f"% of the {cfg.k_neighbours} nearest neighbours (cosine) sharing the image's "
           f"category; dashed: exact random baseline",
           lambda: plot_neighbour_sharing(panels, run.figure_path("neighbour_sharing"),
                                          k=cfg.k_neighbours, palette=run.colours))
  s.table(*table_per_layer(
      colour_share, lambda x: f"{x:.1%}",
      what=f"% of {cfg.k_neighbours} neighbours with the image's background hue"))
  return {"colour_sharing": colour_share, "colour_baseline": colour_baseline,
          "colour_sharing_per_image": per_image,
          "lowlevel": {s: {"baseline": v["baseline"], "sharing": v["sharing"]}
                       for s, v in low.items()}}
