"""The vision towers of CLIP (Radford et al. 2021) and SigLIP (Zhai et al. 2023) as transformers'
`CLIPVisionModel` and `SiglipVisionModel`, in Flax NNX.

model(pixel_values [B, H, W, C]) -> ModelOutput with
  hidden_states: (embeddings, block_00, ..., block_{L-1})  [B, T, D], as torch's
                 output_hidden_states=True;
  CLIP:   T = 1 + N ([CLS] + patches). embeddings = pre_layrnorm(patches + positions) (the
          input of block 0, as torch's hidden_states[0]); last_hidden_state = block_{L-1} (no
          final norm); pooler_output = post_layernorm(last_hidden_state[:, 0]).
  SigLIP: T = N (no [CLS]). last_hidden_state = post_layernorm(block_{L-1}); pooler_output =
          the multi-head attention pooling head (a learned probe attends to last_hidden_state,
          then + MLP(LN(.))) when config.vision_use_head, else None.
Blocks are pre-norm (LN eps = config.layer_norm_eps, MLP activation config.hidden_act: CLIP's
quick_gelu, SigLIP's tanh gelu). Images must have the config's size unless
interpolate_pos_encoding=True (bicubic resize of the position grid, as torch).

A full `CLIPModel` / `SiglipModel` checkpoint (model_type "clip" / "siglip") loads as its vision
tower: the text tower, projections and logit scale / bias are left out.

References: Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision", arXiv:2103.00020; Zhai et al. 2023, "Sigmoid Loss for Language Image
Pre-Training", arXiv:2303.15343; transformers/models/{clip,siglip}/modeling_*.py.
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
from repsim_jax.models.vit import ClsPosEmbedding, convert_encoder_block, encoder_block

# Pooling: CLIP over its patch tokens ([CLS] left out); SigLIP has no [CLS]: every token. A full
# image-text checkpoint runs in torch as its vision tower.
MODEL_TYPES = {
    "clip_vision_model": ModelType(pooling="mean_patch", prefix_tokens=1),
    "clip": ModelType(pooling="mean_patch", prefix_tokens=1, torch_class="CLIPVisionModel"),
    "siglip_vision_model": ModelType(pooling="mean"),
    "siglip": ModelType(pooling="mean", torch_class="SiglipVisionModel"),
}
CONVERT_VERSION = 1

# CLIPImageProcessor: resize the shortest edge (bicubic), center crop to crop_size, rescale,
# normalize. SiglipImageProcessor: resize to size {height, width} (bicubic), rescale, normalize.
IMAGE_PROCESSORS = {
    "CLIPImageProcessor": dict(
        resample=3, image_mean=pp.OPENAI_CLIP_MEAN, image_std=pp.OPENAI_CLIP_STD,
        size={"shortest_edge": 224}, default_to_square=False,
        crop_size={"height": 224, "width": 224}, do_resize=True, do_center_crop=True,
        do_rescale=True, do_normalize=True),
    "SiglipImageProcessor": dict(
        resample=3, image_mean=pp.IMAGENET_STANDARD_MEAN, image_std=pp.IMAGENET_STANDARD_STD,
        size={"height": 224, "width": 224}, default_to_square=False, do_resize=True,
        do_rescale=True, do_normalize=True),
}

# Torch names -> ours (the attention output projection).
NAMES = [
    (r"^encoder\.layers\.", "layers."),
    (r"\.self_attn\.out_proj\.", ".self_attn.o_proj."),
]


def vision_config(config):
  """The vision tower's config (a full CLIP / SigLIP checkpoint's config holds it)."""
  return config.vision_config if config.model_type in ("clip", "siglip") else config


def is_siglip(config) -> bool:
  return config.model_type.startswith("siglip")


class AttentionPoolingHead(nnx.Module):
  """SigLIP's pooler: a learned probe [1, 1, D] attends to the tokens (torch
  nn.MultiheadAttention), then h + MLP(LN(h)); returns [B, D]."""

  def __init__(self, config, *, dtype, rngs):
    dim = config.hidden_size
    self.probe = nnx.Param(jnp.zeros((1, 1, dim), jnp.float32))
    self.attention = layers.MultiHeadAttention(dim, config.num_attention_heads, dtype=dtype,
                                               rngs=rngs)
    self.layernorm = layers.layer_norm(dim, eps=config.layer_norm_eps, dtype=dtype, rngs=rngs)
    self.mlp = layers.MLP(dim, config.intermediate_size, act=config.hidden_act, dtype=dtype,
                          rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    probe = jnp.broadcast_to(self.probe[...].astype(x.dtype), (x.shape[0], 1, x.shape[-1]))
    h, _ = self.attention(probe, context=x)
    return (h + self.mlp(self.layernorm(h)))[:, 0]


class CLIPVisionModel(nnx.Module):
  """CLIPVisionModel or SiglipVisionModel, from either tower's config or a full model's config."""

  def __init__(self, config, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.siglip = is_siglip(config)
    self.name = "SiglipVisionModel" if self.siglip else "CLIPVisionModel"
    config = vision_config(config)
    dim, eps = config.hidden_size, config.layer_norm_eps
    self.num_channels = config.num_channels
    self.embeddings = ClsPosEmbedding(num_channels=config.num_channels, dim=dim,
                                      image_size=config.image_size, patch_size=config.patch_size,
                                      cls_token=not self.siglip, patch_bias=self.siglip,
                                      dtype=dtype, rngs=rngs)
    self.pre_layrnorm = (None if self.siglip else
                         layers.layer_norm(dim, eps=eps, dtype=dtype, rngs=rngs))
    self.layers = nnx.List([
        encoder_block(dim=dim, num_heads=config.num_attention_heads, eps=eps, dtype=dtype,
                      rngs=rngs, mlp=layers.MLP(dim, config.intermediate_size,
                                                act=config.hidden_act, dtype=dtype, rngs=rngs))
        for _ in range(config.num_hidden_layers)])
    self.post_layernorm = layers.layer_norm(dim, eps=eps, dtype=dtype, rngs=rngs)
    self.head = (AttentionPoolingHead(config, dtype=dtype, rngs=rngs)
                 if self.siglip and config.vision_use_head else None)

  def __call__(self, pixel_values: jax.Array, *, sublayers: bool = False,
               interpolate_pos_encoding: bool = False) -> ModelOutput:
    layers.check_pixel_values(pixel_values, num_channels=self.num_channels, model=self.name)
    x = self.embeddings(pixel_values, interpolate=interpolate_pos_encoding, model=self.name)
    if self.pre_layrnorm is not None:
      x = self.pre_layrnorm(x)
    x, hidden, blocks = layers.run_encoder(self.layers, x, sublayers=sublayers)
    if self.siglip:
      sequence = self.post_layernorm(x)
      pooled = self.head(sequence) if self.head is not None else None
    else:
      sequence, pooled = x, self.post_layernorm(x[:, 0])
    return ModelOutput(hidden_states=tuple(hidden), blocks=blocks, last_hidden_state=sequence,
                       pooler_output=pooled)


def build(config, *, dtype=jnp.float32, rngs: nnx.Rngs) -> CLIPVisionModel:
  return CLIPVisionModel(config, dtype=dtype, rngs=rngs)


def _convert_head(sd: StateDict, dim: int) -> dict:
  """torch nn.MultiheadAttention's packed in_proj [3D, D] -> separate q / k / v projections."""
  w, b = sd.pop("head.attention.in_proj_weight"), sd.pop("head.attention.in_proj_bias")
  attention = {name: {"kernel": w[i * dim:(i + 1) * dim].T.copy(), "bias": b[i * dim:(i + 1) * dim]}
               for i, name in enumerate(("q_proj", "k_proj", "v_proj"))}
  attention["o_proj"] = sd.linear("head.attention.out_proj")
  return {"probe": sd.pop("head.probe"), "attention": attention,
          "layernorm": sd.layer_norm("head.layernorm"),
          "mlp": {"fc1": sd.linear("head.mlp.fc1"), "fc2": sd.linear("head.mlp.fc2")}}


def convert(state_dict, config) -> dict:
  siglip = is_siglip(config)
  config = vision_config(config)
  sd = StateDict(state_dict, prefixes=("vision_model",),
                 ignore=("text_model.", "visual_projection.", "text_projection.", "logit_scale",
                         "logit_bias", "classifier."))
  sd.rename(NAMES)
  dim = config.hidden_size
  pos = sd.pop("embeddings.position_embedding.weight")
  embeddings = {"patch_embeddings": {"projection": sd.conv2d("embeddings.patch_embedding")},
                "position_embeddings": pos[None]}
  if not siglip:
    embeddings["cls_token"] = sd.pop("embeddings.class_embedding").reshape(1, 1, dim)
  params = {
      "embeddings": embeddings,
      "layers": layer_list([
          convert_encoder_block(sd, f"layers.{i}", norm1="layer_norm1", attention="self_attn",
                                norm2="layer_norm2")
          for i in range(config.num_hidden_layers)]),
      "post_layernorm": sd.layer_norm("post_layernorm"),
  }
  if not siglip:
    params["pre_layrnorm"] = sd.layer_norm("pre_layrnorm")
  if siglip and config.vision_use_head:
    params["head"] = _convert_head(sd, dim)
  sd.check_consumed(config.model_type)
  return params


def torch_hooks(config, *, sublayers: bool = False) -> dict[str, parity.HookSpec]:
  return parity.encoder_hooks(config, "encoder.layers.{i}", attn="self_attn",
                              attn_module="self_attn", mid="layer_norm2", mlp="mlp",
                              sublayers=sublayers)


def tiny_config(model_type: str, image_size: int):
  import transformers as tr
  sizes = dict(intermediate_size=64, **tiny.vit_sizes(image_size))
  if model_type.startswith("siglip"):
    return (tr.SiglipVisionConfig(**sizes),
            {"image_processor_type": "SiglipImageProcessor", "size": tiny.square(image_size)})
  return (tr.CLIPVisionConfig(**sizes),
          {"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": image_size},
           "crop_size": tiny.square(image_size)})
