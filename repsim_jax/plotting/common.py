"""Pieces every figure function shares: saving PNG + PDF, the relative-depth axis."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np


def save_figure(fig, path: str) -> list[str]:
  """Writes `<path>.png` and `<path>.pdf` (an extension on `path` is replaced), closes the figure
  and returns the two paths."""
  stem, _ = os.path.splitext(os.fspath(path))
  directory = os.path.dirname(stem)
  if directory:
    os.makedirs(directory, exist_ok=True)
  paths = [f"{stem}.png", f"{stem}.pdf"]
  for p in paths:
    fig.savefig(p, bbox_inches="tight", dpi=150)
  plt.close(fig)
  return paths


def relative_depth(n_layers: int) -> np.ndarray:
  """Layer index / (n_layers - 1) in [0, 1]: puts models of different depths on one axis."""
  return np.arange(n_layers) / max(n_layers - 1, 1)
