r"""Representations for Raghu et al. (2021), "Do Vision Transformers See Like CNNs?".

ViT-B/32, B/16, L/16, H/14 and BiT ResNet50x1, ResNet152x2. The paper's models are JFT-300M
pre-trained (not public); these are the public ImageNet-21k checkpoints of the same
architectures. Per-block vectors for CKA (mean over patch tokens / global average pooling):

  python -m experiments.extract --config=configs/raghu.py --workdir=runs/raghu \
      --config.dataset.data_dir=/data/tfds

Per-token representations for localization and per-token probes (small N, `tokens` pooling):

  python -m experiments.extract --config=configs/raghu.py:tokens,n=1000 --workdir=runs/raghu_tok

Smoke run in seconds (tiny random checkpoints, generated images):

  python -m experiments.extract --config=configs/raghu.py:runlocal --workdir=/tmp/raghu_local

R152x2 has no transformers checkpoint on the hub (timm: resnetv2_152x2_bit.goog_in21k); convert it to
a directory (config.json + safetensors) and set CATALOGUE["bit_r152x2"] to that path, or leave it
out: --config=configs/raghu.py:models=vit_b32+vit_b16+vit_l16+vit_h14+bit_r50x1
"""
from __future__ import annotations

from configs.extract_common import apply_overrides, base, model, parse_arg, runlocal, tiny

CATALOGUE = {
    "vit_b32": model("vit_b32", "google/vit-base-patch32-224-in21k"),
    "vit_b16": model("vit_b16", "google/vit-base-patch16-224-in21k"),
    "vit_l16": model("vit_l16", "google/vit-large-patch16-224-in21k"),
    "vit_h14": model("vit_h14", "google/vit-huge-patch14-224-in21k"),
    "bit_r50x1": model("bit_r50x1", "google/bit-50"),
    "bit_r152x2": model("bit_r152x2", "google/bit-152x2"),  # not on the hub; see docstring
}

RUNLOCAL = {"vit": tiny("vit", "vit"), "bit": tiny("bit", "bit")}


def get_config(arg: str | None = None):
  variant, overrides = parse_arg(arg)
  config = base(list(CATALOGUE.values()),
                {"kind": "tfds", "name": "imagenet2012", "split": "validation", "data_dir": None})
  config.n_images = 10_000
  if variant == "runlocal":
    config = runlocal(config, list(RUNLOCAL.values()))
    return apply_overrides(config, overrides, RUNLOCAL)
  elif variant == "tokens":
    for entry in config.models:
      entry.pooling = "tokens"
    config.n_images = 1000
    config.store_dtype = "float16"  # [N, T, D] per layer
    config.chunk_rows = 128
  elif variant:
    raise ValueError(f"unknown variant {variant!r}; expected '', 'tokens' or 'runlocal'")
  return apply_overrides(config, overrides, CATALOGUE)
