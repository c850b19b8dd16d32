"""ViT (Dosovitskiy et al. 2021), DeiT (Touvron et al. 2021) and the MAE encoder (He et al. 2022)
as transformers' `ViTModel`, `DeiTModel` and `ViTMAEModel`, in Flax NNX.

model(pixel_values [B, H, W, C]) -> ModelOutput with
  hidden_states: (embeddings, block_00, ..., block_{L-1})  [B, P + N, D], as torch's
                 output_hidden_states=True (the last entry is before the final layernorm); P
                 prefix tokens: [CLS] (ViT, MAE) or [CLS] + distillation token (DeiT),
  last_hidden_state: layernorm(block_{L-1}),  pooler_output: act(dense(CLS)) when the
  checkpoint has a pooler (None otherwise, as ViTModel(add_pooling_layer=False) and ViTMAEModel).
Images must have the config's size unless interpolate_pos_encoding=True, which resizes the
position embeddings bicubically exactly as torch does.

MAE: the encoder sees every patch, in raster order, with no masking. `config.mask_ratio` and
the `noise` that ViTMAEModel uses to shuffle and drop patches (75 % for the released checkpoints)
are ignored: the port equals torch's ViTMAEModel run with config.mask_ratio = 0 and
noise = arange(N) (the identity shuffle), which is how the parity tests and the torch backend
call it (`repsim_jax.models.torch_backend.reference_forward_kwargs`).

References: Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", arXiv:2010.11929;
Touvron et al. 2021, "Training data-efficient image transformers & distillation through
attention", arXiv:2012.12877; He et al. 2022, "Masked Autoencoders Are Scalable Vision
Learners", arXiv:2111.06377; transformers/models/{vit,deit,vit_mae}/modeling_*.py.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from repsim_jax import tiny_checkpoints as tiny
from repsim_jax.models import layers, parity
from repsim_jax.models import preprocessing as pp
from repsim_jax.models.convert import StateDict, layer_list
from repsim_jax.models.outputs import ModelOutput
from repsim_jax.models.registry import ModelType

# Pooling: mean over the patch tokens, [CLS] (and DeiT's distillation token) left out.
MODEL_TYPES = {"vit": ModelType(pooling="mean_patch", prefix_tokens=1),
               "deit": ModelType(pooling="mean_patch", prefix_tokens=2),
               "vit_mae": ModelType(pooling="mean_patch", prefix_tokens=1)}
CONVERT_VERSION = 1

# ViTImageProcessor (ViT, MAE; Swin, DINOv3 checkpoints use it too): resize to size {height,
# width} (bilinear), rescale 1/255, normalize. DeiTImageProcessor: resize to size (bicubic),
# center crop to crop_size, rescale, normalize.
IMAGE_PROCESSORS = {
    "ViTImageProcessor": dict(
        resample=2, image_mean=pp.IMAGENET_STANDARD_MEAN, image_std=pp.IMAGENET_STANDARD_STD,
        size={"height": 224, "width": 224}, do_resize=True, do_rescale=True, do_normalize=True),
    "DeiTImageProcessor": dict(
        resample=3, image_mean=pp.IMAGENET_STANDARD_MEAN, image_std=pp.IMAGENET_STANDARD_STD,
        size={"height": 256, "width": 256}, crop_size={"height": 224, "width": 224},
        do_resize=True, do_center_crop=True, do_rescale=True, do_normalize=True),
}

# Hub checkpoints use the pre-v5 names; transformers renames them on load (conversion_mapping).
LEGACY_ATTENTION_NAMES = [  # shared with DINOv2
    (r"attention\.attention\.query", "attention.q_proj"),
    (r"attention\.attention\.key", "attention.k_proj"),
    (r"attention\.attention\.value", "attention.v_proj"),
    (r"attention\.output\.dense", "attention.o_proj"),
]
LEGACY_NAMES = [
    (r"^encoder\.layer\.", "layers."),
    *LEGACY_ATTENTION_NAMES,
    (r"intermediate\.dense", "mlp.fc1"),
    (r"\.output\.dense", ".mlp.fc2"),
]


def resize_position_embeddings(pos: jax.Array, *, num_prefix_tokens: int, image_hw: tuple[int, int],
                               patch_size: tuple[int, int], antialias: bool = False) -> jax.Array:
  """[1, P + n, D] learned positions (P prefix tokens, n = s * s patches) for an image of
  `image_hw` pixels, as transformers' interpolate_pos_encoding: unchanged when the patch count
  is n and the image is square, else the s x s patch grid is resized bicubically
  (align_corners=False; with antialias as DINOv2-with-registers) to (H // p, W // p)."""
  height, width = image_hw
  num_positions = pos.shape[1] - num_prefix_tokens
  num_patches = (height // patch_size[0]) * (width // patch_size[1])
  if num_patches == num_positions and height == width:
    return pos
  side = int(num_positions ** 0.5)
  grid = pos[0, num_prefix_tokens:].reshape(side, side, -1)
  grid = layers.resize_bicubic(grid, (height // patch_size[0], width // patch_size[1]),
                               antialias=antialias)
  return jnp.concatenate([pos[:, :num_prefix_tokens], grid.reshape(1, -1, pos.shape[-1])], axis=1)


class ClsPosEmbedding(nnx.Module):
  """Patch embedding + prefix tokens + learned position embeddings, for the ViT-like families.

  Token order: [CLS] (unless cls_token=False: SigLIP), the distillation token (DeiT), the
  patches; learned position embeddings are added to all of them (position_embeddings=False:
  none, BEiT with relative position bias only). Then num_register_tokens register tokens
  (DINOv2 with registers) are inserted after [CLS], without positions.
  `__call__(..., interpolate=False)` requires the config's image size; interpolate=True resizes
  the positions as `resize_position_embeddings` (ViT, DeiT, MAE, CLIP, SigLIP on request;
  DINOv2 and BEiT always). patch_bias=False: CLIP's bias-free patch convolution.
  """

  def __init__(self, *, num_channels: int, dim: int, image_size, patch_size, dtype, rngs,
               cls_token: bool = True, distillation_token: bool = False,
               num_register_tokens: int = 0, position_embeddings: bool = True,
               patch_bias: bool = True, antialias: bool = False):
    self.image_size = layers.pair(image_size, "image_size")
    self.patch_size = layers.pair(patch_size, "patch_size")
    self.dtype = dtype
    self.antialias = antialias
    self.patch_embeddings = layers.PatchEmbedding(num_channels, dim, self.patch_size,
                                                  use_bias=patch_bias, dtype=dtype, rngs=rngs)
    n = (self.image_size[0] // self.patch_size[0]) * (self.image_size[1] // self.patch_size[1])
    token = lambda k: nnx.Param(jnp.zeros((1, k, dim), jnp.float32))  # noqa: E731
    self.cls_token = token(1) if cls_token else None
    self.distillation_token = token(1) if distillation_token else None
    self.register_tokens = token(num_register_tokens) if num_register_tokens else None
    self.num_prefix_tokens = int(cls_token) + int(distillation_token)
    self.position_embeddings = token(n + self.num_prefix_tokens) if position_embeddings else None

  def __call__(self, pixel_values: jax.Array, *, interpolate: bool, model: str) -> jax.Array:
    _, height, width, _ = pixel_values.shape
    if not interpolate and (height, width) != self.image_size:
      raise ValueError(f"{model}: input image size {height}x{width} does not match the model's "
                       f"{self.image_size[0]}x{self.image_size[1]}; resize the images or pass "
                       f"interpolate_pos_encoding=True (bicubic, as torch)")
    x, _ = self.patch_embeddings(pixel_values.astype(self.dtype))
    b, _, d = x.shape

    def expand(token):
      return jnp.broadcast_to(token[...].astype(x.dtype), (b,) + token.shape[1:])

    prefix = [expand(t) for t in (self.cls_token, self.distillation_token) if t is not None]
    x = jnp.concatenate([*prefix, x], axis=1)
    if self.position_embeddings is not None:
      pos = resize_position_embeddings(self.position_embeddings[...],
                                       num_prefix_tokens=self.num_prefix_tokens,
                                       image_hw=(height, width), patch_size=self.patch_size,
                                       antialias=self.antialias)
      x = x + pos.astype(x.dtype)
    if self.register_tokens is not None:
      x = jnp.concatenate([x[:, :1], expand(self.register_tokens), x[:, 1:]], axis=1)
    return x


def encoder_block(*, dim: int, num_heads: int, mlp: nnx.Module, eps: float, qkv_bias=True,
                  out_bias: bool = True, layer_scale: float | None = None, dtype, rngs
                  ) -> layers.EncoderBlock:
  """The pre-norm block of ViT / DINOv2 / DINOv3 (layer_scale: initial value, or None)."""
  return layers.EncoderBlock(
      norm1=layers.layer_norm(dim, eps=eps, dtype=dtype, rngs=rngs),
      attention=layers.MultiHeadAttention(dim, num_heads, qkv_bias=qkv_bias, out_bias=out_bias,
                                          dtype=dtype, rngs=rngs),
      norm2=layers.layer_norm(dim, eps=eps, dtype=dtype, rngs=rngs),
      mlp=mlp,
      layer_scale1=None if layer_scale is None else layers.LayerScale(dim, init=layer_scale),
      layer_scale2=None if layer_scale is None else layers.LayerScale(dim, init=layer_scale))


# model_type -> the transformers class it mirrors (named in errors)
_CLASS_NAMES = {"vit": "ViTModel", "deit": "DeiTModel", "vit_mae": "ViTMAEModel"}


class ViTModel(nnx.Module):

  def __init__(self, config, *, dtype=jnp.float32, rngs: nnx.Rngs, add_pooling_layer: bool = True):
    dim = config.hidden_size
    self.num_channels = config.num_channels
    self.name = _CLASS_NAMES[config.model_type]
    self.embeddings = ClsPosEmbedding(num_channels=config.num_channels, dim=dim,
                                      image_size=config.image_size, patch_size=config.patch_size,
                                      distillation_token=config.model_type == "deit",
                                      dtype=dtype, rngs=rngs)
    self.layers = nnx.List([
        encoder_block(dim=dim, num_heads=config.num_attention_heads, eps=config.layer_norm_eps,
                      qkv_bias=config.qkv_bias, dtype=dtype, rngs=rngs,
                      mlp=layers.MLP(dim, config.intermediate_size, act=config.hidden_act,
                                     dtype=dtype, rngs=rngs))
        for _ in range(config.num_hidden_layers)])
    self.layernorm = layers.layer_norm(dim, eps=config.layer_norm_eps, dtype=dtype, rngs=rngs)
    self.pooler = (layers.linear(dim, config.pooler_output_size, dtype=dtype, rngs=rngs)
                   if add_pooling_layer else None)
    self.pooler_act = getattr(config, "pooler_act", "tanh")

  def __call__(self, pixel_values: jax.Array, *, sublayers: bool = False,
               interpolate_pos_encoding: bool = False) -> ModelOutput:
    layers.check_pixel_values(pixel_values, num_channels=self.num_channels, model=self.name)
    x = self.embeddings(pixel_values, interpolate=interpolate_pos_encoding, model=self.name)
    x, hidden, blocks = layers.run_encoder(self.layers, x, sublayers=sublayers)
    sequence = self.layernorm(x)
    pooled = (layers.activation(self.pooler_act)(self.pooler(sequence[:, 0]))
              if self.pooler is not None else None)
    return ModelOutput(hidden_states=tuple(hidden), blocks=blocks, last_hidden_state=sequence,
                       pooler_output=pooled)


def build(config, *, dtype=jnp.float32, rngs: nnx.Rngs, add_pooling_layer: bool | None = None
          ) -> ViTModel:
  """add_pooling_layer=None: as the torch class (ViTModel, DeiTModel: yes; ViTMAEModel: no)."""
  if add_pooling_layer is None:
    add_pooling_layer = config.model_type != "vit_mae"
  return ViTModel(config, dtype=dtype, rngs=rngs, add_pooling_layer=add_pooling_layer)


def build_options(params: dict, config) -> dict:
  """Task checkpoints (ViTForImageClassification, ...) and ViTMAEModel have no pooler: build
  without one."""
  return {"add_pooling_layer": "pooler" in params}


def convert_cls_pos_embedding(sd: StateDict, prefix: str = "embeddings") -> dict:
  """`ClsPosEmbedding` parameters from torch's `embeddings.*` (ViT, DeiT, MAE, DINOv2, BEiT name
  them alike): whichever of the tokens and position embeddings the checkpoint has."""
  params = {"patch_embeddings": {"projection": sd.conv2d(f"{prefix}.patch_embeddings.projection")}}
  for name in ("cls_token", "distillation_token", "register_tokens", "position_embeddings"):
    if f"{prefix}.{name}" in sd:
      params[name] = sd.pop(f"{prefix}.{name}")
  return params


def convert_attention(sd: StateDict, prefix: str) -> dict:
  return {name: sd.linear(f"{prefix}.{name}") for name in ("q_proj", "k_proj", "v_proj", "o_proj")}


def convert_encoder_block(sd: StateDict, prefix: str, *, norm1: str = "layernorm_before",
                          attention: str = "attention", norm2: str = "layernorm_after") -> dict:
  """One `layers.EncoderBlock` (norms, q/k/v/o attention, fc1-fc2 MLP under "mlp") from the torch
  names under `prefix`; families add their extras (layer scale, relative position bias)."""
  return {"norm1": sd.layer_norm(f"{prefix}.{norm1}"),
          "attention": convert_attention(sd, f"{prefix}.{attention}"),
          "norm2": sd.layer_norm(f"{prefix}.{norm2}"),
          "mlp": {"fc1": sd.linear(f"{prefix}.mlp.fc1"), "fc2": sd.linear(f"{prefix}.mlp.fc2")}}


def convert(state_dict, config) -> dict:
  sd = StateDict(state_dict, prefixes=("vit", "deit"),
                 ignore=("classifier.", "cls_classifier.", "distillation_classifier.", "decoder.",
                         "embeddings.mask_token"))
  sd.rename(LEGACY_NAMES)
  params = {
      "embeddings": convert_cls_pos_embedding(sd),
      "layers": layer_list([convert_encoder_block(sd, f"layers.{i}")
                            for i in range(config.num_hidden_layers)]),
      "layernorm": sd.layer_norm("layernorm"),
  }
  if "pooler.dense.weight" in sd:
    params["pooler"] = sd.linear("pooler.dense")
  sd.check_consumed(config.model_type)
  return params


# Torch modules of a pre-norm ViT block (transformers' current names): the attention branch, the
# attention module, the module whose input is the residual stream after the attention add, the
# MLP branch.
TORCH_BLOCK = dict(attn="attention", attn_module="attention", mid="layernorm_after", mlp="mlp")


def torch_hooks(config, *, sublayers: bool = False) -> dict[str, parity.HookSpec]:
  return parity.encoder_hooks(config, "layers.{i}", sublayers=sublayers, **TORCH_BLOCK)


def reference_forward_kwargs(model, batch_size: int, image_hw: tuple[int, int] | None = None, *,
                             attentions: bool = False) -> dict:
  """ViTMAEModel drops config.mask_ratio of the patches after shuffling them with random `noise`;
  our MAE encoder sees every patch in order, i.e. mask_ratio = 0 and noise = arange (the
  identity shuffle) over the patches of an `image_hw` image (default: the config's image size).
  Changes `model.config` in place. ViT and DeiT need nothing."""
  config = model.config
  if config.model_type != "vit_mae":
    return {}
  import torch
  config.mask_ratio = 0.0
  (ph, pw) = layers.pair(config.patch_size, "patch_size")
  (h, w) = image_hw or layers.pair(config.image_size, "image_size")
  noise = torch.arange((h // ph) * (w // pw), dtype=torch.float32)
  return {"noise": noise.expand(batch_size, -1)}


def tiny_config(model_type: str, image_size: int):
  import transformers as tr
  if model_type == "vit":
    return (tr.ViTConfig(intermediate_size=64, **tiny.vit_sizes(image_size)),
            {"image_processor_type": "ViTImageProcessor", "size": tiny.square(image_size),
             **tiny.HALF_NORM})
  # MAE: the port never masks (see the module docstring)
  cls = tr.DeiTConfig if model_type == "deit" else tr.ViTMAEConfig
  return (cls(intermediate_size=64, **tiny.vit_sizes(image_size)),
          {"image_processor_type": "DeiTImageProcessor", "size": tiny.square(image_size),
           "crop_size": tiny.square(image_size), **tiny.IMAGENET_NORM})
