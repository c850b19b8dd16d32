"""Cross-encoder subspaces: do the models share the top principal subspace of one layer?

Per model the top-k PCA (k = 16) of one chosen layer (default: the late representative layer);
between every pair of models the Procrustes-aligned similarity and the linear CKA of their
k-dimensional projections, each against a permutation null of the image correspondence, and the
median over pairs against the null of the median (`repsim_jax.analysis.subspace`). Not in the
paper; one npz + JSON (`<workdir>/subspace/subspace`) and one figure.
"""
from __future__ import annotations

import numpy as np

from repsim_jax.analysis.subspace import cross_encoder_subspace
from repsim_jax.extraction.representations import Representations
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.subspace import plot_subspace_similarity

TITLE = "cross-encoder subspaces"
POSITIONS = ("early", "middle", "late")
_MEASURES = (("procrustes", "Procrustes similarity"), ("cka", "linear CKA"))


def chosen_layer(reps: Representations, model: str, layer) -> int:
  """Index into `reps.layers[model]` of `layer`: "early" / "middle" / "late" (the representative
  layers) or a relative depth in [0, 1], as a number or a string ("0.9": the command line keeps
  the setting's str type), the nearest layer (the input entry at 0)."""
  if layer in POSITIONS:
    return int(reps.representative[model][POSITIONS.index(layer)])
  try:
    depth = float(layer)
  except (TypeError, ValueError):
    depth = None
  if depth is None or not 0 <= depth <= 1:
    raise ValueError(f"analysis.subspace.layer: expected one of {POSITIONS} or a relative depth "
                     f"in [0, 1], got {layer!r}")
  return int(round(depth * (len(reps.layers[model]) - 1)))


def step(reps: Representations, settings, run: Run) -> dict:
  """`cross_encoder_subspace` of every model's chosen layer (`settings.layer`), with its figure.

  k is lowered to the narrowest chosen layer (or N - 1) when it exceeds it, with a note. Returns
  the analysis' dict plus "layers" {model: layer name}; {} with fewer than two models.
  """
  cfg = settings
  section = run.section("Cross-encoder subspaces: top-k PCA of one layer per model")
  if len(reps.models) < 2:
    section.note(f"skipped: needs at least two models, got {reps.models}")
    return {}
  index = {m: chosen_layer(reps, m, cfg.layer) for m in reps.models}
  names = {m: reps.layer_names[m][i] for m, i in index.items()}
  layers = {m: np.asarray(reps.layers[m][i]) for m, i in index.items()}  # one layer per model
  widest_k = min(min(x.shape[1] for x in layers.values()), reps.n - 1)
  k = min(int(cfg.k), widest_k)
  if k < cfg.k:
    section.note(f"k lowered from {cfg.k} to {k}: the narrowest chosen layer has "
                 f"{min(x.shape[1] for x in layers.values())} dimensions for {reps.n} images")
  run.log("subspaces: top-%d PCA of %s, %d permutations", k,
          ", ".join(f"{m} {n}" for m, n in names.items()), cfg.n_perm)
  result = cross_encoder_subspace(layers, k=k, n_perm=cfg.n_perm, seed=cfg.seed, alpha=cfg.alpha,
                                  debiased=cfg.debiased)
  del layers
  arrays = {"models": np.array(reps.models), "layers": np.array([names[m] for m in reps.models]),
            "pairs": result["pairs"], "explained": result["explained"]}
  for measure, _ in _MEASURES:
    pairs = result[f"{measure}_pairs"]
    arrays.update({measure: result[measure], f"{measure}_null": result[f"{measure}_null"],
                   f"{measure}_median": result[f"{measure}_median"],
                   f"{measure}_median_null": result[f"{measure}_median_null"],
                   f"{measure}_median_p_value": result[f"{measure}_median_test"]["p_value"]})
    arrays.update({f"{measure}_{key}": pairs[key]
                   for key in ("p_value", "critical", "calibrated", "p_value_max")})
  run.save("subspace", arrays, subdir="subspace",
           extra={"k": k, "n_perm": cfg.n_perm, "seed": cfg.seed, "alpha": cfg.alpha,
                  "debiased": cfg.debiased, "layers": names,
                  **{f"{m}_median": result[f"{m}_median"] for m, _ in _MEASURES}})

  section.note(
      f"Layer per model: {', '.join(f'{m} {n}' for m, n in names.items())} ({cfg.layer}); "
      f"top {k} principal components of each, N = {reps.n} images. Between every pair of models: "
      "the Procrustes-aligned similarity (nuclear norm of X^T Y for the centred projections at "
      "unit Frobenius norm: 1 when a rotation maps one onto the other) and the "
      f"{'debiased ' if cfg.debiased else ''}linear CKA of the projections, each against "
      f"{cfg.n_perm} permutations of the image correspondence (add-one p-values; calibrated: "
      f"0 at or below the {1 - cfg.alpha:.0%} critical value of Gröger et al. 2026, 1 at "
      "identical subspaces).")
  for measure, label in _MEASURES:
    test = result[f"{measure}_median_test"]
    null = result[f"{measure}_median_null"]
    section.row(f"median {label} of the top-{k} subspaces over model pairs", "—",
                f"{result[f'{measure}_median']:.3f} (null median {np.median(null):.3f}, "
                f"p = {float(test['p_value']):.3g}, calibrated {float(test['calibrated']):.2f})")
  table = []
  for n, (i, j) in enumerate(result["pairs"]):
    row = [f"{reps.models[i]} – {reps.models[j]}"]
    for measure, _ in _MEASURES:
      pairs = result[f"{measure}_pairs"]
      row += [f"{result[measure][i, j]:.3f}", f"{pairs['p_value'][n]:.3g}",
              f"{pairs['calibrated'][n]:.2f}"]
    table.append(row)
  section.table(["pair", "Procrustes", "p", "calibrated", "CKA", "p", "calibrated"], table)
  section.table(["model", "layer", f"variance explained by the top {k}"],
                [[m, names[m], f"{100 * result['explained'][n].sum():.1f} %"]
                 for n, m in enumerate(reps.models)])
  section.figure(f"Procrustes similarity and CKA of the top-{k} PCA subspaces, with the null of "
                 "their median over pairs",
                 lambda: plot_subspace_similarity(result, run.figure_path("subspace")))
  return {**result, "layers": names}
