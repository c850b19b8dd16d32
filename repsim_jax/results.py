"""Result files: numbers (npz) beside a JSON with the config, package versions and input fingerprints.

Every experiment writes through `save_result`, so any file under a workdir says what produced it.
"""
from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import zipfile
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


def savez(file: Any, arrays: Mapping[str, Any]) -> None:
  """`np.savez(file, **arrays)` with fixed zip entry times: the same arrays give the same bytes
  (np.savez stamps every entry with the current time), so a rerun's result files can be
  compared, and hashed, bit for bit. `np.load` reads it as any npz."""
  with zipfile.ZipFile(file, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
    for name, value in arrays.items():
      info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
      with archive.open(info, "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=True)


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
  savez(npz_path, {k: np.asarray(v) for k, v in arrays.items()})
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


def write_atomic(path: str, data: bytes | str) -> None:
  """Writes `data` to `path` through a temporary file renamed into place: a reader (or a rerun
  after a kill) sees the old file or the whole new one, never part of it."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def fingerprint_json(value: Any) -> str:
  """Short content hash of a JSON-able value (keys sorted): identifies settings or metadata."""
  text = json.dumps(to_jsonable(value), sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path: str) -> dict[str, Any]:
  """{"bytes": size, "sha256": hex digest} of a file."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return {"bytes": os.path.getsize(path), "sha256": h.hexdigest()}


_STRUCTURE = "__structure__"


def _encode(value: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
  if isinstance(value, (bool, str)) or value is None:
    return value
  if isinstance(value, int) and not isinstance(value, np.generic):
    return value
  if type(value) is float:  # an array too, so that numbers are compared as numbers, not text
    name = f"a{len(arrays)}"
    arrays[name] = np.float64(value)
    return {"array": name, "as": "float"}
  if hasattr(value, "to_dict") and not isinstance(value, Mapping):
    value = value.to_dict()
  if isinstance(value, Mapping):
    return {"dict": [[_encode(k, arrays, where), _encode(v, arrays, f"{where}[{k!r}]")]
                     for k, v in value.items()]}
  if isinstance(value, tuple):
    return {"tuple": [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]}
  if isinstance(value, list):
    return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]
  if isinstance(value, np.generic) or hasattr(value, "__array__"):
    array = np.asarray(value)
    if array.dtype.kind == "O":
      raise TypeError(f"{where}: an object array cannot be stored without pickle")
    name = f"a{len(arrays)}"
    arrays[name] = array
    return {"array": name, "as": "scalar" if isinstance(value, np.generic) else "array"}
  raise TypeError(f"{where}: a {type(value).__name__} is not a stored value (expected "
                  "dicts, lists, tuples, arrays, numbers, strings, None)")


def _decode(node: Any, arrays: Mapping[str, np.ndarray]) -> Any:
  if isinstance(node, list):
    return [_decode(v, arrays) for v in node]
  if not isinstance(node, dict):
    return node
  if "dict" in node:
    return {_decode(k, arrays): _decode(v, arrays) for k, v in node["dict"]}
  if "tuple" in node:
    return tuple(_decode(v, arrays) for v in node["tuple"])
  array = arrays[node["array"]]
  if node["as"] == "float":
    return float(array)
  return array[()] if node["as"] == "scalar" else array


def tree_to_bytes(value: Any) -> bytes:
  """`value` (nested dicts with any JSON-able or tuple keys, lists, tuples, numpy / jax arrays
  and scalars, Python numbers, strings, None) as the bytes of one npz: every array bit-exact
  with its dtype, the structure as JSON beside them, no pickle. `tree_from_bytes` reads it
  back equal, types included (a jax array comes back as numpy). Raises TypeError naming the
  first value it cannot store."""
  arrays: dict[str, np.ndarray] = {}
  structure = json.dumps(_encode(value, arrays, "value"))
  buffer = io.BytesIO()
  savez(buffer, {**arrays, _STRUCTURE: np.array(structure)})
  return buffer.getvalue()


def tree_from_bytes(data: bytes) -> Any:
  """What `tree_to_bytes` stored."""
  with np.load(io.BytesIO(data), allow_pickle=False) as z:
    arrays = {k: z[k] for k in z.files}
  return _decode(json.loads(str(arrays.pop(_STRUCTURE))), arrays)
