r"""Representations for Mahaut & Baroni (2026): every block of each model, 1e4 ImageNet-21K val images.

Main models (Table 1): iGPT-L, DINOv2-giant, ConvNeXt-XL (22k), ViT-L/16.

  python -m experiments.extract --config=configs/mahaut_baroni.py --workdir=runs/mb \
      --config.dataset.root=/data/imagenet21k/val

Appendix A variants (Table 2), one store per model under <workdir>/stores/<name> (with
experiments.mahaut_baroni, their Fig. 1 grids are the appendix Figs. 6-9):

  python -m experiments.extract --config=configs/mahaut_baroni.py:dinov3 --workdir=runs/mb_dinov3
  python -m experiments.extract --config=configs/mahaut_baroni.py:convnext --workdir=runs/mb_convnext
  python -m experiments.extract --config=configs/mahaut_baroni.py:vit_sizes --workdir=runs/mb_vit
  python -m experiments.extract --config=configs/mahaut_baroni.py:models=dinov2_g+vit_l,n=100000 \
      --workdir=runs/mb_100k    # the neighbourhood figures use 1e5 images

ManyNames semantic coherence (Sec. 3.2; the images are Visual Genome's):

  python -m experiments.extract --config=configs/mahaut_baroni.py:manynames --workdir=runs/mb_mn \
      --config.dataset.tsv=/data/manynames/manynames-en.tsv --config.dataset.image_dir=/data/vg

The encoders other work compares (CLIP, SigLIP, MAE, DINOv2, DeiT, BEiT, Swin, ...; names in
`configs/encoders.py`) extend Figs. 1 and 10 by name, next to the paper's four or alone:

  python -m experiments.mahaut_baroni --config=configs/mahaut_baroni.py:encoders \
      --workdir=runs/mb_enc \
      --config.dataset.root=/data/imagenet21k/val
  python -m experiments.mahaut_baroni \
      --config=configs/mahaut_baroni.py:models=clip_l+dinov2_g+siglip_so400m \
      --workdir=runs/mb_clip --config.dataset.root=/data/imagenet21k/val

Smoke run in seconds (tiny random checkpoints, generated images):

  python -m experiments.extract --config=configs/mahaut_baroni.py:runlocal --workdir=/tmp/mb_local
  python -m experiments.extract --config=configs/mahaut_baroni.py:runlocal,models=clip+swin \
      --workdir=/tmp/mb_local_enc    # tiny versions of the other encoders (configs/encoders.py)

Every analysis and figure of the paper (extraction first, or reuse of complete stores; then II,
sample size / smoothness, neighbourhoods, low-level features, ManyNames semantic coherence,
per-class and out-of-domain probes, the cross-encoder subspaces, and <workdir>/report.html +
summary.md with ± for the II headline numbers), steps and settings in `config.analysis`:

  python -m experiments.mahaut_baroni --config=configs/mahaut_baroni.py --workdir=runs/mb \
      --config.dataset.root=/data/imagenet21k/val
  python -m experiments.mahaut_baroni --config=configs/mahaut_baroni.py:manynames \
      --workdir=runs/mb_mn \
      --config.dataset.tsv=/data/manynames/manynames-en.tsv --config.dataset.image_dir=/data/vg
  python -m experiments.mahaut_baroni --config=configs/mahaut_baroni.py:runlocal \
      --workdir=/tmp/mb_paper

Rerunning a command resumes it; a changed config against an existing store is refused. The
analysis steps resume too: a step whose settings and inputs are unchanged is reused from its
record (<workdir>/steps/), a changed setting recomputes its step and the steps reading it;
--config.recompute=probes,ood forces steps, --config.resume=false all of them.
Pooling: family defaults (`repsim_jax.extraction.pooling.DEFAULT_POOLING`): mean over patch
tokens for ViT, DINOv2, DINOv3 (CLS and registers excluded), mean over the sequence for iGPT,
global average pooling for the ConvNeXts. Early/middle/late layers:
`repsim_jax.extraction.representations.early_middle_late`.
"""
from __future__ import annotations

import ml_collections

from configs import encoders
from configs.common import apply_overrides, base, copies, extraction_arg, model, runlocal, tiny

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

CATALOGUE = {**MAIN, **APPENDIX, **encoders.ENCODERS}

# Tiny random checkpoints: the four main families by default (runlocal), every other ported
# family by name (`runlocal,models=vit+clip+swin`).
RUNLOCAL_MAIN = {"vit": tiny("vit", "vit"), "dinov2": tiny("dinov2", "dinov2"),
                 "convnext": tiny("convnext", "convnext"), "igpt": tiny("igpt", "imagegpt")}
RUNLOCAL = {**RUNLOCAL_MAIN, **encoders.TINY}

VARIANTS = {
    "": list(MAIN),
    "dinov3": ["dinov3_s", "dinov3_b", "dinov3_l", "dinov3_xl"],
    "convnext": ["convnext_s", "convnext_b", "convnext_l", "convnext_xl", "convnextv2_l",
                 "dinov3_convnext_l"],
    "dinov3_convnext": ["dinov3_convnext_s", "dinov3_convnext_b", "dinov3_convnext_l"],
    "vit_sizes": ["vit_s", "vit_b", "vit_l"],
    "manynames": list(MAIN),
    "encoders": list(MAIN) + encoders.MOST_USED,
}


STEPS = ("imbalance", "sample_size", "neighbourhoods", "lowlevel", "semantic", "probes", "ood",
         "subspace")


def analysis(local: bool = False) -> ml_collections.ConfigDict:
  """Settings of `experiments.mahaut_baroni` (`repsim_jax.pipelines.mahaut_baroni.run`), the
  paper's by default: the steps to run, in order (each a module of that package), and one group
  of settings per step, named like it."""
  a = ml_collections.ConfigDict()
  a.steps = STEPS
  # Layers are read from the stores when a step needs them (neighbourhoods: the early / middle /
  # late layers only), through an LRU cache of layer_cache_mb MiB shared by the models;
  # lazy_layers=False loads every layer up front (1e5 images x 1536 dims x many layers ~ 60 GB).
  a.lazy_layers = True
  a.layer_cache_mb = 1024
  # II (Figs. 1, 10): n=None uses every extracted image (paper: 1e4), else a seeded subsample.
  # by_model_pair: one engine call per ordered model pair, two models' layers in memory at a time
  # (same numbers, M times the neighbour passes), instead of one call over every layer.
  # n_boot > 0 gives the headline numbers (largest own-layer II, smoothness) their `confidence`
  # interval (`imbalance_bootstrap`'s default: split halves and quarters, seeded by `seed`; the
  # n_boot bootstrap replicates are saved beside it), shown as ± and shaded in Fig. 1's A → A
  # panels: each model's representative rows and the row of its largest II only, 4 + L distance
  # passes per model for all replicates, plus N^2 weighted counts per layer and replicate
  # (n_boot + 150 of them; the main cost on CPU); n_boot=0 turns them off.
  a.imbalance = {"n": None, "seed": 0, "k": 1, "metric": "euclidean",
                 "ties": "min", "memory_budget_mb": 1024, "heatmaps": True,
                 "by_model_pair": False, "n_boot": 200, "confidence": 0.95}
  # App. B (Figs. 11, 12): II on n_subsamples random subsamples per size; sizes above the
  # extracted N are left out (extract n=100000 for the paper's largest sizes).
  a.sample_size = {"sizes": (100, 300, 1000, 3000, 10_000, 30_000, 100_000),
                   "n_subsamples": 10, "seed": 0}
  # Figs. 2, 15-17: queries are image ids (the paper's dog, martini, geese, flower) or, when
  # empty, n_queries seeded random images; k neighbours by cosine among all extracted images.
  a.neighbourhoods = {"queries": (), "n_queries": 4, "seed": 0, "k": 9,
                      "metric": "cosine", "thumbnail": 112}
  # Figs. 3, 14: n_images (paper 2k) resized to image_size for the features; group_size images
  # per low / middle / high group; k neighbours. Canny on the grey image with scikit-image's
  # float defaults (sigma 1, thresholds 0.1 / 0.2).
  a.lowlevel = {"n_images": 2000, "seed": 0, "image_size": (224, 224),
                "group_size": 100, "k": 10, "metric": "cosine", "sigma": 1.0,
                "low_threshold": 0.1, "high_threshold": 0.2, "batch_size": 64}
  # Fig. 4 (only when config.dataset is ManyNames): 50 images, 10 neighbours.
  a.semantic = {"n_queries": 50, "k": 10, "seed": 0, "metric": "cosine"}
  # Fig. 5: a balanced binary probe per class and layer, 10 % held out. dataset None = the main
  # images with their `label_key` labels; the paper probes the ImageNet-1k validation set.
  a.probes = {"label_key": "label", "min_images_per_class": 10,
              "test_fraction": 0.1, "seed": 0, "probe_batch_size": 32, "n_images": None,
              "dataset": {"kind": "tfds", "name": "imagenet2012", "split": "validation",
                          "data_dir": None}}
  # Fig. 13: multi-class probes on the labelled test splits (tfds, array_record; a missing dataset
  # is skipped with its `tfds build` command), shared hyperparameters for every layer.
  a.ood = {"n_images": None, "test_fraction": 0.2, "l2": 1e-3,
           "iterations": 30, "seed": 0,
           "datasets": [{"kind": "tfds", "name": n, "split": s, "data_dir": None,
                         "label_key": "label"}
                        for n, s in (("cifar100", "test"), ("food101", "validation"),
                                     ("stl10", "test"))]}
  # Not in the paper: per model the top-k PCA of one layer ("early" / "middle" / "late", or a
  # relative depth in [0, 1]); between every pair of models Procrustes similarity and CKA of the
  # projections against n_perm permutations of the image correspondence, and their median.
  a.subspace = {"layer": "late", "k": 16, "n_perm": 200, "seed": 0, "alpha": 0.05,
                "debiased": False}
  if local:  # a few dozen generated images: every step runs, in seconds
    a.imbalance.n_boot = 20
    a.sample_size.sizes = (12, 24)
    a.sample_size.n_subsamples = 3
    a.neighbourhoods.update({"n_queries": 1, "k": 4, "thumbnail": 32})
    a.lowlevel.update({"n_images": 32, "image_size": (32, 32), "group_size": 4, "k": 3,
                       "batch_size": 32})
    a.semantic.update({"n_queries": 8, "k": 3})
    a.probes.min_images_per_class = 2
    a.probes.dataset = None  # the generated images' own labels
    a.ood.update({"n_images": 16, "datasets": a.ood.datasets[:1]})
    a.subspace.update({"k": 8, "n_perm": 20})
  return a


def get_config(arg: str | None = None):
  variant, values = extraction_arg(arg, [*VARIANTS, "runlocal"])
  config = base([], {"kind": "image_folder", "root": "data/imagenet21k/val", "class_names": None})
  config.analysis = analysis(local=variant == "runlocal")
  if variant == "runlocal":
    config = runlocal(config, list(RUNLOCAL_MAIN.values()))
    return apply_overrides(config, values, RUNLOCAL)
  config.models = copies(CATALOGUE[m] for m in VARIANTS[variant])
  if variant == "manynames":
    config.dataset = {"kind": "manynames", "tsv": "data/manynames/manynames-en.tsv",
                      "image_dir": "data/visual_genome", "crop_to_object": False}
    config.n_images = None  # every ManyNames object
    # Fig. 4 only; the other analyses run on the ImageNet-21K images (default variant)
    config.analysis.steps = ("semantic",)
  return apply_overrides(config, values, CATALOGUE)
