"""Figs. 3 and 14: share of nearest neighbours in a common category (low-level features, true
factors), per layer, against the random baseline."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from repsim_jax.plotting.colours import NEUTRAL, Palette, series_styles
from repsim_jax.plotting.common import legend_beside, new_figure, relative_depth, save_figure


def plot_neighbour_sharing(panels: Mapping[str, tuple[Mapping[str, np.ndarray], float]], path: str,
                           *, k: int = 10, title: str | None = None,
                           palette: Palette | None = None) -> list[str]:
  """One panel per scope: % of an image's k neighbours sharing a category, vs relative depth.

  panels: {panel title: ({model: fraction per layer [L_m]}, random baseline fraction)}; Fig. 3 is
  one panel ("overall"), Fig. 14 one panel per property. Models of different depths share the
  x axis through relative depth; the baseline is a dashed black line; palette: the report's model
  colours. Writes PNG and PDF.
  """
  if not panels:
    raise ValueError("panels: expected at least one panel")
  # at most two panels a row, so that a page-wide figure keeps its text readable; the models'
  # legend goes once, in a spare cell when there is one
  cols = min(2, len(panels))
  rows = -(-len(panels) // cols)
  fig = new_figure((4.0 * cols, 3.0 * rows + 0.4))
  axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
  for ax, (name, (sharing, baseline)) in zip(axes, panels.items()):
    styles = series_styles(sharing, palette)
    for model, values in sharing.items():
      values = 100 * np.asarray(values, float)
      ax.plot(relative_depth(len(values)), values, markersize=3, label=model, **styles[model])
    ax.axhline(100 * baseline, color=NEUTRAL[0], linestyle="--", linewidth=1,
               label="random baseline")
    ax.set_title(f"{name.replace('_', ' ')} (random: {100 * baseline:.1f} %)", fontsize=10)
    ax.set_xlabel("relative layer depth")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
  for ax in axes[::cols]:
    ax.set_ylabel(f"% of {k} nearest\nneighbours sharing")
  handles, labels = axes[0].get_legend_handles_labels()
  if len(axes) > len(panels):
    for ax in axes[len(panels):]:
      ax.axis("off")
    axes[len(panels)].legend(handles, labels, loc="center", fontsize=10, frameon=False)
  else:
    legend_beside(axes[0])
  fig.suptitle(title or f"Low-level categories shared with the {k} nearest neighbours")
  fig.tight_layout()
  return save_figure(fig, path)
