"""Layer x layer heatmaps (information imbalance, CKA, k-NN alignment, ...): PNG and PDF."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from repsim_jax.plotting import common


_TICK_POINTS = 7


def _tick_positions(count: int, max_ticks: int) -> np.ndarray:
  step = max(1, int(np.ceil(count / max_ticks)))
  return np.arange(0, count, step)


def data_range(*matrices: Any) -> tuple[float, float]:
  """(min, max) of the finite entries of `matrices`: a colour scale that shows their range
  (a fixed 0-1 scale paints II matrices whose entries stay below 0.1 one colour)."""
  values = np.concatenate([np.asarray(m, np.float64).ravel() for m in matrices])
  values = values[np.isfinite(values)]
  return (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)


def scale_text(low: float, high: float) -> str:
  """ "colour scale 0.002 to 0.131" for a caption."""
  return f"colour scale {low:.3g} to {high:.3g}"


def layer_heatmap(matrix: Any, *, row_labels: Sequence[str], col_labels: Sequence[str],
                  title: str, path: str, cbar_label: str = "", xlabel: str = "",
                  ylabel: str = "", vmin: float | None = None, vmax: float | None = None,
                  cmap: str = "viridis", origin: str = "upper", max_ticks: int = 48,
                  dpi: int = common.DPI) -> list[str]:
  """Draws matrix [R, C] (entry [i, j]: row layer i against column layer j) and saves it.

  Args:
    matrix: [R, C] values, e.g. `cka_matrix(a, b)` or `information_imbalance_matrix(a, b)`.
      NaN entries are drawn blank.
    row_labels, col_labels: R and C layer names (thinned to at most `max_ticks` ticks, and to
      as many as fit beside each other at their font size).
    title: figure title; for a directed measure name the direction, e.g. "ViT-B/16 → ResNet-50".
    path: output path; its extension (if any) is replaced: `<base>.png` and `<base>.pdf` are
      written, parent directories created.
    cbar_label, xlabel, ylabel: colour-bar and axis titles (e.g. "CKA", the model names).
    vmin, vmax: colour limits (default: the data range).
    cmap, origin: the paper's CKA figures (Raghu et al. 2021) use cmap="magma", origin="lower"
      (first layers at the bottom left); the defaults suit the II matrices.

  Returns:
    The two written paths [png, pdf].
  """
  m = np.asarray(matrix, dtype=np.float64)
  if m.ndim != 2 or m.shape != (len(row_labels), len(col_labels)):
    raise ValueError(f"matrix: shape {m.shape} does not match the labels "
                     f"({len(row_labels)} row_labels, {len(col_labels)} col_labels)")
  # 0.22 in a layer, up to the report's page width (a wider PNG is shrunk with its labels)
  size = (min(max(4.0, 0.22 * m.shape[1] + 2.8), common.PAGE_INCHES - 0.3),
          min(max(3.5, 0.22 * m.shape[0] + 1.8), common.PAGE_INCHES - 0.3))
  fig = common.new_figure(size)
  ax = fig.add_subplot(1, 1, 1)
  image = ax.imshow(np.ma.masked_invalid(m), origin=origin, cmap=cmap, vmin=vmin, vmax=vmax,
                    aspect="auto", interpolation="nearest")
  # a 7 pt label takes ~1.5 x 7 pt of the axis (about 2.8 in of the width go to the labels and
  # colour bar, 1.8 in of the height to the labels and title)
  fits = lambda inches: max(2, int(inches * 72 / (1.5 * _TICK_POINTS)))
  rows = _tick_positions(m.shape[0], min(max_ticks, fits(size[1] - 1.8)))
  cols = _tick_positions(m.shape[1], min(max_ticks, fits(size[0] - 2.8)))
  ax.set_yticks(rows, [row_labels[i] for i in rows], fontsize=_TICK_POINTS)
  ax.set_xticks(cols, [col_labels[j] for j in cols], fontsize=_TICK_POINTS, rotation=90)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  fig.colorbar(image, ax=ax, label=cbar_label)
  fig.tight_layout()
  return common.save_figure(fig, path, dpi=dpi)
