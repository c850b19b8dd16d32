"""Our ports against their transformers torch references, tensor by tensor.

The pieces (used by the parity tests, tests/helpers/torch_parity.py): `transformer_hooks` /
`torch_hooks` name the torch submodule of each of our blocks, `run_torch` captures them with
forward hooks, `compare` measures each pair and `format_table` / `assert_close` report. torch is
imported only inside `run_torch` and `compare_checkpoint`.

`compare_checkpoint(path)` (experiments.compare_torch) puts them together for one checkpoint:
  1. resolves the checkpoint (directory or cached hub id), loads our port (`from_pretrained`) and
     the torch reference (`transformers.AutoModel`, or the vision tower of a CLIP / SigLIP
     checkpoint: `torch_backend.vision_model_class`; eager attention, float32, eval mode; MAE
     without masking);
  2. makes `n_images` deterministic synthetic RGB images (smooth colour gradients, a few
     sinusoids and noise, uint8, `image_size` square) and preprocesses them once with the
     checkpoint's own processor (`preprocessing.load_preprocessor`); both models get the same
     array (NHWC for ours, NCHW for torch; ImageGPT: the same token ids). A checkpoint without
     preprocessor_config.json gets images at the config's image size normalised with mean = std
     = 0.5 (ImageGPT: random cluster ids), and the report says so;
  3. captures every hidden state, last_hidden_state, pooler_output and every block (with
     `sublayers`: attention/MLP branches, residual stream, attention probabilities) on both
     sides and returns one `Row` per tensor.

Error measure, per tensor pair (ours a, reference b, same shape, compared in float64):
  max_abs = max |a - b|,   rel = max_abs / max |b|   (rel = max_abs when b is all zeros),
and the pair passes when  max_abs <= rtol * max|b| + atol,  i.e. rel <= rtol up to a small
absolute floor `atol` for tensors that are (nearly) zero.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

from repsim_jax.models import preprocessing, registry

# A hook spec names a torch submodule by its dotted path and what to take from it:
#   "path"               the module's output (its first element when the output is a tuple)
#   ("path", i)          element i of a tuple output (e.g. attention probabilities)
#   ("path", "input")    the module's first positional input (e.g. the residual stream that a
#                        norm receives)
#   ("path", what, n)    as ("path", what), from the module's n-th call in the forward pass (a
#                        module used twice, e.g. BEiT's drop_path on both residual branches);
#                        without n, the last call.
HookSpec = str | tuple[str, int | str] | tuple[str, int | str, int]


def _relative(layer: str, spec: HookSpec) -> HookSpec:
  if isinstance(spec, str):
    return f"{layer}.{spec}"
  return (f"{layer}.{spec[0]}", *spec[1:])


def transformer_hooks(num_layers: int, layer_path: str, *, attn: HookSpec, attn_module: str,
                      mid: str, mlp: HookSpec, sublayers: bool = True,
                      name: str = "block_{i:02d}") -> dict[str, HookSpec]:
  """Hooks for the blocks of a pre-norm transformer, named as in `outputs.py`.

  layer_path: the block module, with "{i}" for its index. Sublayer specs are relative to it:
  attn: module whose output is the attention branch (after any layer scale), attn_module: the
  attention module (its output[1] are the probabilities), mid: module whose input is the residual
  stream after the attention add, mlp: module whose output is the MLP branch (attn and mlp may
  be relative HookSpec tuples). `name`: our block name, with "{i}".
  """
  hooks: dict[str, HookSpec] = {}
  for i in range(num_layers):
    layer, block = layer_path.format(i=i), name.format(i=i)
    hooks[block] = layer
    if sublayers:
      hooks[f"{block}.attn"] = _relative(layer, attn)
      hooks[f"{block}.attn_probs"] = (f"{layer}.{attn_module}", 1)
      hooks[f"{block}.mid"] = (f"{layer}.{mid}", "input")
      hooks[f"{block}.mlp"] = _relative(layer, mlp)
  return hooks


@dataclasses.dataclass
class Row:
  name: str
  shape: tuple[int, ...]
  max_abs: float
  max_ref: float
  rel: float
  ok: bool


def compare(ours: Mapping[str, Any], reference: Mapping[str, Any], *, rtol: float = 1e-5,
            atol: float = 1e-6) -> list[Row]:
  """One Row per name in `reference` (in its order); a missing or misshaped entry fails."""
  rows = []
  for name, ref in reference.items():
    b = np.asarray(ref, np.float64)
    if name not in ours or ours[name] is None:
      rows.append(Row(name, b.shape, float("inf"), float(np.abs(b).max(initial=0)), float("inf"),
                      False))
      continue
    a = np.asarray(ours[name], np.float64)
    if a.shape != b.shape:
      raise ValueError(f"{name}: our shape {a.shape} != reference shape {b.shape}")
    max_abs = float(np.abs(a - b).max(initial=0))
    max_ref = float(np.abs(b).max(initial=0))
    rel = max_abs / max_ref if max_ref > 0 else max_abs
    ok = bool(np.isfinite(a).all()) and max_abs <= rtol * max_ref + atol
    rows.append(Row(name, tuple(b.shape), max_abs, max_ref, rel, ok))
  return rows


def format_table(rows: Sequence[Row]) -> str:
  """A fixed-width table, one line per entry, the worst relative error marked."""
  if not rows:
    return "(nothing compared)"
  worst = max(range(len(rows)), key=lambda i: rows[i].rel)
  width = max(len(r.name) for r in rows)
  lines = [f"{'layer':<{width}}  {'shape':<20} {'max_abs':>10} {'max|ref|':>10} {'rel':>10}  ok"]
  for i, r in enumerate(rows):
    mark = "  <- worst" if i == worst else ""
    lines.append(f"{r.name:<{width}}  {str(r.shape):<20} {r.max_abs:10.3e} {r.max_ref:10.3e} "
                 f"{r.rel:10.3e}  {'ok' if r.ok else 'FAIL'}{mark}")
  return "\n".join(lines)


def assert_close(rows: Sequence[Row], *, what: str = "") -> None:
  """Raise AssertionError with the table when any row fails, naming the worst layer."""
  bad = [r for r in rows if not r.ok]
  if bad:
    worst = max(bad, key=lambda r: r.rel)
    raise AssertionError(f"{what}: {len(bad)}/{len(rows)} entries exceed tolerance; worst "
                         f"{worst.name} rel={worst.rel:.3e} max_abs={worst.max_abs:.3e}\n"
                         + format_table(rows))


def run_torch(model, pixel_values_nchw, hooks: Mapping[str, HookSpec], *,
              channels_last: bool = False, **forward_kwargs) -> dict[str, np.ndarray]:
  """Runs a transformers torch model once with output_hidden_states=True and forward hooks.

  Returns numpy arrays named "hidden_states.{i}", "last_hidden_state", "pooler_output" (when the
  model has them) and every name in `hooks`. With channels_last, 4-D outputs (NCHW) are
  transposed to NHWC, except attention probabilities (names ending in "attn_probs").
  """
  import torch

  captured: dict[str, Any] = {}
  calls: dict[str, int] = {}
  handles = []
  modules = dict(model.named_modules())

  def keep(name, t):  # a copy: the model may add to its output in place (`x += residual`)
    captured[name] = t.clone() if isinstance(t, torch.Tensor) else t

  for name, spec in hooks.items():
    path, what, call = (spec, 0, None) if isinstance(spec, str) else (*spec, None)[:3]
    if path not in modules:
      raise KeyError(f"hook {name!r}: torch model has no submodule {path!r}")
    module = modules[path]

    def wanted(name=name, call=call) -> bool:  # count this call; keep it if it is the n-th
      calls[name] = calls.get(name, -1) + 1
      return call is None or calls[name] == call

    if what == "input":
      def pre_hook(mod, args, kwargs, name=name, wanted=wanted):
        if wanted():
          keep(name, args[0] if args else next(iter(kwargs.values())))
      handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
    else:
      def hook(mod, args, output, name=name, index=what, wanted=wanted):
        if not wanted():
          return
        if isinstance(output, (tuple, list)):
          keep(name, output[index])
        elif hasattr(output, "to_tuple"):
          keep(name, output.to_tuple()[index])
        else:
          if index != 0:
            raise ValueError(f"hook {name!r}: output of {mod.__class__.__name__} is not a tuple")
          keep(name, output)
      handles.append(module.register_forward_hook(hook))
  try:
    with torch.no_grad():
      out = model(pixel_values_nchw, output_hidden_states=True, **forward_kwargs)
  finally:
    for h in handles:
      h.remove()

  def to_np(name: str, t) -> np.ndarray:  # (captured tensors were cloned: see `keep`)
    if t is None:
      raise ValueError(f"torch gave None for {name!r} (attention probabilities need "
                       f"attn_implementation='eager')")
    x = t.detach().float().cpu().numpy()
    if channels_last and x.ndim == 4 and not name.endswith("attn_probs"):
      x = x.transpose(0, 2, 3, 1)
    return x

  result = {}
  for i, h in enumerate(out.hidden_states or ()):
    result[f"hidden_states.{i}"] = to_np(f"hidden_states.{i}", h)
  for key in ("last_hidden_state", "pooler_output"):
    value = getattr(out, key, None)
    if value is not None:
      result[key] = to_np(key, value)
  for name in hooks:
    result[name] = to_np(name, captured.get(name))
  return result


def flatten_output(output) -> dict[str, np.ndarray]:
  """Our ModelOutput as the same flat names `run_torch` uses (plus every `blocks` entry)."""
  flat = {f"hidden_states.{i}": np.asarray(h) for i, h in enumerate(output.hidden_states)}
  for key in ("last_hidden_state", "pooler_output"):
    value = getattr(output, key)
    if value is not None:
      flat[key] = np.asarray(value)
  flat.update({k: np.asarray(v) for k, v in output.blocks.items() if v is not None})
  return flat


# ----------------------------------------------------------------------------- a checkpoint

def encoder_hooks(config: Any, layer_path: str, *, attn: HookSpec, attn_module: str, mid: str,
                  mlp: HookSpec, sublayers: bool) -> dict[str, HookSpec]:
  """`transformer_hooks` for every block of a ViT-like base model, plus "embeddings" (the first
  block's input). The block count is the config's (its vision tower's for a full image-text
  checkpoint, which is compared through that tower)."""
  num_layers = getattr(config, "vision_config", config).num_hidden_layers
  return {"embeddings": (layer_path.format(i=0), "input"),
          **transformer_hooks(num_layers, layer_path, attn=attn, attn_module=attn_module, mid=mid,
                              mlp=mlp, sublayers=sublayers)}


def stage_hooks(depths: Sequence[int], block_path: str, *, stem: str, branch: str,
                sublayers: bool) -> dict[str, HookSpec]:
  """Hooks of a convolutional net in stages, named as in `outputs.py`: "stem" (module `stem`),
  "stageS.blockBB" (`block_path` with "{s}", "{b}") and, with sublayers, "stageS.blockBB.branch"
  (the block's submodule `branch`, whose output is the residual branch before the add)."""
  hooks: dict[str, HookSpec] = {"stem": stem}
  for s, depth in enumerate(depths):
    for b in range(depth):
      path = block_path.format(s=s, b=b)
      hooks[f"stage{s}.block{b:02d}"] = path
      if sublayers:
        hooks[f"stage{s}.block{b:02d}.branch"] = f"{path}.{branch}"
  return hooks


def torch_hooks(config: Any, *, sublayers: bool = False) -> dict[str, HookSpec]:
  """Our block names -> torch submodules of the base model (see HookSpec), as the family of
  `config.model_type` declares them."""
  return registry.family(config.model_type).torch_hooks(config, sublayers=sublayers)


def forward_kwargs(reference, inputs: np.ndarray, sublayers: bool) -> dict[str, Any]:
  """Forward arguments of the torch reference, as its family declares
  (`reference_forward_kwargs`; with sublayers, the attention probabilities are asked for)."""
  from repsim_jax.models import torch_backend
  image_hw = tuple(inputs.shape[1:3]) if inputs.ndim == 4 else None  # NHWC images
  return torch_backend.reference_forward_kwargs(reference, len(inputs), image_hw,
                                                attentions=sublayers)


def synthetic_images(n: int, size: int, *, seed: int = 0) -> list[np.ndarray]:
  """n uint8 [size, size, 3] images: colour gradients + sinusoids + noise (deterministic)."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size] / size
  images = []
  for _ in range(n):
    phase, freq = rng.uniform(0, 2 * np.pi, 3), rng.uniform(1, 8, 3)
    channels = [0.5 + 0.25 * np.sin(2 * np.pi * freq[c] * (xx * np.cos(phase[c]) + yy * np.sin(phase[c])))
                + 0.25 * (xx if c == 0 else yy if c == 1 else 1 - xx) for c in range(3)]
    image = np.stack(channels, -1) * 255 + rng.normal(0, 12, (size, size, 3))
    images.append(np.clip(image, 0, 255).astype(np.uint8))
  return images


@dataclasses.dataclass
class Comparison:
  rows: list[Row]
  model_type: str
  checkpoint: str
  inputs: str  # how the inputs were made

  @property
  def ok(self) -> bool:
    return all(r.ok for r in self.rows)


def _config_image_size(config: Any, default: int) -> int:
  size = getattr(config, "image_size", None)
  if isinstance(size, (list, tuple)):
    size = size[0]
  return int(size or default)


def make_inputs(ckpt: str, config: Any, *, n_images: int, image_size: int | None, seed: int
                ) -> tuple[np.ndarray, str]:
  """The preprocessed batch both models get, and a line describing it."""
  size = image_size or 256
  if os.path.isfile(os.path.join(ckpt, "preprocessor_config.json")):
    processor = preprocessing.load_preprocessor(ckpt)
    batch = processor(synthetic_images(n_images, size, seed=seed))
    return batch, f"{n_images} synthetic {size}x{size} images through {processor.name}"
  fam = registry.family(config.model_type)
  if hasattr(fam, "synthetic_inputs"):  # a model that does not take images
    return fam.synthetic_inputs(config, n_images, seed=seed)
  size = image_size or _config_image_size(getattr(config, "vision_config", config), 224)
  images = np.stack(synthetic_images(n_images, size, seed=seed)).astype(np.float32)
  return ((images / 255 - 0.5) / 0.5).astype(np.float32), (
      f"{n_images} synthetic {size}x{size} images, (x/255 - 0.5)/0.5 (no preprocessor_config.json)")


def compare_checkpoint(path_or_hub_id: str, *, n_images: int = 4, image_size: int | None = None,
                       rtol: float = 1e-4, atol: float = 1e-6, sublayers: bool = False,
                       dtype: Any = None, seed: int = 0, use_cache: bool = True,
                       cache_dir: str | None = None) -> Comparison:
  """Runs both models on the same preprocessed inputs; see the module docstring."""
  import jax.numpy as jnp
  from repsim_jax.extras import import_torch
  torch = import_torch("comparing a port with its transformers torch model")
  import transformers

  from repsim_jax.models import loading, torch_backend

  ckpt = str(loading.resolve_checkpoint(path_or_hub_id))
  if loading.is_native(pathlib.Path(ckpt)):
    raise ValueError(
        f"{ckpt} is a checkpoint in our own format (orbax parameters, as runlocal and the demo "
        "write them); the comparison loads the transformers torch model, which needs a "
        "transformers checkpoint: config.json with model.safetensors or pytorch_model.bin, as "
        "`save_pretrained` writes or `hf download <id>` fetches. To see the comparison on tiny "
        "checkpoints: python -m experiments.compare_torch "
        "--config=configs/compare_torch.py:runlocal")
  config = transformers.AutoConfig.from_pretrained(ckpt)
  ours = loading.from_pretrained(ckpt, dtype=dtype or jnp.float32, use_cache=use_cache,
                                 cache_dir=cache_dir)
  reference = torch_backend.vision_model_class(config.model_type).from_pretrained(
      ckpt, attn_implementation="eager", dtype=torch.float32).eval()
  inputs, how = make_inputs(ckpt, config, n_images=n_images, image_size=image_size, seed=seed)

  out = flatten_output(loading.jit_forward(ours, sublayers=sublayers)(jnp.asarray(inputs)))
  conv = registry.find(config.model_type).feature_maps
  torch_inputs = torch.from_numpy(np.ascontiguousarray(
      inputs if inputs.ndim == 2 else inputs.transpose(0, 3, 1, 2)))
  ref = run_torch(reference, torch_inputs, torch_hooks(config, sublayers=sublayers),
                  channels_last=conv, **forward_kwargs(reference, inputs, sublayers))
  if "pooler_output" not in out:
    # A task checkpoint has no pooler weights: our port omits it, AutoModel adds a random one.
    ref.pop("pooler_output", None)
  rows = compare({k: np.asarray(v, np.float32) for k, v in out.items()}, ref, rtol=rtol,
                 atol=atol)
  return Comparison(rows=rows, model_type=config.model_type, checkpoint=ckpt, inputs=how)
