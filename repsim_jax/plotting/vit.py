"""Figures of the ViT-vs-CNN analyses (Raghu et al. 2021), one function per figure kind.

Every function takes the arrays returned by `repsim_jax.analysis.vit`, writes `<path>.png` and
`<path>.pdf` (any extension on `path` is replaced) and returns the two paths.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from repsim_jax.plotting.common import new_figure as _figure
from repsim_jax.plotting.common import save_figure as _save
from repsim_jax.plotting.heatmap import layer_heatmap


def _grid(num_panels: int, ncols: int | None, panel_size: float = 2.0):
  ncols = ncols or min(num_panels, 6)
  nrows = math.ceil(num_panels / ncols)
  fig = _figure((panel_size * ncols, panel_size * nrows + 0.4))
  axes = fig.subplots(nrows, ncols, squeeze=False)
  for ax in axes.flat[num_panels:]:
    ax.axis("off")
  return fig, list(axes.flat)


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
  for j, label in enumerate(labels):
    ax.plot(mean_distance, similarity[:, j], marker="o", ms=3, label=label)
  ax.set_xlabel("mean attention distance of head subset (pixels)")
  ax.set_ylabel("CKA")
  ax.set_title(title)
  ax.legend(fontsize=7, frameon=False)
  return _save(fig, path)


def plot_receptive_fields(maps: np.ndarray, path: str, *, titles: Sequence[str] | None = None,
                          ncols: int | None = None, cmap: str = "viridis",
                          suptitle: str = "Effective receptive fields") -> list[str]:
  """Figs. 6, C.1-C.4: one ERF image per layer, each on its own colour scale.

  Args:
    maps: [K, H, W] (`effective_receptive_field` per layer).
  """
  maps = np.asarray(maps)
  if maps.ndim != 3:
    raise ValueError(f"maps must be [K, H, W], got shape {maps.shape}")
  titles = titles or [f"layer {k}" for k in range(maps.shape[0])]
  fig, axes = _grid(maps.shape[0], ncols)
  for ax, erf, name in zip(axes, maps, titles):
    ax.imshow(erf, cmap=cmap)
    ax.set_title(name, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(suptitle)
  return _save(fig, path)


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
                          normalized_depth: bool = True, log_scale: bool = False) -> list[str]:
  """Figs. 7 (right), E.2: one line per series (e.g. "ViT CLS", "ViT tokens", "ResNet50").

  Series of different lengths share a normalised depth axis [0, 1] when normalized_depth.
  """
  fig = _figure((5, 3.5))
  ax = fig.subplots()
  for name, values in series.items():
    values = np.asarray(values, dtype=float)
    x = (np.linspace(0, 1, values.size) if normalized_depth and values.size > 1
         else np.arange(values.size))
    ax.plot(x, values, marker="o", ms=3, label=name)
  ax.set_xlabel("normalised depth" if normalized_depth else "block")
  ax.set_ylabel(ylabel)
  if log_scale:
    ax.set_yscale("log")
  ax.set_title(title)
  ax.legend(fontsize=7, frameon=False)
  return _save(fig, path)


def plot_localization(maps: np.ndarray, path: str, *, tokens: Sequence[Sequence[int]],
                      ncols: int | None = None, cmap: str = "viridis",
                      shared_scale: bool = True,
                      suptitle: str = "CKA of a token with input patches") -> list[str]:
  """Figs. 9, 10, D.1-D.3: one [grid_h, grid_w] CKA map per token, the token's own position
  marked with a red box; one colour scale and colour bar for all maps when shared_scale.

  Args:
    maps: [K, grid_h, grid_w] (`localization_maps`); tokens: the K (row, col) positions.
  """
  maps = np.asarray(maps)
  if maps.ndim != 3 or len(tokens) != maps.shape[0]:
    raise ValueError(f"maps must be [K, gh, gw] with K = len(tokens) = {len(tokens)}, "
                     f"got shape {maps.shape}")
  fig, axes = _grid(maps.shape[0], ncols)
  vmin, vmax = (float(np.nanmin(maps)), float(np.nanmax(maps))) if shared_scale else (None, None)
  for ax, image, (row, col) in zip(axes, maps, tokens):
    shown = ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.5))
    ax.set_title(f"token ({row}, {col})", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
  if shared_scale:
    fig.colorbar(shown, ax=axes, label="CKA", shrink=0.8)
  fig.suptitle(suptitle)
  return _save(fig, path)
