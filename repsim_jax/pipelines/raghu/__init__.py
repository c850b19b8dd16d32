"""Raghu et al. (2021), "Do Vision Transformers See Like CNNs?": every figure for the models of one
config (`configs/raghu.py`).

`run(config, workdir)` loads the models (`models.load_models`, through
`repsim_jax.extraction.extract.open_model`), then runs the steps of `config.analysis.steps` in
order, each a module of this package with `step(inputs, settings, run)` (inputs: the loaded
models and the config's images; settings: `config.analysis.<step>`), over nested seeded samples
of the images, and writes into `workdir`:

  <name>.npz / <name>.json     numbers, config, package versions, input fingerprints
  figures/<figure>.png / .pdf  one file per figure (drawn by `repsim_jax.plotting`)
  report.html, summary.md      every figure with our headline numbers next to the paper's
  metrics.jsonl                progress lines (rate, ETA)

| step         | figure           | result                      | analysis                        |
|--------------|------------------|-----------------------------|---------------------------------|
| cka          | 1, B.1           | cka_<model>                 | `cka_matrix` over blocks (+sub) |
| cka          | 2, B.1           | cka_<a>_vs_<b>              | `cka_matrix` across models      |
| block_stats  | 3, 4, C.5, C.6   | block_stats_<vit>           | `block_statistics` (attention)  |
| head_subsets | 5                | head_subsets_<vit>_vs_<cnn> | head subsets of block 0 vs CNN  |
| erf          | 6, C.1-C.4       | erf_<model>                 | `effective_receptive_field`     |
| block_stats  | 7, E.1, E.2      | block_stats_<model>         | `block_statistics` (skip)       |
| localization | 9, 10, D.1-D.3   | localization_<model>        | `localization_maps`             |
| few_shot     | 11, 13, D.4, F.* | few_shot_<model>            | `few_shot_accuracy` per mode    |

Figs. 4 and C.6 (ImageNet-only ViTs), 10 (a GAP ViT), D.4 and F.1-F.3 (other models and
datasets) are these analyses on other checkpoints or datasets: name them in `config.models` /
`config.dataset`. Figs. 8 and 12 need models trained without skip connections or on data subsets
and are not drawn.

References:
  Raghu, Unterthiner, Kornblith, Zhang, Dosovitskiy. "Do Vision Transformers See Like
  Convolutional Neural Networks?" NeurIPS 2021.
"""
from __future__ import annotations

from typing import Any

from repsim_jax.pipelines import checks
from repsim_jax.pipelines.raghu.models import ImageBatches, Inputs, load_models
from repsim_jax.pipelines.report import dataset_text
from repsim_jax.pipelines.run import Run, step_names


def run(config, workdir: str) -> dict[str, Any]:
  """All analyses of `config.analysis.steps` on `config.models`, written to `workdir`.

  Returns {"files": every written path, "summary": path of summary.md, "report": path of
  report.html, and each step's result by name}.
  """
  a = config.analysis
  checks.steps(__name__, a.steps)  # every name before the models load
  checks.models(config.models)
  checks.dataset(config.dataset)
  context = Run("raghu", workdir, config=config, title="Raghu et al. 2021 analyses",
                total_steps=1 + len(step_names(a.steps)))
  with context.step("models"):
    models = load_models(config, context.workdir)
  context.inputs.update({f"checkpoint/{m.name}": m.fingerprint for m in models})
  context.section("Setup").note(
      f"Models: {', '.join(m.name for m in config.models)}; images: "
      f"{dataset_text(config.dataset.to_dict())}. Numbers and configs: the .npz and .json files "
      "beside this report.")
  out: dict[str, Any] = context.run_steps(__name__, a.steps, Inputs(models, ImageBatches(config)),
                                          settings=lambda name: a[name])
  out["summary"], out["report"] = context.report_paths["markdown"], context.report_paths["html"]
  context.finish(headline=f"summary: {out['summary']}")
  out["files"] = context.files
  return out
