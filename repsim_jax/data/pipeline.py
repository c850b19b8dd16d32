"""Input pipeline: decode + preprocess in worker threads, ahead of the device step.

PIL decoding, resizing and numpy preprocessing release the GIL for most of their time, so a
thread pool keeps the accelerator fed without the pickling cost of processes. Results come back
in input order with a bounded look-ahead (`prefetch` images in flight), which bounds memory.

Multi-host: rows are grouped in store chunks and each process reads only the chunks
`host_chunks` gives it, so hosts write disjoint row ranges and never touch the same chunk file.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from repsim_jax.data.base import BadImageError, Source

Preprocess = Callable[[np.ndarray], np.ndarray]  # uint8 [H, W, 3] -> model input for one image


def threaded_map(fn: Callable[[Any], Any], items: Iterable[Any], *, num_threads: int = 8,
                 prefetch: int = 64) -> Iterator[Any]:
  """`map(fn, items)` computed by `num_threads` threads, in order, at most `prefetch` ahead.

  An exception raised by `fn` is re-raised when its item's turn comes, so the caller sees errors
  in the same order as a plain loop would.
  """
  with concurrent.futures.ThreadPoolExecutor(max_workers=num_threads) as pool:
    pending: collections.deque = collections.deque()
    iterator = iter(items)
    for item in iterator:
      pending.append(pool.submit(fn, item))
      if len(pending) >= prefetch:
        break
    while pending:
      result = pending.popleft().result()
      for item in iterator:  # refill one slot per result consumed
        pending.append(pool.submit(fn, item))
        break
      yield result


@dataclasses.dataclass
class Batch:
  rows: np.ndarray          # int64 [b] global row indices
  inputs: np.ndarray        # [b, ...] preprocessed model inputs (zeros where not valid)
  valid: np.ndarray         # bool [b]; False for skipped bad images
  skipped: list[str]        # ids of the skipped images in this batch


def load_preprocessed(source: Source, image_id: str, preprocess: Preprocess, *,
                      skip_bad_images: bool) -> np.ndarray | BadImageError:
  """Decodes and preprocesses one image; a bad image raises, or is returned when skipping."""
  try:
    return np.asarray(preprocess(source.load(image_id).image))
  except BadImageError as e:
    if skip_bad_images:
      return e
    raise


def iter_batches(source: Source, ids: Sequence[str], rows: Sequence[int], preprocess: Preprocess,
                 *, batch_size: int, input_shape: tuple[int, ...], input_dtype: Any,
                 skip_bad_images: bool = False, num_threads: int = 8,
                 prefetch: int = 64) -> Iterator[Batch]:
  """Batches of `batch_size` rows (the last one shorter) of `ids[rows]`, loaded in threads."""
  rows = np.asarray(rows, dtype=np.int64)
  def load(row: int):
    return load_preprocessed(source, ids[row], preprocess, skip_bad_images=skip_bad_images)
  results = threaded_map(load, rows.tolist(), num_threads=num_threads, prefetch=prefetch)
  for start in range(0, len(rows), batch_size):
    batch_rows = rows[start:start + batch_size]
    inputs = np.zeros((len(batch_rows), *input_shape), dtype=input_dtype)
    valid = np.ones(len(batch_rows), dtype=bool)
    skipped = []
    for j, row in enumerate(batch_rows):
      value = next(results)
      if isinstance(value, BadImageError):
        valid[j] = False
        skipped.append(ids[row])
        continue
      if value.shape != tuple(input_shape):
        raise ValueError(f"preprocess output for {ids[row]!r} has shape {value.shape}; expected "
                         f"{tuple(input_shape)} like the first image (resize to a fixed size)")
      inputs[j] = value
    yield Batch(batch_rows, inputs, valid, skipped)


def host_chunks(num_chunks: int, *, process_index: int = 0, process_count: int = 1) -> range:
  """The contiguous chunk range process `process_index` of `process_count` reads and writes."""
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in [0, {process_count})")
  per_host, extra = divmod(num_chunks, process_count)
  start = process_index * per_host + min(process_index, extra)
  return range(start, start + per_host + (1 if process_index < extra else 0))


def resize_normalize(*, size: tuple[int, int], mean: Sequence[float] = (0.5, 0.5, 0.5),
                     std: Sequence[float] = (0.5, 0.5, 0.5)) -> Preprocess:
  """A simple preprocessing (bilinear resize to `size`, scale to [0, 1], normalise), float32 HWC.

  For demos and tests; real runs use the checkpoint's own preprocessing
  (`repsim_jax.models.preprocessing`).
  """
  from PIL import Image
  mean_a, std_a = np.asarray(mean, np.float32), np.asarray(std, np.float32)
  def preprocess(image: np.ndarray) -> np.ndarray:
    resized = Image.fromarray(image).resize((size[1], size[0]), Image.BILINEAR)
    return (np.asarray(resized, np.float32) / 255.0 - mean_a) / std_a
  return preprocess
