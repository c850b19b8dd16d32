"""What the config files share: the one `parse_arg` dialect, and the model entries, defaults and
smoke-run sizes of the configs that extract (mahaut_baroni.py, raghu.py).

Every `get_config(arg)` reads `arg` with `parse_arg`, big_vision style: "variant,key=value,...":
at most one bare word, a variant of that config (every config has `runlocal`, a smoke run in
seconds to minutes on a CPU), and `key=value` settings it declares.

Catalogue entries are module-level ConfigDicts; a config always gets deep copies of them
(`base`, `runlocal`, `apply_overrides`), so changing one config's model entry (a test, a
variant, a notebook) never changes the catalogue or the next config made from it.
"""
from __future__ import annotations

import ast
import copy
from typing import Any, Sequence

import ml_collections

from repsim_jax.names import did_you_mean


def model(name: str, checkpoint: str | None = None, **kwargs) -> ml_collections.ConfigDict:
  """One model entry: `name` (store folder), `checkpoint` (hub id or directory), and optional
  pooling / num_prefix_tokens / layers / dtype (None: family defaults, every block). backend:
  "jax" (our NNX ports) or "torch" (transformers' own model in PyTorch, for any other vision
  checkpoint; `repsim_jax.models.torch_backend`)."""
  entry = {"name": name, "checkpoint": checkpoint, "pooling": None, "num_prefix_tokens": None,
           "layers": None, "dtype": "float32", "tiny_random": False, "model_type": None,
           "image_size": 32, "backend": "jax"}
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
  # True: resume a store under another numeric path (lowering, device, dtype, jax version) than
  # its rows were written with; the store records every path used. False: refused.
  config.allow_numeric_path_change = False
  config.num_threads = 16         # decode/preprocess threads per host
  config.distributed = False      # True: jax.distributed.initialize() (multi-host)
  return resumable(config)


def resumable(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The fields of a pipeline that resumes by step (`repsim_jax.pipelines.run`): a rerun reuses
  every step whose record matches; `recompute="a,b"` forces steps (and those reading them),
  `resume=False` forces every step."""
  config.resume = True
  config.recompute = ""
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


def parse_arg(arg: str | None, *, variants: Sequence[str] = ("runlocal",),
              **defaults: Any) -> tuple[str, dict[str, Any]]:
  """Parses "runlocal,n=2000,models=vit_l+dinov2_g" into (variant, values over `defaults`).

  A bare word is the variant (one of `variants`; "" when none is given); `key=value` sets a key
  of `defaults`, its value a Python literal when it parses, else the string. An unknown variant
  or key is an error that lists the known ones.
  """
  variant, values = "", dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, eq, value = item.partition("=")
    key = key.strip()
    if not eq:
      if key not in variants:
        raise ValueError(f"unknown config variant {key!r};{did_you_mean(key, variants)} known: "
                         f"{', '.join(sorted(v for v in variants if v)) or 'none'}")
      if variant:
        raise ValueError(f"config variants {variant!r} and {key!r}: give at most one")
      variant = key
      continue
    if key not in values:
      raise ValueError(f"unknown config argument {key!r};{did_you_mean(key, values)} "
                       f"known: {', '.join(sorted(values))}")
    try:
      values[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      values[key] = value
  return variant, values


def apply_overrides(config: ml_collections.ConfigDict, values: dict[str, Any],
                    catalogue: dict[str, ml_collections.ConfigDict]) -> ml_collections.ConfigDict:
  """The `parse_arg` values of an extraction config: `models=a+b` picks models from
  `catalogue`; `n=...`, `seed=...` set the sample (None: unchanged)."""
  if values.get("models"):
    names = str(values["models"]).split("+")
    unknown = [m for m in names if m not in catalogue]
    if unknown:
      hints = "".join(did_you_mean(m, catalogue) for m in unknown)
      raise ValueError(f"unknown models {unknown}; known: {sorted(catalogue)}.{hints}")
    config.models = copies(catalogue[m] for m in names)
  if values.get("n") is not None:
    config.n_images = int(values["n"])
  if values.get("seed") is not None:
    config.seed = int(values["seed"])
  return config


def extraction_arg(arg: str | None, variants: Sequence[str]) -> tuple[str, dict[str, Any]]:
  """`parse_arg` for the extraction configs: a variant, models=a+b, n=..., seed=..."""
  return parse_arg(arg, variants=variants, models="", n=None, seed=None)
