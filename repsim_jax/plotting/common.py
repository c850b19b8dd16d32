"""Pieces the figure functions share: a pyplot-free figure, a grid of panels, saving PNG + PDF,
relative depth."""
from __future__ import annotations

import math
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def new_figure(figsize: tuple[float, float]) -> Figure:
  """A Figure with an Agg canvas and no pyplot: no global state, no backend switch for notebook
  users, nothing to close."""
  fig = Figure(figsize=figsize)
  FigureCanvasAgg(fig)
  return fig


def panel_grid(num_panels: int, ncols: int | None, panel_size: float = 2.0):
  """A figure of `num_panels` square panels, `ncols` (default up to 6) per row; unused axes off.
  Returns (figure, axes in row-major order)."""
  ncols = ncols or min(num_panels, 6)
  nrows = math.ceil(num_panels / ncols)
  fig = new_figure((panel_size * ncols, panel_size * nrows + 0.4))
  axes = fig.subplots(nrows, ncols, squeeze=False)
  for ax in axes.flat[num_panels:]:
    ax.axis("off")
  return fig, list(axes.flat)


def save_figure(fig: Figure, path: str, *, dpi: int = 150) -> list[str]:
  """Writes `<path>.png` and `<path>.pdf` (an extension on `path` is replaced), creating parent
  directories; returns the two paths."""
  stem, _ = os.path.splitext(os.fspath(path))
  directory = os.path.dirname(stem)
  if directory:
    os.makedirs(directory, exist_ok=True)
  paths = [f"{stem}.png", f"{stem}.pdf"]
  for p in paths:
    fig.savefig(p, bbox_inches="tight", dpi=dpi)
  return paths


def relative_depth(n_layers: int) -> np.ndarray:
  """Layer index / (n_layers - 1) in [0, 1]: puts models of different depths on one axis."""
  return np.arange(n_layers) / max(n_layers - 1, 1)


def shade_interval(ax, x, low, high, *, color, alpha: float = 0.2) -> None:
  """Shades the band low..high over x (e.g. a bootstrap or subsample interval) behind a curve."""
  x, low, high = (np.asarray(v, np.float64) for v in (x, low, high))
  if not x.shape == low.shape == high.shape:
    raise ValueError(f"interval: x, low and high must have one shape, got {x.shape}, "
                     f"{low.shape}, {high.shape}")
  ax.fill_between(x, low, high, color=color, alpha=alpha, linewidth=0)
