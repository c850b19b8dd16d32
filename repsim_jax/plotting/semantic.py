"""Fig. 4: Jaccard index of ManyNames labels between images and their neighbours, per layer."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from repsim_jax.plotting.colours import Palette, series_styles
from repsim_jax.plotting.common import legend_beside, new_figure, relative_depth, save_figure


def plot_semantic_coherence(mean: Mapping[str, np.ndarray], std: Mapping[str, np.ndarray],
                            path: str, *, n_queries: int = 50, k: int = 10,
                            title: str | None = None,
                            palette: Palette | None = None) -> list[str]:
  """Mean Jaccard index per layer for each model, shaded ± one standard deviation.

  mean, std: {model: [L_m]} (from `repsim_jax.analysis.semantic.semantic_coherence`). x axis:
  relative layer depth; palette: the report's model colours. Writes PNG and PDF.
  """
  if set(mean) != set(std):
    raise ValueError(f"mean, std: expected the same models, got {sorted(mean)} and {sorted(std)}")
  fig = new_figure((5.5, 3.8))
  ax = fig.subplots()
  styles = series_styles(mean, palette)
  for model in mean:
    m, s = np.asarray(mean[model], float), np.asarray(std[model], float)
    x = relative_depth(len(m))
    ax.plot(x, m, markersize=3, label=model, **styles[model])
    ax.fill_between(x, m - s, m + s, color=styles[model]["color"], alpha=0.15, linewidth=0)
  ax.set_xlabel("relative layer depth")
  ax.set_ylabel("Jaccard index of label sets")
  ax.set_xlim(0, 1)
  ax.grid(alpha=0.3)
  legend_beside(ax)
  ax.set_title(title or f"ManyNames label overlap: {n_queries} images and their {k} nearest "
               "neighbours (mean ± std)", fontsize=9)
  fig.tight_layout()
  return save_figure(fig, path)
