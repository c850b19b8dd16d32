"""Figures of localization maps (Raghu et al. 2021, Figs. 9, 10, D.1-D.3), from
`repsim_jax.analysis.localization`; writes `<path>.png` and `.pdf`, returns the two paths.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.patches import Rectangle

from repsim_jax.plotting.common import panel_grid
from repsim_jax.plotting.common import save_figure as _save


def plot_localization(maps: np.ndarray, path: str, *, tokens: Sequence[Sequence[int]],
                      ncols: int | None = None, cmap: str = "viridis",
                      shared_scale: bool = True,
                      suptitle: str = "CKA of a token with input patches") -> list[str]:
  """Figs. 9, 10, D.1-D.3: one [grid_h, grid_w] CKA map per token, the token's own position
  marked with a red box; one colour scale and colour bar for all maps when shared_scale.

  Args:
    maps: [K, grid_h, grid_w] (`localization_maps`); tokens: the K (row, col) positions.
  """
  maps = np.asarray(maps)
  if maps.ndim != 3 or len(tokens) != maps.shape[0]:
    raise ValueError(f"maps must be [K, gh, gw] with K = len(tokens) = {len(tokens)}, "
                     f"got shape {maps.shape}")
  fig, axes = panel_grid(maps.shape[0], ncols)
  vmin, vmax = (float(np.nanmin(maps)), float(np.nanmax(maps))) if shared_scale else (None, None)
  for ax, image, (row, col) in zip(axes, maps, tokens):
    shown = ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.5))
    ax.set_title(f"token ({row}, {col})", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
  if shared_scale:
    fig.colorbar(shown, ax=axes, label="CKA", shrink=0.8)
  fig.suptitle(suptitle)
  return _save(fig, path)
