"""Figure of the cross-encoder subspace analysis (`repsim_jax.analysis.subspace`): PNG and PDF."""
from __future__ import annotations

import numpy as np

from repsim_jax.plotting.colours import NEUTRAL
from repsim_jax.plotting.common import PAGE_INCHES, new_figure, save_figure
from repsim_jax.plotting.heatmap import data_range, scale_text

_MEASURES = (("procrustes", "Procrustes similarity"), ("cka", "CKA"))


def plot_subspace_similarity(result: dict, path: str, *, title: str | None = None) -> list[str]:
  """Heatmaps of every pair's Procrustes similarity and CKA of the top-k PCA projections, each
  cell annotated with its value and permutation p-value, and the null of the median over pairs.

  result: the dict of `cross_encoder_subspace`. Writes `<path>.png` and `<path>.pdf`; returns them.
  """
  models = list(result["models"])
  m = len(models)
  # a cell holds two 7 pt lines ("0.83", "p=0.012"); the two heatmaps side by side when they fit
  # the report's page width (a wider PNG is shrunk with its text), else one above the other,
  # and the null below
  side = max(2.6, 0.5 * m + 1.4)
  cols = 2 if 2 * side <= PAGE_INCHES - 0.3 else 1
  width = max(cols * side, 5.0)
  fig = new_figure((width, (2 // cols) * side + 2.8))
  grid = fig.add_gridspec(2 // cols + 1, cols, height_ratios=[side] * (2 // cols) + [2.4])
  axes = [fig.add_subplot(grid[i // cols, i % cols]) for i in range(2)]
  axes.append(fig.add_subplot(grid[-1, :]))
  pairs = np.asarray(result["pairs"])
  for ax, (key, label) in zip(axes[:2], _MEASURES):
    matrix = np.asarray(result[key], np.float64)
    p = np.full((m, m), np.nan)
    p[pairs[:, 0], pairs[:, 1]] = p[pairs[:, 1], pairs[:, 0]] = result[f"{key}_pairs"]["p_value"]
    # the pairs' range (a model with itself is 1 and is drawn at the top of the scale)
    low, high = data_range(matrix[~np.eye(m, dtype=bool)]) if m > 1 else (0.0, 1.0)
    image = ax.imshow(matrix, vmin=low, vmax=high, cmap="viridis")
    for i in range(m):
      for j in range(m):
        text = f"{matrix[i, j]:.2f}" + ("" if i == j else f"\np={p[i, j]:.3f}")
        ax.text(j, i, text, ha="center", va="center", fontsize=7,
                color="white" if matrix[i, j] < low + 0.6 * (high - low) else "black")
    ax.set_xticks(range(m), models, rotation=90, fontsize=7)
    ax.set_yticks(range(m), models, fontsize=7)
    ax.set_title(f"{label} (k={result['k']})\n{scale_text(low, high)} (the pairs' range)",
                 fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
  ax = axes[2]
  # measures, not models: greys, which no model's colour is (`colours`)
  for (key, label), color, style in zip(_MEASURES, (NEUTRAL[0], NEUTRAL[2]), ("-", "--")):
    null = np.asarray(result[f"{key}_median_null"], np.float64)
    ax.hist(null, bins=min(30, max(5, len(null) // 5)), color=color, alpha=0.5,
            label=f"{label}: null")
    p = float(result[f"{key}_median_test"]["p_value"])
    ax.axvline(result[f"{key}_median"], color=color, linewidth=2, linestyle=style,
               label=f"{label}: observed (p={p:.3f})")
  ax.set_xlabel("median over model pairs", fontsize=8)
  ax.set_ylabel("permutations", fontsize=8)
  # above the histogram: beside it, the figure would outgrow the page
  ax.legend(fontsize=7, ncol=2, frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0))
  ax.tick_params(labelsize=7)
  fig.suptitle(title or "Top principal subspaces across encoders, against a permutation null",
               fontsize=10)
  fig.tight_layout()
  return save_figure(fig, path)
