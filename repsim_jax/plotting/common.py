"""Pieces the figure functions share: a pyplot-free figure, saving PNG + PDF, relative depth."""
from __future__ import annotations

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
