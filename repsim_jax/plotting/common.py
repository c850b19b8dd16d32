"""Pieces the figure functions share: a pyplot-free figure, the report's page width, a grid of
panels and their titles, a legend beside the curves, saving PNG + PDF, relative depth."""
from __future__ import annotations

import math
import os
import re

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# report.html is at most 1100 px wide (`pipelines.report`) and figures are saved at DPI: a PNG
# wider than PAGE_INCHES is shrunk to the page, its text with it, so figures that hold text are
# sized to fit (at 7 pt and DPI, text is 14 px at page width)
DPI = 150
PAGE_INCHES = 1100 / DPI


def new_figure(figsize: tuple[float, float]) -> Figure:
  """A Figure with an Agg canvas and no pyplot: no global state, no backend switch for notebook
  users, nothing to close."""
  fig = Figure(figsize=figsize)
  FigureCanvasAgg(fig)
  return fig


def panel_grid(num_panels: int, ncols: int | None, panel_size: float = 1.75):
  """A figure of `num_panels` square panels, `ncols` (default up to 4, so that the default grid
  fits the report's page width unshrunk) per row; unused axes off. Returns (figure, axes in
  row-major order)."""
  if not ncols:  # as few rows as 4 a row need, balanced: 6 panels as 3 + 3, not 4 + 2
    ncols = math.ceil(num_panels / math.ceil(num_panels / 4))
  nrows = math.ceil(num_panels / ncols)
  fig = new_figure((panel_size * ncols, panel_size * nrows + 0.4))
  axes = fig.subplots(nrows, ncols, squeeze=False)
  for ax in axes.flat[num_panels:]:
    ax.axis("off")
  return fig, list(axes.flat)


def legend_beside(ax, **kwargs) -> None:
  """The legend right of the axes, where it covers no curve (the figure grows to hold it)."""
  ax.legend(**{"fontsize": 8, "frameon": False, "loc": "center left",
               "bbox_to_anchor": (1.01, 0.5), **kwargs})


def panel_title(name: str, width: int = 16) -> str:
  """`name` broken after a '.' or '_' into lines of at most ~`width` characters, so that the
  titles of neighbouring small panels ("stage0.block00.branch") do not run into each other."""
  lines, line = [], ""
  for part in re.split(r"(?<=[._])", name):
    if line and len(line) + len(part) > width:
      lines.append(line)
      line = ""
    line += part
  return "\n".join(lines + [line])


def save_figure(fig: Figure, path: str, *, dpi: int = DPI) -> list[str]:
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
