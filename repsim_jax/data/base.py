"""What every image source yields, and the image decoding shared by the file-based sources.

A source is an ordered collection of examples addressed by string ids:

  source.ids            -> list[str], every id in a fixed order
  source.load(id)       -> Example(id, image uint8 [H, W, 3] RGB, labels dict)
  source.describe()     -> JSON-able dict identifying the source (goes into store metadata)

`load` decodes one image; the input pipeline calls it from worker threads, so it must be
thread-safe (the file sources open a fresh file per call).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Protocol, Sequence

import numpy as np


@dataclasses.dataclass
class Example:
  id: str
  image: np.ndarray  # uint8 [H, W, 3] RGB
  labels: dict[str, Any]


class BadImageError(ValueError):
  """An image that is missing or cannot be decoded; names the id and the path."""

  def __init__(self, image_id: str, path: str, reason: str):
    super().__init__(f"bad image {image_id!r} at {path!r}: {reason}")
    self.image_id, self.path, self.reason = image_id, path, reason


class Source(Protocol):
  @property
  def ids(self) -> Sequence[str]: ...
  def load(self, image_id: str) -> Example: ...
  def describe(self) -> dict[str, Any]: ...


class IndexedSource:
  """Base of the generated sources: `n` images with ids "<PREFIX>/<index>", drawn from the index.

  Subclasses set `PREFIX` and implement `load` (via `self.index(image_id)`) and `describe`.
  """
  PREFIX = "image"

  def __init__(self, n: int):
    if n <= 0:
      raise ValueError(f"{type(self).__name__}: n should be positive, got {n}")
    self.n = int(n)
    self._ids = [f"{self.PREFIX}/{i}" for i in range(self.n)]

  @property
  def ids(self) -> list[str]:
    return self._ids

  def __len__(self) -> int:
    return self.n

  def index(self, image_id: str) -> int:
    """The image index of `image_id`; KeyError for ids of other sources or out of range."""
    prefix, _, number = image_id.partition("/")
    if prefix != self.PREFIX or not number.isdigit() or int(number) >= self.n:
      raise KeyError(f"{image_id!r} is not one of the {self.n} ids {self.PREFIX}/0.."
                     f"{self.PREFIX}/{self.n - 1} of this {type(self).__name__}")
    return int(number)


def to_rgb_array(image: Any) -> np.ndarray:
  """A PIL image or an array in any common mode -> uint8 [H, W, 3] RGB.

  Greyscale (L, I;16, 1, [H, W] or [H, W, 1]) is replicated to three channels; CMYK and palette
  images go through PIL's conversion; an alpha channel (RGBA, LA, PA, [H, W, 4]) is composited
  on white, the convention of torchvision/timm loaders for transparent images.
  """
  from PIL import Image
  if isinstance(image, np.ndarray):
    if image.ndim == 3 and image.shape[-1] == 3 and image.dtype == np.uint8:
      return image
    if image.ndim == 3 and image.shape[-1] == 1:
      image = image[..., 0]
    if image.dtype != np.uint8:
      raise ValueError(f"image array: expected uint8, got {image.dtype}")
    image = Image.fromarray(image)
  if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
    image = image.convert("RGBA")
    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
    image = Image.alpha_composite(background, image)
  elif image.mode in ("I;16", "I;16B", "I;16L", "I"):
    # 16-bit greyscale: keep the top 8 bits (PIL's convert("L") would clip at 255 instead).
    image = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8))
  array = np.asarray(image.convert("RGB"), dtype=np.uint8)
  return np.ascontiguousarray(array)


def decode_image_file(path: str, image_id: str) -> np.ndarray:
  """Reads and decodes one image file to uint8 RGB; any failure is a BadImageError with id and path."""
  from PIL import Image, UnidentifiedImageError
  if not os.path.exists(path):
    raise BadImageError(image_id, path, "file not found")
  try:
    with Image.open(path) as image:
      image.load()
      return to_rgb_array(image)
  except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
    raise BadImageError(image_id, path, f"cannot decode ({type(e).__name__}: {e})") from e
