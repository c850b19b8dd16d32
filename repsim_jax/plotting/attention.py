"""Figures of attention distances and head subsets (Raghu et al. 2021, Figs. 3, 4, 5, C.5, C.6).

Each function takes the arrays of `repsim_jax.analysis.attention`, writes `<path>.png` and
`<path>.pdf` (any extension on `path` is replaced) and returns the two paths.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib
import matplotlib.ticker
import numpy as np

from repsim_jax.plotting.common import new_figure as _figure
from repsim_jax.plotting.common import save_figure as _save


def plot_attention_distances(distances: np.ndarray, path: str, *,
                             layers: Sequence[int] | None = None, sort: bool = True,
                             layer_labels: Sequence[str] | None = None,
                             title: str = "Mean attention distance",
                             ylabel: str = "mean distance (pixels)") -> list[str]:
  """Figs. 3, 4, C.5, C.6: one marker per head, heads sorted by distance, one colour per layer.

  Args:
    distances: [L, H] mean attention distance per head (`attention_distances`).
    layers: which layers to draw (default all; the paper shows the two lowest and two highest).
    sort: sort heads within each layer (x = sorted head index) as in the paper.
  """
  distances = np.asarray(distances)
  if distances.ndim != 2:
    raise ValueError(f"distances must be [L, H], got shape {distances.shape}")
  layers = list(range(distances.shape[0])) if layers is None else list(layers)
  labels = layer_labels or [f"block {l}" for l in layers]
  fig = _figure((5, 3.5))
  ax = fig.subplots()
  colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, len(layers)))
  for layer, label, colour in zip(layers, labels, colours):
    values = np.sort(distances[layer]) if sort else distances[layer]
    ax.scatter(np.arange(values.size), values, s=18, color=colour, label=label)
  ax.set_xlabel("sorted attention head" if sort else "attention head")
  ax.set_xticks(np.arange(distances.shape[1]))  # heads are whole numbers (two heads: 0 and 1)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.legend(fontsize=7, frameon=False)
  return _save(fig, path)


def plot_attention_distance_by_depth(distances: np.ndarray, path: str, *,
                                     title: str = "Mean attention distance by depth",
                                     ylabel: str = "mean distance (pixels)") -> list[str]:
  """All heads against depth (x = block, one marker per head), as Dosovitskiy et al. 2021 Fig. 7.

  Args:
    distances: [L, H] mean attention distance per head.
  """
  distances = np.asarray(distances)
  if distances.ndim != 2:
    raise ValueError(f"distances must be [L, H], got shape {distances.shape}")
  num_layers, num_heads = distances.shape
  fig = _figure((5, 3.5))
  ax = fig.subplots()
  colours = matplotlib.colormaps["tab20"](np.arange(num_heads) % 20)
  for head in range(num_heads):
    ax.scatter(np.arange(num_layers), distances[:, head], s=10, color=colours[head],
               label=f"head {head}" if num_heads <= 16 else None)
  ax.set_xlabel("block")
  ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # blocks are whole
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  if num_heads <= 16:
    ax.legend(fontsize=6, frameon=False, ncol=2)
  return _save(fig, path)


def plot_head_subset_cka(mean_distance: np.ndarray, similarity: np.ndarray, path: str, *,
                         layer_labels: Sequence[str] | None = None,
                         title: str = "Head subsets vs CNN lower layers") -> list[str]:
  """Fig. 5: CKA of head subsets (local -> global) against CNN layers, vs the subset's distance.

  Args:
    mean_distance: [S] mean attention distance of each subset; similarity: [S, Lc].
  """
  similarity = np.asarray(similarity)
  if similarity.ndim != 2 or similarity.shape[0] != np.size(mean_distance):
    raise ValueError(f"similarity must be [S, Lc] with S = {np.size(mean_distance)}, "
                     f"got shape {similarity.shape}")
  labels = layer_labels or [f"CNN layer {j}" for j in range(similarity.shape[1])]
  fig = _figure((5, 3.5))
  ax = fig.subplots()
  # CNN layers by depth on a sequential scale: the default cycle's colours stand for models in
  # the other figures of the report
  colours = matplotlib.colormaps["viridis"](np.linspace(0, 0.85, len(labels)))
  for j, (label, colour) in enumerate(zip(labels, colours)):
    ax.plot(mean_distance, similarity[:, j], marker="o", ms=3, label=label, color=colour)
  ax.set_xlabel("mean attention distance of head subset (pixels)")
  ax.set_ylabel("CKA")
  ax.set_title(title)
  ax.legend(fontsize=7, frameon=False)
  return _save(fig, path)
