r"""Our Flax ports against the transformers torch model, layer by layer (experiments.compare_torch).

One checkpoint (a transformers checkpoint directory, or a hub id in the local Hugging Face cache):
  python -m experiments.compare_torch --model=facebook/dinov2-base [--sublayers]

Offline, on a tiny transformers checkpoint of every ported family (written under --workdir by
transformers torch itself; needs the torch extra: pip install -e ".[torch]"):
  python -m experiments.compare_torch --config=configs/compare_torch.py:runlocal

Variants (after the colon): runlocal; model_types=vit+swin (tiny checkpoints of these types).
"""
from __future__ import annotations

import ml_collections

from configs.common import parse_arg

FAMILIES = "families"  # in `tiny`: one model type of every ported family


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant, a = parse_arg(arg, model_types="")
  c = ml_collections.ConfigDict()
  c.models = ()  # checkpoint directories or hub ids (--model=... sets one)
  # model types to write tiny transformers checkpoints of under the workdir, and compare:
  # "families" = one of every ported family, or "vit+swin"
  c.tiny = str(a["model_types"])
  c.image_size = 32  # of the tiny checkpoints
  c.n_images = 4  # synthetic images through both models
  c.input_size = None  # side of the synthetic images before preprocessing (None: 256)
  c.rtol = 1e-4  # of max |torch| per tensor
  c.atol = 1e-6
  c.sublayers = False  # also attention / MLP branches, residual stream, attention probabilities
  c.dtype = "float32"  # our compute dtype (float32 | bfloat16)
  c.seed = 0
  c.use_cache = True  # the converted-parameter cache
  c.cache_dir = None
  if variant == "runlocal":
    c.tiny = c.tiny or FAMILIES
    c.n_images = 2
  return c
