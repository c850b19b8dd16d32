"""The generic paths of the measure protocol: (variant, layer pair) tasks spread over devices.

A variant is one version of the data: the original rows, a bootstrap resample, a permutation of
B's rows. For V variants of an [La, Lb] grid there are V La Lb tasks, numbered variant-major,
then row, then column; task t runs on device t mod D of the D devices of all processes
(`jax.devices()`, the same list everywhere). Each process prepares, once, only the layers its own
tasks read (a variant's resampled layers are dropped once its tasks are done), evaluates `pair`
on the device of each task, and the processes then exchange their float64 values (one
all-gather, each entry taken from the process that computed it). Every entry is computed by one
device with the same code whatever the device count, so the matrix is the same on one device or
many.

A symmetric measure on `layers_b is layers_a` computes each unordered pair once (the diagonal
included) and mirrors it, as the fast kernels do.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from repsim_jax import sharding
from repsim_jax.measures.protocol import Measure
from repsim_jax.metrics import validation

__all__ = ["check_layers", "evaluate"]


def check_layers(m: Measure, layers_a: Sequence, layers_b: Sequence | None
                 ) -> tuple[list[np.ndarray], list[np.ndarray], bool]:
  """Checked host layer lists (same n, finite, at least `m.min_rows` rows); `same` when B is A."""
  same = layers_b is None or layers_b is layers_a
  la = validation.as_layers(layers_a, "layers_a")
  lb = la if same else validation.as_layers(layers_b, "layers_b")
  n = validation.check_same_n([la[0], lb[0]], ["layers_a", "layers_b"])
  if n < m.min_rows:
    raise ValueError(f"measure {m.name!r}: needs at least {m.min_rows} rows, got N={n}")
  return la, lb, same


def _gather(values: np.ndarray, owner: np.ndarray) -> np.ndarray:
  """values [T] float64 filled where owner == this process -> every process's values."""
  if jax.process_count() == 1:
    return values
  with jax.enable_x64(True):  # float64 travels whole (jax would narrow it to 32 bits)
    every = np.asarray(multihost_utils.process_allgather(values), np.float64)  # [P, T]
  return every[owner, np.arange(len(values))]


def _on_device(tree, device):
  """`tree`'s array leaves on `device`; other leaves (a kernel's name, a flag) stay as they are:
  a preparation may carry them beside its arrays."""
  return jax.tree.map(lambda leaf: jax.device_put(leaf, device)
                      if isinstance(leaf, (np.ndarray, jax.Array)) else leaf, tree)


def evaluate(m: Measure, layers_a: Sequence, layers_b: Sequence, variants: Sequence, opts: dict,
             *, same: bool) -> np.ndarray:
  """float64 [V, La, Lb]: m.pair on every layer pair of every variant, distributed.

  Args:
    m: the measure.
    layers_a, layers_b: checked host layers [N, d_l] (`check_layers`).
    variants: V pairs (rows_a, rows_b), each an index array or None (every row, in order):
      variant v compares layers_a[i][rows_a] with layers_b[j][rows_b].
    opts: the measure's resolved options (passed to `prepare` and `pair`).
    same: layers_b is layers_a (symmetric measures then compute i <= j only).
  """
  devices = jax.devices()
  me = jax.process_index()
  la, lb = len(layers_a), len(layers_b)
  mirror = same and m.properties.symmetric
  tasks = [(v, i, j) for v, (ra, rb) in enumerate(variants) for i in range(la) for j in range(lb)
           if not (mirror and j < i and ra is rb)]
  owner = np.array([devices[t % len(devices)].process_index for t in range(len(tasks))])
  cache: dict[tuple[int, int], Any] = {}

  def prepared(x, rows):
    key = (id(x), id(rows))
    if key not in cache:
      cache[key] = m.prepare(x if rows is None else x[rows], **opts)
    return cache[key]

  values = np.zeros(len(tasks), np.float64)
  pending, current = [], None
  # this process's pairs are its own work: a preparation's kernel (the k-NN lists) must not
  # shard over, or broadcast to, processes that are preparing other layers meanwhile
  with sharding.process_local():
    for t, (v, i, j) in enumerate(tasks):
      if owner[t] != me:
        continue
      if v != current:  # a new variant: its predecessor's resampled layers are no longer read
        cache = {k: p for k, p in cache.items() if k[1] == id(None)}
        current = v
      ra, rb = variants[v]
      pa, pb = prepared(layers_a[i], ra), prepared(layers_b[j], rb)
      device = devices[t % len(devices)]
      if device != jax.local_devices()[0]:
        pa, pb = _on_device((pa, pb), device)
      pending.append((t, m.pair(pa, pb, **opts)))  # dispatched; read back below
    for t, value in pending:
      values[t] = float(value)
  values = _gather(values, owner)
  out = np.full((len(variants), la, lb), np.nan)
  for t, (v, i, j) in enumerate(tasks):
    out[v, i, j] = values[t]
    if mirror and variants[v][0] is variants[v][1]:
      out[v, j, i] = values[t]
  return out
