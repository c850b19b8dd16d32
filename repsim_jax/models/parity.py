"""Layer-by-layer comparison of a port against its transformers torch reference.

Used by the parity tests (tests/torch_parity.py) and by `experiments.compare_torch`. torch is
imported only inside `run_torch`.

Error measure, per tensor pair (ours a, reference b, same shape, compared in float64):
  max_abs = max |a - b|,   rel = max_abs / max |b|   (rel = max_abs when b is all zeros),
and the pair passes when  max_abs <= rtol * max|b| + atol,  i.e. rel <= rtol up to a small
absolute floor `atol` for tensors that are (nearly) zero.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

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
          captured[name] = args[0] if args else next(iter(kwargs.values()))
      handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
    else:
      def hook(mod, args, output, name=name, index=what, wanted=wanted):
        if not wanted():
          return
        if isinstance(output, (tuple, list)):
          captured[name] = output[index]
        elif hasattr(output, "to_tuple"):
          captured[name] = output.to_tuple()[index]
        else:
          if index != 0:
            raise ValueError(f"hook {name!r}: output of {mod.__class__.__name__} is not a tuple")
          captured[name] = output
      handles.append(module.register_forward_hook(hook))
  try:
    with torch.no_grad():
      out = model(pixel_values_nchw, output_hidden_states=True, **forward_kwargs)
  finally:
    for h in handles:
      h.remove()

  def to_np(name: str, t) -> np.ndarray:
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
