"""Hugging Face checkpoint -> Flax NNX model: resolve, read, convert (cached with orbax), load.

    model = from_pretrained("facebook/dinov2-base")   # or a local directory
    forward = jit_forward(model, sublayers=True)
    out = forward(pixel_values_nhwc)                   # ModelOutput

The checkpoint directory holds config.json and model.safetensors (or a sharded
model.safetensors.index.json, or pytorch_model.bin when torch is installed). A hub id is looked
up in the local Hugging Face cache only; nothing is downloaded.

Models we train ourselves (e.g. the shapes-world demo) are saved by `save_pretrained` as a
*native* checkpoint: config.json (a transformers config), preprocessor_config.json, and our
parameter tree saved with orbax (params/ + empty.json, the format of the conversion cache).
`from_pretrained` loads both kinds the same way.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
import struct
import warnings
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from repsim_jax.models import registry
from repsim_jax.models.layers import compiler_options
from repsim_jax.models.outputs import ModelOutput

try:  # True outside any jax trace (jit_forward compiles with options only there)
  from jax._src.core import trace_state_clean as _outside_any_trace
except ImportError:  # private API gone: no compiler options rather than a failing nested call
  def _outside_any_trace() -> bool:
    return False

DEFAULT_CACHE_DIR = pathlib.Path("~/.cache/repsim_jax/converted")

_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


# ----------------------------------------------------------------------------- resolving

def resolve_checkpoint(path_or_hub_id: str | os.PathLike, *, hf_cache_dir: str | None = None
                       ) -> pathlib.Path:
  """A local checkpoint directory for a path or a hub id (local HF cache only, never downloads)."""
  path = pathlib.Path(os.path.expanduser(str(path_or_hub_id)))
  if path.is_dir():
    if not (path / "config.json").is_file():
      raise FileNotFoundError(f"checkpoint directory {str(path)!r} has no config.json")
    return path.absolute()  # orbax and the conversion cache need absolute paths
  name = str(path_or_hub_id)
  if path.exists() or name.count("/") != 1 or name.startswith((".", "/", "~")):
    raise FileNotFoundError(f"{name!r} is neither a checkpoint directory (config.json + "
                            f"*.safetensors) nor a hub id of the form 'org/name'")
  import huggingface_hub
  try:
    snapshot = huggingface_hub.snapshot_download(
        name, cache_dir=hf_cache_dir, local_files_only=True,
        allow_patterns=["*.json", "*.safetensors", "*.bin"])
  except Exception as e:  # LocalEntryNotFoundError, RepositoryNotFoundError, offline errors
    raise FileNotFoundError(
        f"{name!r} is not a local checkpoint directory, and as a hub id it is not in the local "
        f"Hugging Face cache "
        f"({hf_cache_dir or huggingface_hub.constants.HF_HUB_CACHE}) and downloads are off; "
        f"fetch it with:  hf download {name}"
        + (f" --cache-dir {hf_cache_dir}" if hf_cache_dir else "") + f"   ({type(e).__name__})"
    ) from e
  snapshot = pathlib.Path(snapshot)
  if not (snapshot / "config.json").is_file():
    raise FileNotFoundError(f"cached snapshot of {name!r} at {snapshot} has no config.json; "
                            f"fetch it with:  hf download {name}")
  return snapshot


def is_native(ckpt: pathlib.Path) -> bool:
  """Whether `ckpt` is a native checkpoint (`save_pretrained`: orbax params/ + empty.json)."""
  return (ckpt / "params").is_dir() and (ckpt / "empty.json").is_file()


def weight_files(ckpt: pathlib.Path) -> list[pathlib.Path]:
  """The weight files of a checkpoint directory, in the order they are read."""
  if is_native(ckpt):
    return [ckpt / "empty.json"] + sorted(p for p in (ckpt / "params").rglob("*") if p.is_file())
  for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
    index = ckpt / index_name
    if index.is_file():
      try:
        weight_map = json.loads(index.read_text())["weight_map"]
      except (ValueError, KeyError) as e:
        raise ValueError(f"corrupted checkpoint index {index}: {e}") from e
      files = [ckpt / f for f in sorted(set(weight_map.values()))]
      missing = [str(f) for f in files if not f.is_file()]
      if missing:
        raise FileNotFoundError(f"{index} lists weight files that are missing: {missing}")
      return files
  safetensors = sorted(ckpt.glob("*.safetensors"))
  if safetensors:
    return safetensors
  if (ckpt / "pytorch_model.bin").is_file():
    return [ckpt / "pytorch_model.bin"]
  raise FileNotFoundError(f"checkpoint directory {ckpt} has no weights (model.safetensors, a "
                          f"sharded model.safetensors.index.json, or pytorch_model.bin)")


# ----------------------------------------------------------------------------- reading

def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """All tensors of a .safetensors file as numpy (bfloat16 -> float32), memory-mapped.

  Format: 8-byte little-endian header length n, n bytes of JSON {name: {dtype, shape,
  data_offsets}}, then the raw data. Truncated or corrupted files raise ValueError naming the file.
  """
  path = pathlib.Path(path)
  size = path.stat().st_size

  def bad(why: str) -> ValueError:
    return ValueError(f"corrupted or truncated safetensors file {str(path)!r}: {why}")

  if size < 8:
    raise bad(f"only {size} bytes")
  with open(path, "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    if n > size - 8:
      raise bad(f"header of {n} bytes does not fit in a file of {size} bytes")
    try:
      header = json.loads(f.read(n))
    except (ValueError, UnicodeDecodeError) as e:
      raise bad(f"header is not valid JSON ({e})") from None
  if not isinstance(header, dict):
    raise bad("header is not a JSON object")
  header.pop("__metadata__", None)
  data_size = size - 8 - n
  raw = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n, shape=(data_size,)) \
      if data_size else np.zeros(0, np.uint8)
  out = {}
  for name, info in header.items():
    try:
      dtype_name, shape, (start, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
    except (KeyError, TypeError, ValueError):
      raise bad(f"malformed entry for {name!r}") from None
    if end > data_size or start > end:
      raise bad(f"tensor {name!r} needs bytes {start}..{end} but the data has {data_size}")
    chunk = raw[start:end]
    if dtype_name == "BF16":
      import ml_dtypes
      arr = chunk.view(ml_dtypes.bfloat16).astype(np.float32)
    elif dtype_name in _SAFETENSORS_DTYPES:
      arr = chunk.view(_SAFETENSORS_DTYPES[dtype_name])
    else:
      raise bad(f"tensor {name!r} has unsupported dtype {dtype_name}")
    if arr.size != int(np.prod(shape, dtype=np.int64)):
      raise bad(f"tensor {name!r} has {arr.size} elements for shape {shape}")
    out[name] = arr.reshape(shape)
  return out


def read_torch_bin(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """pytorch_model.bin via torch.load(weights_only=True); needs torch."""
  from repsim_jax.extras import import_torch
  torch = import_torch(f"reading {path} (a pytorch_model.bin checkpoint; safetensors need no "
                       f"torch)")
  try:
    sd = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:
    raise ValueError(f"corrupted or truncated torch checkpoint {str(path)!r}: {e}") from e
  return {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in sd.items()}


def read_state_dict(files: list[pathlib.Path]) -> dict[str, np.ndarray]:
  sd: dict[str, np.ndarray] = {}
  for f in files:
    sd.update(read_safetensors(f) if f.suffix == ".safetensors" else read_torch_bin(f))
  return sd


def fingerprint(ckpt: pathlib.Path, files: list[pathlib.Path], *, extra: str = "") -> str:
  """sha256 over config.json and, per weight file, its name, size and first/last MiB.

  Files in the HF cache are symlinks to blobs named by their content hash; that name is used too.
  """
  h = hashlib.sha256()
  h.update((ckpt / "config.json").read_bytes())
  h.update(extra.encode())
  for f in files:
    st = f.stat()
    h.update(f"{f.name}:{st.st_size}:{pathlib.Path(os.path.realpath(f)).name}".encode())
    with open(f, "rb") as fh:
      h.update(fh.read(1 << 20))
      if st.st_size > 1 << 20:
        fh.seek(max(st.st_size - (1 << 20), 1 << 20))
        h.update(fh.read())
  return h.hexdigest()[:32]


# ----------------------------------------------------------------------------- params

def _flatten(tree: Any, prefix: tuple = ()) -> dict[tuple, Any]:
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, prefix + (k,)))
    return out
  return {prefix: tree}


def _unflatten(flat: dict[tuple, Any]) -> dict:
  out: dict = {}
  for path, v in flat.items():
    node = out
    for k in path[:-1]:
      node = node.setdefault(k, {})
    node[path[-1]] = v
  return out


def _name(path: tuple) -> str:
  return ".".join(str(k) for k in path)


def load_params(model: nnx.Module, params: dict, *, mesh: jax.sharding.Mesh | None = None,
                min_shard_size: int = 1 << 20) -> nnx.Module:
  """Puts a converted parameter tree into `model` (in place; also returned).

  `params` must match `nnx.state(model, nnx.Variable).to_pure_dict()` exactly, i.e. hold every
  variable of the model (parameters, and batch-norm statistics where a port has them): missing
  or unexpected entries and shape mismatches raise one ValueError listing them. With `mesh`,
  arrays get a NamedSharding (see `param_sharding`).
  """
  state = nnx.state(model, nnx.Variable)
  expected = _flatten(state.to_pure_dict())
  given = _flatten(params)
  missing = sorted(_name(p) for p in expected if p not in given)
  unexpected = sorted(_name(p) for p in given if p not in expected)
  shapes = [f"{_name(p)}: model {tuple(expected[p].shape)} vs checkpoint {tuple(np.shape(given[p]))}"
            for p in expected if p in given and tuple(expected[p].shape) != tuple(np.shape(given[p]))]
  if missing or unexpected or shapes:
    parts = []
    if missing:
      parts.append(f"missing {len(missing)}: {missing[:10]}")
    if unexpected:
      parts.append(f"unexpected {len(unexpected)}: {unexpected[:10]}")
    if shapes:
      parts.append(f"shape mismatch {len(shapes)}: {shapes[:10]}")
    raise ValueError(f"converted parameters do not fit {type(model).__name__}: " + "; ".join(parts))
  arrays = {}
  for p, ref in expected.items():
    value = np.asarray(given[p], dtype=ref.dtype)
    arrays[p] = (jax.device_put(value, param_sharding(mesh, value.shape,
                                                      min_shard_size=min_shard_size))
                 if mesh is not None
                 else jax.device_put(value))
  state.replace_by_pure_dict(_unflatten(arrays))
  nnx.update(model, state)
  return model


def param_sharding(mesh: jax.sharding.Mesh, shape: tuple[int, ...], *,
                   min_shard_size: int = 1 << 20) -> jax.sharding.NamedSharding:
  """Replicated, except 2-D kernels with >= min_shard_size entries whose output dim divides
  evenly over a 'model' mesh axis (if the mesh has one): those shard their last dim over it."""
  P = jax.sharding.PartitionSpec
  if ("model" in mesh.axis_names and len(shape) == 2 and np.prod(shape) >= min_shard_size
      and shape[-1] % mesh.shape["model"] == 0):
    return jax.sharding.NamedSharding(mesh, P(None, "model"))
  return jax.sharding.NamedSharding(mesh, P())


# ----------------------------------------------------------------------------- orbax cache

def _checkpointer():
  """An orbax checkpointer private to this process: the parameters are host numpy arrays, and on
  multi-process runs orbax would otherwise synchronise every save and restore with the other
  processes, which do not make the same calls (only process 0 fills the cache)."""
  import orbax.checkpoint as ocp
  me = jax.process_index()
  return ocp.StandardCheckpointer(multiprocessing_options=ocp.options.MultiprocessingOptions(
      primary_host=me, active_processes={me}, barrier_sync_key_prefix=f"process{me}"))


def _cache_save(path: pathlib.Path, params: dict) -> None:
  """Saves to path/params (orbax) and path/empty.json (zero-size arrays, which orbax refuses)."""
  path = path.absolute()  # orbax misreads relative paths (its metadata comes back empty)
  flat = {_name(p): np.asarray(v) for p, v in _flatten(params).items()}
  empty = {k: [list(v.shape), v.dtype.name] for k, v in flat.items() if v.size == 0}
  path.mkdir(parents=True, exist_ok=True)
  (path / "empty.json").write_text(json.dumps(empty))
  with _checkpointer() as ckptr:
    ckptr.save(path / "params", {k: v for k, v in flat.items() if k not in empty})


def _cache_load(path: pathlib.Path) -> dict:
  path = path.absolute()  # orbax's metadata() returns no item metadata for relative paths
  with _checkpointer() as ckptr:
    meta = ckptr.metadata(path / "params")
    tree = meta.item_metadata if hasattr(meta, "item_metadata") else meta
    cpu = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
    target = {k: jax.ShapeDtypeStruct(tuple(v.shape), v.dtype, sharding=cpu)
              for k, v in dict(tree).items()}
    flat = {k: np.asarray(v) for k, v in ckptr.restore(path / "params", target).items()}
  for k, (shape, dtype) in json.loads((path / "empty.json").read_text()).items():
    flat[k] = np.zeros(shape, dtype)
  return _unflatten({tuple(int(k) if k.isdigit() else k for k in name.split(".")): v
                     for name, v in flat.items()})


# ----------------------------------------------------------------------------- entry point

def from_pretrained(path_or_hub_id: str | os.PathLike, *, dtype=jnp.float32,
                    cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                    mesh: jax.sharding.Mesh | None = None, min_shard_size: int = 1 << 20,
                    hf_cache_dir: str | None = None) -> nnx.Module:
  """Loads a Hugging Face checkpoint as our NNX port.

  Args:
    path_or_hub_id: a local directory (config.json + safetensors) or a hub id in the local HF
      cache (e.g. "facebook/dinov2-base"; never downloaded).
    dtype: compute dtype (parameters stay float32).
    cache_dir: where converted parameters are cached (orbax), keyed by the checkpoint's
      fingerprint; default ~/.cache/repsim_jax/converted. use_cache=False skips the cache.
    mesh: place parameters with NamedSharding on this mesh: replicated, except 2-D kernels of
      >= min_shard_size entries, which shard their output dim over a 'model' axis if the mesh
      has one (see `param_sharding`); jit then partitions the forward pass accordingly. Use
      Auto axis types (jax.make_mesh(..., axis_types=(AxisType.Auto,) * n)).
    hf_cache_dir: the HF hub cache to look hub ids up in (default: HF's own default).

  Returns the model, with `model.converted_from` (the resolved checkpoint directory) and
  `model.loaded_from_cache` (whether conversion was skipped).
  """
  import transformers
  ckpt = resolve_checkpoint(path_or_hub_id, hf_cache_dir=hf_cache_dir)
  try:
    config = transformers.AutoConfig.from_pretrained(str(ckpt))
  except Exception as e:
    raise ValueError(f"cannot read {ckpt / 'config.json'}: {e}") from e
  fam = registry.family(config.model_type)
  files = weight_files(ckpt)

  params = None
  cache_path = None
  cache_hit = False
  if is_native(ckpt):  # our own parameter tree: nothing to convert or cache
    params = _cache_load(ckpt)
  elif use_cache:
    key = fingerprint(ckpt, files, extra=f"{fam.__name__}:{getattr(fam, 'CONVERT_VERSION', 0)}")
    root = pathlib.Path(os.path.expanduser(str(cache_dir or DEFAULT_CACHE_DIR)))
    cache_path = root.absolute() / f"{config.model_type}-{key}"
    if (cache_path / "params").is_dir() and (cache_path / "empty.json").is_file():
      try:
        params = _cache_load(cache_path)
        cache_hit = True
      except Exception as e:  # a broken cache entry is rebuilt, never trusted
        warnings.warn(f"ignoring unreadable converted-params cache {cache_path}: {e}")
        params = None
  if params is None:
    params = fam.convert(read_state_dict(files), config)
    if cache_path is not None and jax.process_index() == 0:  # one writer on multi-host runs
      try:
        _cache_save(cache_path, params)
      except Exception as e:
        warnings.warn(f"could not write converted-params cache {cache_path}: {e}")

  options = fam.build_options(params, config) if hasattr(fam, "build_options") else {}
  # Abstract build: no random initialisation (one XLA compile per parameter shape otherwise).
  model = nnx.eval_shape(lambda: fam.build(config, dtype=dtype, rngs=nnx.Rngs(0), **options))
  load_params(model, params, mesh=mesh, min_shard_size=min_shard_size)
  model.converted_from = str(ckpt)
  model.loaded_from_cache = cache_hit
  return model


def save_pretrained(model: nnx.Module, config: Any, path: str | os.PathLike, *,
                    preprocessor_config: dict[str, Any] | None = None,
                    metadata: dict[str, Any] | None = None) -> pathlib.Path:
  """Saves one of our models as a native checkpoint that `from_pretrained(path)` loads.

  config: the transformers config the model was built from (`registry.family(config.model_type)
  .build(config, ...)`); written as config.json. preprocessor_config: written as
  preprocessor_config.json (what `models.preprocessing.load_preprocessor` and the extraction
  driver read). metadata: anything JSON-able (e.g. how the model was trained), as
  repsim_jax.json. Every variable of the model is saved (`nnx.Variable` state), with orbax.
  """
  path = pathlib.Path(os.path.expanduser(str(path))).absolute()
  if path.exists() and any(path.iterdir()):
    raise FileExistsError(f"save_pretrained: {path} exists and is not empty")
  path.mkdir(parents=True, exist_ok=True)
  config.to_json_file(str(path / "config.json"))
  if preprocessor_config is not None:
    (path / "preprocessor_config.json").write_text(json.dumps(preprocessor_config, indent=2))
  if metadata is not None:
    (path / "repsim_jax.json").write_text(json.dumps(metadata, indent=2, default=str))
  params = nnx.state(model, nnx.Variable).to_pure_dict()
  _cache_save(path, jax.tree.map(np.asarray, params))
  return path


def jit_forward(model: nnx.Module, **call_kwargs) -> Callable[[jax.Array], ModelOutput]:
  """`x -> model(x, **call_kwargs)` as one jit-compiled function (the model's state is an input,
  so it is not baked into the executable as constants).

  Called at top level, it compiles with the platform's `layers.compiler_options`; inside another
  trace (jit, grad, eval_shape) it is an ordinary nested jit, compiled with the outer options
  (jax accepts compiler options on the outermost jit only).

  Note: jit returns dicts with sorted keys, so `out.blocks` comes back in sorted-name order
  ("block_00" ... before "embeddings"); take the forward order from the names, not the dict.
  """
  graphdef, state = nnx.split(model)
  # Ports return most arrays twice (a block's output is also a hidden state). Every jit output
  # gets its own buffer, so a repeated array would be copied into a second one on each call: the
  # compiled function returns each distinct array once, and the output is rebuilt around them
  # from the (treedef, leaf -> distinct index) recorded per input shape and dtype at trace time.
  layouts: dict[tuple[Any, str], tuple[Any, list[int]]] = {}

  def key(x) -> tuple[Any, str]:  # as jit sees x: numpy int64 / float64 arrive 32-bit
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    return tuple(np.shape(x)), str(jax.dtypes.canonicalize_dtype(dtype))

  def distinct_outputs(state, x):
    leaves, treedef = jax.tree.flatten(nnx.merge(graphdef, state)(x, **call_kwargs))
    position: dict[int, int] = {}  # id(leaf) -> its index among the distinct leaves
    distinct, index = [], []
    for leaf in leaves:
      if id(leaf) not in position:
        position[id(leaf)] = len(distinct)
        distinct.append(leaf)
      index.append(position[id(leaf)])
    layouts[key(x)] = (treedef, index)
    return distinct

  top_level = jax.jit(distinct_outputs, compiler_options=compiler_options(jax.default_backend()))
  nested = jax.jit(distinct_outputs)

  def forward(x) -> ModelOutput:
    distinct = (top_level if _outside_any_trace() else nested)(state, x)
    treedef, index = layouts[key(x)]
    return jax.tree.unflatten(treedef, [distinct[i] for i in index])

  return forward
