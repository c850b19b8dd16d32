"""Figures of attention distances and head subsets (Raghu et al. 2021, Figs. 3, 4, 5, C.5, C.6).

Each function takes the arrays of `repsim_jax.analysis.attention`, writes `<path>.png` and
`<path>.pdf` (any extension on `path` is replaced) and returns the two paths. `model` and
`palette` (the report's `colours.Palette`) colour each figure in its model's colour: blocks and
layers are shades of it, light (first) to dark (last).
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.ticker
import numpy as np

from repsim_jax.plotting.colours import MARKERS, Palette
from repsim_jax.plotting.common import legend_beside
from repsim_jax.plotting.common import new_figure as _figure
from repsim_jax.plotting.common import save_figure as _save


def plot_attention_distances(distances: np.ndarray, path: str, *,
                             layers: Sequence[int] | None = None, sort: bool = True,
                             layer_labels: Sequence[str] | None = None,
                             title: str = "Mean attention distance",
                             ylabel: str = "mean distance (pixels)", model: str = "ViT",
                             palette: Palette | None = None) -> list[str]:
  """Figs. 3, 4, C.5, C.6: one marker per head, heads sorted by distance, one shade of the model's
  colour per layer.

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
  colours = (palette or Palette()).shades(model, len(layers))
  for i, (layer, label, colour) in enumerate(zip(layers, labels, colours)):
    values = np.sort(distances[layer]) if sort else distances[layer]
    ax.scatter(np.arange(values.size), values, s=24, color=colour, label=label,
               marker=MARKERS[i % len(MARKERS)], edgecolors="none")
  ax.set_xlabel("sorted attention head" if sort else "attention head")
  ax.set_xticks(np.arange(distances.shape[1]))  # heads are whole numbers (two heads: 0 and 1)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  legend_beside(ax)
  return _save(fig, path)


def plot_attention_distance_by_depth(distances: np.ndarray, path: str, *,
                                     title: str = "Mean attention distance by depth",
                                     ylabel: str = "mean distance (pixels)",
                                     model: str = "ViT",
                                     palette: Palette | None = None) -> list[str]:
  """All heads against depth (x = block, one marker per head), as Dosovitskiy et al. 2021 Fig. 7,
  in the model's colour: head k of one block and head k of another are unrelated, so heads get no
  colours of their own (which would mean models elsewhere in the report).

  Args:
    distances: [L, H] mean attention distance per head.
  """
  distances = np.asarray(distances)
  if distances.ndim != 2:
    raise ValueError(f"distances must be [L, H], got shape {distances.shape}")
  num_layers, num_heads = distances.shape
  fig = _figure((5, 3.5))
  ax = fig.subplots()
  colour = (palette or Palette()).covering([model]).colour(model)
  blocks = np.repeat(np.arange(num_layers), num_heads)
  ax.scatter(blocks, distances.reshape(-1), s=16, color=colour, alpha=0.7, edgecolors="none")
  ax.set_xlabel(f"block (one marker per head, {num_heads} heads)")
  ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))  # blocks are whole
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  return _save(fig, path)


def plot_head_subset_cka(mean_distance: np.ndarray, similarity: np.ndarray, path: str, *,
                         layer_labels: Sequence[str] | None = None,
                         title: str = "Head subsets vs CNN lower layers", model: str = "CNN",
                         palette: Palette | None = None) -> list[str]:
  """Fig. 5: CKA of head subsets (local -> global) against CNN layers, vs the subset's distance;
  one shade of the CNN's (`model`) colour per CNN layer, light (lowest) to dark.

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
  colours = (palette or Palette()).shades(model, len(labels))
  for j, (label, colour) in enumerate(zip(labels, colours)):
    ax.plot(mean_distance, similarity[:, j], marker=MARKERS[j % len(MARKERS)], ms=4, label=label,
            color=colour)
  ax.set_xlabel("mean attention distance of head subset (pixels)")
  ax.set_ylabel("CKA")
  ax.set_title(title)
  legend_beside(ax)
  return _save(fig, path)
