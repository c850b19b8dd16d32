"""Representations on disk, read as the analyses need them: every model's layers on one image set.

* `load_representations`: every model's main-block layers as `Representations`, rows valid in
  every model; with lazy=True the layers are `StoreLayers` that read a layer (or only some of its
  rows, streamed in row blocks) when an analysis asks, through one `LayerCache`;
* `early_middle_late`: the representative layers of Mahaut & Baroni (2026).

Layers are the store's main blocks in forward order (the input embedding / stem entry included,
sublayers left out).
"""
from __future__ import annotations

import collections
import collections.abc
import dataclasses
from typing import Any, Callable, Sequence

import numpy as np
from absl import logging

from repsim_jax.extraction.store import ActivationStore
from repsim_jax.models.outputs import representative_indices


def early_middle_late(names: Sequence[str]) -> dict[str, str]:
  """The paper's representative layers: the second, the middle and the penultimate block.

  Mahaut & Baroni (2026) take the second and penultimate blocks "to avoid effects from
  tokenization or detokenization on the very first and very last layers". `names` are layer
  names in forward order (e.g. `store.layer_names`); the input entries "embeddings" and "stem" are
  not blocks and are left out before counting. Middle is `blocks[len(blocks) // 2]`.
  """
  blocks = [n for n in names if n not in ("embeddings", "stem")]
  if len(blocks) < 3:
    raise ValueError(f"early_middle_late needs at least 3 blocks, got {list(names)}")
  early, middle, late = representative_indices(len(blocks))
  return {"early": blocks[early], "middle": blocks[middle], "late": blocks[late]}


class LayerCache:
  """Least-recently-used layers up to `budget_bytes` (0 keeps nothing), shared by the models."""

  def __init__(self, budget_bytes: int = 0):
    self.budget = int(budget_bytes)
    self._items: collections.OrderedDict[Any, np.ndarray] = collections.OrderedDict()
    self.nbytes = 0

  def get(self, key, load: Callable[[], np.ndarray]) -> np.ndarray:
    if key in self._items:
      self._items.move_to_end(key)
      return self._items[key]
    value = load()
    if value.nbytes <= self.budget:
      self._items[key] = value
      self.nbytes += value.nbytes
      while self.nbytes > self.budget:
        self.nbytes -= self._items.popitem(last=False)[1].nbytes
    return value

  def __contains__(self, key) -> bool:
    return key in self._items

  def clear(self) -> None:
    self._items.clear()
    self.nbytes = 0


class StoreLayers(collections.abc.Sequence):
  """One model's main-block layers in its `ActivationStore`, read only when a step asks.

  `layers[l]` reads layer l (the valid rows, float32 [N, d]) through `cache`; `layers.rows(l,
  rows)` reads only the given rows (indices into the valid rows), streaming the layer in row
  blocks so memory holds the result and one block, never the whole layer. Nothing is kept beyond
  the cache, so a step that needs the early / middle / late layers reads those three and no more.
  """

  def __init__(self, store: ActivationStore, names: Sequence[str], valid: np.ndarray, *,
               cache: LayerCache | None = None):
    self.store, self.names = store, list(names)
    self.valid_index = np.flatnonzero(valid)  # store row of each valid row
    self.cache = cache if cache is not None else LayerCache(0)

  def __len__(self) -> int:
    return len(self.names)

  @property
  def num_rows(self) -> int:
    """Rows of every layer (the valid rows), known without reading a layer."""
    return len(self.valid_index)

  @property
  def widths(self) -> list[int]:
    """Each layer's flattened width, from the store's layer specs (nothing is read)."""
    specs = self.store.layer_specs
    return [int(np.prod(specs[name]["shape"])) for name in self.names]

  def __getitem__(self, l):
    if isinstance(l, slice):
      return [self[i] for i in range(len(self))[l]]
    l = range(len(self))[l]  # negative indices; IndexError past the end
    return self.cache.get((self.store.path, l), lambda: self._read(l))

  def _read(self, l: int) -> np.ndarray:
    values = self.store.layer(self.names[l])
    if len(self.valid_index) < len(values):  # rows of skipped images out (a copy)
      values = values[self.valid_index]
    return np.asarray(values, np.float32).reshape(len(self.valid_index), -1)

  def rows(self, l: int, rows) -> np.ndarray:
    """float32 [len(rows), d]: layer l at `rows` (indices into the valid rows, any order)."""
    rows = np.asarray(rows, np.int64)
    l = range(len(self))[l]
    n = len(self.valid_index)
    if (self.store.path, l) in self.cache or (
        len(rows) == n and np.array_equal(rows, np.arange(n))):
      return self[l][rows]
    want = self.valid_index[rows]
    order = np.argsort(want, kind="stable")
    sorted_want = want[order]
    out, done, start = None, 0, 0
    for block in self.store.iter_rows(self.names[l]):
      stop = start + len(block)
      upto = int(np.searchsorted(sorted_want, stop))
      block = np.asarray(block, np.float32).reshape(len(block), -1)
      if out is None:
        out = np.empty((len(rows), block.shape[1]), np.float32)
      sel = order[done:upto]
      out[sel] = block[want[sel] - start]
      done, start = upto, stop
      if done == len(rows):
        break
    return out


def layer_rows(layers: Sequence, rows) -> list[np.ndarray]:
  """Every layer of one model at `rows`: read row block by row block from the store when the
  layers are `StoreLayers`, sliced when they are in memory."""
  if isinstance(layers, StoreLayers):
    return [layers.rows(l, rows) for l in range(len(layers))]
  return [np.asarray(x)[rows] for x in layers]


@dataclasses.dataclass
class Representations:
  """The layers of every model on one image set (rows aligned across models).

  `layers[m]` is a sequence of arrays [N, d_l]: in memory (`load_representations(lazy=False)`)
  or `StoreLayers` read from the store on demand (the default for `run`)."""
  source: Any
  ids: list[str]                          # image id of every row
  models: list[str]
  layer_names: dict[str, list[str]]
  layers: dict[str, Sequence[np.ndarray]]  # model -> L_m arrays [N, d_l]
  representative: dict[str, list[int]]    # model -> (early, middle, late) indices into layers
  model_types: dict[str, str]

  @property
  def n(self) -> int:
    return len(self.ids)


def _is_sublayer(name: str) -> bool:
  return name.count(".") > (1 if name.startswith("stage") else 0)


def load_representations(source, ids: Sequence[str], paths: dict[str, str], *, lazy: bool = False,
                         cache_mb: float = 0) -> Representations:
  """Every model's main-block layers, keeping the rows valid in all models (skipped images out).

  lazy=False reads every layer into memory now; lazy=True gives `StoreLayers` that read a layer
  when a step asks for it, through one `LayerCache` of `cache_mb` MiB shared by the models (the
  same numbers, memory bounded by what one step needs: ~60 GB for 1e5 images x 1536 dims x 100
  layers would otherwise be resident).
  """
  stores = {m: ActivationStore.open(p) for m, p in paths.items()}
  valid = np.logical_and.reduce([s.valid_rows() for s in stores.values()])
  cache = LayerCache(int(cache_mb * 2**20))
  layer_names, layers, representative, types = {}, {}, {}, {}
  for m, store in stores.items():
    names = [n for n in store.layer_names if not _is_sublayer(n)]
    layer_names[m] = names
    layers[m] = StoreLayers(store, names, valid, cache=cache)
    if not lazy:
      layers[m] = list(layers[m])
    chosen = early_middle_late(names)
    representative[m] = [names.index(chosen[r]) for r in ("early", "middle", "late")]
    types[m] = store.config["model"].get("model_type") or ""
  kept = [i for i, v in zip(ids, valid) if v]
  if len(kept) < len(ids):
    logging.info("stores: %d skipped images left out of every analysis", len(ids) - len(kept))
  return Representations(source, kept, list(stores), layer_names, layers, representative, types)
