"""Figure of the cross-encoder subspace analysis (`repsim_jax.analysis.subspace`): PNG and PDF."""
from __future__ import annotations

import numpy as np

from repsim_jax.plotting.common import new_figure, save_figure

_MEASURES = (("procrustes", "Procrustes similarity"), ("cka", "CKA"))


def plot_subspace_similarity(result: dict, path: str, *, title: str | None = None) -> list[str]:
  """Heatmaps of every pair's Procrustes similarity and CKA of the top-k PCA projections, each
  cell annotated with its value and permutation p-value, and the null of the median over pairs.

  result: the dict of `cross_encoder_subspace`. Writes `<path>.png` and `<path>.pdf`; returns them.
  """
  models = list(result["models"])
  m = len(models)
  side = max(3.0, 0.55 * m + 1.6)
  fig = new_figure((2 * side + 3.6, side + 0.6))
  axes = fig.subplots(1, 3, gridspec_kw=dict(width_ratios=[side, side, 3.0]))
  pairs = np.asarray(result["pairs"])
  for ax, (key, label) in zip(axes[:2], _MEASURES):
    matrix = np.asarray(result[key], np.float64)
    p = np.full((m, m), np.nan)
    p[pairs[:, 0], pairs[:, 1]] = p[pairs[:, 1], pairs[:, 0]] = result[f"{key}_pairs"]["p_value"]
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis")
    for i in range(m):
      for j in range(m):
        text = f"{matrix[i, j]:.2f}" + ("" if i == j else f"\np={p[i, j]:.3f}")
        ax.text(j, i, text, ha="center", va="center", fontsize=6,
                color="white" if matrix[i, j] < 0.6 else "black")
    ax.set_xticks(range(m), models, rotation=90, fontsize=7)
    ax.set_yticks(range(m), models, fontsize=7)
    ax.set_title(f"{label} (k={result['k']})", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
  ax = axes[2]
  for (key, label), color in zip(_MEASURES, ("#1f4e99", "#e6ab02")):
    null = np.asarray(result[f"{key}_median_null"], np.float64)
    ax.hist(null, bins=min(30, max(5, len(null) // 5)), color=color, alpha=0.5,
            label=f"{label}: null")
    p = float(result[f"{key}_median_test"]["p_value"])
    ax.axvline(result[f"{key}_median"], color=color, linewidth=2,
               label=f"{label}: observed (p={p:.3f})")
  ax.set_xlabel("median over model pairs", fontsize=8)
  ax.set_ylabel("permutations", fontsize=8)
  ax.legend(fontsize=6)
  ax.tick_params(labelsize=7)
  fig.suptitle(title or "Top principal subspaces across encoders, against a permutation null",
               fontsize=10)
  fig.tight_layout()
  return save_figure(fig, path)
