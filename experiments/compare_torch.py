"""Compare our Flax port of a checkpoint with the transformers torch model, layer by layer.

  python -m experiments.compare_torch --model=facebook/dinov2-base
  python -m experiments.compare_torch --model=/path/to/checkpoint --n_images=8 --sublayers

Prints one row per hidden state and per block (with --sublayers also attention / MLP branches,
residual stream and attention probabilities): max absolute error, max |torch|, relative error.
Exits with status 1 when any row exceeds max_abs > rtol * max|torch| + atol, and 2 when the
checkpoint is not found (the message gives the command that fetches it). The logic lives in
repsim_jax.models.parity.compare_checkpoint.
"""
from __future__ import annotations

from absl import app, flags

_MODEL = flags.DEFINE_string("model", None, "checkpoint directory or hub id (local HF cache)",
                             required=True)
_N_IMAGES = flags.DEFINE_integer("n_images", 4, "synthetic images to run")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None,
                                   "side of the synthetic images before preprocessing (default "
                                   "256, or the config's image size without a preprocessor)")
_RTOL = flags.DEFINE_float("rtol", 1e-4, "relative tolerance (of max |torch| per tensor)")
_ATOL = flags.DEFINE_float("atol", 1e-6, "absolute tolerance floor")
_SUBLAYERS = flags.DEFINE_boolean("sublayers", False, "also compare attention/MLP branches, "
                                  "residual stream and attention probabilities")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "our compute dtype")
_SEED = flags.DEFINE_integer("seed", 0, "seed of the synthetic images")
_NO_CACHE = flags.DEFINE_boolean("no_cache", False, "convert again instead of using the cache")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "converted-parameter cache (default "
                                 "~/.cache/repsim_jax/converted)")


def main(argv) -> int:
  del argv
  import jax.numpy as jnp

  from repsim_jax.models import parity

  try:
    result = parity.compare_checkpoint(
        _MODEL.value, n_images=_N_IMAGES.value, image_size=_IMAGE_SIZE.value, rtol=_RTOL.value,
        atol=_ATOL.value, sublayers=_SUBLAYERS.value, dtype=getattr(jnp, _DTYPE.value),
        seed=_SEED.value, use_cache=not _NO_CACHE.value, cache_dir=_CACHE_DIR.value)
  except (FileNotFoundError, ImportError) as e:  # the message has the fetch / install command
    print(f"error: {e}")
    return 2
  print(f"{result.model_type} from {result.checkpoint}\ninputs: {result.inputs}\n")
  print(parity.format_table(result.rows))
  bad = [r for r in result.rows if not r.ok]
  worst = max(result.rows, key=lambda r: r.rel)
  print(f"\n{len(result.rows) - len(bad)}/{len(result.rows)} within rtol={_RTOL.value:g} "
        f"atol={_ATOL.value:g}; worst {worst.name} rel={worst.rel:.2e}")
  if bad:
    print("FAIL: " + ", ".join(r.name for r in bad[:10]) + (" ..." if len(bad) > 10 else ""))
    return 1
  return 0


if __name__ == "__main__":
  app.run(main)
