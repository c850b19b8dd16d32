"""Semantic coherence with ManyNames (Mahaut & Baroni 2026, Fig. 4): the Jaccard index of the
ManyNames labels of an image and its neighbours, per layer (ManyNames images only)."""
from __future__ import annotations

from repsim_jax.analysis.semantic import sample_queries, semantic_coherence
from repsim_jax.extraction.representations import Representations
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.semantic import plot_semantic_coherence


def step(reps: Representations, settings, run: Run) -> dict:
  """Per model, the mean and std over `n_queries` images of the Jaccard index per layer."""
  cfg = settings
  section = run.section("Semantic coherence with ManyNames (Fig. 4)")
  rows = getattr(reps.source, "rows", None)
  kind = run.config.dataset.get("kind")
  if kind != "manynames" or rows is None:
    note = (f"skipped: the dataset is {kind!r}, not ManyNames; run the `manynames` variant for "
            "Fig. 4")
    run.log("semantic coherence %s", note)
    section.note(note)
    return {}
  labels = [rows[i]["labels"] for i in reps.ids]
  queries = sample_queries(reps.n, min(cfg.n_queries, reps.n), seed=cfg.seed)
  mean, std, out = {}, {}, {}
  for m in reps.models:
    out[m] = semantic_coherence(reps.layers[m], labels, k=cfg.k, queries=queries,
                                metric=cfg.metric)
    mean[m], std[m] = out[m]["mean"], out[m]["std"]
    run.log("semantic coherence %s done", m)
  run.save("semantic", {"queries": queries, **{f"{m}/{k}": v for m in reps.models
                                               for k, v in out[m].items() if k != "queries"}},
           subdir="semantic", extra={"n_queries": len(queries), "k": cfg.k})
  section.figure("Fig. 4: Jaccard index of ManyNames labels",
                 lambda: plot_semantic_coherence(mean, std, run.figure_path("fig04_semantic"),
                                                 n_queries=len(queries), k=cfg.k,
                                                 palette=run.colours))
  by_depth = {m: " / ".join(f"{mean[m][i]:.3f}" for i in reps.representative[m])
              for m in reps.models}
  section.row("Jaccard index, early / middle / late",
              "rises with depth; iGPT low, peaking in the middle",
              "; ".join(f"{m}: {v}" for m, v in by_depth.items()))
  return out
