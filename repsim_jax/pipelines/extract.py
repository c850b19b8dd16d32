"""The extraction command: every model of a config into its ActivationStore, and a report.

`run(config, workdir)` is `repsim_jax.extraction.extract.extract_stores` (resumable: rerun the
same command after an interruption) with the run's closing summary and a report of the stores
(models, layers, rows, skipped images).
"""
from __future__ import annotations

import os
from typing import Any

from repsim_jax.extraction.extract import extract_stores
from repsim_jax.extraction.store import ActivationStore
from repsim_jax.pipelines import checks
from repsim_jax.pipelines.run import Run


def run(config: Any, workdir: str) -> dict[str, str]:
  """Extracts the stores of `config` under `<workdir>/stores`; returns model name -> store path."""
  checks.models(config.models)
  checks.dataset(config.dataset)
  context = Run("extract", workdir, config=config,
                title="Extraction: " + ", ".join(m.name for m in config.models))
  with context.step("extract " + ", ".join(m.name for m in config.models)):
    out = extract_stores(config, context.workdir)
  section = context.section("Stores")
  rows = []
  for name, path in out.items():
    store = ActivationStore.open(path)
    rows.append([name, store.config["model"]["id"], len(store.layer_names), store.num_rows,
                 store.dtype, len(store.skipped_ids), os.path.relpath(path, context.workdir)])
  section.table(["model", "checkpoint", "layers", "images", "dtype", "skipped", "store"], rows)
  section.note(f"{store.num_rows} images of {store.config['dataset']}" if out else "no models")
  context.finish(headline=f"{len(out)} stores under {os.path.join(context.workdir, 'stores')}")
  return out
