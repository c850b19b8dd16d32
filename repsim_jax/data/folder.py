"""Image folders in ImageNet layout: `root/<wnid>/<file>` (the ImageNet-21K validation set, ...).

Ids are `"<wnid>/<file name>"`, so they stay valid when the folder moves and read naturally in
metadata. Labels: `label` (index of the wnid in sorted order), `wnid`, `class_name`.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from repsim_jax.data.base import BadImageError, Example, decode_image_file

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_class_names(path: str) -> dict[str, str]:
  """Reads `wnid<TAB or space>name` lines (ImageNet's words.txt / LOC_synset_mapping.txt)."""
  names = {}
  with open(path) as f:
    for line in f:
      line = line.rstrip("\n")
      if not line.strip():
        continue
      wnid, _, name = line.replace("\t", " ").partition(" ")
      names[wnid] = name.strip()
  return names


class ImageFolder:
  """`root/<wnid>/*.JPEG` (any case of the usual image extensions), classes in sorted wnid order.

  Args:
    root: the folder holding one sub-folder per class.
    class_names: wnid -> readable name, or the path of a words.txt-style file; default: the wnid.
  """

  def __init__(self, root: str, *, class_names: Mapping[str, str] | str | None = None):
    if not os.path.isdir(root):
      raise FileNotFoundError(f"image folder root {root!r} does not exist or is not a directory")
    self.root = os.path.abspath(root)
    self.wnids = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not self.wnids:
      raise ValueError(f"image folder {root!r}: expected class sub-folders root/<wnid>/*.JPEG, found none")
    if isinstance(class_names, str):
      class_names = read_class_names(class_names)
    self.class_names = {w: (class_names or {}).get(w, w) for w in self.wnids}
    self._label = {w: i for i, w in enumerate(self.wnids)}
    self._ids = []
    for wnid in self.wnids:
      files = sorted(f for f in os.listdir(os.path.join(root, wnid))
                     if f.lower().endswith(IMAGE_EXTENSIONS))
      self._ids.extend(f"{wnid}/{f}" for f in files)
    if not self._ids:
      raise ValueError(f"image folder {root!r}: no image files (extensions {IMAGE_EXTENSIONS})")

  @property
  def ids(self) -> list[str]:
    return self._ids

  def __len__(self) -> int:
    return len(self._ids)

  def path(self, image_id: str) -> str:
    return os.path.join(self.root, *image_id.split("/"))

  def load(self, image_id: str) -> Example:
    wnid = image_id.split("/", 1)[0]
    if wnid not in self._label:
      raise BadImageError(image_id, self.path(image_id), f"unknown class folder {wnid!r}")
    image = decode_image_file(self.path(image_id), image_id)
    return Example(image_id, image, {"label": self._label[wnid], "wnid": wnid,
                                     "class_name": self.class_names[wnid]})

  def describe(self) -> dict[str, Any]:
    return {"kind": "image_folder", "root": self.root, "num_images": len(self._ids),
            "num_classes": len(self.wnids)}
