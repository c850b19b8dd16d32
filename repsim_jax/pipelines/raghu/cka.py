"""CKA heatmaps within and across models (Raghu et al. 2021, Figs. 1, 2, B.1)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from repsim_jax.extraction.pooling import pool
from repsim_jax.metrics.kernel_alignment import cka_matrix
from repsim_jax.models.outputs import block_names
from repsim_jax.pipelines.raghu.models import ImageBatches, Inputs, Model
from repsim_jax.pipelines.report import prose
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.heatmap import data_range, layer_heatmap, scale_text
from repsim_jax.progress import Progress


def pooled_layers(model: Model, images: ImageBatches, ids: Sequence[str], names: Sequence[str],
                  progress: Progress | None = None) -> list[np.ndarray]:
  """One vector per image and layer: mean over patch tokens (ViT) / spatial mean (CNN), the
  per-block vectors of `configs/raghu.py`. Returns [N, d_l] per name."""
  mode = "mean_patch" if model.kind == "vit" else "gap"
  chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
  for inputs, _ in images.batches(model, ids, progress=progress):
    blocks = model.blocks(inputs)
    for n in names:
      chunks[n].append(np.asarray(pool(blocks[n], mode, num_prefix_tokens=model.num_prefix_tokens)))
  return [np.concatenate(chunks[n]) for n in names]


def cka_options(settings) -> dict:
  """`cka_matrix` keyword arguments from a config group (the protocol only with a batch size)."""
  opts = dict(hsic="song" if settings.debiased else "gretton",
              batch_size=settings.get("batch_size"))
  if opts["batch_size"] and (settings.get("n_samples") or settings.get("repeats", 1) != 1):
    opts.update(n_samples=settings.get("n_samples"), repeats=settings.get("repeats", 1),
                seed=settings.get("seed", 0))
  return opts


def _offdiag_mean(m: np.ndarray) -> float:
  mask = ~np.eye(m.shape[0], dtype=bool)
  return float(np.nanmean(m[mask])) if mask.any() else float("nan")


def step(inputs: Inputs, settings, run: Run) -> dict:
  """CKA between every pair of layers (blocks, and sublayers with `settings.sublayers`) of each
  model, and between every layer of every pair of models."""
  models, images = inputs.models, inputs.images
  ids, image_ids = images.sample(settings.n_images)
  opts = cka_options(settings)
  names = {m.name: (m.layers if settings.sublayers else block_names(dict.fromkeys(m.layers)))
           for m in models}
  progress = run.progress("cka: forward", len(ids) * len(models))
  layers = {m.name: pooled_layers(m, images, ids, names[m.name], progress) for m in models}
  how = ", ".join(filter(None, ["unbiased HSIC" if opts["hsic"] == "song" else "biased HSIC",
                                prose({k: v for k, v in opts.items() if k != "hsic"})]))
  section = run.section(f"CKA heatmaps (Figs. 1, 2, B.1), N={len(ids)}, {how}")
  # each heatmap on its own range, stated in its caption (a fixed 0-1 scale paints a ViT whose
  # blocks all sit near 0.99 one colour)
  style = dict(cmap="magma", origin="lower", cbar_label="CKA")

  def scale(m):
    low, high = data_range(m)
    return dict(vmin=low, vmax=high), f"; {scale_text(low, high)} (its range)"

  out = {}
  for m in models:
    run.log("cka: %s, %d x %d layers, N=%d", m.name, len(names[m.name]), len(names[m.name]),
            len(ids))
    matrix = cka_matrix(layers[m.name], layers[m.name], **opts)
    is_block = np.array([n in block_names(dict.fromkeys(names[m.name])) for n in names[m.name]])
    sub = matrix[np.ix_(is_block, is_block)]
    out[m.name] = matrix
    run.save(f"cka_{m.name}", {"cka": matrix, "layers": np.array(names[m.name]),
                               "is_block": is_block}, inputs=image_ids,
             extra={"options": opts, "mean_offdiag_blocks": _offdiag_mean(sub),
                    "first_vs_last_block": float(sub[0, -1])})
    block_labels = [n for n, b in zip(names[m.name], is_block) if b]
    limits, said = scale(sub)
    section.figure(f"{m.name}: CKA between blocks (Fig. 1){said}", lambda: layer_heatmap(
        sub, row_labels=block_labels, col_labels=block_labels,
        title=f"{m.name}: CKA between blocks", xlabel="layer", ylabel="layer",
        path=run.figure_path(f"fig1_cka_{m.name}"), **style, **limits))
    if settings.sublayers:
      limits, said = scale(matrix)
      section.figure(f"{m.name}: CKA, blocks and sublayers (Fig. B.1){said}",
                     lambda: layer_heatmap(
          matrix, row_labels=names[m.name], col_labels=names[m.name],
          title=f"{m.name}: CKA, blocks and sublayers", xlabel="layer", ylabel="layer",
          path=run.figure_path(f"figB1_cka_{m.name}_sublayers"), **style, **limits))
    section.row(f"{m.name}: mean off-diagonal CKA between blocks; first vs last block",
                "ViT: uniform, high between lower and higher layers; ResNet: clear stages, low "
                "between lower and higher layers",
                f"{_offdiag_mean(sub):.3f}; {sub[0, -1]:.3f}")
  for i, a in enumerate(models):
    for b in models[i + 1:]:
      matrix = cka_matrix(layers[a.name], layers[b.name], **opts)
      out[(a.name, b.name)] = matrix
      run.save(f"cka_{a.name}_vs_{b.name}", {"cka": matrix, "layers_a": np.array(names[a.name]),
                                             "layers_b": np.array(names[b.name])},
               inputs=image_ids, extra={"options": opts, "max": float(np.nanmax(matrix))})
      limits, said = scale(matrix)
      section.figure(f"CKA {a.name} vs {b.name} (Fig. 2){said}", lambda: layer_heatmap(
          matrix, row_labels=names[a.name], col_labels=names[b.name],
          title=f"CKA {a.name} vs {b.name}", ylabel=a.name, xlabel=b.name,
          path=run.figure_path(f"fig2_cka_{a.name}_vs_{b.name}"), **style, **limits))
      best = np.nanargmax(matrix, axis=0)  # Fig. 2: which layer of a each layer of b is closest to
      section.row(f"{a.name} vs {b.name}: max CKA; relative depth of the {a.name} layers that "
                  f"the first half of {b.name}'s layers match",
                  "ResNet needs more lower layers to compute what a few lower ViT layers compute",
                  f"{np.nanmax(matrix):.3f}; up to "
                  f"{best[:len(best) // 2 + 1].max() / max(len(names[a.name]) - 1, 1):.2f}")
  return out
