"""What the steps read besides the main representations: image pixels by row, labels, and the
representations of another dataset (the per-class and out-of-domain probes)."""
from __future__ import annotations

import copy
import os
from typing import Sequence

import numpy as np
from absl import logging

from repsim_jax import data as data_lib
from repsim_jax.extraction.representations import Representations, load_representations
from repsim_jax.pipelines.extract import ensure_stores
from repsim_jax.pipelines.report import Section


def load(config, source, ids, paths) -> Representations:
  """`load_representations` with the config's `analysis.lazy_layers` / `layer_cache_mb`."""
  a = config.analysis
  return load_representations(source, ids, paths, lazy=a.get("lazy_layers", True),
                              cache_mb=a.get("layer_cache_mb", 0))


class ImageRows:
  """Row -> uint8 image of `ids[row]` from `source`, optionally resized; cached.

  `size` (H, W) resizes exactly (bilinear); `thumbnail` bounds the longer side (figures)."""

  def __init__(self, source, ids: Sequence[str], *, size: Sequence[int] | None = None,
               thumbnail: int | None = None):
    self.source, self.ids, self.size, self.thumbnail = source, list(ids), size, thumbnail
    self._cache: dict[int, np.ndarray] = {}

  def __len__(self) -> int:
    return len(self.ids)

  def load(self, row: int) -> np.ndarray:
    from PIL import Image
    image = self.source.load(self.ids[row]).image
    if self.size is not None:
      image = np.asarray(Image.fromarray(image).resize((int(self.size[1]), int(self.size[0])),
                                                       Image.BILINEAR))
    elif self.thumbnail:
      pil = Image.fromarray(image)
      pil.thumbnail((self.thumbnail, self.thumbnail))
      image = np.asarray(pil)
    return image

  def __getitem__(self, row: int) -> np.ndarray:
    row = int(row)
    if row not in self._cache:
      self._cache[row] = self.load(row)
    return self._cache[row]

  def stack(self, rows: Sequence[int], *, num_threads: int = 8) -> np.ndarray:
    """uint8 [len(rows), H, W, 3] (needs `size`), loaded in threads."""
    from repsim_jax.data.pipeline import threaded_map
    return np.stack(list(threaded_map(self.load, [int(r) for r in rows], num_threads=num_threads)))


def labels(source, ids: Sequence[str], key: str, *, num_threads: int = 8) -> list:
  """`key` label of every id: read from the source's index when it has one, else by loading."""
  if getattr(source, "rows", None) is not None and key in ("labels", "topname", "domain"):
    return [source.rows[i][key] for i in ids]  # ManyNames: the TSV, no image decoding
  if hasattr(source, "wnids") and key in ("label", "wnid"):  # image folder: the id's folder
    index = {w: n for n, w in enumerate(source.wnids)}
    return [index[i.split("/", 1)[0]] if key == "label" else i.split("/", 1)[0] for i in ids]
  from repsim_jax.data.pipeline import threaded_map
  return list(threaded_map(lambda i: source.load(i).labels[key], list(ids),
                           num_threads=num_threads))


def class_indices(labels: Sequence, min_count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(rows kept, int labels 0..C-1 of those rows, class values) for classes with >= min_count."""
  values, inverse, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
  keep = counts[inverse] >= min_count
  kept_values, kept_inverse = np.unique(inverse[keep], return_inverse=True)
  return np.flatnonzero(keep), kept_inverse, values[kept_values]


def other_dataset(config, dataset, n_images, workdir: str, subdir: str,
                  section: Section) -> Representations | None:
  """Every model's representations of another dataset (stores under <workdir>/<subdir>), or None
  (with a note naming the exact preparation command) when a tfds dataset is not prepared."""
  dataset = dict(dataset.to_dict() if hasattr(dataset, "to_dict") else dataset)
  sub = copy.deepcopy(config)
  sub.dataset = dataset
  sub.n_images = n_images
  try:
    source = data_lib.from_config(dataset)
  except (FileNotFoundError, ImportError) as e:
    if isinstance(e, ImportError):  # the message names the extra to install
      note = f"skipped {dataset.get('name', dataset)!r}: {e}"
    elif dataset.get("kind") == "tfds":
      from repsim_jax.data.tfds_source import build_command
      command = build_command(dataset["name"], dataset.get("data_dir"))
      note = (f"skipped {dataset['name']!r}: not prepared for tfds; build it with `{command}`")
    else:
      note = f"skipped {dataset}: {e}"
    logging.warning("mahaut_baroni: %s", note)
    section.note(note)
    return None
  source, ids, paths = ensure_stores(sub, os.path.join(workdir, subdir), source=source)
  return load(config, source, ids, paths)
