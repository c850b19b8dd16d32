"""Sample size and smoothness (Mahaut & Baroni 2026, App. B, Figs. 11, 12)."""
from __future__ import annotations

import numpy as np

from repsim_jax.extraction.representations import Representations
from repsim_jax.metrics.imbalance_stats import sample_size_curve, smoothness
from repsim_jax.pipelines.mahaut_baroni.imbalance import imbalance_kwargs
from repsim_jax.pipelines.report import by_model
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.imbalance import plot_sample_size_std, plot_smoothness_vs_n

READS_SETTINGS = ("imbalance",)  # k, metric, ties of `analysis.imbalance` (step records)


def step(reps: Representations, settings, run: Run) -> dict:
  """Per model, II of its early / middle / late layer to all its layers on `n_subsamples` random
  subsamples of each size: Fig. 11 plots the std over subsamples (mean over layer pairs), Fig. 12
  the smoothness (std of adjacent-layer differences, mean over the three curves), mean ± std over
  the subsamples (the paper's seeds). II settings (k, metric, ties) are `analysis.imbalance`'s."""
  cfg = settings
  sizes = sorted(int(s) for s in cfg.sizes if int(s) <= reps.n)
  dropped = [int(s) for s in cfg.sizes if int(s) > reps.n]
  section = run.section("Sample size and smoothness (App. B, Figs. 11, 12)")
  if dropped:
    section.note(f"sizes {dropped} exceed the {reps.n} extracted images and were left out "
                 "(extract more images with n=... to include them)")
  if not sizes:
    section.note("skipped: no sample size fits the extracted images")
    return {}
  std11, mean12, std12 = {}, {}, {}
  progress = run.progress("mahaut_baroni/sample_size", len(reps.models), unit="models", every_s=0)
  for m in reps.models:
    layers = list(reps.layers[m])  # one model's layers at a time
    rep = [layers[i] for i in reps.representative[m]]
    curve = sample_size_curve(rep, layers, sizes=sizes, n_subsamples=cfg.n_subsamples,
                              seed=cfg.seed, **imbalance_kwargs(run.config.analysis.imbalance))
    per_seed = smoothness(curve["values"], axis=-1).mean(axis=-1)  # [S, R]
    std11[m] = curve["std"].mean(axis=(1, 2))
    mean12[m], std12[m] = per_seed.mean(axis=1), per_seed.std(axis=1, ddof=1)
    run.save(f"sample_size_{m}",
             {"sizes": curve["sizes"], "values": curve["values"], "std": curve["std"],
              "std_mean": std11[m], "smoothness": per_seed, "smoothness_mean": mean12[m],
              "smoothness_std": std12[m], "layers_a": np.array(reps.representative[m])},
             subdir="sample_size", extra={"model": m, "n_subsamples": cfg.n_subsamples})
    progress.update(1)
  section.figure("Fig. 11: std of II over subsamples vs N",
                 lambda: plot_sample_size_std(sizes, std11, run.figure_path("fig11_sample_size"),
                                              n_subsamples=cfg.n_subsamples,
                                              palette=run.colours))
  section.figure("Fig. 12: smoothness vs N (mean ± std over seeds)",
                 lambda: plot_smoothness_vs_n(sizes, mean12, std12,
                                              run.figure_path("fig12_smoothness"),
                                              n_seeds=cfg.n_subsamples, palette=run.colours))
  section.row(f"std of II over subsamples at the largest N ({sizes[-1]})",
              "flat after N = 1e4; ConvNeXt varies most",
              by_model({m: v[-1] for m, v in std11.items()}))
  section.row(f"smoothness at the largest N ({sizes[-1]})", "ConvNeXt least smooth at every N",
              by_model({m: v[-1] for m, v in mean12.items()}))
  return {"sizes": sizes, "std": std11, "smoothness_mean": mean12, "smoothness_std": std12}
