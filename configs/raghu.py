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

Every figure of the paper (CKA heatmaps, attention distances, head subsets, receptive fields,
skip connections, localization, few-shot probes; settings in `config.analysis`, see
`analysis_config`), with a summary.md linking them:

  python -m experiments.raghu --config=configs/raghu.py --workdir=runs/raghu_figures \
      --config.dataset.data_dir=/data/tfds
  python -m experiments.raghu --config=configs/raghu.py:runlocal --workdir=/tmp/raghu_figs

R152x2 has no transformers checkpoint on the hub (timm: resnetv2_152x2_bit.goog_in21k); convert it to
a directory (config.json + safetensors) and set CATALOGUE["bit_r152x2"] to that path, or leave it
out: --config=configs/raghu.py:models=vit_b32+vit_b16+vit_l16+vit_h14+bit_r50x1
"""
from __future__ import annotations

import ml_collections
from ml_collections.config_dict import placeholder

from configs.common import apply_overrides, base, extraction_arg, model, runlocal, tiny

CATALOGUE = {
    "vit_b32": model("vit_b32", "google/vit-base-patch32-224-in21k"),
    "vit_b16": model("vit_b16", "google/vit-base-patch16-224-in21k"),
    "vit_l16": model("vit_l16", "google/vit-large-patch16-224-in21k"),
    "vit_h14": model("vit_h14", "google/vit-huge-patch14-224-in21k"),
    "bit_r50x1": model("bit_r50x1", "google/bit-50"),
    "bit_r152x2": model("bit_r152x2", "google/bit-152x2"),  # not on the hub; see docstring
}

RUNLOCAL = {"vit": tiny("vit", "vit"), "bit": tiny("bit", "bit")}


def analysis_config(*, local: bool = False) -> ml_collections.ConfigDict:
  """Settings of `repsim_jax.pipelines.raghu.run` (one group per step, named like it).

  n_images: images of the analysis (a nested seeded sample, `data.sample_ids`). CKA options go
  to `repsim_jax.cka_matrix` (batch_size None: exact CKA on all n_images). Fields that default
  to None are typed placeholders, so `--config.analysis.head_subsets.cnn=bit_r50x1` works.

  Host memory: CKA keeps [n_images, d] per layer and sublayer of every model; the few-shot
  probes keep every block's tokens [n_images, T, D] of one model (ViT-B/32, 12 blocks: 1.8 MB
  per image in float32), so lower few_shot.n_images on small hosts.
  """
  a = ml_collections.ConfigDict()
  # The steps to run, in order: modules of `repsim_jax.pipelines.raghu`, settings below by name
  # (head_subsets reads block_stats' attention distances).
  a.steps = ("cka", "block_stats", "head_subsets", "erf", "localization", "few_shot")
  # Figs. 1, 2, B.1: per-block vectors (model's default pooling), blocks and sublayers, the
  # paper's minibatch protocol (batch 1024, 10 240 samples without replacement, 20 repeats).
  a.cka = dict(n_images=10_240, sublayers=True, debiased=True, batch_size=1024,
               n_samples=10_240, repeats=20, seed=0)
  # Figs. 3, 4, C.5, C.6 and 7, E.1, E.2: attention distances and skip-connection statistics.
  a.block_stats = dict(n_images=5000, prefix_keys="renormalize", lowest_highest=2)
  # Fig. 5: head subsets of the first block (local -> global) against the CNN's first blocks.
  # vit / cnn: model names (None: every ViT against the first CNN); subset_size None: H // 4.
  a.head_subsets = dict(n_images=2048, vit=placeholder(str), cnn=placeholder(str), cnn_layers=3,
                        subset_size=placeholder(int), stride=1, pooling="mean", debiased=True,
                        batch_size=placeholder(int))
  # Figs. 6, C.1-C.4: ERF of the centre location, after and before the residual add.
  # blocks None: every block (one backward pass per map, all in one compiled program); name a
  # few ("block_00", "block_05", ...) to bound the compile time of deep models.
  a.erf = dict(n_images=32, channels="sum", blocks=placeholder(tuple))
  # Figs. 9, 10, D.1-D.3: CKA of one token with the input patches; layers None: the last two
  # blocks with a spatial grid of at least 2 x 2; tokens None: corners, edges and centre.
  a.localization = dict(n_images=1024, layers=placeholder(tuple), tokens=placeholder(tuple),
                        debiased=True, batch_size=placeholder(int))
  # Figs. 11, 13, D.4, F.1-F.3: closed-form few-shot probes per block and token mode; the
  # `shots` per class are the train set, up to n_test of the other sampled images the test set.
  a.few_shot = dict(n_images=12_000, shots=10, n_test=2000, seed=0, label_key="label")
  if local:
    a.cka.update(n_images=32, batch_size=8, n_samples=32, repeats=2)
    a.block_stats.n_images = 16
    a.head_subsets.n_images = 32
    a.erf.n_images = 4
    a.localization.n_images = 32
    a.few_shot.update(n_images=40, shots=4, n_test=24)
  return a


def get_config(arg: str | None = None):
  variant, values = extraction_arg(arg, ["tokens", "runlocal"])
  config = base(list(CATALOGUE.values()),
                {"kind": "tfds", "name": "imagenet2012", "split": "validation", "data_dir": None})
  config.n_images = 10_000
  config.analysis = analysis_config()
  if variant == "runlocal":
    config = runlocal(config, list(RUNLOCAL.values()))
    config.analysis = analysis_config(local=True)
    return apply_overrides(config, values, RUNLOCAL)
  if variant == "tokens":
    for entry in config.models:
      entry.pooling = "tokens"
    config.n_images = 1000
    config.store_dtype = "float16"  # [N, T, D] per layer
    config.chunk_rows = 128
  return apply_overrides(config, values, CATALOGUE)
