r"""Compare our Flax port of a checkpoint with the transformers torch model, layer by layer.

  python -m experiments.compare_torch --model=facebook/dinov2-base
  python -m experiments.compare_torch --model=/path/to/checkpoint --n_images=8 --sublayers
  python -m experiments.compare_torch --config=configs/compare_torch.py:runlocal   # offline

With one checkpoint it prints one row per hidden state and per block (with --sublayers also
attention / MLP branches, residual stream and attention probabilities): max absolute error,
max |torch|, relative error. With several (the runlocal variant writes a tiny transformers
checkpoint of every ported family under --workdir) it prints one table, one row per checkpoint.
Exits with status 1 when any row exceeds max_abs > rtol * max|torch| + atol, and 2 when a
checkpoint is not found or is not a transformers checkpoint (the message says what to do). The
flags below override the config's fields of the same meaning. The logic lives in
repsim_jax.models.parity.compare_checkpoint; see configs/compare_torch.py.
"""
from __future__ import annotations

import collections
import os

from absl import flags, logging

from experiments import common
from repsim_jax.paths import absolute
from repsim_jax.pipelines import checks, cli

_CONFIG = common.define_config(
    os.path.join(os.path.dirname(__file__), "..", "configs", "compare_torch.py"),
    "configs/compare_torch.py[:variant]; e.g. --config=configs/compare_torch.py:runlocal")
_WORKDIR = flags.DEFINE_string(
    "workdir", "runs/compare_torch",
    "where tiny checkpoints (runlocal) and their conversions are written")
_MODEL = flags.DEFINE_string("model", None, "checkpoint directory or hub id (local HF cache)")
_N_IMAGES = flags.DEFINE_integer("n_images", None, "synthetic images to run (config: 4)")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None,
                                   "side of the synthetic images before preprocessing (default "
                                   "256, or the config's image size without a preprocessor)")
_RTOL = flags.DEFINE_float("rtol", None, "relative tolerance (of max |torch| per tensor; 1e-4)")
_ATOL = flags.DEFINE_float("atol", None, "absolute tolerance floor (1e-6)")
_SUBLAYERS = flags.DEFINE_boolean("sublayers", None, "also compare attention/MLP branches, "
                                  "residual stream and attention probabilities")
_DTYPE = flags.DEFINE_enum("dtype", None, ["float32", "bfloat16"], "our compute dtype (float32)")
_SEED = flags.DEFINE_integer("seed", None, "seed of the synthetic images (0)")
_NO_CACHE = flags.DEFINE_boolean("no_cache", False, "convert again instead of using the cache")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "converted-parameter cache (default "
                                 "~/.cache/repsim_jax/converted)")


def _settings():
  """The config (default configs/compare_torch.py) with the flags given on the command line."""
  from configs import compare_torch as compare_config
  config = _CONFIG.value if _CONFIG.value is not None else compare_config.get_config()
  config = config.copy_and_resolve_references()
  config.unlock()
  for flag, key in ((_N_IMAGES, "n_images"), (_IMAGE_SIZE, "input_size"), (_RTOL, "rtol"),
                    (_ATOL, "atol"), (_SUBLAYERS, "sublayers"), (_DTYPE, "dtype"),
                    (_SEED, "seed"), (_CACHE_DIR, "cache_dir")):
    if flag.value is not None:
      config[key] = flag.value
  if _NO_CACHE.value:
    config.use_cache = False
  if _MODEL.value:
    config.models, config.tiny = (_MODEL.value,), ""
  return config


def family_model_types() -> list[str]:
  """One model type of every ported family: the first the registry lists of each family module."""
  from repsim_jax.models import registry
  by_family = collections.defaultdict(list)
  for model_type, module in registry.FAMILIES.items():
    by_family[module].append(model_type)
  return [types[0] for _, types in sorted(by_family.items())]


def _tiny_checkpoints(config, workdir: str) -> list[str]:
  """Writes (once) a tiny transformers checkpoint of each model type of `config.tiny`."""
  from configs.compare_torch import FAMILIES
  from repsim_jax.tiny_checkpoints import tiny_torch_checkpoint
  types = (family_model_types() if config.tiny == FAMILIES
           else [t for t in config.tiny.replace(",", "+").split("+") if t])
  paths = []
  for model_type in types:
    path = os.path.join(workdir, "checkpoints", model_type)
    if not os.path.exists(os.path.join(path, "config.json")):
      logging.info("compare_torch: writing a tiny transformers checkpoint of %s", model_type)
      tiny_torch_checkpoint(model_type, path, image_size=config.image_size, seed=config.seed)
    paths.append(path)
  return paths


def _compare(path: str, config, cache_dir: str | None):
  import jax.numpy as jnp

  from repsim_jax.models import parity
  return parity.compare_checkpoint(
      path, n_images=config.n_images, image_size=config.input_size, rtol=config.rtol,
      atol=config.atol, sublayers=config.sublayers, dtype=getattr(jnp, config.dtype),
      seed=config.seed, use_cache=config.use_cache, cache_dir=cache_dir)


def _print_one(result, config) -> int:
  from repsim_jax.models import parity
  print(f"{result.model_type} from {result.checkpoint}\ninputs: {result.inputs}\n")
  print(parity.format_table(result.rows))
  bad = [r for r in result.rows if not r.ok]
  worst = max(result.rows, key=lambda r: r.rel)
  print(f"\n{len(result.rows) - len(bad)}/{len(result.rows)} within rtol={config.rtol:g} "
        f"atol={config.atol:g}; worst {worst.name} rel={worst.rel:.2e}")
  if bad:
    print("FAIL: " + ", ".join(r.name for r in bad[:10]) + (" ..." if len(bad) > 10 else ""))
    return 1
  return 0


def summary_table(results) -> str:
  """One row per compared checkpoint: model type, tensors within tolerance, the worst tensor."""
  header = ["model type", "tensors within tolerance", "worst tensor", "its relative error", ""]
  rows = []
  for r in results:
    worst = max(r.rows, key=lambda row: row.rel)
    good = sum(row.ok for row in r.rows)
    rows.append([r.model_type, f"{good}/{len(r.rows)}", worst.name, f"{worst.rel:.1e}",
                 "ok" if good == len(r.rows) else "FAIL"])
  widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
  return "\n".join("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip()
                   for line in [header, *rows])


def main(argv) -> int:
  del argv
  verbose = "verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present
  cli.configure_output(verbose=verbose)  # no orbax / jax INFO chatter
  config = _settings()
  try:
    paths = list(config.models)
    cache_dir = config.cache_dir
    if config.tiny:
      workdir = checks.workdir(absolute(_WORKDIR.value))
      paths += _tiny_checkpoints(config, workdir)
      cache_dir = cache_dir or os.path.join(workdir, "converted")
    if not paths:
      raise checks.UserError("nothing to compare: give --model=<checkpoint directory or hub id>, "
                             "or --config=configs/compare_torch.py:runlocal for tiny checkpoints "
                             "of every ported family")
    results = []
    for path in paths:
      results.append(_compare(path, config, cache_dir))
      logging.info("compare_torch: %s: %d/%d tensors within tolerance", results[-1].model_type,
                   sum(r.ok for r in results[-1].rows), len(results[-1].rows))
  except Exception as e:  # pylint: disable=broad-except
    if not cli.is_user_error(e):
      raise
    print(f"error: {checks.message(e)}", flush=True)
    return 2
  if len(results) == 1:
    return _print_one(results[0], config)
  print(f"Our ports against transformers torch on {config.n_images} synthetic images "
        f"(rtol={config.rtol:g}, atol={config.atol:g}, {config.dtype}):\n")
  print(summary_table(results))
  return 1 if any(not r.ok for r in results) else 0


if __name__ == "__main__":
  common.main(main)
