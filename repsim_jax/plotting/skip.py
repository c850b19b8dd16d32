"""Figures of skip-connection statistics (Raghu et al. 2021, Figs. 7, E.1, E.2), from
`repsim_jax.analysis.skip`; writes `<path>.png` and `.pdf`, returns the two paths.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from repsim_jax.plotting.colours import Palette, series_styles
from repsim_jax.plotting.common import legend_beside
from repsim_jax.plotting.common import new_figure as _figure
from repsim_jax.plotting.common import save_figure as _save
from repsim_jax.plotting.heatmap import layer_heatmap


def plot_skip_ratio_heatmap(stats: np.ndarray, path: str, *, num_tokens: int | None = None,
                            num_prefix_tokens: int = 1, title: str = "||z|| / ||f(z)||",
                            label: str = "norm ratio", cmap: str = "viridis") -> list[str]:
  """Figs. 7 (left), E.1: a token x block heatmap of a [L, T] statistic (token 0 = CLS).

  Args:
    stats: [L, T] from `transformer_skip_stats` ("attn_ratio", "mlp_cosine", ...).
    num_tokens: show only the first num_tokens tokens (the paper shows the first few).
    num_prefix_tokens: prefix tokens labelled "CLS" (0) or "prefix" in the token labels.
  """
  stats = np.asarray(stats)
  if stats.ndim != 2:
    raise ValueError(f"stats must be [L, T], got shape {stats.shape}")
  shown = stats[:, :num_tokens].T  # rows = tokens, columns = blocks
  token_labels = [("CLS" if t == 0 else f"prefix {t}") if t < num_prefix_tokens else str(t)
                  for t in range(shown.shape[0])]
  return layer_heatmap(shown, row_labels=token_labels,
                       col_labels=[str(b) for b in range(shown.shape[1])], title=title,
                       path=path, cbar_label=label, xlabel="block", ylabel="token", cmap=cmap)


def plot_skip_ratio_lines(series: Mapping[str, np.ndarray], path: str, *,
                          title: str = "||z|| / ||f(z)||", ylabel: str = "norm ratio",
                          normalized_depth: bool = True, log_scale: bool = False,
                          palette: Palette | None = None) -> list[str]:
  """Figs. 7 (right), E.2: one line per series (e.g. "ViT CLS", "ViT tokens", "ResNet50").

  Series of different lengths share a normalised depth axis [0, 1] when normalized_depth. With
  the report's palette, a series named after a model ("vit CLS (attn)") has the model's colour;
  its variants differ by line style and marker.
  """
  fig = _figure((5, 3.5))
  ax = fig.subplots()
  styles = series_styles(series, palette)
  for name, values in series.items():
    values = np.asarray(values, dtype=float)
    x = (np.linspace(0, 1, values.size) if normalized_depth and values.size > 1
         else np.arange(values.size))
    ax.plot(x, values, ms=3, label=name, **styles[name])
  ax.set_xlabel("normalised depth" if normalized_depth else "block")
  ax.set_ylabel(ylabel)
  if log_scale:
    ax.set_yscale("log")
  ax.set_title(title)
  legend_beside(ax)
  return _save(fig, path)
