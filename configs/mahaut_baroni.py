r"""Representations for Mahaut & Baroni (2026): every block of each model, 1e4 ImageNet-21K val images.

Main models (Table 1): iGPT-L, DINOv2-giant, ConvNeXt-XL (22k), ViT-L/16.

  python -m experiments.extract --config=configs/mahaut_baroni.py --workdir=runs/mb \
      --config.dataset.root=/data/imagenet21k/val

Appendix A variants (Table 2), one store per model under <workdir>/stores/<name>:

  python -m experiments.extract --config=configs/mahaut_baroni.py:dinov3 --workdir=runs/mb_dinov3
  python -m experiments.extract --config=configs/mahaut_baroni.py:convnext --workdir=runs/mb_convnext
  python -m experiments.extract --config=configs/mahaut_baroni.py:vit_sizes --workdir=runs/mb_vit
  python -m experiments.extract --config=configs/mahaut_baroni.py:models=dinov2_g+vit_l,n=100000 \
      --workdir=runs/mb_100k    # the neighbourhood figures use 1e5 images

ManyNames semantic coherence (Sec. 3.2; the images are Visual Genome's):

  python -m experiments.extract --config=configs/mahaut_baroni.py:manynames --workdir=runs/mb_mn \
      --config.dataset.tsv=/data/manynames/manynames-en.tsv --config.dataset.image_dir=/data/vg

Smoke run in seconds (tiny random checkpoints, generated images):

  python -m experiments.extract --config=configs/mahaut_baroni.py:runlocal --workdir=/tmp/mb_local

Rerunning a command resumes it; a changed config against an existing store is refused.
Pooling: family defaults (`repsim_jax.pooling.DEFAULT_POOLING`): mean over patch tokens for ViT,
DINOv2, DINOv3 (CLS and registers excluded), mean over the sequence for iGPT, global average
pooling for the ConvNeXts. Early/middle/late layers: `repsim_jax.extract.early_middle_late`.
"""
from __future__ import annotations

from configs.extract_common import apply_overrides, base, model, parse_arg, runlocal, tiny

MAIN = {
    "igpt_l": model("igpt_l", "openai/imagegpt-large"),
    "dinov2_g": model("dinov2_g", "facebook/dinov2-giant"),
    "convnext_xl": model("convnext_xl", "facebook/convnext-xlarge-224-22k"),
    "vit_l": model("vit_l", "google/vit-large-patch16-224"),
}

APPENDIX = {
    # DINOv3 ViTs (4 register tokens each). The paper's "XL" (1136.5M) matches no released
    # DINOv3 exactly; ViT-H+/16 is the largest below 7B.
    "dinov3_s": model("dinov3_s", "facebook/dinov3-vits16-pretrain-lvd1689m"),
    "dinov3_b": model("dinov3_b", "facebook/dinov3-vitb16-pretrain-lvd1689m"),
    "dinov3_l": model("dinov3_l", "facebook/dinov3-vitl16-pretrain-lvd1689m"),
    "dinov3_xl": model("dinov3_xl", "facebook/dinov3-vith16plus-pretrain-lvd1689m"),
    "dinov3_convnext_s": model("dinov3_convnext_s", "facebook/dinov3-convnext-small-pretrain-lvd1689m"),
    "dinov3_convnext_b": model("dinov3_convnext_b", "facebook/dinov3-convnext-base-pretrain-lvd1689m"),
    "dinov3_convnext_l": model("dinov3_convnext_l", "facebook/dinov3-convnext-large-pretrain-lvd1689m"),
    "convnext_s": model("convnext_s", "facebook/convnext-small-224"),
    "convnext_b": model("convnext_b", "facebook/convnext-base-224-22k"),
    "convnext_l": model("convnext_l", "facebook/convnext-large-224-22k"),
    # ConvNeXt V2 (FCMAE pre-training, 22k fine-tuned); the paper lists 350.2M, V2-L is the
    # closest released size with a 22k model.
    "convnextv2_l": model("convnextv2_l", "facebook/convnextv2-large-22k-224"),
    # The paper's ViT "S" (5.7M) is the size of ViT-Ti/16; google/ publishes B and L only.
    "vit_s": model("vit_s", "WinKawaks/vit-tiny-patch16-224"),
    "vit_b": model("vit_b", "google/vit-base-patch16-224"),
}

CATALOGUE = {**MAIN, **APPENDIX}

# Tiny random checkpoints of the four main families (runlocal; `runlocal,models=vit+dinov2`).
RUNLOCAL = {"vit": tiny("vit", "vit"), "dinov2": tiny("dinov2", "dinov2"),
            "convnext": tiny("convnext", "convnext"), "igpt": tiny("igpt", "imagegpt")}

VARIANTS = {
    "": list(MAIN),
    "dinov3": ["dinov3_s", "dinov3_b", "dinov3_l", "dinov3_xl"],
    "convnext": ["convnext_s", "convnext_b", "convnext_l", "convnext_xl", "convnextv2_l",
                 "dinov3_convnext_l"],
    "dinov3_convnext": ["dinov3_convnext_s", "dinov3_convnext_b", "dinov3_convnext_l"],
    "vit_sizes": ["vit_s", "vit_b", "vit_l"],
    "manynames": list(MAIN),
}


def get_config(arg: str | None = None):
  variant, overrides = parse_arg(arg)
  config = base([], {"kind": "image_folder", "root": "data/imagenet21k/val", "class_names": None})
  if variant == "runlocal":
    config = runlocal(config, list(RUNLOCAL.values()))
    return apply_overrides(config, overrides, RUNLOCAL)
  elif variant in VARIANTS:
    config.models = [CATALOGUE[m] for m in VARIANTS[variant]]
    if variant == "manynames":
      config.dataset = {"kind": "manynames", "tsv": "data/manynames/manynames-en.tsv",
                        "image_dir": "data/visual_genome", "crop_to_object": False}
      config.n_images = None  # every ManyNames object
  else:
    raise ValueError(f"unknown variant {variant!r}; expected one of "
                     f"{sorted(v or '<default>' for v in VARIANTS) + ['runlocal']}")
  return apply_overrides(config, overrides, CATALOGUE)
