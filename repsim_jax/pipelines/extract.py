"""The extraction stage: every model of a config into its ActivationStore.

`extract_stores(config, workdir)` extracts (or resumes) every model's store; `ensure_stores`
extracts only the models without a complete, matching store (the first stage of the pipelines
that read stores: Mahaut & Baroni, the demo); `run(config, workdir)` is the extraction command:
`extract_stores` with the run's closing summary and a report of the stores (models, layers,
rows, skipped images). The library underneath (`repsim_jax.extraction.extract`: `open_model`,
`extract`) takes models, sources and stores; this module reads the config, starts
`jax.distributed` when asked and saves results.
"""
from __future__ import annotations

import copy
import os
import time
from typing import Any, Sequence

import jax
import numpy as np
from absl import logging

from repsim_jax import data as data_lib
from repsim_jax import sharding
from repsim_jax.extraction.extract import extract, model_store_config, open_model
from repsim_jax.extraction.store import ActivationStore, IncompleteStoreError
from repsim_jax.paths import absolute
from repsim_jax.pipelines import checks
from repsim_jax.pipelines.run import Run
from repsim_jax.results import save_result, to_jsonable
from repsim_jax.sharding import maybe_initialize_distributed, row_mesh


def extract_stores(config: Any, workdir: str) -> dict[str, str]:
  """Extracts every model of `config.models` on the sampled images into `<workdir>/stores/<name>`.

  Rerunning the same command resumes each store; a changed config is refused by the store, and
  so is a resume under another numeric path (lowering, device, dtype, jax version: see
  `repsim_jax.extraction.extract.numeric_path`) unless `config.allow_numeric_path_change`.
  Returns model name -> store path.
  """
  maybe_initialize_distributed(config.get("distributed") or None)
  workdir = absolute(workdir)
  os.makedirs(workdir, exist_ok=True)
  source = data_lib.from_config(config.dataset)
  ids = data_lib.sample_ids(source.ids, config.get("n_images"), seed=config.seed)
  mesh = row_mesh(jax.local_devices())
  allow_change = bool(config.get("allow_numeric_path_change", False))
  out = {}
  for model_config in config.models:
    name = model_config.name
    model = open_model(model_config, workdir)
    store_config = model_store_config(model_config, model, source, ids, seed=config.seed)
    store_path = os.path.join(workdir, "stores", name)
    store = sharding.writer_first(
        lambda: ActivationStore.open_or_create(store_path, config=store_config, ids=ids,
                                               chunk_rows=config.chunk_rows,
                                               dtype=config.store_dtype,
                                               allow_numeric_path_change=allow_change),
        f"store {store_path}")
    start = time.perf_counter()
    extract(model.module, source, model.preprocess, store, batch_size=config.batch_size,
            pooling=model.pooling, num_prefix_tokens=model.num_prefix_tokens,
            layers=model_config.get("layers"), mesh=mesh,
            device_batch=config.get("device_batch"), skip_bad_images=config.skip_bad_images,
            num_threads=config.num_threads, metrics_path=os.path.join(workdir, "metrics.jsonl"))
    seconds = time.perf_counter() - start
    if sharding.is_writer():
      dims = np.array([int(np.prod(store.layer_specs[n]["shape"])) for n in store.layer_names])
      save_result(workdir, f"extract_{name}", {"layer_dims": dims}, config=config,
                  inputs={"checkpoint": store_config["model"]["fingerprint"]},
                  extra={"store": store_path, "layers": store.layer_names, "n": len(ids),
                         "seconds": seconds, "skipped_ids": store.skipped_ids,
                         "numeric_paths": store.numeric_paths})
    out[name] = store_path
  return out


def _model_id(model_config) -> str:
  return model_config.get("checkpoint") or f"tiny-random-{model_config.get('model_type')}"


def _reusable(path: str, ids: Sequence[str], dataset: dict, model_config) -> bool:
  """A complete store made from the same images, dataset and model id."""
  try:
    store = ActivationStore.open(path)
  except (FileNotFoundError, IncompleteStoreError):
    return False
  same = (store.ids == list(ids) and store.config.get("dataset") == to_jsonable(dataset)
          and store.config["model"]["id"] == _model_id(model_config))
  if not same:
    logging.info("stores: %s differs from the config (images, dataset or model); the extraction "
                 "will report how", path)
  return same


def ensure_stores(config, workdir: str, *, source=None) -> tuple[Any, list[str], dict[str, str]]:
  """(source, sampled ids, model -> store path), extracting the models without a complete store.

  A store is reused when it is complete and holds the same image ids, dataset and model id (its
  checkpoint fingerprint was checked when it was written); anything else goes through
  `extract_stores`, which resumes partial stores and refuses mismatched ones.
  `source`: the source of `config.dataset` when the caller already opened it.
  """
  source = source if source is not None else data_lib.from_config(config.dataset)
  ids = data_lib.sample_ids(source.ids, config.get("n_images"), seed=config.seed)
  paths = {m.name: os.path.join(workdir, "stores", m.name) for m in config.models}
  dataset = source.describe()
  # The writer decides which stores to extract (a host whose view of the shared disk lagged
  # would otherwise skip an extraction the others run, and their collectives would hang).
  todo_mask = sharding.broadcast_from_writer(
      np.array([not _reusable(paths[m.name], ids, dataset, m) for m in config.models],
               np.int32))
  todo = [m for m, t in zip(config.models, todo_mask) if t]
  reused = [m.name for m in config.models if m not in todo]
  if reused:
    logging.info("stores: reusing the complete stores of %s under %s", ", ".join(reused), workdir)
  if todo:
    checks.models(config.models, only={m.name for m in todo})  # before minutes of extraction
    logging.info("stores: extracting %s (%d images of %s)", ", ".join(m.name for m in todo),
                 len(ids), dataset.get("kind"))
    sub = copy.deepcopy(config)
    sub.models = todo
    extract_stores(sub, workdir)
  sharding.sync(f"stores of {workdir}")  # every host's chunks are written before any read
  return source, ids, paths


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
