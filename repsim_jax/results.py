"""Result files: numbers (npz) beside a JSON with the config, package versions and input fingerprints.

Every experiment writes through `save_result`, so any file under a workdir says what produced it.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
from typing import Any, Mapping

import numpy as np

from repsim_jax import sharding

_PACKAGES = ("repsim_jax", "jax", "jaxlib", "flax", "optax", "numpy", "transformers", "torch")


def package_versions() -> dict[str, str]:
  """Versions of the packages that can change a result (missing ones are left out)."""
  versions = {"python": platform.python_version()}
  for name in _PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return versions


def fingerprint(array: Any) -> str:
  """Short content hash of an array (shape, dtype and bytes): identifies an input exactly."""
  array = np.ascontiguousarray(np.asarray(array))
  h = hashlib.sha256()
  h.update(f"{array.shape}|{array.dtype.str}|".encode())
  h.update(array.tobytes())
  return h.hexdigest()[:16]


def to_jsonable(obj: Any) -> Any:
  """`obj` as plain JSON values: ConfigDicts and mappings as dicts, numpy scalars and arrays as
  Python numbers and lists, anything else as its repr."""
  if hasattr(obj, "to_dict"):  # ml_collections.ConfigDict
    obj = obj.to_dict()
  if isinstance(obj, Mapping):
    return {str(k): to_jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [to_jsonable(v) for v in obj]
  if isinstance(obj, np.generic):
    return obj.item()
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  if isinstance(obj, (str, int, float, bool)) or obj is None:
    return obj
  return repr(obj)


def save_result(workdir: str, name: str, arrays: Mapping[str, Any], *, config: Any = None,
                inputs: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None) -> str:
  """Writes `<workdir>/<name>.npz` and `<workdir>/<name>.json`; returns the npz path.

  The JSON holds the config, package versions, input fingerprints, the array names and shapes, and
  any small `extra` values (headline numbers) so a reader need not open the npz. On multi-process
  runs only the writer (process 0, `sharding.is_writer`) writes; every process computed the same
  arrays, and the others get the same path back.
  """
  npz_path = os.path.join(workdir, f"{name}.npz")
  if not sharding.is_writer():
    return npz_path
  os.makedirs(workdir, exist_ok=True)
  np.savez(npz_path, **{k: np.asarray(v) for k, v in arrays.items()})
  meta = {
      "name": name,
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "config": to_jsonable(config),
      "versions": package_versions(),
      "inputs": dict(inputs or {}),
      "arrays": {k: list(np.shape(v)) for k, v in arrays.items()},
      **({"values": to_jsonable(extra)} if extra else {}),
  }
  with open(os.path.join(workdir, f"{name}.json"), "w") as f:
    json.dump(meta, f, indent=2)
  return npz_path


def load_result(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """Reads back what `save_result` wrote: (arrays, metadata)."""
  base = path[:-4] if path.endswith((".npz", ".json")) else path
  base = base[:-1] if base.endswith(".") else base
  with np.load(base + ".npz") as z:
    arrays = {k: z[k] for k in z.files}
  with open(base + ".json") as f:
    meta = json.load(f)
  return arrays, meta
