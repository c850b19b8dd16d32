"""Image sources (image folder, tfds, ManyNames, generated), the seeded sampler, the input pipeline.

`from_config(dataset_config)` builds a source from a config's `dataset` field; the field `kind`
names the source (the module is the registry):

  generated:     n, size, num_classes, seed
  image_folder:  root, class_names (optional words.txt path)
  tfds:          name, split, data_dir, image_key, label_key
  manynames:     tsv, image_dir, crop_to_object
  shapes_world:  n, seed, size, num_shapes (the demo's world with known factors)
"""
from __future__ import annotations

from typing import Any, Mapping

from repsim_jax.data.base import BadImageError, Example, Source
from repsim_jax.data.sampler import sample_ids

KINDS = ("generated", "image_folder", "tfds", "manynames", "shapes_world")
# the fields of each kind that name files or folders (checked before a pipeline starts)
PATH_KEYS = {"image_folder": ("root",), "manynames": ("tsv", "image_dir")}


def from_config(dataset: Mapping[str, Any]) -> Source:
  dataset = dict(dataset.to_dict() if hasattr(dataset, "to_dict") else dataset)
  kind = dataset.pop("kind", None)
  if kind == "generated":
    from repsim_jax.data.generated import GeneratedSource
    return GeneratedSource(dataset["n"], size=tuple(dataset.get("size", (32, 32))),
                           num_classes=dataset.get("num_classes", 10), seed=dataset.get("seed", 0))
  if kind == "image_folder":
    from repsim_jax.data.folder import ImageFolder
    return ImageFolder(dataset["root"], class_names=dataset.get("class_names"))
  if kind == "tfds":
    from repsim_jax.data.tfds_source import TfdsSource
    return TfdsSource(dataset["name"], dataset.get("split", "train"),
                      data_dir=dataset.get("data_dir"), image_key=dataset.get("image_key", "image"),
                      label_key=dataset.get("label_key", "label"))
  if kind == "manynames":
    from repsim_jax.data.manynames import ManyNamesSource
    return ManyNamesSource(dataset["tsv"], dataset["image_dir"],
                           crop_to_object=dataset.get("crop_to_object", False))
  if kind == "shapes_world":
    from repsim_jax.data.shapes_world import SHAPES, ShapesWorld
    return ShapesWorld(dataset["n"], seed=dataset.get("seed", 0), size=dataset.get("size", 32),
                       num_shapes=dataset.get("num_shapes", len(SHAPES)))
  raise ValueError(f"dataset.kind {kind!r}: expected one of {', '.join(KINDS)}")


__all__ = ["BadImageError", "Example", "KINDS", "PATH_KEYS", "Source", "from_config", "sample_ids"]
