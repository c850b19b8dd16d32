"""Per-class probes and their roughness across layers (Mahaut & Baroni 2026, Sec. 3.2.3, Fig. 5):
a balanced binary probe per class and layer, on the main images' labels or another dataset's."""
from __future__ import annotations

from repsim_jax.analysis.logistic_probes import class_probe_accuracy, roughness
from repsim_jax.extraction.representations import Representations, layer_rows
from repsim_jax.pipelines.mahaut_baroni.inputs import class_indices, labels, other_dataset
from repsim_jax.pipelines.report import by_model
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.probes import plot_roughness


def step(reps: Representations, settings, run: Run) -> dict:
  """Accuracy [L, C] per model and its roughness per class; `settings.dataset` (None: the main
  images) with its `label_key` labels, classes with >= `min_images_per_class` images."""
  cfg = settings
  section = run.section("Per-class probes and roughness (Fig. 5)")
  if cfg.dataset is not None:
    reps = other_dataset(run.config, cfg.dataset, cfg.n_images, run.workdir, "probes", section)
    if reps is None:
      run.no_record("its dataset is not prepared")  # run again once it is
      return {}
  try:
    y_all = labels(reps.source, reps.ids, cfg.label_key)
  except KeyError:
    section.note(f"skipped: the images have no {cfg.label_key!r} label")
    run.log("probes skipped: no %r label", cfg.label_key)
    return {}
  rows, y, classes = class_indices(y_all, cfg.min_images_per_class)
  if len(classes) < 2:
    section.note(f"skipped: fewer than 2 classes with >= {cfg.min_images_per_class} images")
    return {}
  run.log("per-class probes, %d classes x the layers of each model (%s), %d images",
          len(classes), ", ".join(f"{m} {len(reps.layers[m])}" for m in reps.models), len(rows))
  accuracy, rough = {}, {}
  progress = run.progress("mahaut_baroni/probes", len(reps.models), unit="models", every_s=0)
  for m in reps.models:
    accuracy[m] = class_probe_accuracy(layer_rows(reps.layers[m], rows), y, seed=cfg.seed,
                                       test_fraction=cfg.test_fraction,
                                       probe_batch_size=cfg.probe_batch_size)
    rough[m] = roughness(accuracy[m], axis=0)
    progress.update(1)
  run.save("class_probes", {"classes": classes.astype(str), "rows": rows,
                            **{f"accuracy/{m}": a for m, a in accuracy.items()},
                            **{f"roughness/{m}": r for m, r in rough.items()}},
           subdir="probes",
           extra={"roughness_mean": {m: float(r.mean()) for m, r in rough.items()},
                  "num_classes": len(classes)})
  # examples as in the paper: the roughest and the smoothest class curve over all models
  flat = [(float(r[c]), m, c) for m, r in rough.items() for c in range(len(classes))]
  examples = [{"model": m, "label": str(classes[c]), "accuracy": accuracy[m][:, c], "roughness": r}
              for r, m, c in (max(flat), min(flat))]
  section.figure("Fig. 5: roughness of per-class probe accuracy across layers",
                 lambda: plot_roughness(rough, run.figure_path("fig05_roughness"),
                                        examples=examples, palette=run.colours))
  section.row("mean roughness per class (std of adjacent-layer accuracy differences)",
              "ConvNeXt widest / roughest; iGPT and ViT smoothest",
              by_model({m: float(r.mean()) for m, r in rough.items()}))
  section.row("example curves", "rough 0.395 (ConvNeXt, pizza), smooth 0.080 (iGPT, bloodhound)",
              ", ".join(f"{kind} {e['roughness']:.3f} ({e['model']}, class {e['label']})"
                        for kind, e in zip(("rough", "smooth"), examples)))
  return {"accuracy": accuracy, "roughness": rough, "classes": classes}
