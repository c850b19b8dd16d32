"""Layer x layer heatmaps (II, CKA): PNG and PDF."""
from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def layer_heatmap(matrix, *, row_labels: Sequence[str], col_labels: Sequence[str], title: str,
                  path: str, cbar_label: str = "", xlabel: str = "", ylabel: str = "",
                  vmin: float | None = None, vmax: float | None = None,
                  cmap: str = "viridis") -> list[str]:
  """Draws `matrix` [R, C] with labelled axes; writes `path` with .png and .pdf, returns both."""
  matrix = np.asarray(matrix)
  if matrix.shape != (len(row_labels), len(col_labels)):
    raise ValueError(f"matrix shape {matrix.shape} does not match labels "
                     f"({len(row_labels)}, {len(col_labels)})")
  size = (max(4.0, 0.28 * len(col_labels) + 2.5), max(3.5, 0.28 * len(row_labels) + 1.5))
  fig, ax = plt.subplots(figsize=size)
  im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, origin="upper", aspect="auto")
  ax.set_xticks(range(len(col_labels)), col_labels, rotation=90, fontsize=7)
  ax.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  fig.colorbar(im, ax=ax, label=cbar_label)
  fig.tight_layout()
  base = os.path.splitext(path)[0]
  paths = [base + ".png", base + ".pdf"]
  for p in paths:
    fig.savefig(p, dpi=150)
  plt.close(fig)
  return paths
