"""Reading per-layer representations that users bring: .npz, a folder of .npy, or a glob."""
from __future__ import annotations

import glob
import os

import numpy as np

from repsim_jax.paths import absolute


def load_layers(spec: str, *, names: str | list[str] = "") -> tuple[list[str], list[np.ndarray]]:
  """Loads layers from `spec` and returns (names, arrays) in layer order.

  Args:
    spec: an ActivationStore directory (its layers in model order), an .npz file (its arrays, in
      file order, are the layers), a folder of .npy files (sorted by file name) or a glob
      pattern of .npy files.
    names: optional layer names (list or comma-separated) to keep, in the order given.
  """
  spec = absolute(spec) if not glob.has_magic(spec) else os.path.join(os.getcwd(), spec)
  if os.path.isfile(os.path.join(spec, "metadata.json")):  # an ActivationStore
    from repsim_jax.extraction.store import load_store_layers
    return load_store_layers(spec, names=names)
  if spec.endswith(".npz") and os.path.isfile(spec):
    with np.load(spec) as z:
      layers = {k: z[k] for k in z.files}
  else:
    pattern = os.path.join(spec, "*.npy") if os.path.isdir(spec) else spec
    files = sorted(glob.glob(pattern))
    if not files:
      raise FileNotFoundError(f"no layers found at {spec!r}: expected an .npz file, a folder of "
                              f".npy files, or a glob of .npy files")
    layers = {os.path.splitext(os.path.basename(f))[0]: np.load(f, mmap_mode="r") for f in files}
  if isinstance(names, str):
    names = [n for n in names.split(",") if n]
  if names:
    missing = [n for n in names if n not in layers]
    if missing:
      raise KeyError(f"{spec}: no layers named {missing}; available: {list(layers)}")
    layers = {n: layers[n] for n in names}
  return list(layers), list(layers.values())
