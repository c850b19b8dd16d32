"""Any transformers vision checkpoint through PyTorch, returning what our NNX ports return.

    model = TorchModel("facebook/ijepa_vith14_1k")   # a directory or a hub id in the local HF cache
    out = model(pixel_values_nhwc)                    # ModelOutput of numpy arrays

For checkpoints we have no JAX port of (a config entry with `backend: "torch"`; see
`repsim_jax.extraction.extract.load_model`). `TorchModel` loads the checkpoint's image encoder
with transformers (`vision_model_class`: AutoModel, or the vision tower of an image-text
checkpoint), in eval mode and float32, on the GPU when torch has one, runs it with
output_hidden_states=True and returns a `ModelOutput`:

  hidden_states      torch's hidden states, as numpy; 4-D feature maps NCHW -> NHWC, as our
                     convolutional ports,
  blocks             "embeddings" = hidden_states[0], "block_XX" = hidden_states[XX + 1]: the
                     transformer names of `outputs.py` for whatever torch exposes (no sublayers),
  last_hidden_state, pooler_output   when the model returns them.

Inputs are what our ports take: NHWC float pixel values (transposed to NCHW for torch) or
integer token ids (ImageGPT), so the same preprocessing, pooling and ActivationStore apply.
Models whose forward needs more than the image (SigLIP 2's NaFlex patches with their mask and
spatial shapes) are outside this one-array interface.
torch is optional: without it `TorchModel` raises an ImportError naming the extra to install.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from repsim_jax import extras
from repsim_jax.models.outputs import ModelOutput

def import_torch():
  """torch, or an ImportError that names the extra to install."""
  return extras.import_torch("the torch backend (model entries with backend='torch')")


def vision_model_class(model_type: str):
  """The transformers class that loads a checkpoint's image encoder with its hidden states: the
  one its family declares (`registry.ModelType.torch_class`), else AutoModel."""
  import transformers
  from repsim_jax.models import registry
  spec = registry.find(model_type)
  return getattr(transformers, "AutoModel" if spec is None else spec.torch_class)


def reference_forward_kwargs(model, batch_size: int, image_hw: tuple[int, int] | None = None, *,
                             attentions: bool = False) -> dict[str, Any]:
  """Extra forward arguments (and config changes) that make torch compute what our ports do,
  as the family of `model.config.model_type` declares (`reference_forward_kwargs`; e.g. MAE
  without masking over the patches of an `image_hw` image, default the config's image size).
  attentions: the attention probabilities are wanted (parity with sublayers). May change
  `model.config` in place; {} for families that need nothing (and types we do not port)."""
  from repsim_jax.models import registry
  if registry.find(model.config.model_type) is None:
    return {}
  fam = registry.family(model.config.model_type)
  if not hasattr(fam, "reference_forward_kwargs"):
    return {}
  return fam.reference_forward_kwargs(model, batch_size, image_hw, attentions=attentions)


def default_device() -> str:
  """"cuda" when torch sees a GPU, else "cpu"."""
  return "cuda" if import_torch().cuda.is_available() else "cpu"


class TorchModel:
  """A transformers vision model behind our ModelOutput interface (see the module docstring).

  Args:
    path: checkpoint directory (config.json + weights) or hub id in the local HF cache.
    device: "cuda", "cpu", ... (default: the GPU when torch has one).
    attn_implementation: passed to from_pretrained (None: transformers' default, usually sdpa).
  """

  backend = "torch"

  def __init__(self, path: str | os.PathLike, *, device: str | None = None,
               attn_implementation: str | None = None):
    torch = import_torch()
    from repsim_jax.models import loading
    import transformers
    ckpt = loading.resolve_checkpoint(path)
    config = transformers.AutoConfig.from_pretrained(str(ckpt))
    kwargs = {"dtype": torch.float32}
    if attn_implementation is not None:
      kwargs["attn_implementation"] = attn_implementation
    self.device = device or default_device()
    self.model = vision_model_class(config.model_type).from_pretrained(str(ckpt), **kwargs)
    self.model = self.model.eval().to(self.device)
    self.model_type = config.model_type
    self.converted_from = str(ckpt)
    self.description = (f"torch {torch.__version__} / transformers {transformers.__version__} "
                        f"{type(self.model).__name__} on {self.device}")

  def __call__(self, x) -> ModelOutput:
    torch = import_torch()
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.floating):
      if x.ndim != 4:
        raise ValueError(f"TorchModel: pixel values must be NHWC [B, H, W, C], got {x.shape}")
      inputs = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2), np.float32))
    else:  # token ids (ImageGPT)
      inputs = torch.from_numpy(x.astype(np.int64))
    inputs = inputs.to(self.device)
    kwargs = reference_forward_kwargs(self.model, len(x), tuple(inputs.shape[2:4]))
    with torch.inference_mode():
      out = self.model(inputs, output_hidden_states=True,
                       **{k: v.to(self.device) for k, v in kwargs.items()})

    def to_numpy(t) -> np.ndarray:
      a = t.detach().float().cpu().numpy()
      return a.transpose(0, 2, 3, 1) if a.ndim == 4 else a  # NCHW maps -> NHWC

    if not getattr(out, "hidden_states", None):
      raise ValueError(f"TorchModel: {type(self.model).__name__} returned no hidden_states")
    hidden = tuple(to_numpy(h) for h in out.hidden_states)
    blocks = {"embeddings": hidden[0]} | {f"block_{i:02d}": h for i, h in enumerate(hidden[1:])}
    extras = {key: to_numpy(getattr(out, key)) if getattr(out, key, None) is not None else None
              for key in ("last_hidden_state", "pooler_output")}
    return ModelOutput(hidden_states=hidden, blocks=blocks, **extras)
