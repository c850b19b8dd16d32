"""A controlled "shapes and colours" world: generated images whose factors are known per image.

Every image is one coloured shape on a coloured background. The factors, all drawn from
`np.random.default_rng([seed, index])` (any image alone, in any order, on any host):

  shape       the semantic class: circle, square, triangle, star, cross (`SHAPES`);
  object_hue  / background_hue: one of 8 hues (`HUES`), 4 warm (red, orange, yellow, pink) and 4
              cool (blue, cyan, green, violet); object and background hues always differ;
  brightness  of each colour, a factor in [0.7, 1.0];
  texture     roughness in [0, 1]: amplitude of per-pixel noise on object and background;
  clutter     0-5 thin random line segments behind the object (edge density);
  x, y, size, rotation   of the object (centre within +-15 % of the image from the middle,
              radius 55-75 % of half the image, rotation within +-15 degrees).

`labels` per image also hold `warmth`, the true colour warmth: mean over the clean image
(no noise) of red - blue on [0, 1] channels, the quantity `imaging.features.colour_warmth`
estimates from pixels.

The question this world answers (Mahaut & Baroni 2026, introduction): a model trained to classify
shapes could organise images by colour first and shape later; here colour, texture and clutter
are known exactly and independent of the shape, so neighbourhoods and probes can be checked
against ground truth.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from repsim_jax.data.base import Example, IndexedSource

SHAPES = ("circle", "square", "triangle", "star", "cross")
# (name, RGB on [0, 1], warm)
HUES = (
    ("red", (0.90, 0.15, 0.10), True),
    ("orange", (0.95, 0.55, 0.10), True),
    ("yellow", (0.95, 0.85, 0.15), True),
    ("pink", (0.95, 0.40, 0.60), True),
    ("blue", (0.15, 0.25, 0.90), False),
    ("cyan", (0.10, 0.75, 0.85), False),
    ("green", (0.15, 0.70, 0.25), False),
    ("violet", (0.50, 0.20, 0.85), False),
)
MAX_CLUTTER = 5
_SUPERSAMPLE = 2  # render at 2x and average 2x2 blocks: anti-aliased edges

# Factors stored per image, in `labels` and in `factors(...)` arrays.
FACTORS = ("shape", "object_hue", "background_hue", "object_warm", "background_warm", "warmth",
           "texture", "clutter", "x", "y", "size", "rotation")


def _shape_masks(shape: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Inside-tests in object coordinates (the object spans about [-1, 1]^2); shape: [B] ints,
  u, v: [B, S, S]. Every shape's test is evaluated on the batch and the image's own is kept."""
  r = np.hypot(u, v)
  t = np.arctan2(u, -v)
  frac = np.abs(((t * 5 / (2 * np.pi)) % 1.0) - 0.5) * 2  # star: 1 at a point, 0 between
  tests = {
      "circle": r <= 1.0,
      "square": np.maximum(np.abs(u), np.abs(v)) <= 0.8,
      # equilateral, circumradius 1, apex up
      "triangle": (v <= 0.5) & (np.sqrt(3.0) * u - v >= -1.0) & (-np.sqrt(3.0) * u - v >= -1.0),
      "star": r <= 0.45 + 0.55 * frac,
      "cross": (((np.abs(u) <= 0.32) & (np.abs(v) <= 1.0))
                | ((np.abs(v) <= 0.32) & (np.abs(u) <= 1.0))),
  }
  stacked = np.stack([tests[name] for name in SHAPES])  # [num shapes, B, S, S]
  return np.take_along_axis(stacked, shape[None, :, None, None], axis=0)[0]


def _segment_masks(lines: np.ndarray, xs: np.ndarray, ys: np.ndarray, width: float) -> np.ndarray:
  """lines: [B, L, 4] (x0, y0, x1, y1); xs, ys: [S, S] -> [B, L, S, S] within `width`."""
  x0, y0, x1, y1 = (lines[..., i][..., None, None].astype(np.float32) for i in range(4))
  dx, dy = x1 - x0, y1 - y0
  px, py = xs.astype(np.float32) - x0, ys.astype(np.float32) - y0
  t = np.clip((px * dx + py * dy) / np.maximum(dx * dx + dy * dy, 1e-9), 0, 1)
  px -= t * dx
  py -= t * dy
  return px * px + py * py <= width * width


def draw_factors(index: int, *, seed: int = 0, num_shapes: int = len(SHAPES)) -> dict[str, Any]:
  """The factors of image `index` (no rendering)."""
  rng = np.random.default_rng([seed, index])
  shape = int(index % num_shapes)  # balanced classes; everything else random
  obj, bg = rng.choice(len(HUES), size=2, replace=False)
  return {
      "shape": shape,
      "object_hue": int(obj), "background_hue": int(bg),
      "object_warm": bool(HUES[obj][2]), "background_warm": bool(HUES[bg][2]),
      "brightness": rng.uniform(0.7, 1.0, size=2),
      "texture": float(rng.uniform(0.0, 1.0)),
      "clutter": int(rng.integers(0, MAX_CLUTTER + 1)),
      "x": float(rng.uniform(-0.15, 0.15)), "y": float(rng.uniform(-0.15, 0.15)),
      "size": float(rng.uniform(0.55, 0.75)),
      "rotation": float(rng.uniform(-np.pi / 12, np.pi / 12)),
      "clutter_lines": rng.uniform(-1, 1, size=(MAX_CLUTTER, 4)),
      "clutter_shade": rng.uniform(0.0, 1.0, size=MAX_CLUTTER),
      "noise_seed": int(rng.integers(2**31)),
  }


def render(factors: Sequence[dict[str, Any]], *, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 [B, size, size, 3] images, [B] true warmth) for factors of `draw_factors`."""
  b, s = len(factors), size * _SUPERSAMPLE
  col = lambda key: np.asarray([f[key] for f in factors])  # noqa: E731
  coords = (np.arange(s) + 0.5) / s * 2 - 1  # pixel centres on [-1, 1]
  ys, xs = np.meshgrid(coords, coords, indexing="ij")
  palette = np.asarray([h[1] for h in HUES])
  brightness = col("brightness")  # [B, 2]
  obj_rgb = palette[col("object_hue")] * brightness[:, :1]
  bg_rgb = palette[col("background_hue")] * brightness[:, 1:]
  image = np.broadcast_to(bg_rgb[:, None, None], (b, s, s, 3)).copy()
  lines = _segment_masks(col("clutter_lines"), xs, ys, 0.03)  # [B, L, S, S]
  lines &= (np.arange(MAX_CLUTTER)[None, :] < col("clutter")[:, None])[..., None, None]
  shade = col("clutter_shade")  # [B, L], grey lines drawn in order (later ones on top)
  for i in range(MAX_CLUTTER):
    image = np.where(lines[:, i, :, :, None], shade[:, i, None, None, None], image)
  rot = col("rotation")[:, None, None]
  dx = (xs[None] - col("x")[:, None, None]) / col("size")[:, None, None]
  dy = (ys[None] - col("y")[:, None, None]) / col("size")[:, None, None]
  u, v = np.cos(rot) * dx + np.sin(rot) * dy, -np.sin(rot) * dx + np.cos(rot) * dy
  inside = _shape_masks(col("shape"), u, v)
  image = np.where(inside[..., None], obj_rgb[:, None, None], image)
  image = image.reshape(b, size, _SUPERSAMPLE, size, _SUPERSAMPLE, 3).mean(axis=(2, 4))
  warmth = np.mean(image[..., 0] - image[..., 2], axis=(1, 2))
  noise = np.stack([np.random.default_rng(f["noise_seed"]).normal(0.0, 1.0, size=(size, size, 3))
                    for f in factors])
  image = image + 0.15 * col("texture")[:, None, None, None] * noise
  return np.clip(np.round(image * 255), 0, 255).astype(np.uint8), warmth


def render_batch(indices: Sequence[int], *, seed: int = 0, size: int = 32,
                 num_shapes: int = len(SHAPES)) -> tuple[np.ndarray, dict[str, np.ndarray]]:
  """(uint8 [n, size, size, 3] images, {factor: [n] array}) for images `indices`."""
  drawn = [draw_factors(int(i), seed=seed, num_shapes=num_shapes) for i in indices]
  chunk = 128  # render in chunks: the [chunk, 2 size, 2 size] temporaries stay in cache
  parts = [render(drawn[i:i + chunk], size=size) for i in range(0, len(drawn), chunk)] or [
      (np.zeros((0, size, size, 3), np.uint8), np.zeros(0))]
  images = np.concatenate([p[0] for p in parts])
  warmth = np.concatenate([p[1] for p in parts])
  factors = {k: np.asarray([f[k] for f in drawn]) for k in FACTORS if k != "warmth"}
  factors["warmth"] = warmth
  return images, factors


def shapes_image(index: int, *, seed: int = 0, size: int = 32,
                 num_shapes: int = len(SHAPES)) -> tuple[np.ndarray, dict[str, Any]]:
  """(uint8 [size, size, 3] image, {factor: value}) for image `index`."""
  images, factors = render_batch([index], seed=seed, size=size, num_shapes=num_shapes)
  labels = {k: v[0].item() for k, v in factors.items()}
  labels["label"] = labels["shape"]
  return images[0], labels


class ShapesWorld(IndexedSource):
  """`n` images of the shapes world, ids "shapes/<index>", labels = the image's factors.

  Two worlds with different seeds share no image draws (train on seed s, evaluate on seed s+1).
  """

  PREFIX = "shapes"

  def __init__(self, n: int, *, seed: int = 0, size: int = 32, num_shapes: int = len(SHAPES)):
    super().__init__(n)
    if not 2 <= num_shapes <= len(SHAPES):
      raise ValueError(f"ShapesWorld: num_shapes should be in [2, {len(SHAPES)}], got {num_shapes}")
    if size < 8:
      raise ValueError(f"ShapesWorld: size should be >= 8 pixels, got {size}")
    self.seed, self.size, self.num_shapes = int(seed), int(size), int(num_shapes)

  def load(self, image_id: str) -> Example:
    index = self.index(image_id)
    image, labels = shapes_image(index, seed=self.seed, size=self.size, num_shapes=self.num_shapes)
    return Example(image_id, image, labels)

  def describe(self) -> dict[str, Any]:
    return {"kind": "shapes_world", "n": self.n, "seed": self.seed, "size": self.size,
            "num_shapes": self.num_shapes}
