"""Unbiased linear CKA between all layers of all models."""
from __future__ import annotations

import numpy as np

from repsim_jax.metrics.kernel_alignment import cka_matrix
from repsim_jax.pipelines.demo.inputs import HeldOut
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.heatmap import data_range, layer_heatmap, scale_text


def step(held_out: HeldOut, settings, run: Run) -> dict:
  """{"cka": [L, L]} over the union of every model's layers (model order)."""
  del settings
  models, names = held_out.models, held_out.layer_names
  union = [x for m in models for x in held_out.layers[m]]
  labels_union = [f"{m}/{n}" for m in models for n in names[m]]
  cka = cka_matrix(union, union, hsic="song")
  run.save("cka", {"cka": cka, "layers": np.array(labels_union)})
  low, high = data_range(cka)
  run.section("CKA between all layers of all models").figure(
      f"Unbiased linear CKA; {scale_text(low, high)} (the matrix's range)", lambda: (
          layer_heatmap(cka, row_labels=labels_union, col_labels=labels_union,
                        title="CKA, all layers", path=run.figure_path("cka"), cbar_label="CKA",
                        cmap="magma", origin="lower", vmin=low, vmax=high)))
  return {"cka": cka}
