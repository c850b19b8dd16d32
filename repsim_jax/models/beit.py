"""BEiT (Bao et al. 2022) and Data2Vec-vision (Baevski et al. 2022) as transformers' `BeitModel` and
`Data2VecVisionModel`, in Flax NNX (one implementation: Data2Vec-vision is BEiT's architecture).

model(pixel_values [B, H, W, C]) -> ModelOutput with
  hidden_states: (embeddings, block_00, ..., block_{L-1})  [B, 1 + N, D] ([CLS] + patches), as
                 torch's output_hidden_states=True,
  last_hidden_state: block_{L-1} when config.use_mean_pooling (the checkpoints' default: no
                 final norm), else layernorm(block_{L-1}),
  pooler_output: LN(mean of the patch tokens) when the checkpoint has the pooler's norm
                 (use_mean_pooling), [CLS] of last_hidden_state without mean pooling, else None.
Blocks are pre-norm with layer scale (lambda_1, lambda_2 when config.layer_scale_init_value > 0)
and a key projection without bias. Positions come from a per-block (use_relative_position_bias)
or shared (use_shared_relative_position_bias) learned relative position bias over the patch grid
(plus three [CLS] entries; `layers.RelativePositionBias`), and/or absolute position embeddings
(use_absolute_position_embeddings). Any image size works, as in torch: absolute positions are
resized bicubically, the relative bias tables bilinearly, to the image's patch grid.
`interpolate_pos_encoding` of torch only adds a same-size (identity) resize of the gathered
bias, so it is not an option here.

References: Bao et al. 2022, "BEiT: BERT Pre-Training of Image Transformers", arXiv:2106.08254;
Baevski et al. 2022, "data2vec: A General Framework for Self-supervised Learning in Speech,
Vision and Language", arXiv:2202.03555; transformers/models/beit/modeling_beit.py,
transformers/models/data2vec/modeling_data2vec_vision.py.
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
from repsim_jax.models.vit import (LEGACY_NAMES, ClsPosEmbedding, build_options,  # noqa: F401
                                   convert_cls_pos_embedding, convert_encoder_block)

# Pooling: mean over the patch tokens, [CLS] left out (BEiT's own pooler is this mean too).
MODEL_TYPES = {"beit": ModelType(pooling="mean_patch", prefix_tokens=1),
               "data2vec-vision": ModelType(pooling="mean_patch", prefix_tokens=1)}
CONVERT_VERSION = 1

# BeitImageProcessor (BEiT, Data2Vec-vision): resize to size {height, width} (bicubic), center
# crop to crop_size only if do_center_crop, rescale, normalize.
IMAGE_PROCESSORS = {
    "BeitImageProcessor": dict(
        resample=3, image_mean=pp.IMAGENET_STANDARD_MEAN, image_std=pp.IMAGENET_STANDARD_STD,
        size={"height": 224, "width": 224}, crop_size={"height": 224, "width": 224},
        do_resize=True, do_center_crop=False, do_rescale=True, do_normalize=True),
}

# Hub checkpoints (and save_pretrained) use the pre-v5 names; map them to transformers' current
# BeitModel names, then to ours.
NAMES = [
    (r"^encoder\.relative_position_bias\.", "shared_position_bias."),
    (r"attention\.attention\.relative_position_bias\.", "relative_position_bias."),
    *LEGACY_NAMES,
]


class BeitModel(nnx.Module):
  """BeitModel or Data2VecVisionModel (config.model_type decides only the name in errors). The
  mean-pooling norm ("pooler") exists in BeitModel and the classification checkpoints only:
  `build_options` (shared with ViT) builds it when the checkpoint has it."""

  def __init__(self, config, *, dtype=jnp.float32, rngs: nnx.Rngs, add_pooling_layer: bool = False):
    dim, heads, eps = config.hidden_size, config.num_attention_heads, config.layer_norm_eps
    self.name = "BeitModel" if config.model_type == "beit" else "Data2VecVisionModel"
    self.num_channels = config.num_channels
    self.patch_size = layers.pair(config.patch_size, "patch_size")
    image_size = layers.pair(config.image_size, "image_size")
    window = (image_size[0] // self.patch_size[0], image_size[1] // self.patch_size[1])
    self.embeddings = ClsPosEmbedding(num_channels=config.num_channels, dim=dim,
                                      image_size=image_size, patch_size=self.patch_size,
                                      position_embeddings=config.use_absolute_position_embeddings,
                                      dtype=dtype, rngs=rngs)

    def relative_bias():
      return layers.RelativePositionBias(window, heads, num_prefix_tokens=1)

    self.shared_position_bias = (relative_bias() if config.use_shared_relative_position_bias
                                 else None)
    scale = config.layer_scale_init_value

    def layer_scale():
      return layers.LayerScale(dim, init=scale) if scale > 0 else None

    self.layers = nnx.List([
        layers.EncoderBlock(
            norm1=layers.layer_norm(dim, eps=eps, dtype=dtype, rngs=rngs),
            attention=layers.MultiHeadAttention(
                dim, heads, qkv_bias=(True, False, True), dtype=dtype, rngs=rngs,
                relative_position_bias=(relative_bias() if config.use_relative_position_bias
                                        else None)),
            norm2=layers.layer_norm(dim, eps=eps, dtype=dtype, rngs=rngs),
            mlp=layers.MLP(dim, config.intermediate_size, act=config.hidden_act, dtype=dtype,
                           rngs=rngs),
            layer_scale1=layer_scale(), layer_scale2=layer_scale())
        for _ in range(config.num_hidden_layers)])
    self.use_mean_pooling = config.use_mean_pooling
    self.layernorm = (None if config.use_mean_pooling
                      else layers.layer_norm(dim, eps=eps, dtype=dtype, rngs=rngs))
    self.pooler = (layers.layer_norm(dim, eps=eps, dtype=dtype, rngs=rngs)
                   if add_pooling_layer and config.use_mean_pooling else None)

  def __call__(self, pixel_values: jax.Array, *, sublayers: bool = False) -> ModelOutput:
    layers.check_pixel_values(pixel_values, num_channels=self.num_channels, model=self.name)
    x = self.embeddings(pixel_values, interpolate=True, model=self.name)
    grid = (pixel_values.shape[1] // self.patch_size[0], pixel_values.shape[2] // self.patch_size[1])
    shared = (self.shared_position_bias(grid)[None] if self.shared_position_bias is not None
              else None)
    x, hidden, blocks = layers.run_encoder(self.layers, x, sublayers=sublayers, bias=shared,
                                           grid=grid)
    sequence = self.layernorm(x) if self.layernorm is not None else x
    if self.pooler is not None:
      pooled = self.pooler(jnp.mean(sequence[:, 1:], axis=1))
    else:
      pooled = None if self.use_mean_pooling else sequence[:, 0]
    return ModelOutput(hidden_states=tuple(hidden), blocks=blocks, last_hidden_state=sequence,
                       pooler_output=pooled)


def build(config, *, dtype=jnp.float32, rngs: nnx.Rngs, add_pooling_layer: bool | None = None
          ) -> BeitModel:
  """add_pooling_layer=None: as the torch class (BeitModel: yes; Data2VecVisionModel: no)."""
  if add_pooling_layer is None:
    add_pooling_layer = config.model_type == "beit"
  return BeitModel(config, dtype=dtype, rngs=rngs, add_pooling_layer=add_pooling_layer)


def convert(state_dict, config) -> dict:
  sd = StateDict(state_dict, prefixes=("beit", "data2vec_vision"),
                 ignore=("classifier.", "lm_head.", "embeddings.mask_token"))
  sd.rename(NAMES)
  sd.discard("relative_position_index")

  def table(prefix: str) -> dict:
    return {"relative_position_bias_table": sd.pop(f"{prefix}.relative_position_bias_table")}

  def layer(i: int) -> dict:
    p = f"layers.{i}"
    params = convert_encoder_block(sd, p)
    if config.use_relative_position_bias:
      params["attention"]["relative_position_bias"] = table(f"{p}.relative_position_bias")
    if config.layer_scale_init_value > 0:
      params["layer_scale1"] = {"lambda1": sd.pop(f"{p}.lambda_1")}
      params["layer_scale2"] = {"lambda1": sd.pop(f"{p}.lambda_2")}
    return params

  params = {"embeddings": convert_cls_pos_embedding(sd),
            "layers": layer_list([layer(i) for i in range(config.num_hidden_layers)])}
  if config.use_shared_relative_position_bias:
    params["shared_position_bias"] = table("shared_position_bias")
  if not config.use_mean_pooling:
    params["layernorm"] = sd.layer_norm("layernorm")
  if "pooler.layernorm.weight" in sd:
    params["pooler"] = sd.layer_norm("pooler.layernorm")
  sd.check_consumed(config.model_type)
  return params


def torch_hooks(config, *, sublayers: bool = False) -> dict[str, parity.HookSpec]:
  """BEiT scales both branches by lambda_1 / lambda_2 outside any module; drop_path (identity at
  inference) receives each scaled branch, the attention one on its first call."""
  layer = "layers.{i}" if config.model_type == "beit" else "encoder.layer.{i}"
  return parity.encoder_hooks(config, layer, attn=("drop_path", "input", 0),
                              attn_module="attention", mid="layernorm_after",
                              mlp=("drop_path", "input", 1), sublayers=sublayers)


def reference_forward_kwargs(model, batch_size: int, image_hw=None, *, attentions: bool = False
                             ) -> dict:
  """Data2Vec-vision returns its attention probabilities only when asked."""
  return {"output_attentions": True} if attentions and model.config.model_type != "beit" else {}


def tiny_config(model_type: str, image_size: int):
  import transformers as tr
  cls = tr.BeitConfig if model_type == "beit" else tr.Data2VecVisionConfig
  return (cls(intermediate_size=64, use_relative_position_bias=True, **tiny.vit_sizes(image_size)),
          {"image_processor_type": "BeitImageProcessor", "size": tiny.square(image_size),
           **tiny.IMAGENET_NORM})
