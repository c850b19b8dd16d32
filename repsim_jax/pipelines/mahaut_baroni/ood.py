"""Out-of-domain probes (Mahaut & Baroni 2026, App. C, Fig. 13): a multi-class linear probe per
layer on each labelled dataset of `settings.datasets` (tfds test splits)."""
from __future__ import annotations

import os

import numpy as np

from repsim_jax.analysis.logistic_probes import multiclass_probe_accuracy
from repsim_jax.pipelines.mahaut_baroni.inputs import class_indices, labels, other_dataset
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.probes import plot_ood_probes


def step(reps, settings, run: Run) -> dict:
  """{dataset: {model: accuracy [L]}}; the main representations are not used (each dataset gets
  its own stores under `<workdir>/ood/<name>`), and a dataset that is not prepared is skipped
  with its preparation command in the report."""
  del reps
  cfg = settings
  section = run.section("Out-of-domain probes (App. C, Fig. 13)")
  accuracy: dict[str, dict[str, np.ndarray]] = {}
  for dataset in cfg.datasets:
    name = dataset.get("name") or dataset.get("kind")
    other = other_dataset(run.config, dataset, cfg.n_images, run.workdir,
                          os.path.join("ood", name), section)
    if other is None:
      run.no_record(f"{name} is not prepared")  # run again once it is
      continue
    _, y, classes = class_indices(labels(other.source, other.ids,
                                         dataset.get("label_key", "label")), 1)
    run.log("OOD probes on %s: %d images, %d classes", name, other.n, len(classes))
    accuracy[name] = {m: multiclass_probe_accuracy(other.layers[m], y, seed=cfg.seed,
                                                   test_fraction=cfg.test_fraction, l2=cfg.l2,
                                                   iterations=cfg.iterations)
                      for m in other.models}
    run.save(f"ood_{name}", {f"accuracy/{m}": a for m, a in accuracy[name].items()},
             subdir="ood", extra={"dataset": name, "n": other.n, "num_classes": len(classes),
                                  "best": {m: float(a.max()) for m, a in accuracy[name].items()}})
  if not cfg.datasets:
    section.note("no out-of-domain datasets configured")
  if accuracy:
    section.figure("Fig. 13: multi-class linear probes per layer",
                   lambda: plot_ood_probes(accuracy, run.figure_path("fig13_ood_probes"),
                                           palette=run.colours))
    for name, acc in accuracy.items():
      peak = {m: f"{np.argmax(a) / max(len(a) - 1, 1):.2f}" for m, a in acc.items()}
      section.row(f"{name}: relative depth of the best layer (accuracy)",
                  "iGPT peaks halfway; others rise with depth",
                  "; ".join(f"{m}: {peak[m]} ({acc[m].max():.2f})" for m in acc))
  return accuracy
