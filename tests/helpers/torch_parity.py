"""Shared helper of the model parity tests (not a test file).

check_parity(torch_model, tmp_path, images, hooks) does, for a tiny transformers torch model
(images: float NHWC; any other array, e.g. ImageGPT token ids, is passed to both unchanged):
  1. perturb_ every parameter and persistent buffer deterministically (so LayerNorm weights and
     biases, layer scales, position embeddings, ... are not at their trivial init values),
  2. save_pretrained (safetensors) into tmp_path/"ckpt" and load it with our from_pretrained,
  3. run torch with output_hidden_states=True and forward hooks {our block name: torch module
     path} (see repsim_jax.models.parity.HookSpec), and our jit-compiled port with sublayers=True,
  4. compare every hidden state, last_hidden_state, pooler_output and hooked block:
     max|a-b| <= rtol * max|b| + atol per tensor (rtol 1e-5, atol 1e-6 by default, float32),
     failing with a table that names the worst layer.
"""
from __future__ import annotations

import pathlib
from typing import Mapping

import numpy as np

from repsim_jax.models import parity
from repsim_jax.models.parity import transformer_hooks  # noqa: F401  (re-exported for the tests)
from repsim_jax.tiny_checkpoints import tiny_torch_checkpoint  # noqa: F401  (re-exported)


def perturb_(model, *, seed: int = 0, scale: float = 0.1):
  """Adds scale * N(0, 1) to every floating parameter / persistent buffer (in state_dict order);
  running variances are multiplied by exp(scale * N(0, 1)) instead, to stay positive."""
  import torch
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, t in model.state_dict().items():
      if not t.is_floating_point():
        continue
      noise = torch.randn(t.shape, generator=gen, dtype=torch.float32).to(t.dtype)
      if name.endswith("running_var"):
        t.mul_(torch.exp(scale * noise))
      else:
        t.add_(scale * noise)
  return model


def random_images(shape_nhwc, *, seed: int = 0) -> np.ndarray:
  """Standard-normal float32 images [B, H, W, C] (roughly what normalised pixels look like)."""
  return np.random.default_rng(seed).standard_normal(shape_nhwc).astype(np.float32)


def check_parity(torch_model, tmp_path: pathlib.Path, images_nhwc: np.ndarray,
                 hooks: Mapping[str, parity.HookSpec], *, channels_last: bool = False,
                 rtol: float = 1e-5, atol: float = 1e-6, torch_kwargs: Mapping | None = None,
                 our_kwargs: Mapping | None = None, perturb_scale: float = 0.1, model=None,
                 dtype=None) -> list[parity.Row]:
  """Returns the comparison rows (all passing) or raises AssertionError with the table.

  `perturb_scale`: std of the noise perturb_ adds (0 = none; full-size models need less than
  the default so that activations stay O(1) through many layers).
  `model`: an already loaded port (skips save/load; the torch model is then used as is).
  `dtype`: our compute dtype (default float32); the torch reference stays float32.
  """
  import torch
  from repsim_jax.models import from_pretrained, jit_forward

  torch_model.eval()
  if model is None:
    if perturb_scale:
      perturb_(torch_model, scale=perturb_scale)
    ckpt = pathlib.Path(tmp_path) / "ckpt"
    torch_model.save_pretrained(ckpt)
    kw = {} if dtype is None else {"dtype": dtype}
    model = from_pretrained(ckpt, use_cache=False, **kw)  # the orbax cache has its own test
  ours = parity.flatten_output(
      jit_forward(model, sublayers=True, **(our_kwargs or {}))(images_nhwc))
  # images NHWC -> NCHW for torch; other inputs (ImageGPT token ids [B, T]) go in unchanged
  x = images_nhwc.transpose(0, 3, 1, 2) if images_nhwc.ndim == 4 else images_nhwc
  x = torch.from_numpy(np.ascontiguousarray(x))
  ref = parity.run_torch(torch_model, x, hooks, channels_last=channels_last, **(torch_kwargs or {}))
  n_ours = sum(k.startswith("hidden_states.") for k in ours)
  n_ref = sum(k.startswith("hidden_states.") for k in ref)
  assert n_ours == n_ref, f"{n_ours} hidden states, torch has {n_ref}"
  rows = parity.compare(ours, ref, rtol=rtol, atol=atol)
  parity.assert_close(rows, what=type(torch_model).__name__)
  return rows


def max_rel(rows) -> float:
  return max(r.rel for r in rows)


def check_conv_lowerings(torch_model, family, tmp_path: pathlib.Path, images_nhwc: np.ndarray,
                         hooks: Mapping[str, parity.HookSpec], *, rtol: float) -> list[parity.Row]:
  """Ports `torch_model` (a family module: convert + build) once per convolution lowering
  (repsim_jax.models.layers.CONV_LOWERINGS) from the same weights; checks each against torch
  (check_parity, default bounds) and the lowerings against each other within `rtol`. Returns the
  rows of that last comparison."""
  from flax import nnx
  from repsim_jax.models import jit_forward, layers, load_params
  torch_model.eval()
  params = family.convert({k: v.numpy() for k, v in torch_model.state_dict().items()},
                          torch_model.config)
  options = (family.build_options(params, torch_model.config)
             if hasattr(family, "build_options") else {})
  outs = {}
  for lowering in layers.CONV_LOWERINGS:
    port = load_params(nnx.eval_shape(
        lambda: family.build(torch_model.config, conv_lowering=lowering, **options)), params)
    check_parity(torch_model, tmp_path, images_nhwc, hooks, channels_last=True, model=port)
    outs[lowering] = parity.flatten_output(jit_forward(port, sublayers=True)(images_nhwc))
  first, *others = layers.CONV_LOWERINGS
  rows = [row for other in others
          for row in parity.compare(outs[other], outs[first], rtol=rtol, atol=0)]
  parity.assert_close(rows, what=f"{type(torch_model).__name__}: conv lowerings")
  return rows
