"""Figs. 3 and 14: share of nearest neighbours in a common category (low-level features, true
factors), per layer, against the random baseline."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from repsim_jax.plotting.common import new_figure, relative_depth, save_figure


def plot_neighbour_sharing(panels: Mapping[str, tuple[Mapping[str, np.ndarray], float]], path: str,
                           *, k: int = 10, title: str | None = None) -> list[str]:
  """One panel per scope: % of an image's k neighbours sharing a category, vs relative depth.

  panels: {panel title: ({model: fraction per layer [L_m]}, random baseline fraction)}; Fig. 3 is
  one panel ("overall"), Fig. 14 one panel per property. Models of different depths share the
  x axis through relative depth; the baseline is a dashed black line. Writes PNG and PDF.
  """
  if not panels:
    raise ValueError("panels: expected at least one panel")
  fig = new_figure((4.2 * len(panels), 3.4))
  axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)
  for ax, (name, (sharing, baseline)) in zip(axes[0], panels.items()):
    for model, values in sharing.items():
      values = 100 * np.asarray(values, float)
      ax.plot(relative_depth(len(values)), values, marker="o", markersize=3, label=model)
    ax.axhline(100 * baseline, color="k", linestyle="--", linewidth=1,
               label=f"random baseline ({100 * baseline:.1f} %)")
    ax.set_title(name)
    ax.set_xlabel("relative layer depth")
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  axes[0, 0].set_ylabel(f"% of {k} nearest neighbours\nsharing a category")
  fig.suptitle(title or f"Low-level categories shared with the {k} nearest neighbours")
  fig.tight_layout()
  return save_figure(fig, path)
