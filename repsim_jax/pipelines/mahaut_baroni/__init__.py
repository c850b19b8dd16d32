"""Mahaut & Baroni (2026) end to end: every analysis and figure of the paper from one config.

`run(config, workdir)` reads top to bottom:

  1. representations: `repsim_jax.pipelines.extract.ensure_stores` extracts every model
     of `config.models` on `config.dataset` (a complete store with the same images and model id
     under `<workdir>/stores/<model>` is reused without loading the model); the layers stay in
     the stores (`StoreLayers`, `analysis.lazy_layers`): each step reads the layers and rows it
     uses when it runs, through an LRU cache of `analysis.layer_cache_mb` MiB;
  2. the steps of `config.analysis.steps`, in order, each a module of this package with
     `step(representations, settings, run)` and its settings in `config.analysis.<step>`:
       imbalance       II between all layers of all models (Figs. 1, 10), one npz + JSON per pair;
                       bootstrap intervals of the headline numbers (± in the report)
       sample_size     sample size and smoothness (Figs. 11, 12, App. B)
       neighbourhoods  nearest-neighbour grids (Figs. 2, 15-17)
       lowlevel        low-level features in neighbourhoods (Figs. 3, 14)
       semantic        ManyNames semantic coherence (Fig. 4; ManyNames images only)
       probes          per-class probes and roughness (Fig. 5; images with class labels)
       ood             out-of-domain probes (Fig. 13; a tfds dataset that is not prepared is
                       skipped with its exact `tfds build` command)
       subspace        top-16 PCA subspaces of one layer compared across models (Procrustes,
                       CKA, permutation-calibrated; not in the paper)
  3. `<workdir>/report.html` and `<workdir>/summary.md`: every figure, our headline numbers next
     to the paper's statements.

Layers are the store's main blocks in forward order (the input embedding / stem entry included,
sublayers left out); the representative early / middle / late layers are
`repsim_jax.extraction.representations.early_middle_late` (second, middle and penultimate
block, as in the paper). Only process 0 writes on multi-host runs.

References:
  Mahaut & Baroni 2026, "Similarity of Processing Steps in Vision Model Representations".
"""
from __future__ import annotations

from typing import Any

from repsim_jax import sharding
from repsim_jax.extraction.store import ActivationStore
from repsim_jax.pipelines import checks
from repsim_jax.pipelines.extract import ensure_stores
from repsim_jax.pipelines.mahaut_baroni.inputs import load
from repsim_jax.pipelines.report import dataset_text
from repsim_jax.pipelines.run import Run, step_names
from repsim_jax.results import fingerprint_json


def store_fingerprint(path: str) -> str:
  """What identifies a complete store's numbers: its metadata (config with the checkpoint
  fingerprint and image ids, package versions, skipped ids) but not when it was made."""
  metadata = ActivationStore.open(path).metadata
  return fingerprint_json({k: v for k, v in metadata.items() if k != "created"})


def run(config, workdir: str) -> dict[str, Any]:
  """Every analysis of Mahaut & Baroni (2026) on `config` (see the module docstring).

  Returns {"summary": path of summary.md (process 0; None elsewhere), "report": path of
  report.html, "step_records": seconds and peak memory of each step (`Run.step_records`), and
  each step's result by name}.
  """
  sharding.maybe_initialize_distributed(config.get("distributed") or None)
  a = config.analysis
  checks.steps(__name__, a.steps)  # every name before minutes of extraction
  # (the models' checkpoints: in ensure_stores, for the stores it must extract)
  checks.dataset(config.dataset)
  context = Run("mahaut_baroni", workdir, config=config, total_steps=1 + len(step_names(a.steps)))
  with context.step("representations"):
    source, ids, paths = ensure_stores(config, context.workdir)
    reps = load(config, source, ids, paths)
  if context.is_writer:  # the stores every step reads, for the step records (`Run`)
    context.fingerprints.update({f"store/{m}": store_fingerprint(p) for m, p in paths.items()})
  context.report.title = "Mahaut & Baroni (2026) reproduction: " + ", ".join(
      m if reps.model_types[m] == m else f"{m} ({reps.model_types[m]})" for m in reps.models)
  context.section("Setup").note(
      f"{reps.n} images sampled (seed {config.seed}) from {dataset_text(source.describe())}; "
      "layers per model: "
      + ", ".join(f"{m} {len(reps.layers[m])}" for m in reps.models)
      + "; early / middle / late: " + "; ".join(
          f"{m} " + "/".join(reps.layer_names[m][i] for i in reps.representative[m])
          for m in reps.models))
  out: dict[str, Any] = context.run_steps(__name__, a.steps, reps, settings=lambda name: a[name])
  out["summary"] = context.report_paths["markdown"] if context.is_writer else None
  out["report"] = context.report_paths["html"]
  out["step_records"] = context.step_records
  context.finish(headline=f"summary: {out['summary']}" if out["summary"] else None)
  return out
