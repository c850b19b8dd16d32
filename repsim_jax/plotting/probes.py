"""Probe figures: roughness densities with example curves (Mahaut & Baroni 2026, Fig. 5),
out-of-domain probe accuracy per layer (ibid., Fig. 13), few-shot probe accuracy per layer
(Raghu et al. 2021, Figs. 11, 13). Each function takes arrays, writes `<path>.png` and
`<path>.pdf` and returns the two paths."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib
import numpy as np

from repsim_jax.plotting.common import new_figure, relative_depth as _depth, save_figure as _save


def _subplots(ncols: int, figsize: tuple[float, float]):
  fig = new_figure(figsize)
  return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
  """Gaussian kernel density estimate with Scott's bandwidth (as scipy's gaussian_kde)."""
  values = np.asarray(values, np.float64)
  bw = max(values.std(ddof=1) if len(values) > 1 else 0.0, 1e-3) * len(values) ** (-1 / 5)
  z = (grid[:, None] - values[None, :]) / bw
  return np.exp(-0.5 * z * z).sum(1) / (len(values) * bw * np.sqrt(2 * np.pi))


def plot_roughness(roughness_by_model: Mapping[str, np.ndarray], path: str, *,
                   examples: Sequence[dict] = (),
                   title: str = "Roughness of per-class probe accuracy across layers"
                   ) -> list[str]:
  """Fig. 5: density of per-class roughness per model (left), example accuracy curves (right).

  roughness_by_model: model -> [C] roughness (std of adjacent-layer accuracy differences).
  examples: dicts with "model", "label" (e.g. the class name), "accuracy" [L] and optionally
    "roughness" (computed from the curve when absent); each example is drawn on the right
    against relative depth and marked by a dashed line at its roughness on the left.
  """
  fig, (ax_d, ax_c) = _subplots(2, (11, 4))
  colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
  model_color = {m: colors[i % len(colors)] for i, m in enumerate(roughness_by_model)}
  all_r = np.concatenate([np.ravel(r) for r in roughness_by_model.values()])
  grid = np.linspace(0, max(float(all_r.max()) * 1.2, 1e-3), 400)
  for model, r in roughness_by_model.items():
    ax_d.plot(grid, _density(np.ravel(r), grid), color=model_color[model], label=model)
  for ex in examples:
    acc = np.asarray(ex["accuracy"], np.float64)
    r = ex.get("roughness", float(np.std(np.diff(acc))))
    color = model_color.get(ex["model"], "k")
    ax_d.axvline(r, color=color, linestyle="--", linewidth=1)
    ax_c.plot(_depth(len(acc)), acc, color=color, marker=".",
              label=f"{ex['model']}: {ex['label']} (roughness {r:.3f})")
  ax_d.set(xlabel="roughness (std of layer-to-layer accuracy differences)", ylabel="density",
           title="Roughness per model")
  ax_d.legend(fontsize=8)
  ax_c.set(xlabel="relative depth (layer / last layer)", ylabel="probe accuracy",
           title="Example classes", ylim=(-0.02, 1.02))
  if examples:
    ax_c.legend(fontsize=8)
  fig.suptitle(title)
  return _save(fig, path)


def plot_ood_probes(accuracy: Mapping[str, Mapping[str, np.ndarray]], path: str, *,
                    title: str = "Out-of-domain linear probes per layer") -> list[str]:
  """Fig. 13: one panel per dataset, accuracy [L] per model against relative depth.

  accuracy: dataset -> model -> [L] test accuracy in [0, 1].
  """
  datasets = list(accuracy)
  fig, axes = _subplots(len(datasets), (4.5 * len(datasets), 3.6))
  for ax, ds in zip(axes, datasets):
    for model, acc in accuracy[ds].items():
      acc = np.asarray(acc)
      ax.plot(_depth(len(acc)), acc, marker=".", label=model)
    ax.set(xlabel="relative depth (layer / last layer)", ylabel="test accuracy", title=ds)
    ax.legend(fontsize=8)
  fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)


def plot_few_shot(accuracy: Mapping[str, Mapping[str, np.ndarray]], path: str, *,
                  shots: int | None = None,
                  title: str = "Few-shot linear probes per layer") -> list[str]:
  """Raghu et al. Figs. 11 / 13 style: one panel per comparison, accuracy (%) per layer.

  accuracy: panel title -> curve label (model and aggregation, e.g. "ViT-B/32 CLS: first
  token") -> [L] accuracy in [0, 1].
  """
  panels = list(accuracy)
  fig, axes = _subplots(len(panels), (5 * len(panels), 3.8))
  for ax, panel in zip(axes, panels):
    for label, acc in accuracy[panel].items():
      acc = 100 * np.asarray(acc)
      ax.plot(_depth(len(acc)), acc, marker=".", label=label)
    shot_text = f"{shots}-shot " if shots else ""
    ax.set(xlabel="normalised layer number", ylabel=f"{shot_text}accuracy (%)", title=panel)
    ax.legend(fontsize=8)
  fig.suptitle(title)
  fig.tight_layout()
  return _save(fig, path)
