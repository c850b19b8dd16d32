"""Pieces shared by the extraction configs (mahaut_baroni.py, raghu.py): defaults and arg parsing.

Catalogue entries are module-level ConfigDicts; a config always gets deep copies of them
(`base`, `runlocal`, `apply_overrides`), so changing one config's model entry (a test, a
variant, a notebook) never changes the catalogue or the next config made from it.
"""
from __future__ import annotations

import copy

import ml_collections


def model(name: str, checkpoint: str | None = None, **kwargs) -> ml_collections.ConfigDict:
  """One model entry: `name` (store folder), `checkpoint` (hub id or directory), and optional
  pooling / num_prefix_tokens / layers / dtype (None: family defaults, every block)."""
  entry = {"name": name, "checkpoint": checkpoint, "pooling": None, "num_prefix_tokens": None,
           "layers": None, "dtype": "float32", "tiny_random": False, "model_type": None,
           "image_size": 32}
  entry.update(kwargs)
  return ml_collections.ConfigDict(entry)


def tiny(name: str, model_type: str, **kwargs) -> ml_collections.ConfigDict:
  """A tiny random checkpoint of `model_type`, written into the workdir on first use."""
  return model(name, None, tiny_random=True, model_type=model_type, **kwargs)


def copies(entries) -> list[ml_collections.ConfigDict]:
  """Deep copies of catalogue entries, for a config of their own."""
  return [copy.deepcopy(e) for e in entries]


def base(models: list[ml_collections.ConfigDict], dataset: dict) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.models = copies(models)
  config.dataset = ml_collections.ConfigDict(dataset)
  config.n_images = 10_000        # None: every image of the dataset
  config.seed = 0                 # sampler seed: which images
  config.batch_size = 64          # global, over all local devices
  config.device_batch = None      # rows per device per forward; fix it to compare device counts
  config.chunk_rows = 1024        # rows per on-disk chunk: resume unit and host-memory bound
  config.store_dtype = "float32"  # or "float16"
  config.skip_bad_images = False  # True: record bad images (NaN rows) instead of stopping
  config.num_threads = 16         # decode/preprocess threads per host
  config.distributed = False      # True: jax.distributed.initialize() (multi-host)
  return config


def runlocal(config: ml_collections.ConfigDict, models: list[ml_collections.ConfigDict]):
  """Shrinks `config` to a smoke run: tiny random checkpoints, generated images, seconds on CPU."""
  config.models = copies(models)
  config.dataset = ml_collections.ConfigDict({"kind": "generated", "n": 48, "size": (40, 36),
                                              "num_classes": 4, "seed": 0})
  config.n_images = 32
  config.batch_size = 8
  config.chunk_rows = 16
  config.num_threads = 2
  return config


def parse_arg(arg: str | None) -> tuple[str, dict[str, str]]:
  """"variant" or "variant,key=value,..." or "key=value,..." -> (variant, overrides)."""
  variant, overrides = "", {}
  for part in (arg or "").split(","):
    if not part:
      continue
    if "=" in part:
      key, value = part.split("=", 1)
      overrides[key] = value
    else:
      variant = part
  return variant, overrides


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict[str, str],
                    catalogue: dict[str, ml_collections.ConfigDict]) -> ml_collections.ConfigDict:
  """`models=a+b` picks models from `catalogue`; `n=...`, `seed=...` set the sample."""
  for key, value in overrides.items():
    if key == "models":
      unknown = [m for m in value.split("+") if m not in catalogue]
      if unknown:
        raise ValueError(f"unknown models {unknown}; known: {sorted(catalogue)}")
      config.models = copies(catalogue[m] for m in value.split("+"))
    elif key == "n":
      config.n_images = int(value)
    elif key == "seed":
      config.seed = int(value)
    else:
      raise ValueError(f"unknown config arg {key!r}; expected models=, n=, seed=")
  return config
