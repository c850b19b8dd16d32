"""ImageGPT (Chen et al. 2020) as transformers' `ImageGPTModel`, in Flax NNX.

A GPT-2 style decoder over colour-cluster tokens:

  h_0 = wte[input_ids] + wpe[0..T-1]
  block i:  mid = h + attn(ln_1(h))          causal multi-head self-attention
            h'  = mid + mlp(ln_2(mid))       mlp = c_proj(quick_gelu(c_fc(.)))
  last_hidden_state = ln_f(h_L)

Details that differ from a textbook transformer, all as in transformers:
  * The layer norm is mean-free and bias-free: `x / sqrt(mean(x^2) + eps) * weight` (an RMS norm).
  * quick_gelu: `x * sigmoid(1.702 x)` (`config.activation_function`).
  * Attention logits are scaled by 1/sqrt(head_dim) (`scale_attn_weights`) and additionally by
    1/(layer_idx + 1) when `scale_attn_by_inverse_layer_idx`; masked (future) logits are set to
    float32's minimum before the softmax. `reorder_and_upcast_attn` only changes the torch
    kernel order; in float32 it is the same function.
  * GPT-2 "Conv1D" weights are stored [in, out], so they are used without a transpose; the fused
    c_attn [D, 3D] is split into q/k/v projections.

Inputs and the SOS token (HF convention): the model embeds the ids it is given. HF's image
processor turns an image into 32*32 = 1024 cluster ids in [0, 512) and does NOT add a start
token; `ImageGPTModel` does not add one either. The vocabulary has one extra id,
`vocab_size - 1` (= 512), the start-of-sequence token that OpenAI's iGPT prepends (and HF's
generation example starts from). `prepend_sos(ids, config)` gives `[SOS] + ids[:, :-1]`, i.e. the
original iGPT input (the last pixel is dropped so the length stays n_positions); feature
extraction in HF's examples passes the processor's ids unchanged. Both are valid inputs here;
compare against torch with the same ids.

Outputs (repsim_jax.models.outputs): `hidden_states` as torch's output_hidden_states (L + 1
entries: the embeddings, the outputs of blocks 0..L-2, then ln_f of block L-1's output), `blocks`
"embeddings", "block_00" ... (raw block outputs, before ln_f) and with sublayers "block_XX.attn",
".mid", ".mlp", ".attn_probs" [B, H, T, T].

References: Chen et al., "Generative Pretraining from Pixels", ICML 2020;
transformers/models/imagegpt/modeling_imagegpt.py.
"""
from __future__ import annotations

import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from repsim_jax.models import layers, parity
from repsim_jax.models import preprocessing as pp
from repsim_jax.models.convert import StateDict, layer_list
from repsim_jax.models.outputs import ModelOutput
from repsim_jax.models.registry import ModelType

# Pooling: no [CLS]; the mean over the sequence, as the iGPT paper's linear probes.
MODEL_TYPES = {"imagegpt": ModelType(pooling="mean")}
CONVERT_VERSION = 1

# ImageGPTImageProcessor: resize to 32x32 (bilinear), rescale and normalize to [-1, 1], then each
# pixel becomes the index of its nearest colour cluster (`preprocessing.color_quantize`,
# squared euclidean distance, 512 clusters from the config), row-major.
IMAGE_PROCESSORS = {
    "ImageGPTImageProcessor": dict(
        resample=2, do_color_quantize=True, image_mean=pp.IMAGENET_STANDARD_MEAN,
        image_std=pp.IMAGENET_STANDARD_STD, do_rescale=True, do_normalize=True,
        size={"height": 256, "width": 256}, do_resize=True),
}


def rms_norm(dim: int, *, eps: float, dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.RMSNorm:
  """ImageGPTLayerNorm: x / sqrt(mean(x^2) + eps) * weight (no centring, no bias), stats in f32."""
  return nnx.RMSNorm(dim, epsilon=eps, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)


def prepend_sos(input_ids: jax.Array | np.ndarray, config: Any) -> jax.Array:
  """[B, T] cluster ids -> [B, T] with the SOS id (vocab_size - 1) first and the last id dropped."""
  ids = jnp.asarray(input_ids)
  sos = jnp.full((ids.shape[0], 1), config.vocab_size - 1, ids.dtype)
  return jnp.concatenate([sos, ids[:, :-1]], axis=1)


class ImageGPTModel(nnx.Module):
  """transformers ImageGPTModel. input_ids: int [B, T], T <= n_positions -> ModelOutput."""

  def __init__(self, config: Any, *, dtype=jnp.float32, rngs: nnx.Rngs):
    if getattr(config, "add_cross_attention", False):
      raise ValueError("imagegpt: add_cross_attention=True (encoder-decoder use) is not supported")
    dim, heads = config.n_embd, config.n_head
    inner = config.n_inner if config.n_inner is not None else 4 * dim
    self.vocab_size = config.vocab_size
    self.n_positions = config.n_positions
    self.dtype = dtype
    embed = lambda n: nnx.Embed(n, dim, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)  # noqa: E731
    self.wte = embed(config.vocab_size)
    self.wpe = embed(config.n_positions)
    blocks = []
    for i in range(config.n_layer):
      scale = (dim // heads) ** -0.5 if config.scale_attn_weights else 1.0
      if config.scale_attn_by_inverse_layer_idx:
        scale /= float(i + 1)
      blocks.append(layers.EncoderBlock(
          norm1=rms_norm(dim, eps=config.layer_norm_epsilon, dtype=dtype, rngs=rngs),
          attention=layers.MultiHeadAttention(dim, heads, scale=scale, dtype=dtype, rngs=rngs),
          norm2=rms_norm(dim, eps=config.layer_norm_epsilon, dtype=dtype, rngs=rngs),
          mlp=layers.MLP(dim, inner, act=config.activation_function, dtype=dtype, rngs=rngs)))
    self.layers = nnx.List(blocks)
    self.ln_f = rms_norm(dim, eps=config.layer_norm_epsilon, dtype=dtype, rngs=rngs)

  def __call__(self, input_ids: jax.Array, *, sublayers: bool = False) -> ModelOutput:
    if input_ids.ndim != 2:
      raise ValueError(f"imagegpt: input_ids must be [batch, seq_len] token ids, got shape "
                       f"{tuple(input_ids.shape)}")
    if not jnp.issubdtype(input_ids.dtype, jnp.integer):
      raise TypeError(f"imagegpt: input_ids must be integer colour-cluster ids (see "
                      f"preprocessing.load_preprocessor), got dtype {input_ids.dtype}")
    t = input_ids.shape[1]
    if t > self.n_positions:
      raise ValueError(f"imagegpt: seq_len {t} exceeds n_positions {self.n_positions}")
    if not isinstance(input_ids, jax.core.Tracer):
      lo, hi = int(np.min(input_ids)), int(np.max(input_ids))
      if lo < 0 or hi >= self.vocab_size:
        raise ValueError(f"imagegpt: input_ids must lie in [0, {self.vocab_size}), got "
                         f"[{lo}, {hi}]")
    x = self.wte(input_ids) + self.wpe(jnp.arange(t))
    last, hidden, blocks = layers.run_encoder(self.layers, x, sublayers=sublayers, causal=True)
    final = self.ln_f(last)
    # torch appends each block's input, then ln_f of the last output.
    return ModelOutput(hidden_states=tuple(hidden[:-1]) + (final,), blocks=blocks,
                       last_hidden_state=final)


def build(config: Any, *, dtype=jnp.float32, rngs: nnx.Rngs) -> ImageGPTModel:
  return ImageGPTModel(config, dtype=dtype, rngs=rngs)


def convert(state_dict: dict[str, np.ndarray], config: Any) -> dict:
  """transformers ImageGPTModel / ImageGPTFor* state dict -> our parameter tree (numpy)."""
  sd = StateDict(state_dict, prefixes=("transformer",), marker="wte.",
                 ignore=("lm_head.", "score.", "classifier."))
  for name in sd.keys():  # causal-mask buffers that older checkpoints (the hub's) still store
    if re.fullmatch(r"h\.\d+\.attn\.(masked_)?bias", name):
      sd.pop(name)
  dim = config.n_embd

  def conv1d(name: str) -> dict[str, np.ndarray]:  # GPT-2 Conv1D: weight [in, out]
    return {"kernel": sd.pop(f"{name}.weight"), "bias": sd.pop(f"{name}.bias")}

  blocks = []
  for i in range(config.n_layer):
    p = f"h.{i}."
    qkv = conv1d(p + "attn.c_attn")
    attention = {name: {"kernel": qkv["kernel"][:, j * dim:(j + 1) * dim].copy(),
                        "bias": qkv["bias"][j * dim:(j + 1) * dim].copy()}
                 for j, name in enumerate(("q_proj", "k_proj", "v_proj"))}
    attention["o_proj"] = conv1d(p + "attn.c_proj")
    blocks.append({
        "norm1": {"scale": sd.pop(p + "ln_1.weight")},
        "attention": attention,
        "norm2": {"scale": sd.pop(p + "ln_2.weight")},
        "mlp": {"fc1": conv1d(p + "mlp.c_fc"), "fc2": conv1d(p + "mlp.c_proj")},
    })
  params = {
      "wte": {"embedding": sd.pop("wte.weight")},
      "wpe": {"embedding": sd.pop("wpe.weight")},
      "layers": layer_list(blocks),
      "ln_f": {"scale": sd.pop("ln_f.weight")},
  }
  sd.check_consumed("imagegpt")
  return params


def torch_hooks(config: Any, *, sublayers: bool = False) -> dict[str, Any]:
  """Our block names -> torch ImageGPTModel submodules (repsim_jax.models.parity.HookSpec)."""
  return {"embeddings": ("h.0", "input"),
          **parity.transformer_hooks(config.n_layer, "h.{i}", attn="attn", attn_module="attn",
                                     mid="ln_2", mlp="mlp", sublayers=sublayers)}


def synthetic_inputs(config: Any, n: int, *, seed: int) -> tuple[np.ndarray, str]:
  """Random cluster ids [n, n_positions] (parity inputs for a checkpoint without a processor)."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(0, config.vocab_size - 1, (n, config.n_positions))
  return ids, "random cluster ids (no preprocessor_config.json)"


def tiny_config(model_type: str, image_size: int):
  """8x8 images, 16 colour clusters (whatever `image_size`)."""
  import transformers as tr
  side = 8
  clusters = np.random.default_rng(0).uniform(-1, 1, size=(16, 3)).astype(np.float32)
  return (tr.ImageGPTConfig(vocab_size=17, n_positions=side * side, n_embd=32, n_layer=4, n_head=2),
          {"image_processor_type": "ImageGPTImageProcessor", "clusters": clusters.tolist(),
           "size": {"height": side, "width": side}})
