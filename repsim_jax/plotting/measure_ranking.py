"""The measure benchmark's figure: one row per measure, its scores on each test, ranked."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from repsim_jax.plotting.common import new_figure, save_figure


def plot_measure_ranking(names: Sequence[str], scores: Mapping[str, Sequence[float]],
                         control: Mapping[str, Sequence[float]], path: str, *,
                         title: str = "Which measure to trust") -> list[str]:
  """Dots per measure (rows, in the given order: best first) and test (colours), each test's
  score in [0, 1]; hollow markers: the same test on the shuffled-image control.

  scores / control: test name -> [len(names)] values (NaN: not available, not drawn).
  """
  fig = new_figure((8.5, 0.28 * len(names) + 1.6))
  ax = fig.subplots()
  y = np.arange(len(names))[::-1]
  colors = ["tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:red"]
  for (test, values), color in zip(scores.items(), colors):
    ax.scatter(values, y, color=color, label=test, s=22, zorder=3)
    if test in control:
      ax.scatter(control[test], y, facecolors="none", edgecolors=color, s=22, zorder=2)
  ax.set_yticks(y)
  ax.set_yticklabels(names, fontsize=7)
  ax.set_xlim(-0.05, 1.05)
  ax.set_xlabel("score (filled: trained models; hollow: image order shuffled)")
  ax.grid(axis="x", alpha=0.3)
  ax.set_title(title, fontsize=10)
  ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.04), ncol=len(scores),
            frameon=False)
  return save_figure(fig, path)
