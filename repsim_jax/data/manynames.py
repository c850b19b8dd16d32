"""ManyNames (Silberer et al. 2020): Visual Genome objects with the names annotators gave them.

The TSV (`manynames-en.tsv`, or the Mandarin `manynames-zh.tsv`) has one row per object with
Python-literal columns; `responses` (name -> count) is the annotator label set. The images are the
Visual Genome images, read from a local folder (`<vg_image_id>.jpg`, also looked up under the
VG_100K/ and VG_100K_2/ sub-folders of the official download).

Ids are the `vg_object_id` as a string (unique per row; an image can hold several objects).

References:
  Silberer, Zarrieß, Boleda. Object Naming in Language and Vision: A Survey and a New Dataset.
  LREC 2020.  https://github.com/amore-upf/manynames (CC BY 4.0)
"""
from __future__ import annotations

import ast
import csv
import os
from typing import Any

from repsim_jax.data.base import BadImageError, Example, decode_image_file

REQUIRED_COLUMNS = ("vg_object_id", "vg_image_id", "topname", "responses", "vg_bbox_xywh")
_LITERAL_COLUMNS = ("topname", "responses", "vg_bbox_xywh", "incorrect", "synsets")
VG_SUBFOLDERS = ("", "VG_100K", "VG_100K_2")


def read_manynames(tsv_path: str) -> list[dict[str, Any]]:
  """Parses the ManyNames TSV into one dict per object.

  Each dict has `vg_object_id`, `vg_image_id` (int), `topnames` (the most frequent names, several
  on ties), `topname` (the first of them), `responses`
  (dict name -> count), `labels` (sorted list of the response names), `vg_bbox_xywh`
  ([x, y, w, h], y=0 at the top), `domain`, and the remaining columns as strings.
  """
  if not os.path.exists(tsv_path):
    raise FileNotFoundError(f"ManyNames TSV {tsv_path!r} not found")
  rows = []
  with open(tsv_path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f, delimiter="\t")
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
      raise ValueError(f"ManyNames TSV {tsv_path!r}: missing columns {missing}; expected at least "
                       f"{list(REQUIRED_COLUMNS)}, found {reader.fieldnames}")
    for line_number, raw in enumerate(reader, start=2):
      row: dict[str, Any] = dict(raw)
      try:
        for column in _LITERAL_COLUMNS:
          if column in row and row[column] not in (None, ""):
            row[column] = ast.literal_eval(row[column])
        row["vg_object_id"] = int(row["vg_object_id"])
        row["vg_image_id"] = int(row["vg_image_id"])
      except (ValueError, SyntaxError) as e:
        raise ValueError(f"ManyNames TSV {tsv_path!r} line {line_number}: cannot parse "
                         f"({type(e).__name__}: {e})") from e
      if not isinstance(row["responses"], dict) or not row["responses"]:
        raise ValueError(f"ManyNames TSV {tsv_path!r} line {line_number}: `responses` should be a "
                         f"non-empty dict name -> count, got {row['responses']!r}")
      topname = row["topname"]
      row["topnames"] = list(topname) if isinstance(topname, (list, tuple)) else [topname]
      row["topname"] = row["topnames"][0]
      row["labels"] = sorted(row["responses"])
      rows.append(row)
  return rows


class ManyNamesSource:
  """ManyNames objects with their Visual Genome images from `image_dir`.

  Args:
    tsv_path: the ManyNames TSV.
    image_dir: local Visual Genome images (`<vg_image_id>.jpg`, or under VG_100K[_2]/).
    crop_to_object: crop each image to the object's box (`vg_bbox_xywh`), which is what the
      annotators named; default False keeps the whole image.
  """

  def __init__(self, tsv_path: str, image_dir: str, *, crop_to_object: bool = False):
    if not os.path.isdir(image_dir):
      raise FileNotFoundError(f"Visual Genome image folder {image_dir!r} does not exist")
    self.tsv_path, self.image_dir = os.path.abspath(tsv_path), os.path.abspath(image_dir)
    self.crop_to_object = crop_to_object
    self.rows = {str(r["vg_object_id"]): r for r in read_manynames(tsv_path)}
    self._ids = list(self.rows)

  @property
  def ids(self) -> list[str]:
    return self._ids

  def __len__(self) -> int:
    return len(self._ids)

  def image_path(self, vg_image_id: int) -> str:
    candidates = [os.path.join(self.image_dir, sub, f"{vg_image_id}.jpg") for sub in VG_SUBFOLDERS]
    return next((p for p in candidates if os.path.exists(p)), candidates[0])

  def load(self, image_id: str) -> Example:
    row = self.rows[image_id]
    path = self.image_path(row["vg_image_id"])
    image = decode_image_file(path, image_id)
    if self.crop_to_object:
      x, y, w, h = (int(v) for v in row["vg_bbox_xywh"])
      crop = image[max(y, 0):y + h, max(x, 0):x + w]
      if crop.size == 0:
        raise BadImageError(image_id, path, f"box {row['vg_bbox_xywh']} outside image {image.shape}")
      image = crop
    labels = {"labels": row["labels"], "responses": row["responses"], "topname": row["topname"],
              "topnames": row["topnames"],
              "domain": row.get("domain"), "vg_image_id": row["vg_image_id"]}
    return Example(image_id, image, labels)

  def describe(self) -> dict[str, Any]:
    return {"kind": "manynames", "tsv": self.tsv_path, "image_dir": self.image_dir,
            "crop_to_object": self.crop_to_object, "num_images": len(self._ids)}
