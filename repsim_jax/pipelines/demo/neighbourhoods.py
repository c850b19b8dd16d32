"""Nearest-neighbour grids at the early, middle and late layer of every model."""
from __future__ import annotations

import numpy as np

from repsim_jax.analysis.neighbourhoods import neighbourhoods
from repsim_jax.data.shapes_world import HUES, SHAPES
from repsim_jax.pipelines.demo.inputs import HeldOut
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.neighbourhoods import plot_neighbourhoods


def step(held_out: HeldOut, settings, run: Run) -> dict:
  """{"queries": rows, "neighbours": `neighbourhoods` of `n_queries` seeded images}."""
  cfg, ids = settings, held_out.ids
  queries = np.random.default_rng(run.config.seed).choice(len(ids), cfg.n_queries, replace=False)
  grids = neighbourhoods(held_out.layers, queries, k=cfg.k_grid, layers=held_out.representative)
  s = run.section("Nearest neighbours at the early, middle and late layer")
  for q in range(len(queries)):
    f = {k: v[queries[q]] for k, v in held_out.factors.items()}
    s.figure(f"query {ids[queries[q]]}: {SHAPES[f['shape']]}, "
             f"{HUES[f['object_hue']][0]} on {HUES[f['background_hue']][0]}",
             lambda: plot_neighbourhoods(held_out.images, int(queries[q]),
                                         grids["indices"][:, :, q],
                                         run.figure_path(f"neighbours_{q}"),
                                         model_names=held_out.models))
  return {"queries": queries, "neighbours": grids}
