"""Image neighbourhoods at the early, middle and late layer of every model (Mahaut & Baroni
2026, Figs. 2, 15-17)."""
from __future__ import annotations

import numpy as np

from repsim_jax.analysis.neighbourhoods import neighbourhoods, shared_neighbour_counts
from repsim_jax.extraction.representations import Representations
from repsim_jax.pipelines.mahaut_baroni.inputs import ImageRows
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.neighbourhoods import plot_neighbourhoods


def step(reps: Representations, settings, run: Run) -> dict:
  """The k nearest neighbours of the query images (`settings.queries` ids, else `n_queries`
  seeded random images) among all images, a grid per query, and the neighbours models share."""
  cfg = settings
  section = run.section("Image neighbourhoods (Figs. 2, 15-17)")
  if cfg.queries:
    where = {i: r for r, i in enumerate(reps.ids)}
    missing = [q for q in cfg.queries if q not in where]
    if missing:
      raise KeyError(f"analysis.neighbourhoods.queries: ids {missing} are not among the "
                     f"{reps.n} extracted images")
    queries = np.array([where[q] for q in cfg.queries])
  else:
    queries = np.sort(np.random.default_rng(cfg.seed).choice(reps.n, min(cfg.n_queries, reps.n),
                                                             replace=False))
  run.log("%d nearest neighbours of %d query images among %d", cfg.k, len(queries), reps.n)
  result = neighbourhoods(reps.layers, queries, k=cfg.k, layers=reps.representative,
                          metric=cfg.metric)
  shared = shared_neighbour_counts(result["indices"])
  run.save("neighbourhoods", {"queries": queries,
                              "query_ids": np.array([reps.ids[q] for q in queries]),
                              "layers": result["layers"], "indices": result["indices"],
                              "distances": result["distances"], **shared},
           subdir="neighbourhoods", extra={"models": result["models"], "k": cfg.k})
  images = ImageRows(reps.source, reps.ids, thumbnail=cfg.thumbnail)
  for q, row in enumerate(queries):
    section.figure(f"{cfg.k} nearest neighbours of {reps.ids[row]}",
                   lambda: plot_neighbourhoods(images, int(row), result["indices"][:, :, q],
                                               run.figure_path(f"fig02_neighbours_{q:02d}"),
                                               model_names=result["models"],
                                               title=f"{cfg.k} nearest neighbours (cosine) of "
                                                     f"{reps.ids[row]}"))
  common = shared["all_models"].mean(axis=1)  # [R]
  section.row("neighbours shared by all models (mean over queries), early / middle / late",
              "late layers share most neighbours, except iGPT",
              " / ".join(f"{v:.1f}" for v in common) + f" of {cfg.k}")
  return {"queries": queries, **result, **shared}
