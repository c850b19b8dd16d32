"""Image preprocessing equal to each checkpoint's Hugging Face image processor, without torch.

`load_preprocessor(path)` reads `preprocessor_config.json` (a checkpoint directory, the file
itself, or a hub id in the local HF cache) and returns an `ImageProcessor`: a callable taking a
list of uint8 `[H, W, 3]` images (sizes may differ) and returning one batch,

  float32 `[B, H', W', 3]` (NHWC) pixel values       for every image model,
  int64   `[B, H'*W']` colour-cluster token ids         for ImageGPT (the ids only, as HF: no
                                                         start token; see the family module).

The processors come from the families that use them: each family module declares the HF image
processors it brings in `IMAGE_PROCESSORS` (name -> the HF class defaults, used for keys a
config leaves out or sets null, plus the two behaviours below), with what the processor does
(transformers 5.x "slow"/PIL backends, which the ported checkpoints were evaluated with; the
torchvision "fast" ones are not installed here). The steps, in order: resize (to size
{height, width}, or the shortest edge to size.shortest_edge keeping the aspect ratio, long edge
`int(size * long / short)`), center crop to crop_size, rescale, normalize, and colour-quantize
(ImageGPT's clusters). Two behaviours vary beyond the HF keys:
  crop_pct_resize        with size.shortest_edge < 384: resize the shortest edge to
                         `int(shortest_edge / crop_pct)`, center crop to shortest_edge; otherwise
                         warp to (shortest_edge, shortest_edge) (ConvNextImageProcessor);
  rescale_before_resize  rescale to [0, 1] first, then resize the float image (a torchvision
                         processor's order of operations, DINOv3's).

Resizing of uint8 images uses PIL with the configured resample filter, exactly as the HF PIL
backend does (uint8 in, rounded uint8 out), so those outputs are bit-identical to HF's.
"""
from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

IMAGENET_DEFAULT_MEAN = (0.485, 0.456, 0.406)
IMAGENET_DEFAULT_STD = (0.229, 0.224, 0.225)
IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# PILImageResampling codes as they appear in preprocessor_config.json.
_RESAMPLE = {0: Image.Resampling.NEAREST, 1: Image.Resampling.LANCZOS, 2: Image.Resampling.BILINEAR,
             3: Image.Resampling.BICUBIC, 4: Image.Resampling.BOX, 5: Image.Resampling.HAMMING}

# HF processor class attributes every processor has (families declare their own defaults), and
# the behaviours that vary beyond the HF keys (see the module docstring), never read from a config.
_BASE = dict(do_resize=None, size=None, resample=None, do_center_crop=None, crop_size=None,
             do_rescale=None, rescale_factor=1 / 255, do_normalize=None, image_mean=None,
             image_std=None, default_to_square=True, crop_pct=None, do_color_quantize=None,
             clusters=None)
_BEHAVIOURS = dict(crop_pct_resize=False, rescale_before_resize=False)


def image_processors() -> dict[str, dict[str, Any]]:
  """HF image processor name -> its defaults, as the families declare them (IMAGE_PROCESSORS)."""
  from repsim_jax.models import registry
  found: dict[str, dict[str, Any]] = {}
  for fam in registry.families():
    for name, defaults in getattr(fam, "IMAGE_PROCESSORS", {}).items():
      if name in found:
        raise RuntimeError(f"image processor {name!r} is declared twice (again by {fam.__name__})")
      found[name] = defaults
  return found


class UnsupportedProcessorError(ValueError):
  """A preprocessor_config.json names an image processor we have not re-implemented."""


def _processor_name(raw: dict[str, Any], source: str) -> str:
  name = raw.get("image_processor_type") or raw.get("feature_extractor_type")
  if not name:
    raise ValueError(f"{source}: no image_processor_type or feature_extractor_type")
  for suffix in ("Fast", "Pil"):
    name = name.removesuffix(suffix)
  name = name.replace("FeatureExtractor", "ImageProcessor")
  supported = image_processors()
  if name not in supported:
    raise UnsupportedProcessorError(f"{source}: unsupported image processor {name!r}; "
                                    f"supported: {', '.join(sorted(supported))}")
  return name


def _size_dict(size: Any, *, default_to_square: bool, name: str) -> dict[str, int] | None:
  """HF's get_size_dict: int -> square or shortest_edge, (h, w) -> height/width."""
  if size is None or isinstance(size, dict):
    return size
  if isinstance(size, int):
    return {"height": size, "width": size} if default_to_square else {"shortest_edge": size}
  if isinstance(size, (list, tuple)) and len(size) == 2:
    return {"height": int(size[0]), "width": int(size[1])}
  raise ValueError(f"{name} must be an int, [height, width] or a dict, got {size!r}")


def _shortest_edge_size(height: int, width: int, size: int) -> tuple[int, int]:
  """HF get_resize_output_image_size(default_to_square=False): short side -> size."""
  short, long = (width, height) if width <= height else (height, width)
  new_short, new_long = size, int(size * long / short)
  return (new_long, new_short) if width <= height else (new_short, new_long)


def _center_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """HF center_crop on [H, W, C]: top-left offset floor((orig - crop) / 2), zero-pad if small."""
  orig_h, orig_w = image.shape[:2]
  top, left = (orig_h - height) // 2, (orig_w - width) // 2
  if top >= 0 and left >= 0:
    return image[top:top + height, left:left + width]
  new_h, new_w = max(height, orig_h), max(width, orig_w)
  padded = np.zeros((new_h, new_w) + image.shape[2:], image.dtype)
  top_pad, left_pad = -(-(new_h - orig_h) // 2), -(-(new_w - orig_w) // 2)
  padded[top_pad:top_pad + orig_h, left_pad:left_pad + orig_w] = image
  top, left = top + top_pad, left + left_pad
  return padded[max(0, top):min(new_h, top + height), max(0, left):min(new_w, left + width)]


def _resize(image: np.ndarray, height: int, width: int, resample: int) -> np.ndarray:
  """PIL resize of [H, W, 3]: uint8 as one RGB image (as HF), float32 channel by channel ("F")."""
  filt = _RESAMPLE[int(resample)]
  if image.dtype == np.uint8:
    return np.asarray(Image.fromarray(image).resize((width, height), resample=filt))
  channels = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c]), mode="F")
                         .resize((width, height), resample=filt)) for c in range(image.shape[-1])]
  return np.stack(channels, axis=-1)


def color_quantize(pixels: np.ndarray, clusters: np.ndarray) -> np.ndarray:
  """Nearest colour cluster per pixel, as HF ImageGPT (same formula and dtypes, so same ties).

  pixels: [..., 3] float32 in [-1, 1]; clusters: [K, 3]. Returns int64 [...] in [0, K).
  d(p, c) = |p|^2 - 2 p.c + |c|^2, argmin over c (first index on ties).
  """
  flat = pixels.reshape(-1, 3)
  a2 = np.sum(np.square(flat), axis=1)
  b2 = np.sum(np.square(clusters.T), axis=0)
  distances = a2[:, None] - 2 * np.matmul(flat, clusters.T) + b2[None, :]
  return np.argmin(distances, axis=1).reshape(pixels.shape[:-1])


@dataclasses.dataclass(frozen=True)
class ImageProcessor:
  """One checkpoint's preprocessing; call it on a list of uint8 [H, W, 3] images."""
  name: str
  do_resize: bool
  size: dict[str, int] | None
  resample: int
  do_center_crop: bool
  crop_size: dict[str, int] | None
  do_rescale: bool
  rescale_factor: float
  do_normalize: bool
  image_mean: tuple[float, ...]
  image_std: tuple[float, ...]
  crop_pct: float | None = None
  do_color_quantize: bool = False
  clusters: np.ndarray | None = None
  crop_pct_resize: bool = False
  rescale_before_resize: bool = False

  def output_size(self, height: int, width: int) -> tuple[int, int]:
    """(height, width) of the processed image for an input of that size."""
    dummy = np.zeros((height, width, 3), np.uint8)
    return self._geometry(dummy, lambda img, h, w: np.zeros((h, w, 3), img.dtype)).shape[:2]

  def _geometry(self, image: np.ndarray, resize) -> np.ndarray:
    """Resize and crop, as the processor orders them."""
    size = self.size or {}
    if self.do_resize:
      h, w = image.shape[:2]
      if self.crop_pct_resize:
        if not size.get("shortest_edge"):
          raise ValueError(f"{self.name} needs size.shortest_edge, got {size}")
        edge = size["shortest_edge"]
        if edge < 384:
          image = resize(image, *_shortest_edge_size(h, w, int(edge / self.crop_pct)))
          image = _center_crop(image, edge, edge)
        else:
          image = resize(image, edge, edge)
      elif size.get("shortest_edge") and size.get("longest_edge"):
        raise NotImplementedError("size with both shortest_edge and longest_edge")
      elif size.get("shortest_edge"):
        image = resize(image, *_shortest_edge_size(h, w, size["shortest_edge"]))
      elif size.get("height") and size.get("width"):
        image = resize(image, size["height"], size["width"])
      else:
        raise ValueError(f"{self.name}: unsupported size {size}")
    if self.do_center_crop:
      if not self.crop_size or not self.crop_size.get("height") or not self.crop_size.get("width"):
        raise ValueError(f"{self.name}: crop_size needs height and width, got {self.crop_size}")
      image = _center_crop(image, self.crop_size["height"], self.crop_size["width"])
    return image

  def _one(self, image: np.ndarray) -> np.ndarray:
    resize = lambda img, h, w: _resize(img, h, w, self.resample)  # noqa: E731
    if self.rescale_before_resize:
      # torch semantics: uint8 tensor * python float -> float32 arithmetic.
      image = image.astype(np.float32) * np.float32(self.rescale_factor) if self.do_rescale else (
          image.astype(np.float32))
      image = self._geometry(image, resize)
    else:
      image = self._geometry(image, resize)
      if self.do_rescale:
        image = (image.astype(np.float64) * self.rescale_factor).astype(np.float32)
    image = image.astype(np.float32)
    if self.do_normalize:
      image = (image - np.asarray(self.image_mean, np.float32)) / np.asarray(self.image_std, np.float32)
    return image

  def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
    """images: list of uint8 [H, W, 3] -> float32 [B, H', W', 3], or int64 [B, H'*W'] ids."""
    if isinstance(images, np.ndarray) and images.ndim == 3:
      images = [images]
    if len(images) == 0:
      raise ValueError("images: expected at least one image")
    out = []
    for i, image in enumerate(images):
      image = np.asarray(image)
      if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"images[{i}]: expected uint8 [H, W, 3], got {image.dtype} "
                         f"{list(image.shape)}")
      out.append(self._one(image))
    shapes = {x.shape for x in out}
    if len(shapes) > 1:
      raise ValueError(f"{self.name}: processed images differ in shape {sorted(shapes)}; this "
                       "processor keeps the aspect ratio, pass images of one size")
    batch = np.stack(out)
    if self.do_color_quantize:
      if self.clusters is None:
        raise ValueError(f"{self.name}: do_color_quantize needs clusters in the config")
      return color_quantize(batch, self.clusters).reshape(len(batch), -1)
    return batch


def from_config_dict(raw: dict[str, Any], *, source: str = "preprocessor config") -> ImageProcessor:
  """An ImageProcessor from the parsed preprocessor_config.json."""
  name = _processor_name(raw, source)
  declared = image_processors()[name]
  cfg = {**_BASE, **{k: v for k, v in declared.items() if k not in _BEHAVIOURS}}
  behaviours = {k: bool(declared.get(k, default)) for k, default in _BEHAVIOURS.items()}
  for key in cfg:
    if raw.get(key) is not None:  # HF: null in the config means the class default
      cfg[key] = raw[key]
  size = _size_dict(cfg["size"], default_to_square=cfg["default_to_square"], name="size")
  crop_size = _size_dict(cfg["crop_size"], default_to_square=True, name="crop_size")
  clusters = None if cfg["clusters"] is None else np.array(cfg["clusters"])
  mean, std = cfg["image_mean"], cfg["image_std"]
  mean = (mean,) * 3 if isinstance(mean, (int, float)) else tuple(mean)
  std = (std,) * 3 if isinstance(std, (int, float)) else tuple(std)
  return ImageProcessor(
      name=name, do_resize=bool(cfg["do_resize"]), size=size, resample=int(cfg["resample"]),
      do_center_crop=bool(cfg["do_center_crop"]), crop_size=crop_size,
      do_rescale=bool(cfg["do_rescale"]), rescale_factor=float(cfg["rescale_factor"]),
      do_normalize=bool(cfg["do_normalize"]), image_mean=mean, image_std=std,
      crop_pct=cfg["crop_pct"], do_color_quantize=bool(cfg["do_color_quantize"]),
      clusters=clusters, **behaviours)


def _config_path(path_or_id: str | os.PathLike) -> str:
  path = os.fspath(path_or_id)
  if os.path.isfile(path):
    return path
  if os.path.isdir(path):
    candidate = os.path.join(path, "preprocessor_config.json")
    if not os.path.isfile(candidate):
      raise FileNotFoundError(f"{path}: no preprocessor_config.json in this directory")
    return candidate
  from huggingface_hub import try_to_load_from_cache  # only for hub ids
  cached = try_to_load_from_cache(path, "preprocessor_config.json")
  if not isinstance(cached, str):
    raise FileNotFoundError(
        f"{path!r} is neither a local path nor cached; fetch it with: "
        f"huggingface-cli download {path} preprocessor_config.json")
  return cached


def load_preprocessor(path_or_id: str | os.PathLike) -> ImageProcessor:
  """The checkpoint's image processor from its preprocessor_config.json (dir, file or hub id)."""
  path = _config_path(path_or_id)
  with open(path) as f:
    raw = json.load(f)
  return from_config_dict(raw, source=path)
