"""torch's resize (interpolate) as separable weight matrices: bicubic, bilinear and antialiased,
exactly as ATen computes them (position embeddings and relative position tables are resized with
them)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.models.layers.core import PRECISION

def bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] weights of torch's bicubic resize along one axis (float32).

  torch.nn.functional.interpolate(mode="bicubic", align_corners=False, antialias=False) with an
  explicit `size`: source coordinate s = (i + 0.5) * in/out - 0.5, Keys cubic kernel with
  A = -0.75 on the 4 neighbours floor(s)-1 .. floor(s)+2, indices clamped to the border.
  Reference: aten/src/ATen/native/UpSample.h (upsample_bicubic2d).
  """
  a = -0.75
  scale = np.float32(in_size / out_size)
  w = np.zeros((out_size, in_size), np.float64)
  for i in range(out_size):
    src = np.float32(scale * np.float32(i + 0.5) - np.float32(0.5))
    idx = int(np.floor(src))
    t = np.float32(src - idx)
    x1, x2 = t + 1.0, 1.0 - t
    coeffs = (((a * x1 - 5 * a) * x1 + 8 * a) * x1 - 4 * a,
              ((a + 2) * t - (a + 3)) * t * t + 1,
              ((a + 2) * x2 - (a + 3)) * x2 * x2 + 1,
              ((a * (x2 + 1) - 5 * a) * (x2 + 1) + 8 * a) * (x2 + 1) - 4 * a)
    for k, c in enumerate(coeffs):
      w[i, min(max(idx - 1 + k, 0), in_size - 1)] += c
  return w.astype(np.float32)


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] weights of torch's bilinear resize along one axis (float32).

  torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False) with an
  explicit `size`: s = max((i + 0.5) * in/out - 0.5, 0), neighbours floor(s) and floor(s) + 1
  (clamped to the border) with weights 1 - (s - floor(s)) and s - floor(s), in float32.
  Reference: aten/src/ATen/native/UpSample.h (area_pixel_compute_source_index).
  """
  scale = np.float32(in_size / out_size)
  w = np.zeros((out_size, in_size), np.float64)
  for i in range(out_size):
    src = max(np.float32(scale * np.float32(i + 0.5) - np.float32(0.5)), np.float32(0))
    idx = int(src)
    lam = np.float32(src - idx)
    w[i, idx] += np.float32(1) - lam
    w[i, min(idx + 1, in_size - 1)] += lam
  return w.astype(np.float32)


def _aa_bilinear(x: float) -> float:
  x = abs(x)
  return 1.0 - x if x < 1.0 else 0.0


def _aa_bicubic(x: float) -> float:  # Keys cubic with a = -0.5 (PIL's), as torch's antialias path
  a, x = -0.5, abs(x)
  if x < 1.0:
    return ((a + 2) * x - (a + 3)) * x * x + 1
  if x < 2.0:
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  return 0.0


def antialias_matrix(in_size: int, out_size: int, mode: str) -> np.ndarray:
  """[out_size, in_size] weights of torch's antialiased resize along one axis (float32).

  torch.nn.functional.interpolate(mode=mode, align_corners=False, antialias=True), mode
  "bilinear" or "bicubic" (the same separable filter as PIL's resize): scale = in/out, support =
  (1 or 2) * max(scale, 1), centre c = scale * (i + 0.5); input j in [int(c - support + 0.5),
  int(c + support + 0.5)) clipped to the image gets filter((j - c + 0.5) / max(scale, 1)),
  normalised to sum to 1 (no border clamping; the window is cut at the edges).
  Reference: aten/src/ATen/native/cpu/UpSampleKernel.cpp (_compute_indices_min_size_weights_aa).
  """
  filters = {"bilinear": (_aa_bilinear, 1.0), "bicubic": (_aa_bicubic, 2.0)}
  if mode not in filters:
    raise ValueError(f"antialias_matrix: mode must be one of {sorted(filters)}, got {mode!r}")
  filt, half = filters[mode]
  scale = in_size / out_size
  support = half * scale if scale >= 1.0 else half
  invscale = 1.0 / scale if scale >= 1.0 else 1.0
  w = np.zeros((out_size, in_size), np.float64)
  for i in range(out_size):
    center = scale * (i + 0.5)
    lo = max(int(center - support + 0.5), 0)
    hi = min(int(center + support + 0.5), in_size)
    weights = np.array([filt((j - center + 0.5) * invscale) for j in range(lo, hi)])
    total = weights.sum()
    w[i, lo:hi] = weights / total if total != 0.0 else weights
  return w.astype(np.float32)


def resize_separable(grid: jax.Array, rows: np.ndarray, cols: np.ndarray) -> jax.Array:
  """grid: [h, w, D] -> [out_h, out_w, D] = rows [out_h, h] . grid . cols^T [w, out_w], in float32
  (a separable resize; the weight matrices come from bicubic_matrix, bilinear_matrix or
  antialias_matrix)."""
  grid = jnp.einsum("ih,hwd->iwd", jnp.asarray(rows), grid.astype(jnp.float32),
                    precision=PRECISION)
  return jnp.einsum("jw,iwd->ijd", jnp.asarray(cols), grid, precision=PRECISION)


def resize_bicubic(grid: jax.Array, out_hw: tuple[int, int], *, antialias: bool = False
                   ) -> jax.Array:
  """grid: [h, w, D] -> [out_h, out_w, D] exactly as torch bicubic (align_corners=False), with
  antialias=True as torch's antialiased bicubic (DINOv2 with registers)."""
  h, w, _ = grid.shape
  if antialias:
    return resize_separable(grid, antialias_matrix(h, out_hw[0], "bicubic"),
                            antialias_matrix(w, out_hw[1], "bicubic"))
  return resize_separable(grid, bicubic_matrix(h, out_hw[0]), bicubic_matrix(w, out_hw[1]))
