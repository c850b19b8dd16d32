"""ActivationStore: per-layer representations on disk, chunked, resumable, self-describing.

Layout of a store directory:

  metadata.json          config identity (model id + checkpoint fingerprint, preprocessing,
                         dataset, sampler seed, image ids in row order, dtype, chunking) and the
                         package versions; `numeric_paths`: how the rows were rounded (one entry,
                         or more where a resume was allowed to change it); `complete` and
                         `skipped_ids` once every chunk is done
  layers.json            layer name -> {shape per row, pooling}
  layers/<name>/         one zarr array [N, *shape] per layer (TensorStore), chunks of
                         `chunk_rows` rows x the full feature shape
  chunks/<k>.done        one marker per completed row chunk k (JSON: rows, skipped ids)

Writing a chunk writes every layer's rows first and then creates the marker atomically
(write-temp, fsync, rename), so a process killed at any moment leaves the store in a state where
each chunk either has its marker and all its data, or has no marker and is recomputed in full on
the next run. Batches never straddle chunks, so the recomputed chunk is bit-identical.
Hosts own disjoint chunk ranges (`repsim_jax.data.pipeline.host_chunks`); a zarr chunk file is
only ever written by one process.
"""
from __future__ import annotations

import datetime
import json
import os
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from repsim_jax.paths import absolute
from repsim_jax.results import package_versions, to_jsonable

FORMAT_VERSION = 1
DTYPES = {"float32": "<f4", "float16": "<f2"}


def _write_json_atomic(path: str, obj: Any) -> None:
  tmp = f"{path}.tmp.{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def _diff(expected: Any, found: Any, prefix: str = "") -> list[str]:
  """Paths where two JSON trees differ (for readable mismatch errors)."""
  if isinstance(expected, dict) and isinstance(found, dict):
    out = []
    for key in sorted(set(expected) | set(found)):
      out += _diff(expected.get(key, "<absent>"), found.get(key, "<absent>"), f"{prefix}{key}.")
    return out
  if expected != found:
    show = lambda v: (repr(v)[:80] + "...") if len(repr(v)) > 80 else repr(v)
    return [f"{prefix[:-1]}: store has {show(found)}, config asks for {show(expected)}"]
  return []


class StoreMismatchError(ValueError):
  """The config of a run differs from the config an existing store was made with."""


class NumericPathError(StoreMismatchError):
  """A store is resumed under another numeric path (lowering, device, dtype, versions) than its
  rows were written with: the new rows would not be bit-identical to a fresh run's."""


class IncompleteStoreError(RuntimeError):
  """A store opened for reading still has chunks to compute."""


class ActivationStore:
  """One chunked [N, ...] array per layer with the metadata that produced it.

  Create or resume with `ActivationStore.open_or_create(path, config=..., num_rows=...)`;
  read with `ActivationStore.open(path)`.
  """

  def __init__(self, path: str, metadata: dict[str, Any], *,
               allow_numeric_path_change: bool = False):
    self.path = absolute(path)
    self.allow_numeric_path_change = allow_numeric_path_change  # TensorStore and every writer get absolute paths
    self.metadata = metadata
    self.config = metadata["config"]
    self.num_rows = int(self.config["num_rows"])
    self.chunk_rows = int(self.config["chunk_rows"])
    self.dtype = self.config["dtype"]
    self.num_chunks = -(-self.num_rows // self.chunk_rows)
    self._arrays: dict[str, Any] = {}

  # ---------------------------------------------------------------- creation and opening
  @classmethod
  def open_or_create(cls, path: str, *, config: Mapping[str, Any], ids: Sequence[str],
                     chunk_rows: int = 1024, dtype: str = "float32",
                     allow_numeric_path_change: bool = False) -> "ActivationStore":
    """Opens the store at `path` if it was made with the same config, else creates it.

    Args:
      config: what identifies the representations (model id and checkpoint fingerprint,
        preprocessing, dataset, sampler, ...); any JSON-able mapping.
      ids: image ids in row order; N = len(ids).
      chunk_rows: rows per on-disk chunk: the unit of resumption and the host memory bound.
      dtype: "float32" or "float16" on disk.
      allow_numeric_path_change: let this store be resumed under another numeric path than its
        rows were written with (`check_numeric_path`); the store then records both.
    Raises:
      StoreMismatchError: a store exists at `path` with a different config, ids, chunking or
        dtype (it is never overwritten; pick another path or delete it).
    """
    if dtype not in DTYPES:
      raise ValueError(f"store dtype {dtype!r}: expected one of {sorted(DTYPES)}")
    if chunk_rows <= 0:
      raise ValueError(f"chunk_rows should be positive, got {chunk_rows}")
    if len(set(ids)) != len(ids):
      raise ValueError("store ids: expected distinct image ids, found duplicates")
    path = absolute(path)
    full = {"format": FORMAT_VERSION, "num_rows": len(ids), "chunk_rows": int(chunk_rows),
            "dtype": dtype, **to_jsonable(dict(config)), "ids": [str(i) for i in ids]}
    meta_path = os.path.join(path, "metadata.json")
    if os.path.exists(meta_path):
      with open(meta_path) as f:
        existing = json.load(f)
      problems = _diff(full, existing["config"])
      if problems:
        raise StoreMismatchError(
            f"store {path!r} was made with a different config; refusing to overwrite it:\n  "
            + "\n  ".join(problems[:20]) + "\nUse another --workdir/store path, or delete the store.")
      return cls(path, existing, allow_numeric_path_change=allow_numeric_path_change)
    os.makedirs(os.path.join(path, "chunks"), exist_ok=True)
    os.makedirs(os.path.join(path, "layers"), exist_ok=True)
    metadata = {"config": full, "versions": package_versions(),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "complete": False}
    _write_json_atomic(meta_path, metadata)
    return cls(path, metadata, allow_numeric_path_change=allow_numeric_path_change)

  @classmethod
  def open(cls, path: str, *, require_complete: bool = True) -> "ActivationStore":
    """Opens an existing store for reading; by default checks that every chunk is done."""
    path = absolute(path)
    meta_path = os.path.join(path, "metadata.json")
    if not os.path.exists(meta_path):
      raise FileNotFoundError(f"no activation store at {path!r} (missing metadata.json)")
    with open(meta_path) as f:
      store = cls(path, json.load(f))
    if require_complete:
      missing = store.missing_chunks()
      if missing or not store.layer_names:
        raise IncompleteStoreError(
            f"store {path!r} is incomplete: {len(missing)} of {store.num_chunks} chunks missing "
            f"(first: {missing[:5]}); rerun the extraction command to finish it")
      for name in store.layer_names:
        shape = store._open_layer(name).shape
        if shape[0] != store.num_rows:
          raise IncompleteStoreError(f"store {path!r} layer {name!r} has {shape[0]} rows, "
                                     f"metadata says {store.num_rows}")
    return store

  # ---------------------------------------------------------------- numeric path
  @property
  def numeric_paths(self) -> list[dict[str, Any]]:
    """The numeric paths the rows were written under (`extraction.extract.numeric_path`), in
    the order they were first used; empty before the first chunk."""
    return list(self.metadata.get("numeric_paths", []))

  def check_numeric_path(self, path: Mapping[str, Any]) -> None:
    """Records `path` as a numeric path of this store's rows, or refuses it.

    The first path is recorded; a later one equal to a recorded path passes; any other raises
    `NumericPathError` (naming both paths and the override) unless the store was opened with
    `allow_numeric_path_change=True`, in which case it is appended to `numeric_paths`.
    Re-reads metadata.json first, so processes that open the store after the writer see its
    record.
    """
    path = to_jsonable(dict(path))
    meta_path = os.path.join(self.path, "metadata.json")
    with open(meta_path) as f:
      self.metadata = json.load(f)
    recorded = self.numeric_paths
    if path in recorded:
      return
    if recorded and not self.allow_numeric_path_change:
      problems = _diff(path, recorded[-1])
      raise NumericPathError(
          f"store {self.path!r} was written under another numeric path than this run's, so the "
          f"rows it would add are not bit-identical to the stored ones:\n  "
          + "\n  ".join(p.replace("config asks for", "this run has") for p in problems)
          + f"\nstore's path: {json.dumps(recorded[-1], sort_keys=True)}"
          + f"\nthis run's:   {json.dumps(path, sort_keys=True)}"
          + "\nRun where the store was written, use another --workdir/store path, or resume "
            "anyway with allow_numeric_path_change=True (command line: "
            "--config.allow_numeric_path_change=True); the store then records both paths.")
    self.metadata = {**self.metadata, "numeric_paths": recorded + [path]}
    _write_json_atomic(meta_path, self.metadata)

  # ---------------------------------------------------------------- layers
  @property
  def ids(self) -> list[str]:
    return self.config["ids"]

  @property
  def layer_specs(self) -> dict[str, dict[str, Any]]:
    path = os.path.join(self.path, "layers.json")
    if not os.path.exists(path):
      return {}
    with open(path) as f:
      return json.load(f)

  @property
  def layer_names(self) -> list[str]:
    """Layer names in forward (row-writing) order."""
    return list(self.layer_specs)

  def ensure_layers(self, specs: Mapping[str, Mapping[str, Any]]) -> None:
    """Creates the per-layer arrays, or checks they match `specs` (name -> {"shape": [...], ...})."""
    specs = {name: to_jsonable(dict(spec)) for name, spec in specs.items()}
    existing = self.layer_specs
    if existing:
      problems = _diff(specs, existing)
      if problems:
        raise StoreMismatchError(f"store {self.path!r} holds other layers or poolings:\n  "
                                 + "\n  ".join(problems[:20]))
    for name, spec in specs.items():
      self._open_layer(name, shape=tuple(spec["shape"]), create=True)
    if not existing:
      _write_json_atomic(os.path.join(self.path, "layers.json"), specs)

  def _open_layer(self, name: str, *, shape: tuple[int, ...] | None = None, create: bool = False):
    if name in self._arrays:
      return self._arrays[name]
    import tensorstore as ts
    spec: dict[str, Any] = {"driver": "zarr",
                            "kvstore": {"driver": "file",
                                        "path": os.path.join(self.path, "layers", name)}}
    if create:
      spec["metadata"] = {"shape": [self.num_rows, *shape],
                          "chunks": [self.chunk_rows, *shape],
                          "dtype": DTYPES[self.dtype], "compressor": None}
      array = ts.open(spec, create=True, open=True).result()
    else:
      if name not in self.layer_specs:
        raise KeyError(f"store {self.path!r} has no layer {name!r}; layers: {self.layer_names}")
      array = ts.open(spec, open=True).result()
    self._arrays[name] = array
    return array

  # ---------------------------------------------------------------- chunks
  def chunk_bounds(self, k: int) -> tuple[int, int]:
    return k * self.chunk_rows, min((k + 1) * self.chunk_rows, self.num_rows)

  def _marker(self, k: int) -> str:
    return os.path.join(self.path, "chunks", f"{k:07d}.done")

  def is_chunk_done(self, k: int) -> bool:
    return os.path.exists(self._marker(k))

  def missing_chunks(self) -> list[int]:
    return [k for k in range(self.num_chunks) if not self.is_chunk_done(k)]

  def write_chunk(self, k: int, values: Mapping[str, np.ndarray], *,
                  skipped_ids: Sequence[str] = (), partial: bool = False) -> None:
    """Writes all layers' rows of chunk `k`, then marks it done (data first, marker last).

    partial=True lets `values` hold only some layers; the others keep the fill value (zeros) in
    this chunk. For synthetic stores at a scale where writing every layer would not fit on disk
    (benchmarks/bench_paper_scale.py at 1e5 images); extraction always writes every layer.
    """
    start, stop = self.chunk_bounds(k)
    unknown = set(values) - set(self.layer_names)
    if unknown or not (partial or set(values) == set(self.layer_names)):
      raise ValueError(f"write_chunk({k}): expected layers {self.layer_names}, got {sorted(values)}")
    futures = []
    for name, value in values.items():
      array = self._open_layer(name)
      if value.shape != (stop - start, *array.shape[1:]):
        raise ValueError(f"write_chunk({k}) layer {name!r}: expected shape "
                         f"{(stop - start, *array.shape[1:])}, got {value.shape}")
      futures.append(array[start:stop].write(value.astype(DTYPES[self.dtype], copy=False)))
    for future in futures:
      future.result()  # the file kvstore writes each chunk file via temp + rename
    _write_json_atomic(self._marker(k), {"rows": [start, stop], "skipped_ids": list(skipped_ids)})

  @property
  def skipped_ids(self) -> list[str]:
    """Ids of bad images skipped under `skip_bad_images` (their rows are NaN)."""
    out = []
    for k in range(self.num_chunks):
      if self.is_chunk_done(k):
        with open(self._marker(k)) as f:
          out += json.load(f)["skipped_ids"]
    return out

  def finalize(self) -> bool:
    """Records completion and skipped ids in metadata.json once every chunk is done."""
    if self.missing_chunks():
      return False
    self.metadata = {**self.metadata, "complete": True, "skipped_ids": self.skipped_ids}
    _write_json_atomic(os.path.join(self.path, "metadata.json"), self.metadata)
    return True

  # ---------------------------------------------------------------- readers
  def valid_rows(self) -> np.ndarray:
    """bool [N]: False for the rows of skipped images."""
    skipped = set(self.skipped_ids)
    return np.array([i not in skipped for i in self.ids], dtype=bool)

  def layer(self, name: str) -> np.ndarray:
    """The whole layer as a numpy array [N, ...] in the on-disk dtype."""
    return self._open_layer(name).read().result()

  def iter_rows(self, name: str, block: int | None = None) -> Iterator[np.ndarray]:
    """Streams a layer in row blocks of `block` rows (default: the chunk size), in order.

    Memory holds one block at a time (plus the next one, read ahead while the caller works).
    """
    array = self._open_layer(name)
    block = block or self.chunk_rows
    starts = list(range(0, self.num_rows, block))
    read = lambda start: array[start:min(start + block, self.num_rows)].read()
    pending = read(starts[0]) if starts else None
    for i in range(len(starts)):
      current = pending.result()
      if i + 1 < len(starts):
        pending = read(starts[i + 1])
      yield current


def load_store_layers(path: str, *, names: str | Sequence[str] = "",
                      drop_skipped: bool = True) -> tuple[list[str], list[np.ndarray]]:
  """(names, arrays) of a complete store, in forward order: the `layer_files.load_layers` shape.

  `names` (list or comma-separated) keeps those layers in the order given; `drop_skipped`
  leaves out the NaN rows of images skipped under `skip_bad_images`.
  """
  store = ActivationStore.open(path)
  if isinstance(names, str):
    names = [n for n in names.split(",") if n]
  names = list(names) or store.layer_names
  missing = [n for n in names if n not in store.layer_names]
  if missing:
    raise KeyError(f"store {path!r}: no layers named {missing}; available: {store.layer_names}")
  keep = store.valid_rows() if drop_skipped else slice(None)
  return names, [store.layer(n)[keep] for n in names]
