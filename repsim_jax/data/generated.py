"""A deterministic generated source for tests and demos, and a writer for image folders.

Image i is a smooth random colour field plus a class-dependent stripe pattern, drawn from
`np.random.default_rng([seed, i])`: any image can be produced alone, in any order, on any host.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from repsim_jax.data.base import Example, IndexedSource


def generated_image(index: int, *, size: tuple[int, int] = (32, 32), num_classes: int = 10,
                    seed: int = 0) -> tuple[np.ndarray, int]:
  """(uint8 [H, W, 3] image, class label) for example `index`."""
  rng = np.random.default_rng([seed, index])
  label = int(index % num_classes)
  h, w = size
  coarse = rng.uniform(0, 255, size=(4, 4, 3))
  yy = np.linspace(0, 3, h)[:, None]
  xx = np.linspace(0, 3, w)[None, :]
  y0, x0 = np.floor(yy).astype(int).clip(0, 2), np.floor(xx).astype(int).clip(0, 2)
  fy, fx = (yy - y0)[..., None], (xx - x0)[..., None]
  field = ((1 - fy) * (1 - fx) * coarse[y0, x0] + fy * (1 - fx) * coarse[y0 + 1, x0]
           + (1 - fy) * fx * coarse[y0, x0 + 1] + fy * fx * coarse[y0 + 1, x0 + 1])
  stripes = 40 * np.sin(2 * np.pi * (label + 1) * (xx + yy) / 6.0)[..., None]
  noise = rng.normal(0, 8, size=(h, w, 3))
  return np.clip(field + stripes + noise, 0, 255).astype(np.uint8), label


class GeneratedSource(IndexedSource):
  """`n` generated images, ids "gen/<index>", labels {"label": index % num_classes}."""
  PREFIX = "gen"

  def __init__(self, n: int, *, size: tuple[int, int] = (32, 32), num_classes: int = 10,
               seed: int = 0):
    super().__init__(n)
    self.size, self.num_classes, self.seed = tuple(size), num_classes, seed

  def load(self, image_id: str) -> Example:
    index = self.index(image_id)
    image, label = generated_image(index, size=self.size, num_classes=self.num_classes,
                                   seed=self.seed)
    return Example(image_id, image, {"label": label})

  def describe(self) -> dict[str, Any]:
    return {"kind": "generated", "n": self.n, "size": list(self.size),
            "num_classes": self.num_classes, "seed": self.seed}


def write_image_folder(root: str, *, num_classes: int = 3, per_class: int = 4,
                       size: tuple[int, int] = (32, 32), seed: int = 0,
                       modes: tuple[str, ...] = ("RGB",)) -> list[str]:
  """Writes generated JPEGs in ImageNet layout `root/n000000XX/<wnid>_<k>.JPEG`; returns ids.

  `modes` cycles over the files, e.g. ("RGB", "L", "CMYK") for greyscale and CMYK JPEGs, or
  "RGBA" (written as PNG, since JPEG has no alpha).
  """
  from PIL import Image
  ids = []
  for c in range(num_classes):
    wnid = f"n{c:08d}"
    os.makedirs(os.path.join(root, wnid), exist_ok=True)
    for k in range(per_class):
      index = c * per_class + k
      image, _ = generated_image(index, size=size, num_classes=num_classes, seed=seed)
      mode = modes[index % len(modes)]
      pil = Image.fromarray(image).convert(mode)
      name = f"{wnid}_{k}.{'png' if mode == 'RGBA' else 'JPEG'}"
      pil.save(os.path.join(root, wnid, name))
      ids.append(f"{wnid}/{name}")
  return ids
