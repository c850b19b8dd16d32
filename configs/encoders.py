"""The image encoders the representation-similarity literature compares, by name, for the
extraction configs (`configs/mahaut_baroni.py` picks them with `models=clip_l+dinov2_g,...`).

Contrastive image-text (CLIP, SigLIP: vision towers of the full checkpoints), masked image
modelling (MAE encoder without masking, BEiT, Data2Vec-vision), self-distillation (DINOv2 with
and without registers), supervised (DeiT with its distillation token, Swin). Each name is a hub
id resolved in the local Hugging Face cache (fetch it first: `hf download <id>`; nothing
downloads at run time) and runs on our JAX port of its family; entries with backend="torch" run
transformers' own model in PyTorch (`repsim_jax.models.torch_backend`), for families we have not
ported. Pooling: the family defaults of `repsim_jax.extraction.pooling` (mean over patch tokens,
prefix tokens left out; mean over all tokens for SigLIP and Swin).

`TINY` holds tiny random checkpoints of every ported family for smoke runs (`runlocal`).
"""
from __future__ import annotations

from configs.common import model, tiny

_IDS = {
    # contrastive image-text
    "clip_b32": "openai/clip-vit-base-patch32",
    "clip_b16": "openai/clip-vit-base-patch16",
    "clip_l": "openai/clip-vit-large-patch14",
    "clip_l336": "openai/clip-vit-large-patch14-336",
    "siglip_b": "google/siglip-base-patch16-224",
    "siglip_l": "google/siglip-large-patch16-384",
    "siglip_so400m": "google/siglip-so400m-patch14-384",
    # masked image modelling
    "mae_b": "facebook/vit-mae-base",
    "mae_l": "facebook/vit-mae-large",
    "mae_h": "facebook/vit-mae-huge",
    "beit_b": "microsoft/beit-base-patch16-224",
    "beit_l": "microsoft/beit-large-patch16-224",
    "data2vec_b": "facebook/data2vec-vision-base-ft1k",
    "data2vec_l": "facebook/data2vec-vision-large-ft1k",
    # self-distillation (dinov2_g is one of the paper's main models)
    "dinov2_s": "facebook/dinov2-small",
    "dinov2_b": "facebook/dinov2-base",
    "dinov2_l": "facebook/dinov2-large",
    "dinov2_reg_b": "facebook/dinov2-with-registers-base",
    "dinov2_reg_l": "facebook/dinov2-with-registers-large",
    "dinov2_reg_g": "facebook/dinov2-with-registers-giant",
    # supervised
    "deit_s": "facebook/deit-small-distilled-patch16-224",
    "deit_b": "facebook/deit-base-distilled-patch16-224",
    "swin_b": "microsoft/swin-base-patch4-window7-224",
    "swin_l": "microsoft/swin-large-patch4-window7-224",
    "resnet50": "microsoft/resnet-50",
}

ENCODERS = {name: model(name, hub_id) for name, hub_id in _IDS.items()}
# No JAX port: transformers' model through torch (I-JEPA ViT-H/14; mean over all tokens).
ENCODERS["ijepa_h"] = model("ijepa_h", "facebook/ijepa_vith14_1k", backend="torch")

# The most compared ones, one per family (the `encoders` variant of mahaut_baroni.py).
MOST_USED = ["clip_l", "siglip_so400m", "mae_l", "dinov2_l", "deit_b", "beit_l", "swin_l"]

TINY = {
    "clip": tiny("clip", "clip"), "siglip": tiny("siglip", "siglip"), "deit": tiny("deit", "deit"),
    "mae": tiny("mae", "vit_mae"), "beit": tiny("beit", "beit"),
    "dinov2_reg": tiny("dinov2_reg", "dinov2_with_registers"), "swin": tiny("swin", "swin"),
}
