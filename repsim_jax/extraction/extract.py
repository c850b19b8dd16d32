"""Model x images -> per-layer pooled representations in an ActivationStore.

`open_model(model_config, workdir)` turns a config's model entry into a model ready to run (the
one place every pipeline loads a model); `extract` fills one store. Every model of a config is
the driver's job (`repsim_jax.pipelines.extract.extract_stores`).

`extract` runs a model through a `Backend`: `JaxBackend` (our ports, any jax function) or
`TorchBackend` (transformers' model, `models.torch_backend`). The JAX backend runs one
jit-compiled step per batch: the batch is sharded over a 1-D device mesh ("rows"), the model
runs, and every requested block output is pooled on device, so only [B, D] rows leave it.
Batches never straddle store chunks, the last batch of a chunk is padded to the full batch size,
and each device pushes fixed micro-batches of `device_batch` rows through the model, so every run
(fresh, resumed, on 1 or 8 devices) does the same per-row arithmetic and writes bit-identical rows
as long as the numeric path (`numeric_path`: lowering, device, dtype, jax version) is the same;
the store records it and refuses a resume under another.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from repsim_jax.data.base import Source
from repsim_jax.data.pipeline import Preprocess, host_chunks, iter_batches
from repsim_jax import sharding
from repsim_jax.extraction.pooling import (DEFAULT_POOLING, default_num_prefix_tokens,
                                          default_pooling, pool)
from repsim_jax.extraction.store import ActivationStore
from repsim_jax.models.layers import compiler_options
from repsim_jax.models.outputs import block_names
from repsim_jax.progress import Progress
from repsim_jax.sharding import ROWS, row_mesh


def _device_memory_mb(mesh: Mesh) -> float | None:
  """Memory in use on this process's first device of `mesh`, for progress lines (None on CPU)."""
  stats = sharding.local_memory_stats(mesh)
  if "bytes_in_use" not in stats:
    return None
  return round(stats["bytes_in_use"] / 2**20, 1)


def _model_key(model: Any) -> tuple[Any, Any]:
  """(hashable key of the model's code, its parameters). NNX modules are split so weights are jit
  arguments, not constants baked into the program, and equal graphs share one compiled step."""
  from flax import nnx
  if isinstance(model, nnx.Module):
    graphdef, state = nnx.split(model)
    return ("nnx", graphdef), state
  return ("callable", model), None


def _forward(model_key: tuple[Any, Any]) -> Callable[[Any, jax.Array], Any]:
  kind, value = model_key
  if kind == "nnx":
    from flax import nnx
    return lambda state, x: nnx.merge(value, state)(x)
  return lambda _, x: value(x)


@functools.lru_cache(maxsize=16)
def _compiled_step(model_key: tuple[Any, Any], layers: tuple[str, ...], modes: tuple[str, ...],
                   num_prefix_tokens: int, out_dtype: Any, device_batch: int, mesh: Mesh):
  """The jitted batch step. Cached so a resumed run, or the next dataset through the same model
  and layers, reuses the compiled program."""
  forward = _forward(model_key)

  def pooled(params, x):
    blocks = forward(params, x).blocks
    return {n: pool(blocks[n], m, num_prefix_tokens=num_prefix_tokens).astype(out_dtype)
            for n, m in zip(layers, modes)}

  def local(params, x):
    # Every device runs the same micro-batches of `device_batch` rows, whatever the device count,
    # so 1 device and 8 devices execute identical per-row arithmetic (bit-identical rows).
    micro = x.reshape(-1, device_batch, *x.shape[1:])
    out = jax.lax.map(lambda xb: pooled(params, xb), micro)
    return jax.tree.map(lambda o: o.reshape(-1, *o.shape[2:]), out)

  step = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(ROWS)), out_specs=P(ROWS))
  return jax.jit(step, in_shardings=(NamedSharding(mesh, P()), NamedSharding(mesh, P(ROWS))),
                 out_shardings=NamedSharding(mesh, P(ROWS)),
                 compiler_options=compiler_options(mesh.devices.flat[0].platform))


def pool_blocks(blocks: Mapping[str, Any], modes: Mapping[str, str], num_prefix_tokens: int,
                out_dtype: Any) -> dict[str, np.ndarray]:
  """Host-side pooling of the named blocks (the torch backend's step): the same `pool` as the
  jitted step, on arrays that are already on the host."""
  return {n: np.asarray(pool(jnp.asarray(blocks[n]), m, num_prefix_tokens=num_prefix_tokens)
                        .astype(out_dtype)) for n, m in modes.items()}


def layer_specs(shapes: Mapping[str, Sequence[int]], modes: Mapping[str, str],
                num_prefix_tokens: int) -> dict[str, dict[str, Any]]:
  """The store's record of each layer (`ActivationStore.ensure_layers`): its pooled shape, its
  pooling mode and, for "mean_patch", the prefix tokens left out; in the order of `shapes`."""
  return {n: {"shape": [int(d) for d in shape], "pooling": modes[n],
              "num_prefix_tokens": num_prefix_tokens if modes[n] == "mean_patch" else None}
          for n, shape in shapes.items()}


def abstract_blocks(model: Any, example_input: np.ndarray) -> dict[str, jax.ShapeDtypeStruct]:
  """{block name: abstract output} of a JAX model (an NNX module, possibly abstract from
  `nnx.eval_shape`) on one input shaped like `example_input`, in the model's forward order, by
  abstract evaluation: nothing runs and no weights are needed."""
  model_key, params = _model_key(model)
  forward = _forward(model_key)
  order: list[str] = []
  def traced(params, x):  # jax sorts dict keys in outputs; record the model's own order
    blocks = forward(params, x).blocks
    order[:] = list(blocks)
    return blocks
  x = jax.ShapeDtypeStruct((1, *np.shape(example_input)), np.asarray(example_input).dtype)
  blocks = jax.eval_shape(traced, params, x)
  return {n: blocks[n] for n in order}


def _select_layers(order: Sequence[str], layers: Sequence[str] | None,
                   pooling: str | Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
  """(layers to store, their pooling modes): `layers`, checked against the model's blocks
  `order`, or every main block."""
  layers = list(layers) if layers is not None else block_names(dict.fromkeys(order))
  bad = [n for n in layers if n not in order]
  if bad:
    raise KeyError(f"layers {bad} not in the model's blocks {list(order)}")
  return layers, _pooling_for(layers, pooling)


def abstract_layer_shapes(model: Any, example_input: np.ndarray, pooling: str | Mapping[str, str],
                          *, num_prefix_tokens: int, layers: Sequence[str] | None = None
                          ) -> tuple[dict[str, tuple[int, ...]], dict[str, str]]:
  """({layer: pooled shape}, {layer: pooling mode}): what `extract` would store of a JAX model
  on inputs like `example_input` (`layers` default: every main block), without running it."""
  blocks = abstract_blocks(model, example_input)
  layers, modes = _select_layers(list(blocks), layers, pooling)
  shapes = {n: jax.eval_shape(lambda b, m=modes[n]: pool(b, m, num_prefix_tokens=num_prefix_tokens),
                              blocks[n]).shape[1:] for n in layers}
  return shapes, modes


def _pooling_for(names: Sequence[str], pooling: str | Mapping[str, str]) -> dict[str, str]:
  if isinstance(pooling, str):
    return {name: pooling for name in names}
  missing = [n for n in names if n not in pooling]
  if missing:
    raise ValueError(f"pooling dict has no mode for layers {missing}")
  return {name: pooling[name] for name in names}


def _param_dtypes(params: Any) -> str:
  """The floating dtypes of a model's parameters, e.g. "float32" or "bfloat16+float32"."""
  dtypes = {str(np.dtype(leaf.dtype)) for leaf in jax.tree.leaves(params)
            if jnp.issubdtype(leaf.dtype, jnp.floating)}
  return "+".join(sorted(dtypes)) or "none"


def numeric_path(*, backend: str, platform: str, device_kind: str, dtype: str,
                 **versions: str) -> dict[str, Any]:
  """What decides how a model's rows are rounded: the store records it (`extract`) and refuses
  to be resumed under another (`ActivationStore.check_numeric_path`).

  backend: "jax" (our ports) or "torch" (`models.torch_backend`); platform and device_kind: of
  the device running the model (`jax.Device.platform` / `.device_kind`, or torch's device);
  dtype: the parameters' dtypes (`_param_dtypes`); versions: extra package versions (torch).
  For the JAX backend the record holds the convolution lowering that `models.layers.conv2d`
  picks by default on `platform` and the XLA options the forward compiles with
  (`models.layers.compiler_options`): both change the order of float32 sums. Rows computed
  under two different paths agree to rounding, not bit for bit.
  """
  import jaxlib
  path: dict[str, Any] = {"backend": backend, "platform": platform, "device_kind": device_kind,
                          "dtype": dtype, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
                          **versions}
  if backend == "jax":
    from repsim_jax.models import layers
    path["conv_lowering"] = layers.conv_lowering(platform)  # conv2d's default on `platform`
    path["compiler_options"] = layers.compiler_options(platform)
  return path


class Backend:
  """How `extract` runs a model: the interface of `JaxBackend` and `TorchBackend`.

  `block_names(example)`: the model's block names in forward order, for inputs shaped like
  `example` (one preprocessed image); `pooled_step(layers, modes, ...)`: (pooled shape per layer,
  step), where step maps a batch [batch_size, ...] to {layer: pooled rows [batch_size, ...]} in
  `out_dtype`; `numeric_path()`: what the store records of how rows are rounded
  (`numeric_path`); `description`: for the log.
  """
  description: str

  def block_names(self, example: np.ndarray) -> list[str]:
    raise NotImplementedError

  def pooled_step(self, layers: Sequence[str], modes: Mapping[str, str], *,
                  num_prefix_tokens: int, out_dtype: Any, example: np.ndarray, batch_size: int
                  ) -> tuple[dict[str, tuple[int, ...]], Callable[[np.ndarray], Mapping[str, Any]]]:
    raise NotImplementedError

  def numeric_path(self) -> dict[str, Any]:
    raise NotImplementedError


class JaxBackend(Backend):
  """A JAX model (an NNX module or any jax function) run by one jit-compiled step per batch:
  the batch sharded over the 1-D `mesh`, each device pushing micro-batches of `device_batch`
  rows through the model, every requested block pooled on device."""

  def __init__(self, model: Any, *, mesh: Mesh, device_batch: int | None = None):
    self.model, self.mesh, self.device_batch = model, mesh, device_batch
    self.model_key, self.params = _model_key(model)
    self.description = f"jax {type(model).__name__} on {mesh.devices.size} devices"

  def block_names(self, example: np.ndarray) -> list[str]:
    return list(abstract_blocks(self.model, example))  # abstract evaluation: nothing runs

  def pooled_step(self, layers, modes, *, num_prefix_tokens, out_dtype, example, batch_size):
    num_devices = self.mesh.devices.size
    device_batch = self.device_batch or batch_size // num_devices
    if (batch_size // num_devices) % device_batch:
      raise ValueError(f"device_batch {device_batch} should divide the per-device batch "
                       f"{batch_size // num_devices} (batch_size {batch_size} / {num_devices} "
                       f"devices)")
    step_jit = _compiled_step(self.model_key, tuple(layers), tuple(modes[n] for n in layers),
                              num_prefix_tokens, out_dtype, device_batch, self.mesh)
    abstract_x = jax.ShapeDtypeStruct((batch_size, *example.shape), example.dtype)
    abstract_pooled = jax.eval_shape(step_jit, self.params, abstract_x)
    shapes = {n: abstract_pooled[n].shape[1:] for n in layers}
    params = jax.device_put(self.params, NamedSharding(self.mesh, P()))
    batch_sharding = NamedSharding(self.mesh, P(ROWS))
    return shapes, lambda inputs: step_jit(params, jax.device_put(inputs, batch_sharding))

  def numeric_path(self) -> dict[str, Any]:
    device = self.mesh.devices.flat[0]
    return numeric_path(backend="jax", platform=device.platform, device_kind=device.device_kind,
                        dtype=_param_dtypes(self.params))


class TorchBackend(Backend):
  """A `models.torch_backend.TorchModel`, run eagerly by torch on whole batches (no mesh, no
  micro-batches) and pooled on the host by the same `pool` as the JAX step."""

  def __init__(self, model: Any):
    self.model = model
    self.description = getattr(model, "description", type(model).__name__)
    self._first: tuple[Any, Mapping[str, Any]] | None = None

  def _blocks(self, example: np.ndarray) -> Mapping[str, Any]:
    # torch cannot be traced: one real forward on the example names the blocks and their shapes
    if self._first is None or self._first[0] is not example:
      self._first = (example, self.model(example[None]).blocks)
    return self._first[1]

  def block_names(self, example: np.ndarray) -> list[str]:
    return list(self._blocks(example))

  def pooled_step(self, layers, modes, *, num_prefix_tokens, out_dtype, example, batch_size):
    modes = {n: modes[n] for n in layers}
    shapes = {n: v.shape[1:] for n, v in
              pool_blocks(self._blocks(example), modes, num_prefix_tokens, out_dtype).items()}
    return shapes, lambda inputs: pool_blocks(self.model(inputs).blocks, modes,
                                              num_prefix_tokens, out_dtype)

  def numeric_path(self) -> dict[str, Any]:
    from repsim_jax.models.torch_backend import import_torch
    device = str(getattr(self.model, "device", "cpu"))
    return numeric_path(backend="torch", platform=device.split(":")[0], device_kind=device,
                        dtype="float32", torch=import_torch().__version__)


def backend_for(model: Any, *, mesh: Mesh, device_batch: int | None = None) -> Backend:
  """The backend that runs `model`: `TorchBackend` for a model whose attribute backend is
  "torch" (`models.torch_backend.TorchModel`), else `JaxBackend`; a `Backend` as is."""
  if isinstance(model, Backend):
    return model
  if getattr(model, "backend", None) == "torch":
    return TorchBackend(model)
  return JaxBackend(model, mesh=mesh, device_batch=device_batch)


def extract(model: Any, source: Source, preprocess: Preprocess, store: ActivationStore, *,
            batch_size: int, pooling: str | Mapping[str, str] = "mean_patch",
            num_prefix_tokens: int = 1, layers: Sequence[str] | None = None,
            mesh: Mesh | None = None, device_batch: int | None = None, skip_bad_images: bool = False, num_threads: int = 8,
            prefetch: int | None = None, process_index: int | None = None,
            process_count: int | None = None, metrics_path: str | None = None,
            progress_every_s: float = 10.0,
            on_chunk_written: Callable[[int], None] | None = None) -> ActivationStore:
  """Fills `store` with `model`'s pooled block outputs for the images `store.ids` of `source`.

  Chunks already marked done are skipped, so rerunning after an interruption continues where it
  stopped. Rows of skipped bad images are NaN and their ids are recorded in the store. Before
  writing, the store checks this run's numeric path (`numeric_path`) against the one its rows
  were written with, and records it (`ActivationStore.check_numeric_path`).

  Args:
    model: callable `model(x [B, ...]) -> ModelOutput` (an NNX module or any jax function: run by
      `JaxBackend`), or a `repsim_jax.models.torch_backend.TorchModel` (attribute backend ==
      "torch": run by `TorchBackend`, eagerly in torch on whole batches, so device_batch and the
      mesh do not apply, and pooled on the host), or a `Backend`.
    source: gives the decoded image of every id in `store.ids`.
    preprocess: uint8 [H, W, 3] -> one model input (fixed shape), run in loader threads.
    store: from `ActivationStore.open_or_create`.
    batch_size: global batch (all local devices); must divide by the mesh size and divide
      `store.chunk_rows` (batches never straddle chunks).
    pooling: one mode for every layer, or layer name -> mode (`pooling.MODES`).
    num_prefix_tokens: CLS + register tokens that `mean_patch` leaves out.
    layers: block names to keep (default: every main block of `ModelOutput.blocks`, forward order).
    device_batch: rows each device pushes through the model at once (default: batch_size /
      devices). Rows are bit-identical across device counts when `device_batch` is the same.
    mesh: 1-D mesh with axis "rows" (`repsim_jax.sharding.row_mesh`; default: local devices). Multi-host: each process runs its own
      local mesh on its own chunk range; no cross-host collective is needed.
    skip_bad_images: record and NaN-fill undecodable/missing images instead of stopping.
    process_index / process_count: this host's share of the chunks (default: jax's values).
    metrics_path: JSON-lines file for progress metrics (images/s, ETA, chunks, device memory).
    on_chunk_written: called with the chunk index after each chunk is durably written.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  # Local devices: each host extracts its own chunks independently (no cross-host collectives).
  mesh = mesh if mesh is not None else row_mesh(jax.local_devices())
  num_devices = mesh.devices.size
  if batch_size % num_devices:
    raise ValueError(f"batch_size {batch_size} should be a multiple of the {num_devices} devices")
  if store.chunk_rows % batch_size:
    raise ValueError(f"store chunk_rows {store.chunk_rows} should be a multiple of batch_size "
                     f"{batch_size} (batches never straddle chunks, for bit-identical resumes)")
  ids = store.ids
  known = set(source.ids)
  unknown = [i for i in ids if i not in known]
  if unknown:
    raise KeyError(f"{len(unknown)} store ids are not in the source {source.describe()}: "
                   f"{unknown[:5]}")

  backend = backend_for(model, mesh=mesh, device_batch=device_batch)
  first = np.asarray(preprocess(source.load(ids[0]).image))
  layers, modes = _select_layers(backend.block_names(first), layers, pooling)
  out_dtype = np.dtype(np.float16 if store.dtype == "float16" else np.float32)
  pooled_shapes, step = backend.pooled_step(layers, modes, num_prefix_tokens=num_prefix_tokens,
                                            out_dtype=out_dtype, example=first,
                                            batch_size=batch_size)
  if isinstance(backend, TorchBackend) and process_index == 0:
    logging.info("extract: TORCH BACKEND, not a JAX port: %s (batch %d, pooled on the host)",
                 backend.description, batch_size)
  specs = layer_specs(pooled_shapes, modes, num_prefix_tokens)
  sharding.writer_first(lambda: store.ensure_layers(specs), f"layers of {store.path}")
  # Rows still to write must round as the stored ones did (every process reaches the barrier).
  path = backend.numeric_path()
  sharding.writer_first(lambda: store.missing_chunks() and store.check_numeric_path(path),
                        f"numeric path of {store.path}")

  my_chunks = [k for k in host_chunks(store.num_chunks, process_index=process_index,
                                      process_count=process_count) if not store.is_chunk_done(k)]
  rows = np.concatenate([np.arange(*store.chunk_bounds(k)) for k in my_chunks]) if my_chunks \
      else np.zeros(0, np.int64)
  progress = Progress("extract", len(rows), unit="images", every_s=progress_every_s,
                      metrics_path=metrics_path, enabled=process_index == 0)
  if process_index == 0:
    logging.info("extract: %d layers, %d of %d chunks to do on this host (%d rows), batch %d on "
                 "%d device%s", len(layers), len(my_chunks), store.num_chunks, len(rows),
                 batch_size, num_devices, "" if num_devices == 1 else "s")

  def chunk_batches():
    # One loader over all remaining rows so the threads keep prefetching across chunk edges;
    # chunk_rows % batch_size == 0 keeps every batch inside one chunk.
    return iter_batches(source, ids, rows, preprocess, batch_size=batch_size,
                        input_shape=first.shape, input_dtype=first.dtype,
                        skip_bad_images=skip_bad_images, num_threads=num_threads,
                        prefetch=prefetch or 4 * batch_size)

  batches = chunk_batches()
  for written, k in enumerate(my_chunks, start=1):
    start, stop = store.chunk_bounds(k)
    buffers = {n: np.empty((stop - start, *pooled_shapes[n]), dtype=out_dtype) for n in layers}
    skipped: list[str] = []
    filled = start
    while filled < stop:
      batch = next(batches)
      b = len(batch.rows)
      inputs = batch.inputs
      if b < batch_size:  # pad the chunk's last batch: same shape -> same compiled program
        inputs = np.concatenate([inputs, np.zeros((batch_size - b, *inputs.shape[1:]), inputs.dtype)])
      pooled = step(inputs)
      for n in layers:
        value = np.asarray(pooled[n])[:b]
        if not batch.valid.all():
          value = value.copy()
          value[~batch.valid] = np.nan
        buffers[n][filled - start:filled - start + b] = value
      skipped += batch.skipped
      filled += b
      memory = _device_memory_mb(mesh)  # None on CPU: left out
      progress.update(b, chunks_written=written - (filled < stop), chunks_total=len(my_chunks),
                      **({} if memory is None else {"device_memory_mb": memory}))
    store.write_chunk(k, buffers, skipped_ids=skipped)
    if on_chunk_written is not None:
      on_chunk_written(k)
  if jax.process_count() > 1:  # every host's chunks are on disk before one marks the store complete
    sharding.sync(f"extract: chunks of {store.path}")
    if not sharding.is_writer():
      return store
  if store.finalize() and process_index == 0:
    logging.info("extract: store %s complete (%d rows, %d layers, %d skipped)", store.path,
                 store.num_rows, len(layers), len(store.skipped_ids))
  return store


# ------------------------------------------------------------------ a config's model entry
def hf_preprocess(path: str) -> tuple[Preprocess, dict[str, Any]]:
  """The checkpoint's own image preprocessing, one image at a time: (preprocess, description).

  Uses `repsim_jax.models.preprocessing.load_preprocessor` (numpy re-implementation of the HF
  processors) when it supports the processor, else transformers' processor itself. Returns NHWC float32
  pixel values, or token ids for ImageGPT (colour clusters). The description (implementation +
  preprocessor_config.json) goes into the store metadata, so a store is never resumed with a
  different preprocessing.
  """
  import json
  with open(os.path.join(path, "preprocessor_config.json")) as f:
    description: dict[str, Any] = {"preprocessor_config": json.load(f)}
  from repsim_jax.models import preprocessing
  try:
    processor = preprocessing.load_preprocessor(path)
  except preprocessing.UnsupportedProcessorError as e:  # e.g. a torch-backend checkpoint
    logging.warning("%s; using the transformers processor itself", e)
  else:
    description["implementation"] = "repsim_jax.models.preprocessing"
    return (lambda image: np.asarray(processor([image])[0])), description

  import transformers
  hf_processor = transformers.AutoImageProcessor.from_pretrained(path)
  description["implementation"] = f"transformers.{type(hf_processor).__name__}"
  def preprocess(image: np.ndarray) -> np.ndarray:
    out = hf_processor(images=image, return_tensors="np")
    if "input_ids" in out:
      return np.asarray(out["input_ids"][0], np.int32)
    return np.ascontiguousarray(np.asarray(out["pixel_values"][0], np.float32).transpose(1, 2, 0))
  return preprocess, description


def model_pooling(model_config: Mapping[str, Any], hf_config: Mapping[str, Any]) -> tuple[str, int]:
  """(pooling, num_prefix_tokens) from the config, else the family default and the checkpoint.
  A torch-backend model of a family without a default is pooled with "mean" (every token, or
  the global average of a feature map), and that is logged."""
  model_type = hf_config.get("model_type", "")
  mode = model_config.get("pooling")
  if not mode:
    if model_config.get("backend") == "torch" and model_type not in DEFAULT_POOLING:
      mode = "mean"
      logging.warning("extract %s: no default pooling for model_type %r; using 'mean' (set "
                      "pooling= in the model entry to choose)", model_config.get("name"), model_type)
    else:
      mode = default_pooling(model_type)
  prefix = model_config.get("num_prefix_tokens")
  if prefix is None:
    prefix = default_num_prefix_tokens(hf_config)
  return mode, int(prefix)


def model_checkpoint(model_config: Mapping[str, Any], workdir: str) -> tuple[str, dict[str, Any]]:
  """(checkpoint directory, its config.json) for a config's model entry: a hub id or directory
  resolved locally, or, with `tiny_random`, a tiny random checkpoint written under the workdir."""
  import json
  from repsim_jax.models import loading
  if model_config.get("tiny_random"):
    from repsim_jax.tiny_checkpoints import tiny_random_checkpoint
    path = sharding.writer_first(
        lambda: tiny_random_checkpoint(model_config["model_type"],
                                       os.path.join(workdir, "checkpoints", model_config["name"]),
                                       image_size=model_config.get("image_size", 32)),
        f"tiny checkpoint {model_config['name']}")
  else:
    path = str(loading.resolve_checkpoint(model_config["checkpoint"]))
  with open(os.path.join(path, "config.json")) as f:
    return path, json.load(f)


def load_model(path: str, *, backend: str = "jax", dtype: str = "float32"):
  """The model of a config entry: our NNX port (backend "jax"), or transformers' model run by
  torch (backend "torch", float32 only; any vision checkpoint transformers can load)."""
  from repsim_jax.models import loading
  if backend == "jax":
    return loading.from_pretrained(path, dtype=jnp.dtype(dtype))
  if backend == "torch":
    if dtype != "float32":
      raise ValueError(f"backend 'torch' runs float32 only, got dtype={dtype!r}")
    from repsim_jax.models.torch_backend import TorchModel
    model = TorchModel(path)
    logging.info("extract: %s runs on the TORCH BACKEND (%s)", path, model.description)
    return model
  raise ValueError(f"unknown backend {backend!r} for {path}; expected 'jax' (our ports) or "
                   f"'torch' (transformers AutoModel)")


@dataclasses.dataclass
class OpenedModel:
  """A config's model entry, loaded and ready to run (`open_model`)."""
  name: str
  path: str                  # the checkpoint directory
  hf_config: dict[str, Any]  # its config.json
  module: Any                # the model (`load_model`): our NNX port, or torch
  preprocess: Preprocess     # uint8 [H, W, 3] -> one model input, the checkpoint's own processor
  preprocessing: dict[str, Any]  # how (`hf_preprocess`), recorded in store metadata
  pooling: str               # the store's pooling mode (`model_pooling`)
  num_prefix_tokens: int     # CLS + register tokens before the patch tokens
  dtype: str                 # compute dtype
  backend: str               # "jax" (our port) or "torch" (`models.torch_backend.TorchModel`)
  fingerprint: str           # of the checkpoint's weight files


def open_model(model_config: Mapping[str, Any], workdir: str) -> OpenedModel:
  """Loads a config's model entry: its checkpoint (a tiny random one written under `workdir`
  when asked), the model (`load_model`: our port, or torch for backend "torch"), the
  checkpoint's preprocessing, pooling and weights fingerprint."""
  from repsim_jax.models import loading
  path, hf_config = model_checkpoint(model_config, workdir)
  pooling, prefix = model_pooling(model_config, hf_config)
  preprocess, preprocessing = hf_preprocess(path)
  dtype = model_config.get("dtype", "float32")
  backend = model_config.get("backend") or "jax"
  module = load_model(path, backend=backend, dtype=dtype)
  fingerprint = loading.fingerprint(pathlib.Path(path), loading.weight_files(pathlib.Path(path)))
  return OpenedModel(name=model_config["name"], path=path, hf_config=hf_config, module=module,
                     preprocess=preprocess, preprocessing=preprocessing, pooling=pooling,
                     num_prefix_tokens=prefix, dtype=dtype, backend=backend,
                     fingerprint=fingerprint)


def model_store_config(model_config: Mapping[str, Any], model: OpenedModel, source: Source,
                       ids: Sequence[str], *, seed: int) -> dict[str, Any]:
  """What identifies a model's store (`ActivationStore.open_or_create(config=...)`): the model
  (config entry name, checkpoint id, type, weights fingerprint, dtype, backend), its preprocessing
  and pooling, the dataset and the sampler. A pipeline reuses a complete store only when these
  match (`repsim_jax.pipelines.extract.ensure_stores`)."""
  hf_config = model.hf_config
  return {
      "model": {"name": model.name,
                "id": model_config.get("checkpoint") or f"tiny-random-{hf_config['model_type']}",
                "model_type": hf_config.get("model_type"), "fingerprint": model.fingerprint,
                "dtype": model.dtype,
                **({"backend": model.backend} if model.backend != "jax" else {})},
      "preprocessing": model.preprocessing,
      "pooling": {"mode": model.pooling, "num_prefix_tokens": model.num_prefix_tokens},
      "dataset": source.describe(),
      "sampler": {"n": len(ids), "seed": seed},
  }
