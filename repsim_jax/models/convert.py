"""torch state_dict -> our parameter tree: the helpers every family's `convert` uses.

A `StateDict` wraps the torch names -> numpy arrays mapping and pops each tensor as it is
converted, so a family can finish with `sd.check_consumed(...)` and fail on torch weights it did
not map (instead of silently ignoring a part of the checkpoint).
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

import numpy as np


class StateDict:
  """torch name -> numpy array, with the prefix of the base model removed.

  `prefixes`: base_model_prefix values under which task models (ViTForImageClassification, ...)
  store the backbone, e.g. ("vit",). The prefix is stripped only when the checkpoint is a task
  model, i.e. when some keys start with it and the backbone's own `marker` keys do not exist.
  `ignore`: key prefixes of task heads that the base model does not use (classifier., ...).
  """

  def __init__(self, state_dict: Mapping[str, np.ndarray], *, prefixes: Iterable[str] = (),
               marker: str = "embeddings.", ignore: Iterable[str] = ()):
    sd = dict(state_dict)
    has_marker = any(k.startswith(marker) for k in sd)
    for prefix in prefixes:
      p = prefix + "."
      if not has_marker and any(k.startswith(p + marker) for k in sd):
        sd = {k[len(p):]: v for k, v in sd.items() if k.startswith(p)} | {
            k: v for k, v in sd.items() if not k.startswith(p)}
        break
    self.ignore = tuple(ignore)
    self._sd = sd

  def rename(self, rules: Sequence[tuple[str, str]]) -> None:
    """Applies regex renames (in order, to every key): maps legacy checkpoint names (as on the
    hub) to the current transformers names, like transformers' conversion_mapping does."""
    def new_name(k: str) -> str:
      for pattern, repl in rules:
        k = re.sub(pattern, repl, k)
      return k
    self._sd = {new_name(k): v for k, v in self._sd.items()}

  def __contains__(self, name: str) -> bool:
    return name in self._sd

  def keys(self) -> list[str]:
    return list(self._sd)

  def has_prefix(self, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in self._sd)

  def discard(self, suffix: str) -> None:
    """Drops every weight whose name ends with `suffix`: buffers that old checkpoints saved and
    the port recomputes (BEiT's and Swin's relative_position_index, as transformers ignores)."""
    self._sd = {k: v for k, v in self._sd.items() if not k.endswith(suffix)}

  def pop(self, name: str) -> np.ndarray:
    if name not in self._sd:
      raise KeyError(f"checkpoint has no weight {name!r} (expected by the port); "
                     f"{len(self._sd)} unconverted weights left, e.g. {sorted(self._sd)[:5]}")
    return np.asarray(self._sd.pop(name), dtype=np.float32)

  def linear(self, name: str, *, bias: bool | None = None) -> dict[str, np.ndarray]:
    """nn.Linear (weight [out, in]) -> nnx.Linear {kernel [in, out], bias}. bias=None: if present."""
    out = {"kernel": self.pop(f"{name}.weight").T.copy()}
    if bias or (bias is None and f"{name}.bias" in self._sd):
      out["bias"] = self.pop(f"{name}.bias")
    return out

  def conv2d(self, name: str, *, bias: bool | None = None) -> dict[str, np.ndarray]:
    """nn.Conv2d (weight [out, in/g, kh, kw]) -> nnx.Conv {kernel [kh, kw, in/g, out], bias}."""
    out = {"kernel": self.pop(f"{name}.weight").transpose(2, 3, 1, 0).copy()}
    if bias or (bias is None and f"{name}.bias" in self._sd):
      out["bias"] = self.pop(f"{name}.bias")
    return out

  def layer_norm(self, name: str, *, bias: bool | None = None) -> dict[str, np.ndarray]:
    """nn.LayerNorm {weight, bias} -> nnx.LayerNorm {scale, bias}."""
    out = {"scale": self.pop(f"{name}.weight")}
    if bias or (bias is None and f"{name}.bias" in self._sd):
      out["bias"] = self.pop(f"{name}.bias")
    return out

  def check_consumed(self, family: str) -> None:
    """Raise if weights remain that are neither converted nor task-head weights."""
    left = sorted(k for k in self._sd if not k.startswith(self.ignore))
    if left:
      raise ValueError(f"{family}: the checkpoint has {len(left)} weights the port does not use: "
                       f"{left[:10]}{' ...' if len(left) > 10 else ''}")


def layer_list(items: list[dict]) -> dict[int, dict]:
  """A list of per-layer trees as nnx.List's pure-dict form {0: ..., 1: ...}."""
  return {i: item for i, item in enumerate(items)}
