"""Figs. 2, 15-17: a query image and its nearest neighbours, one column per model, one row per layer."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from repsim_jax.plotting.common import new_figure, save_figure


def _as_rgb(image) -> np.ndarray:
  """float RGB in [0, 1]: uint8 is scaled by 1/255, grey is repeated over 3 channels."""
  image = np.asarray(image)
  image = image.astype(np.float32) / 255 if np.issubdtype(image.dtype, np.integer) else image
  return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image[..., :3]


def mosaic(images: Sequence, columns: int, *, gap: int = 2) -> np.ndarray:
  """Tiles images row-major into a grid with `columns` columns and white gaps: [H', W', 3].

  Images of different sizes are centred in slots of the largest height and width.
  """
  images = [_as_rgb(im) for im in images]
  h = max(im.shape[0] for im in images)
  w = max(im.shape[1] for im in images)
  rows = math.ceil(len(images) / columns)
  out = np.ones((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), np.float32)
  for j, im in enumerate(images):
    y = (j // columns) * (h + gap) + (h - im.shape[0]) // 2
    x = (j % columns) * (w + gap) + (w - im.shape[1]) // 2
    out[y:y + im.shape[0], x:x + im.shape[1]] = im
  return out


def _show(ax, image) -> None:
  ax.imshow(np.clip(image, 0, 1))
  ax.set_xticks([])
  ax.set_yticks([])


def plot_neighbourhoods(images, query: int, indices, path: str, *, model_names: Sequence[str],
                        layer_names: Sequence[str] = ("early", "middle", "late"),
                        title: str | None = None, cell_size: float = 1.9) -> list[str]:
  """Image grid as the paper's Fig. 2.

  images: indexable by row (array [N, H, W, 3] / [N, H, W], a memmap, or a list); query: the
  query row, drawn top-left; indices: int [M, R, k] neighbour rows of that query (e.g.
  `neighbourhoods(...)["indices"][:, :, q]`). Column m + 1 shows model m, row r layer r; each
  cell is a near-square mosaic of the k neighbours, nearest first (row-major; `mosaic`). Writes
  PNG and PDF.
  """
  indices = np.asarray(indices)
  if indices.ndim != 3:
    raise ValueError(f"indices: expected [models, layers, k], got shape {indices.shape}")
  n_models, n_rows, k = indices.shape
  if len(model_names) != n_models or len(layer_names) != n_rows:
    raise ValueError(f"model_names / layer_names: expected {n_models} / {n_rows} names, got "
                     f"{len(model_names)} / {len(layer_names)}")
  side = math.ceil(math.sqrt(k))
  fig = new_figure((cell_size * (n_models + 1), cell_size * n_rows + 0.6))
  axes = fig.subplots(n_rows, n_models + 1, squeeze=False,
                      gridspec_kw=dict(wspace=0.05, hspace=0.05))
  _show(axes[0, 0], _as_rgb(images[int(query)]))
  axes[0, 0].set_title("query", fontsize=9)
  for r in range(1, n_rows):
    axes[r, 0].axis("off")
  for r in range(n_rows):
    for m in range(n_models):
      ax = axes[r, m + 1]
      _show(ax, mosaic([images[int(i)] for i in indices[m, r]], side))
      if r == 0:
        ax.set_title(model_names[m], fontsize=9)
      if m == n_models - 1:  # on the right: left of the first model they cover the query
        ax.yaxis.set_label_position("right")
        ax.set_ylabel(layer_names[r], fontsize=9)
  fig.suptitle(title or f"{k} nearest neighbours (cosine) of image {int(query)} per model and layer",
               fontsize=10)
  return save_figure(fig, path)
