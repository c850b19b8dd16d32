"""Probe figures: roughness densities with example curves (Mahaut & Baroni 2026, Fig. 5),
out-of-domain probe accuracy per layer (ibid., Fig. 13), few-shot probe accuracy per layer
(Raghu et al. 2021, Figs. 11, 13). Each function takes arrays, writes `<path>.png` and
`<path>.pdf` and returns the two paths; `palette` (the report's `colours.Palette`) gives each model
its colour in every figure."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from repsim_jax.plotting.colours import Palette, series_styles
from repsim_jax.plotting.common import PAGE_INCHES, legend_beside, new_figure
from repsim_jax.plotting.common import relative_depth as _depth
from repsim_jax.plotting.common import save_figure as _save


def _subplots(count: int, width: float, height: float):
  """`count` panels of width x height inches, as many a row as fit the report's page width (a
  wider PNG is shrunk with its text); unused axes off."""
  cols = max(1, min(count, int((PAGE_INCHES - 0.3) // width)))
  rows = -(-count // cols)
  fig = new_figure((width * cols, height * rows + 0.5))
  axes = fig.subplots(rows, cols, squeeze=False).ravel()
  for ax in axes[count:]:
    ax.axis("off")
  return fig, axes[:count]


def _density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
  """Gaussian kernel density estimate with Scott's bandwidth (as scipy's gaussian_kde)."""
  values = np.asarray(values, np.float64)
  bw = max(values.std(ddof=1) if len(values) > 1 else 0.0, 1e-3) * len(values) ** (-1 / 5)
  z = (grid[:, None] - values[None, :]) / bw
  return np.exp(-0.5 * z * z).sum(1) / (len(values) * bw * np.sqrt(2 * np.pi))


def plot_roughness(roughness_by_model: Mapping[str, np.ndarray], path: str, *,
                   examples: Sequence[dict] = (),
                   title: str = "Roughness of per-class probe accuracy across layers",
                   palette: Palette | None = None) -> list[str]:
  """Fig. 5: density of per-class roughness per model (left), example accuracy curves (right).

  roughness_by_model: model -> [C] roughness (std of adjacent-layer accuracy differences).
  examples: dicts with "model", "label" (e.g. the class name), "accuracy" [L] and optionally
    "roughness" (computed from the curve when absent); each example is drawn on the right
    against relative depth and marked by a dashed line at its roughness on the left.
  """
  fig, (ax_d, ax_c) = _subplots(2, 6.8, 3.4)
  palette = (palette or Palette()).covering(roughness_by_model)
  all_r = np.concatenate([np.ravel(r) for r in roughness_by_model.values()])
  grid = np.linspace(0, max(float(all_r.max()) * 1.2, 1e-3), 400)
  for model, r in roughness_by_model.items():
    ax_d.plot(grid, _density(np.ravel(r), grid), color=palette.colour(model), label=model)
  roughness = [ex.get("roughness", float(np.std(np.diff(np.asarray(ex["accuracy"], float)))))
               for ex in examples]
  labels = [f"{ex['model']}: {ex['label']} (roughness {r:.3f})"
            for ex, r in zip(examples, roughness)]
  styles = palette.styles(labels)  # two examples of one model: its colour, two line styles
  for ex, r, label in zip(examples, roughness, labels):
    acc = np.asarray(ex["accuracy"], np.float64)
    ax_d.axvline(r, color=styles[label]["color"], linestyle="--", linewidth=1)
    ax_c.plot(_depth(len(acc)), acc, markersize=4, label=label, **styles[label])
  ax_d.set(xlabel="roughness (std of layer-to-layer accuracy differences)", ylabel="density",
           title="Roughness per model")
  legend_beside(ax_d)
  ax_c.set(xlabel="relative depth (layer / last layer)", ylabel="probe accuracy",
           title="Example classes", ylim=(-0.02, 1.02))
  if examples:
    legend_beside(ax_c)
  fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)


def plot_ood_probes(accuracy: Mapping[str, Mapping[str, np.ndarray]], path: str, *,
                    title: str = "Out-of-domain linear probes per layer",
                    palette: Palette | None = None) -> list[str]:
  """Fig. 13: one panel per dataset, accuracy [L] per model against relative depth.

  accuracy: dataset -> model -> [L] test accuracy in [0, 1].
  """
  datasets = list(accuracy)
  fig, axes = _subplots(len(datasets), 3.4, 3.0)
  for ax, ds in zip(axes, datasets):
    styles = series_styles(accuracy[ds], palette)
    for model, acc in accuracy[ds].items():
      acc = np.asarray(acc)
      ax.plot(_depth(len(acc)), acc, markersize=4, label=model, **styles[model])
    ax.set(xlabel="relative depth (layer / last layer)", ylabel="test accuracy", title=ds)
  axes[0].legend(fontsize=8)  # the same models in every panel
  fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)


def plot_few_shot(accuracy: Mapping[str, Mapping[str, np.ndarray]], path: str, *,
                  shots: int | None = None,
                  title: str = "Few-shot linear probes per layer",
                  palette: Palette | None = None) -> list[str]:
  """Raghu et al. Figs. 11 / 13 style: one panel per comparison, accuracy (%) per layer.

  accuracy: panel title -> curve label (model and aggregation, e.g. "ViT-B/32 CLS: first
  token") -> [L] accuracy in [0, 1]. With the report's palette, a curve named after a model
  ("vit CLS token") has the model's colour; its variants differ by line style and marker.
  """
  panels = list(accuracy)
  fig, axes = _subplots(len(panels), 6.8, 3.2)
  for ax, panel in zip(axes, panels):
    styles = series_styles(accuracy[panel], palette)
    for label, acc in accuracy[panel].items():
      acc = 100 * np.asarray(acc)
      ax.plot(_depth(len(acc)), acc, markersize=4, label=label, **styles[label])
    shot_text = f"{shots}-shot " if shots else ""
    ax.set(xlabel="normalised layer number", ylabel=f"{shot_text}accuracy (%)", title=panel)
    legend_beside(ax)
  fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)
