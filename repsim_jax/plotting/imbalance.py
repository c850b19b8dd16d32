"""Information-imbalance figures of Mahaut & Baroni (2026): Fig. 1 (and the appendix Figs. 6-9,
the same grid on other model sets), Fig. 10 (all layers x all layers), Fig. 11 (std of II over
subsamples vs N), Fig. 12 (smoothness vs N) and adjacent-layer II curves. Curves take optional
intervals (`metrics.intervals`: bootstrap or subsample low/high) and shade them. Each function
takes arrays, writes `<path>.png` and `<path>.pdf` and returns the written paths; `palette` (the
report's `colours.Palette`) gives each model its colour in every figure."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from repsim_jax.plotting.colours import MARKERS, Palette, series_styles
from repsim_jax.plotting.common import (PAGE_INCHES, legend_beside, new_figure, relative_depth,
                                        save_figure, shade_interval)
from repsim_jax.plotting.heatmap import data_range, layer_heatmap, scale_text

# The paper's markers (early = circle, middle = square, late = triangle) are `MARKERS`' first
# three. Its colours (blue, purple, yellow) would mean models elsewhere in a report: here they are
# shades of the predicting model's colour, light (early) to dark (late).
_YLABEL_INCHES, _LEGEND_INCHES = 0.6, 1.5  # of the II grid: its row labels and row legends


def _check_pairs(matrices: Mapping[tuple[str, str], np.ndarray], models: Sequence[str]) -> None:
  missing = [(a, b) for a in models for b in models if (a, b) not in matrices]
  if missing:
    raise ValueError(f"matrices: expected every ordered pair of {list(models)}, missing {missing}")


def plot_imbalance_grid(matrices: Mapping[tuple[str, str], np.ndarray], path: str, *,
                        models: Sequence[str], representative: Mapping[str, Sequence[int]],
                        layer_names: Mapping[str, Sequence[str]] | None = None,
                        row_names: Sequence[str] = ("early", "middle", "late"),
                        title: str | None = None, panel_size: float = 2.8,
                        intervals: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]]
                        | None = None, palette: Palette | None = None) -> list[str]:
  """Fig. 1: a models x models grid; panel (A, B) shows Δ(A_l → every layer of B).

  matrices: {(A, B): [L_A, L_B]} for every ordered pair of `models` (A predicts B: row A, column
  B, as in the paper where the last column is "X → DINOv2"). representative: {model: layer
  indices} (early, middle, late) of the predicting model, one curve each against the relative
  depth of B. layer_names: {model: names} for the legend (default: indices). Shared y in [0, 1].
  intervals: optional {(A, B): (low [L_A, L_B], high [L_A, L_B])}, e.g. an
  `imbalance_bootstrap`'s "low"/"high", shaded around each curve. palette: the report's model
  colours; row A's curves are shades of A's colour.
  """
  models = list(models)
  palette = (palette or Palette()).covering(models)
  _check_pairs(matrices, models)
  for m in models:
    if m not in representative:
      raise ValueError(f"representative: no layers for model {m!r}")
    if len(representative[m]) != len(row_names):
      raise ValueError(f"representative[{m!r}]: expected {len(row_names)} layers "
                       f"({', '.join(row_names)}), got {list(representative[m])}")
  n = len(models)
  # panels shrink so that the grid and its legends fit the report's page width: a wider PNG would
  # be shrunk with its text (`common.PAGE_INCHES`)
  side = min(panel_size, (PAGE_INCHES - 0.4 - _YLABEL_INCHES - _LEGEND_INCHES) / n)
  fig = new_figure((side * n + _YLABEL_INCHES + _LEGEND_INCHES, side * n + 0.9))
  axes = fig.subplots(n, n, squeeze=False, sharey=True, sharex=True)
  for i, a in enumerate(models):
    shades = palette.shades(a, len(row_names))
    for j, b in enumerate(models):
      ax = axes[i, j]
      m = np.asarray(matrices[(a, b)], np.float64)
      x = relative_depth(m.shape[1])
      for marker, color, row_name, layer in zip(MARKERS, shades, row_names, representative[a]):
        name = layer_names[a][layer] if layer_names else str(layer)
        ax.plot(x, m[layer], marker=marker, color=color, markersize=3, linewidth=1,
                label=f"{row_name}: {name}")
        if intervals is not None and (a, b) in intervals:
          low, high = intervals[(a, b)]
          shade_interval(ax, x, np.asarray(low)[layer], np.asarray(high)[layer], color=color)
      ax.set_title(f"{a} → {b}", fontsize=8)
      ax.set_ylim(0, 1)
      ax.set_xlim(0, 1)
      ax.grid(alpha=0.3)
      ax.tick_params(labelsize=7)
      if i == n - 1:  # "relative depth of <B>" ran into the next column's label
        ax.set_xlabel(b, fontsize=8)
      if j == 0:
        ax.set_ylabel(f"Δ({a} → B)", fontsize=8)
    # the curves depend only on the row's model A: one legend per row, beside it
    axes[i, -1].legend(fontsize=7, title=f"layer of {a}", title_fontsize=7, frameon=False,
                       loc="center left", bbox_to_anchor=(1.02, 0.5))
  fig.supxlabel("relative depth of the predicted layer of B", fontsize=8)
  fig.suptitle(title or "Information imbalance Δ(A → B) from an early, middle and late layer "
               "of A to every layer of B", fontsize=10)
  fig.tight_layout()
  return save_figure(fig, path)


def plot_imbalance_heatmaps(matrices: Mapping[tuple[str, str], np.ndarray], directory: str, *,
                            layer_names: Mapping[str, Sequence[str]],
                            prefix: str = "fig10",
                            vmin: float | None = None, vmax: float | None = None) -> list[str]:
  """Fig. 10: every layer of A against every layer of B, one heatmap per ordered pair (A, B).

  Writes `<directory>/<prefix>_<A>__<B>.png/.pdf` through `layer_heatmap` (rows: predicting layers
  of A, columns: predicted layers of B); returns every written path. Colours span [vmin, vmax]
  when given, else each matrix's own range (`heatmap.data_range`: a model's own layers differ by
  a few hundredths where another pair spans 0 to 1), stated in each title.
  """
  paths = []
  for (a, b), m in matrices.items():
    low, high = data_range(m)
    low, high = (low if vmin is None else vmin), (high if vmax is None else vmax)
    paths += layer_heatmap(
        m, row_labels=list(layer_names[a]), col_labels=list(layer_names[b]),
        title=f"{a} → {b}\n{scale_text(low, high)}",
        path=os.path.join(directory, f"{prefix}_{a}__{b}"),
        ylabel=f"predicting layer of {a}", xlabel=f"predicted layer of {b}",
        cbar_label="Δ(A → B)", vmin=low, vmax=high)
  return paths


def _check_sizes(sizes, curves: Mapping[str, np.ndarray], name: str) -> np.ndarray:
  sizes = np.asarray(sizes)
  if sizes.ndim != 1 or len(sizes) == 0:
    raise ValueError(f"sizes: expected a non-empty 1-D array of sample sizes, got {sizes!r}")
  for model, v in curves.items():
    if np.shape(v) != sizes.shape:
      raise ValueError(f"{name}[{model!r}]: expected shape {sizes.shape} (one value per size), "
                       f"got {np.shape(v)}")
  return sizes


def _log_sizes_axis(ax, sizes: np.ndarray) -> None:
  """Log x with one labelled tick per sample size (no crowded minor labels)."""
  from matplotlib.ticker import NullFormatter
  ax.set_xscale("log")
  ax.set_xticks(sizes, [f"{int(s):,}" for s in sizes], fontsize=7)
  ax.xaxis.set_minor_formatter(NullFormatter())
  ax.set_xlabel("number of images N")


def plot_sample_size_std(sizes, std_by_model: Mapping[str, np.ndarray], path: str, *,
                         n_subsamples: int = 10, title: str | None = None,
                         band_by_model: Mapping[str, tuple[np.ndarray, np.ndarray]]
                         | None = None, palette: Palette | None = None) -> list[str]:
  """Fig. 11: std of II over `n_subsamples` random subsamples vs sample size N (log x).

  std_by_model: {model: [S]}, e.g. `sample_size_curve(...)["std"]` averaged over the early,
  middle and late predicting layers and the predicted layers. band_by_model: optional
  {model: (low [S], high [S])} shaded around each curve (e.g. an interval of the std).
  """
  sizes = _check_sizes(sizes, std_by_model, "std_by_model")
  fig = new_figure((5.2, 3.8))
  ax = fig.subplots()
  styles = series_styles(std_by_model, palette)
  for model, std in std_by_model.items():
    ax.plot(sizes, np.asarray(std, float), markersize=4, label=model, **styles[model])
    if band_by_model is not None and model in band_by_model:
      shade_interval(ax, sizes, *band_by_model[model], color=styles[model]["color"])
  _log_sizes_axis(ax, sizes)
  ax.set_ylabel(f"std of II over {n_subsamples} subsamples")
  ax.grid(alpha=0.3, which="both")
  legend_beside(ax)
  ax.set_title(title or "Information imbalance across subsamples (early, middle, late layers)",
               fontsize=9)
  fig.tight_layout()
  return save_figure(fig, path)


def plot_smoothness_vs_n(sizes, mean_by_model: Mapping[str, np.ndarray],
                         std_by_model: Mapping[str, np.ndarray], path: str, *,
                         n_seeds: int = 10, title: str | None = None,
                         band_by_model: Mapping[str, tuple[np.ndarray, np.ndarray]]
                         | None = None, palette: Palette | None = None) -> list[str]:
  """Fig. 12: smoothness (std of adjacent-layer II differences) vs N, mean ± std over seeds.

  mean_by_model, std_by_model: {model: [S]} (e.g. from `smoothness_curve`, averaged over the
  predicting layers). Log x; the band is mean ± std over `n_seeds` seeds, or the given
  band_by_model {model: (low [S], high [S])} (e.g. `intervals.subsample_interval`'s low/high).
  """
  if set(mean_by_model) != set(std_by_model):
    raise ValueError(f"mean_by_model, std_by_model: expected the same models, got "
                     f"{sorted(mean_by_model)} and {sorted(std_by_model)}")
  sizes = _check_sizes(sizes, mean_by_model, "mean_by_model")
  _check_sizes(sizes, std_by_model, "std_by_model")
  fig = new_figure((5.2, 3.8))
  ax = fig.subplots()
  styles = series_styles(mean_by_model, palette)
  for model, mean in mean_by_model.items():
    m, s = np.asarray(mean, float), np.asarray(std_by_model[model], float)
    ax.plot(sizes, m, markersize=4, label=model, **styles[model])
    low, high = (m - s, m + s) if band_by_model is None else band_by_model[model]
    shade_interval(ax, sizes, low, high, color=styles[model]["color"])
  _log_sizes_axis(ax, sizes)
  ax.set_ylabel("std of adjacent-layer II differences")
  ax.grid(alpha=0.3, which="both")
  legend_beside(ax)
  ax.set_title(title or f"Smoothness of II curves vs N (mean ± std over {n_seeds} seeds)",
               fontsize=9)
  fig.tight_layout()
  return save_figure(fig, path)


def plot_adjacent_layers(values_by_model: Mapping[str, np.ndarray], path: str, *,
                         band_by_model: Mapping[str, tuple[np.ndarray, np.ndarray]]
                         | None = None, ylabel: str = "Δ(layer l → layer l+1)",
                         title: str | None = None, palette: Palette | None = None) -> list[str]:
  """Adjacent-layer II curves (the smoothness of Sec. 3.2.3) with their intervals shaded.

  values_by_model: {model: [L - 1]} e.g. `np.diagonal(ii, 1)` of a model's own II matrix
  (Δ(l → l+1)), plotted against the relative depth of l. band_by_model: optional
  {model: (low [L - 1], high [L - 1])}, e.g. the same diagonal of an `imbalance_bootstrap`'s
  "low"/"high".
  """
  fig = new_figure((5.2, 3.8))
  ax = fig.subplots()
  styles = series_styles(values_by_model, palette)
  for model, values in values_by_model.items():
    v = np.asarray(values, np.float64)
    if v.ndim != 1 or len(v) < 1:
      raise ValueError(f"values_by_model[{model!r}]: expected a 1-D curve, got shape {v.shape}")
    x = relative_depth(len(v) + 1)[:-1]
    ax.plot(x, v, markersize=3, linewidth=1, label=model, **styles[model])
    if band_by_model is not None and model in band_by_model:
      shade_interval(ax, x, *band_by_model[model], color=styles[model]["color"])
  ax.set_xlabel("relative depth of layer l")
  ax.set_ylabel(ylabel)
  ax.set_ylim(bottom=0)
  ax.grid(alpha=0.3)
  legend_beside(ax)
  ax.set_title(title or "Information imbalance between adjacent layers", fontsize=9)
  fig.tight_layout()
  return save_figure(fig, path)
