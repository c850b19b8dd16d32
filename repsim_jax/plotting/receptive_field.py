"""Figures of effective receptive fields (Raghu et al. 2021, Figs. 6, C.1-C.4), from
`repsim_jax.analysis.receptive_field`; writes `<path>.png` and `.pdf`, returns the two paths.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from repsim_jax.plotting.common import panel_grid, panel_title
from repsim_jax.plotting.common import save_figure as _save


def plot_receptive_fields(maps: np.ndarray, path: str, *, titles: Sequence[str] | None = None,
                          ncols: int | None = None, cmap: str = "viridis",
                          suptitle: str = "Effective receptive fields") -> list[str]:
  """Figs. 6, C.1-C.4: one ERF image per layer, each on its own colour scale.

  Args:
    maps: [K, H, W] (`effective_receptive_field` per layer).
  """
  maps = np.asarray(maps)
  if maps.ndim != 3:
    raise ValueError(f"maps must be [K, H, W], got shape {maps.shape}")
  titles = titles or [f"layer {k}" for k in range(maps.shape[0])]
  fig, axes = panel_grid(maps.shape[0], ncols)
  for ax, erf, name in zip(axes, maps, titles):
    ax.imshow(erf, cmap=cmap)
    ax.set_title(panel_title(name), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(suptitle)
  return _save(fig, path)
