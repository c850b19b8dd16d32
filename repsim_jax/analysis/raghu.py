"""`run(config, workdir)`: every figure of Raghu et al. 2021 for the models of one config.

Reads the models and images of `configs/raghu.py` (settings per figure group in
`config.analysis`), runs each analysis of `repsim_jax.analysis.vit` / `.probes` over a nested
seeded sample of the images, and writes into `workdir`:

  <name>.npz / <name>.json     numbers, config, package versions, input fingerprints
  figures/<figure>.png / .pdf  one file per figure (drawn by `repsim_jax.plotting`)
  summary.md                   every figure linked, with headline numbers
  metrics.jsonl                progress lines (rate, ETA)

| figure            | result                          | analysis                              |
|-------------------|---------------------------------|---------------------------------------|
| 1, B.1            | cka_<model>                     | `cka_matrix` over blocks (+sublayers) |
| 2, B.1            | cka_<a>_vs_<b>                  | `cka_matrix` across models            |
| 3, 4, C.5, C.6    | block_stats_<vit>               | `block_statistics` (attention)        |
| 5                 | head_subsets_<vit>_vs_<cnn>     | head subsets of block 0 vs CNN        |
| 6, C.1-C.4        | erf_<model>                     | `effective_receptive_field`           |
| 7, E.1, E.2       | block_stats_<model>             | `block_statistics` (skip connections) |
| 9, 10, D.1-D.3    | localization_<model>            | `localization_maps`                   |
| 11, 13, D.4, F.*  | few_shot_<model>                | `few_shot_accuracy` per token mode    |

Figs. 4 and C.6 (ImageNet-only ViTs), 10 (a GAP ViT), D.4 and F.1-F.3 (other models and
datasets) are these analyses on other checkpoints or datasets: name them in `config.models` /
`config.dataset`. Figs. 8 and 12 need models trained without skip connections or on data subsets
and are not drawn.

Images are read once per model and analysis, preprocessed with the checkpoint's own processor,
and pushed through one jit-compiled forward pass per model (`jit_forward(sublayers=True)`; the
last batch is padded so every batch reuses the same program). Only what an analysis needs
(pooled vectors, a few token maps, streamed sums) is kept on the host, so memory is bounded by
the per-analysis `n_images`, not by the dataset.

References:
  Raghu, Unterthiner, Kornblith, Zhang, Dosovitskiy. "Do Vision Transformers See Like
  Convolutional Neural Networks?" NeurIPS 2021.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from typing import Any, Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from repsim_jax import results
from repsim_jax.analysis import probes, vit
from repsim_jax.metrics import kernel_alignment as cka_lib
from repsim_jax.models.outputs import block_names
from repsim_jax.progress import Progress

_SUBLAYERS = (".attn", ".mid", ".mlp", ".branch")  # forward order inside a block


@dataclasses.dataclass
class Model:
  """One loaded model and what the analyses need to know about it."""
  name: str
  kind: str                 # "vit" (tokens [B, T, D]) or "cnn" (NHWC maps)
  module: nnx.Module
  forward: Callable         # jitted x -> ModelOutput (sublayers=True), fixed batch size
  preprocess: Callable      # uint8 [H, W, 3] -> model input
  input_shape: tuple
  num_prefix_tokens: int
  patch_size: int           # pixels per token (ViT); 1 for CNNs
  fingerprint: str
  layers: list[str]         # every block and sublayer (attn_probs excluded), forward order
  batch_size: int

  def blocks(self, x: np.ndarray) -> dict[str, jax.Array]:
    """`blocks` of the model on a batch of any size <= batch_size (padded to the compiled one)."""
    b = x.shape[0]
    if b < self.batch_size:
      x = np.concatenate([x, np.zeros((self.batch_size - b, *x.shape[1:]), x.dtype)])
    out = self.forward(jnp.asarray(x)).blocks
    return out if b == self.batch_size else {k: v[:b] for k, v in out.items()}

  @property
  def main_blocks(self) -> list[str]:
    """Block outputs without the input entry ("embeddings" / "stem")."""
    return [n for n in block_names(dict.fromkeys(self.layers)) if n not in ("embeddings", "stem")]


def ordered_layers(names: Sequence[str], *, sublayers: bool) -> list[str]:
  """Block names in forward order, each block's sublayers ("attn", "mid", "mlp" / "branch")
  before its output; attention probabilities are not representations and are left out."""
  names = set(names)
  out = []
  for main in block_names(dict.fromkeys(names)):
    if sublayers:
      out += [main + s for s in _SUBLAYERS if main + s in names]
    out.append(main)
  return out


def load_models(config, workdir: str) -> list[Model]:
  """Loads (writing tiny random checkpoints first where asked) every model of `config.models`."""
  from repsim_jax.extract import model_checkpoint, model_pooling
  from repsim_jax.models import loading
  from repsim_jax.models.preprocessing import load_preprocessor
  models = []
  for entry in config.models:
    path, hf_config = model_checkpoint(entry, workdir)
    _, prefix = model_pooling(entry, hf_config)
    module = loading.from_pretrained(path, dtype=jnp.dtype(entry.get("dtype", "float32")))
    processor = load_preprocessor(path)
    preprocess = lambda image, p=processor: np.asarray(p([image])[0])
    probe = preprocess(np.zeros((64, 64, 3), np.uint8))
    forward = loading.jit_forward(module, sublayers=True)
    abstract = jax.eval_shape(forward, jax.ShapeDtypeStruct((config.batch_size, *probe.shape),
                                                            probe.dtype))
    kind = "vit" if any(n.startswith("block_") for n in abstract.blocks) else "cnn"
    fingerprint = loading.fingerprint(pathlib.Path(path),
                                      loading.weight_files(pathlib.Path(path)))
    models.append(Model(
        name=entry.name, kind=kind, module=module, forward=forward, preprocess=preprocess,
        input_shape=tuple(probe.shape), num_prefix_tokens=prefix if kind == "vit" else 0,
        patch_size=int(hf_config.get("patch_size", 1)) if kind == "vit" else 1,
        fingerprint=fingerprint, layers=ordered_layers(abstract.blocks, sublayers=True),
        batch_size=config.batch_size))
    logging.info("raghu: loaded %s (%s, %d layers incl. sublayers) from %s", entry.name, kind,
                 len(models[-1].layers), path)
  return models


class Images:
  """The config's image source, seeded nested samples of it, and batches for one model."""

  def __init__(self, config):
    from repsim_jax import data as data_lib
    self.source = data_lib.from_config(config.dataset)
    self.config = config
    self._sample_ids = data_lib.sample_ids

  def ids(self, n: int | None) -> list[str]:
    n = n or self.config.n_images
    if n > len(self.source.ids):
      logging.warning("raghu: %d images asked for, the source has %d; using all", n,
                      len(self.source.ids))
      n = len(self.source.ids)
    return self._sample_ids(self.source.ids, n, seed=self.config.seed)

  def batches(self, model: Model, ids: Sequence[str], *, label_key: str | None = None,
              progress: Progress | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(inputs [b, ...], labels [b]) for `ids` in order, decoded and preprocessed in threads."""
    from repsim_jax.data.pipeline import threaded_map

    def load(image_id):
      example = self.source.load(image_id)
      label = example.labels.get(label_key, -1) if label_key else -1
      return model.preprocess(example.image), label

    loaded = threaded_map(load, list(ids), num_threads=self.config.num_threads,
                          prefetch=4 * model.batch_size)
    for start in range(0, len(ids), model.batch_size):
      chunk = [next(loaded) for _ in range(min(model.batch_size, len(ids) - start))]
      inputs = np.stack([c[0] for c in chunk])
      if progress is not None:
        progress.update(len(chunk))
      yield inputs, np.asarray([c[1] for c in chunk])


def _progress(writer: "Writer", name: str, total: int) -> Progress:
  return Progress(name, total, unit="images",
                  metrics_path=os.path.join(writer.workdir, "metrics.jsonl"))


class Writer:
  """Saves results and figures into the workdir and collects the summary's sections."""

  def __init__(self, config, workdir: str, models: Sequence[Model]):
    self.config, self.workdir = config, workdir
    os.makedirs(os.path.join(workdir, "figures"), exist_ok=True)
    self.inputs = {f"checkpoint/{m.name}": m.fingerprint for m in models}
    self.files: list[str] = []
    self.sections: list[tuple[str, list[str], list[str]]] = []

  def result(self, name: str, arrays: dict, *, ids: Sequence[str], extra: dict | None = None):
    inputs = {**self.inputs, "image_ids": results.fingerprint(np.asarray(ids))}
    self.files.append(results.save_result(self.workdir, name, arrays, config=self.config,
                                          inputs=inputs, extra=extra))

  def figure(self, name: str) -> str:
    return os.path.join(self.workdir, "figures", name)

  def section(self, title: str, figures: Sequence[str], lines: Sequence[str]):
    pngs = [p for p in figures if p.endswith(".png")]
    self.files += list(figures)
    self.sections.append((title, pngs, list(lines)))

  def summary(self, seconds: float) -> str:
    out = ["# Raghu et al. 2021 analyses", "",
           f"Models: {', '.join(m.name for m in self.config.models)}; images: "
           f"`{json.dumps(self.config.dataset.to_dict(), default=str)}`; "
           f"{seconds:.0f} s. Numbers and configs: the `.npz` / `.json` files beside this one.", ""]
    for title, pngs, lines in self.sections:
      out += [f"## {title}", ""] + [f"- {line}" for line in lines] + [""]
      out += [f"![{os.path.basename(p)}]({os.path.relpath(p, self.workdir)})" for p in pngs]
      out.append("")
    path = os.path.join(self.workdir, "summary.md")
    with open(path, "w") as f:
      f.write("\n".join(out))
    self.files.append(path)
    return path


# ---------------------------------------------------------------------------------------------
# Figs. 1, 2, B.1: CKA heatmaps within and across models


def pooled_layers(model: Model, images: Images, ids: Sequence[str], names: Sequence[str],
                  progress: Progress | None = None) -> list[np.ndarray]:
  """One vector per image and layer: mean over patch tokens (ViT) / spatial mean (CNN), the
  per-block vectors of `configs/raghu.py`. Returns [N, d_l] per name."""
  from repsim_jax.pooling import pool
  mode = "mean_patch" if model.kind == "vit" else "gap"
  chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
  for inputs, _ in images.batches(model, ids, progress=progress):
    blocks = model.blocks(inputs)
    for n in names:
      chunks[n].append(np.asarray(pool(blocks[n], mode, num_prefix_tokens=model.num_prefix_tokens)))
  return [np.concatenate(chunks[n]) for n in names]


def cka_options(settings) -> dict:
  """`cka_matrix` keyword arguments from a config group (the protocol only with a batch size)."""
  opts = dict(debiased=settings.debiased, batch_size=settings.get("batch_size"))
  if opts["batch_size"] and (settings.get("n_samples") or settings.get("repeats", 1) != 1):
    opts.update(n_samples=settings.get("n_samples"), repeats=settings.get("repeats", 1),
                seed=settings.get("seed", 0))
  return opts


def _offdiag_mean(m: np.ndarray) -> float:
  mask = ~np.eye(m.shape[0], dtype=bool)
  return float(np.nanmean(m[mask])) if mask.any() else float("nan")


def run_cka(models: Sequence[Model], images: Images, writer: Writer, settings) -> None:
  from repsim_jax.plotting.heatmap import layer_heatmap
  ids = images.ids(settings.n_images)
  opts = cka_options(settings)
  names = {m.name: (m.layers if settings.sublayers else block_names(dict.fromkeys(m.layers)))
           for m in models}
  progress = _progress(writer, "cka: forward", len(ids) * len(models))
  layers = {m.name: pooled_layers(m, images, ids, names[m.name], progress) for m in models}
  figures, lines = [], []
  style = dict(cmap="magma", origin="lower", cbar_label="CKA", vmin=0.0, vmax=1.0)
  for m in models:
    logging.info("cka: %s, %d x %d layers, N=%d", m.name, len(names[m.name]), len(names[m.name]),
                 len(ids))
    matrix = cka_lib.cka_matrix(layers[m.name], layers[m.name], **opts)
    is_block = np.array([n in block_names(dict.fromkeys(names[m.name])) for n in names[m.name]])
    sub = matrix[np.ix_(is_block, is_block)]
    writer.result(f"cka_{m.name}", {"cka": matrix, "layers": np.array(names[m.name]),
                                    "is_block": is_block}, ids=ids,
                  extra={"options": opts, "mean_offdiag_blocks": _offdiag_mean(sub),
                         "first_vs_last_block": float(sub[0, -1])})
    block_labels = [n for n, b in zip(names[m.name], is_block) if b]
    figures += layer_heatmap(sub, row_labels=block_labels, col_labels=block_labels,
                             title=f"{m.name}: CKA between blocks", xlabel="layer",
                             ylabel="layer", path=writer.figure(f"fig1_cka_{m.name}"), **style)
    if settings.sublayers:
      figures += layer_heatmap(matrix, row_labels=names[m.name], col_labels=names[m.name],
                               title=f"{m.name}: CKA, blocks and sublayers", xlabel="layer",
                               ylabel="layer", path=writer.figure(f"figB1_cka_{m.name}_sublayers"),
                               **style)
    lines.append(f"{m.name}: mean off-diagonal CKA between blocks {_offdiag_mean(sub):.3f}, "
                 f"first vs last block {sub[0, -1]:.3f}")
  for i, a in enumerate(models):
    for b in models[i + 1:]:
      matrix = cka_lib.cka_matrix(layers[a.name], layers[b.name], **opts)
      writer.result(f"cka_{a.name}_vs_{b.name}", {"cka": matrix, "layers_a": np.array(names[a.name]),
                                                  "layers_b": np.array(names[b.name])}, ids=ids,
                    extra={"options": opts, "max": float(np.nanmax(matrix))})
      figures += layer_heatmap(matrix, row_labels=names[a.name], col_labels=names[b.name],
                               title=f"CKA {a.name} vs {b.name}", ylabel=a.name, xlabel=b.name,
                               path=writer.figure(f"fig2_cka_{a.name}_vs_{b.name}"), **style)
      best = np.nanargmax(matrix, axis=0)  # Fig. 2: which layer of a each layer of b is closest to
      lines.append(f"{a.name} vs {b.name}: max CKA {np.nanmax(matrix):.3f}; the first half of "
                   f"{b.name}'s layers match {a.name} layers up to relative depth "
                   f"{best[:len(best) // 2 + 1].max() / max(len(names[a.name]) - 1, 1):.2f}")
  writer.section(f"CKA heatmaps (Figs. 1, 2, B.1), N={len(ids)}, {opts}", figures, lines)


# ---------------------------------------------------------------------------------------------
# Figs. 3, 4, C.5, C.6 (attention distance) and 7, E.1, E.2 (skip connections)


def run_block_stats(models: Sequence[Model], images: Images, writer: Writer, settings) -> dict:
  from repsim_jax.plotting import vit as vit_plots
  ids = images.ids(settings.n_images)
  figures, lines, ratio_lines, cosine_lines, stats_by_model = [], [], {}, {}, {}
  for m in models:
    progress = _progress(writer, f"block statistics: {m.name}", len(ids))
    stats = vit.block_statistics(m.blocks, (x for x, _ in images.batches(m, ids)),
                                 patch_size=m.patch_size, num_prefix_tokens=m.num_prefix_tokens,
                                 prefix_keys=settings.prefix_keys, progress=progress)
    stats_by_model[m.name] = stats
    if m.kind == "vit":
      distances = stats["attention_distance"]
      sorted_distances, order = vit.sort_heads(distances)
      writer.result(f"block_stats_{m.name}", {**stats, "attention_distance_sorted": sorted_distances,
                                               "head_order": order}, ids=ids,
                    extra={"first_block_mean_distance": float(distances[0].mean()),
                           "last_block_mean_distance": float(distances[-1].mean())})
      k = min(settings.lowest_highest, distances.shape[0] // 2) or 1
      shown = sorted(set(range(k)) | set(range(distances.shape[0] - k, distances.shape[0])))
      figures += vit_plots.plot_attention_distances(
          distances, writer.figure(f"fig3_attention_distance_{m.name}"), layers=shown,
          layer_labels=[f"block {l}" for l in shown], title=f"{m.name}: mean attention distance")
      figures += vit_plots.plot_attention_distance_by_depth(
          distances, writer.figure(f"figC5_attention_distance_depth_{m.name}"),
          title=f"{m.name}: attention distance of every head")
      lines.append(f"{m.name}: mean attention distance block 0 {distances[0].mean():.1f} px "
                   f"(heads {distances[0].min():.1f}-{distances[0].max():.1f}), last block "
                   f"{distances[-1].mean():.1f} px")
      for branch in ("attn", "mlp"):
        figures += vit_plots.plot_skip_ratio_heatmap(
            stats[f"{branch}_ratio"], writer.figure(f"fig7_skip_ratio_{m.name}_{branch}"),
            num_tokens=min(stats[f"{branch}_ratio"].shape[1], 16),
            num_prefix_tokens=m.num_prefix_tokens, title=f"{m.name} {branch}: ||z|| / ||f(z)||")
        figures += vit_plots.plot_skip_ratio_heatmap(
            stats[f"{branch}_cosine"], writer.figure(f"figE_skip_cosine_{m.name}_{branch}"),
            num_tokens=min(stats[f"{branch}_cosine"].shape[1], 16),
            num_prefix_tokens=m.num_prefix_tokens, title=f"{m.name} {branch}: cos(z, f(z))",
            label="cosine")
        for stat, target in (("ratio", ratio_lines), ("cosine", cosine_lines)):
          summary = vit.summarize_token_stats(stats[f"{branch}_{stat}"],
                                              num_prefix_tokens=m.num_prefix_tokens)
          for token, values in summary.items():
            if token != "all":
              target[f"{m.name} {token} ({branch})"] = values
      ratio = vit.summarize_token_stats(stats["mlp_ratio"], num_prefix_tokens=m.num_prefix_tokens)
      lines.append(f"{m.name}: skip norm ratio (MLP) tokens mean {ratio['tokens'].mean():.2f}"
                   + (f", CLS mean {ratio['cls'].mean():.2f}" if "cls" in ratio else ""))
    else:
      writer.result(f"block_stats_{m.name}", stats, ids=ids,
                    extra={"mean_ratio": float(np.nanmean(stats["ratio"]))})
      ratio_lines[m.name] = stats["ratio"]
      cosine_lines[m.name] = stats["cosine"]
      lines.append(f"{m.name}: skip norm ratio mean {np.nanmean(stats['ratio']):.2f} over the "
                   f"identity-shortcut blocks")
  figures += vit_plots.plot_skip_ratio_lines(ratio_lines, writer.figure("fig7_skip_ratio_lines"),
                                             log_scale=True)
  figures += vit_plots.plot_skip_ratio_lines(cosine_lines, writer.figure("figE2_skip_cosine_lines"),
                                             title="cos(z, f(z))", ylabel="cosine similarity")
  writer.section(f"Attention distances and skip connections (Figs. 3, 4, 7, C.5, E.1, E.2), "
                 f"N={len(ids)}", figures, lines)
  return stats_by_model


# ---------------------------------------------------------------------------------------------
# Fig. 5: head subsets of the first block against the CNN's lower layers


def run_head_subsets(models: Sequence[Model], images: Images, writer: Writer, settings,
                     stats: dict) -> None:
  from repsim_jax.plotting import vit as vit_plots
  cnns = [m for m in models if m.kind == "cnn" and (settings.cnn in (None, m.name))]
  vits = [m for m in models if m.kind == "vit" and (settings.vit in (None, m.name))]
  if not cnns or not vits:
    logging.info("head subsets: need a ViT and a CNN; skipped")
    return
  cnn = cnns[0]
  ids = images.ids(settings.n_images)
  cnn_names = cnn.main_blocks[:settings.cnn_layers]
  cnn_layers: dict[str, list[np.ndarray]] = {n: [] for n in cnn_names}
  for inputs, _ in images.batches(cnn, ids, progress=_progress(writer, f"head subsets: {cnn.name}",
                                                               len(ids))):
    blocks = cnn.blocks(inputs)
    for n in cnn_names:
      cnn_layers[n].append(np.asarray(vit.flatten_representation(blocks[n],
                                                                 pooling=settings.pooling)))
  cnn_reps = [np.concatenate(cnn_layers[n]) for n in cnn_names]
  opts = dict(debiased=settings.debiased, batch_size=settings.get("batch_size"))
  figures, lines = [], []
  for m in vits:
    distances = stats[m.name]["attention_distance"][0]  # first block, over block_stats' images
    num_heads = distances.shape[0]
    size = settings.subset_size or max(1, num_heads // 4)
    indices, mean_distance = vit.head_subsets(distances, subset_size=size, stride=settings.stride)
    first = m.main_blocks[0]
    block = m.module.layers[int(first.split("_")[1])]
    subsets: list[list[np.ndarray]] = [[] for _ in indices]
    for inputs, _ in images.batches(m, ids, progress=_progress(writer, f"head subsets: {m.name}",
                                                               len(ids))):
      blocks = m.blocks(inputs)
      heads = vit.attention_head_outputs(blocks[f"{first}.attn_probs"],
                                         vit.attention_values(block, blocks["embeddings"]))
      for s, rep in enumerate(vit.head_subset_representations(
          heads, indices, num_prefix_tokens=m.num_prefix_tokens, pooling=settings.pooling)):
        subsets[s].append(np.asarray(rep))
    similarity = cka_lib.cka_matrix([np.concatenate(s) for s in subsets], cnn_reps, **opts)
    name = f"head_subsets_{m.name}_vs_{cnn.name}"
    writer.result(name, {"mean_distance": mean_distance, "cka": similarity, "indices": indices,
                         "cnn_layers": np.array(cnn_names)}, ids=ids,
                  extra={"subset_size": size, "most_local_cka": similarity[0].tolist(),
                         "most_global_cka": similarity[-1].tolist()})
    figures += vit_plots.plot_head_subset_cka(mean_distance, similarity, writer.figure(f"fig5_{name}"),
                                              layer_labels=[f"{cnn.name} {n}" for n in cnn_names],
                                              title=f"{m.name} block 0 head subsets vs {cnn.name}")
    lines.append(f"{m.name} vs {cnn.name} {cnn_names[0]}: CKA of the most local subset "
                 f"{similarity[0, 0]:.3f}, most global {similarity[-1, 0]:.3f} "
                 f"({size} heads per subset)")
  writer.section(f"Head subsets vs CNN (Fig. 5), N={len(ids)}", figures, lines)


# ---------------------------------------------------------------------------------------------
# Figs. 6, C.1-C.4: effective receptive fields


def _erf_radius(erf: np.ndarray) -> float:
  """ERF-weighted mean pixel distance from the map's centre (a one-number spread)."""
  h, w = erf.shape
  yy, xx = np.mgrid[:h, :w]
  dist = np.hypot(yy - h // 2, xx - w // 2)
  return float((erf * dist).sum() / max(erf.sum(), 1e-30))


def run_erf(models: Sequence[Model], images: Images, writer: Writer, settings) -> None:
  from repsim_jax.plotting import vit as vit_plots
  ids = images.ids(settings.n_images)
  figures, lines = [], []
  for m in models:
    x = np.concatenate([inputs for inputs, _ in images.batches(m, ids)])
    chosen = [b for b in m.main_blocks if not settings.get("blocks") or b in settings.blocks]
    if m.kind == "vit":
      after = [n for b in chosen for n in (f"{b}.mid", b)]
      before = [n for b in chosen for n in (f"{b}.attn", f"{b}.mlp")]
    else:
      after = chosen
      before = [f"{b}.branch" for b in chosen]
    if not chosen:
      logging.warning("erf: %s has none of the blocks %s; skipped", m.name, settings.blocks)
      continue
    graphdef, state = nnx.split(m.module)
    wanted = after + before

    def features(params, images, graphdef=graphdef, wanted=tuple(wanted)):
      blocks = nnx.merge(graphdef, params)(images, sublayers=True).blocks
      return {n: blocks[n] for n in wanted}

    logging.info("erf: %s, %d maps on %d images", m.name, len(wanted), len(x))
    maps = vit.effective_receptive_field(features, x, num_images=None,
                                         num_prefix_tokens=m.num_prefix_tokens,
                                         channels=settings.channels, params=state)
    after_maps = np.stack([np.asarray(maps[n]) for n in after])
    before_maps = np.stack([np.asarray(maps[n]) for n in before])
    radius_after = np.array([_erf_radius(e) for e in after_maps])
    radius_before = np.array([_erf_radius(e) for e in before_maps])
    writer.result(f"erf_{m.name}", {"after": after_maps, "before": before_maps,
                                    "after_layers": np.array(after),
                                    "before_layers": np.array(before),
                                    "radius_after": radius_after, "radius_before": radius_before},
                  ids=ids, extra={"radius_after": radius_after.tolist()})
    figures += vit_plots.plot_receptive_fields(
        after_maps, writer.figure(f"fig6_erf_{m.name}_after_residual"), titles=after,
        suptitle=f"{m.name}: ERF after the residual add")
    figures += vit_plots.plot_receptive_fields(
        before_maps, writer.figure(f"figC4_erf_{m.name}_before_residual"), titles=before,
        suptitle=f"{m.name}: ERF before the residual add")
    lines.append(f"{m.name}: ERF radius (ERF-weighted mean distance from the centre, px) "
                 f"after the add {radius_after[0]:.1f} -> {radius_after[-1]:.1f}, before "
                 f"{radius_before[0]:.1f} -> {radius_before[-1]:.1f} (first -> last)")
  writer.section(f"Effective receptive fields (Figs. 6, C.1-C.4), N={len(ids)}", figures, lines)


# ---------------------------------------------------------------------------------------------
# Figs. 9, 10, D.1-D.3: localization


def _default_tokens(gh: int, gw: int) -> list[tuple[int, int]]:
  """Corner, edges, centre and an interior position, as the panels of Fig. 9."""
  picks = [(0, 0), (0, gw // 2), (gh // 2, 0), (gh // 2, gw // 2), (gh // 4, (3 * gw) // 4),
           (gh - 1, gw - 1)]
  return list(dict.fromkeys(picks))


def _grid_of(model: Model, shape: tuple) -> tuple[int, int]:
  if model.kind == "cnn":
    return shape[1], shape[2]
  side = int(round((shape[1] - model.num_prefix_tokens) ** 0.5))
  return side, side


def run_localization(models: Sequence[Model], images: Images, writer: Writer, settings) -> None:
  from repsim_jax.plotting import vit as vit_plots
  ids = images.ids(settings.n_images)
  figures, lines = [], []
  for m in models:
    abstract = jax.eval_shape(m.forward, jax.ShapeDtypeStruct((m.batch_size, *m.input_shape),
                                                              np.float32)).blocks
    layers = list(settings.layers or [])
    if not layers:  # the last two blocks whose feature map is at least 2 x 2
      layers = [n for n in m.main_blocks if min(_grid_of(m, abstract[n].shape)) >= 2][-2:]
    layers = [n for n in layers if n in abstract]
    feats: dict[str, list[np.ndarray]] = {n: [] for n in layers}
    inputs_all = []
    for inputs, _ in images.batches(m, ids, progress=_progress(writer, f"localization: {m.name}",
                                                               len(ids))):
      blocks = m.blocks(inputs)
      inputs_all.append(inputs)
      for n in layers:
        feats[n].append(np.asarray(blocks[n]))
    x = np.concatenate(inputs_all)
    for n in layers:
      f = np.concatenate(feats[n])
      gh, gw = _grid_of(m, f.shape)
      everything = [(r, c) for r in range(gh) for c in range(gw)]
      maps = vit.localization_maps(f, x, num_prefix_tokens=m.num_prefix_tokens, tokens=everything,
                                   debiased=settings.debiased, batch_size=settings.get("batch_size"))
      own = np.array([maps[k].reshape(-1).argmax() == k for k in range(len(everything))])
      name = f"localization_{m.name}_{n.replace('.', '_')}"  # a dot would read as an extension
      writer.result(name, {"maps": maps, "tokens": np.array(everything)}, ids=ids,
                    extra={"own_patch_is_max_fraction": float(own.mean())})
      shown = [tuple(t) for t in (settings.tokens or _default_tokens(gh, gw))]
      figures += vit_plots.plot_localization(
          maps[[everything.index(t) for t in shown]], writer.figure(f"fig9_{name}"), tokens=shown,
          suptitle=f"{m.name} {n}: CKA of a token with input patches")
      lines.append(f"{m.name} {n}: the most similar input patch is the token's own for "
                   f"{100 * own.mean():.0f}% of {len(everything)} tokens")
  writer.section(f"Localization (Figs. 9, 10, D.1-D.3), N={len(ids)}", figures, lines)


# ---------------------------------------------------------------------------------------------
# Figs. 11, 13, D.4, F.1-F.3: few-shot probes


def run_few_shot(models: Sequence[Model], images: Images, writer: Writer, settings) -> None:
  from repsim_jax.plotting.probes import plot_few_shot
  ids = images.ids(settings.n_images)
  figures, lines = [], []
  per_token, aggregated = {}, {}
  labels = None
  for m in models:
    abstract = jax.eval_shape(m.forward, jax.ShapeDtypeStruct((m.batch_size, *m.input_shape),
                                                              np.float32)).blocks
    names = m.main_blocks
    if m.kind == "cnn":  # patching step of App. A, to the last stage's grid and width
      last = abstract[names[-1]].shape
      to_tokens = lambda a: probes.resnet_block_tokens(a, out_hw=(last[1], last[2]),
                                                       target_channels=last[3])
    else:
      to_tokens = lambda a: a
    tokens: dict[str, list[np.ndarray]] = {n: [] for n in names}
    batch_labels = []
    for inputs, y in images.batches(m, ids, label_key=settings.label_key,
                                    progress=_progress(writer, f"few-shot: {m.name}", len(ids))):
      blocks = m.blocks(inputs)
      batch_labels.append(y)
      for n in names:
        tokens[n].append(np.asarray(to_tokens(blocks[n])))
    labels = np.concatenate(batch_labels).astype(np.int64)
    if labels.min() < 0:
      raise ValueError(f"few_shot: images without a non-negative integer label "
                       f"{settings.label_key!r} in {images.source.describe()}; set "
                       f"config.analysis.few_shot.label_key")
    train = probes.few_shot_indices(labels, shots=settings.shots, seed=settings.seed)
    test = np.setdiff1d(np.arange(len(labels)), train)[:settings.n_test]
    layers = [np.concatenate(tokens[n]) for n in names]
    # Blocks of different widths (ResNet stages) are zero-padded to one width so every layer
    # shares one compiled probe (compiles dominate small runs). The same probe: a zero column
    # whitens to exactly 0 ((0 - 0) / (0 + eps)) and gets zero ridge weight. Only rounding can
    # differ (a wider layer may switch `ridge_probe_weights` from the primal to the dual solve),
    # which can flip a near-tied prediction (seen: 1 of 44 test images on random features).
    width = max(a.shape[-1] for a in layers)
    layers = [np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, width - a.shape[-1])]) for a in layers]
    num_classes = int(labels.max()) + 1
    modes = ("tokens", "cls", "mean", "mean_patch") if m.kind == "vit" else ("tokens", "mean")
    accuracy = {}
    for mode in modes:
      logging.info("few-shot: %s, mode %s, %d layers", m.name, mode, len(layers))
      if mode == "tokens":
        train_x, test_x, probe_mode = [a[train] for a in layers], [a[test] for a in layers], mode
      else:  # aggregated on the host: every aggregation then shares one compiled probe ("cls"
        # of a single-token input is the aggregate itself)
        train_x = [np.asarray(probes.token_representation(a[train], mode=mode)) for a in layers]
        test_x = [np.asarray(probes.token_representation(a[test], mode=mode)) for a in layers]
        probe_mode = "cls"
      accuracy[mode] = probes.few_shot_accuracy(train_x, labels[train], test_x, labels[test],
                                                mode=probe_mode, num_classes=num_classes)
    token_mean = accuracy["tokens"][:, m.num_prefix_tokens:].mean(-1)  # Fig. 11: CLS excluded
    best = {k: float(np.max(token_mean if k == "tokens" else v)) for k, v in accuracy.items()}
    writer.result(f"few_shot_{m.name}", {**{f"accuracy_{k}": v for k, v in accuracy.items()},
                                         "per_token_mean": token_mean, "layers": np.array(names),
                                         "train": train, "test": test}, ids=ids,
                  extra={"shots": settings.shots, "num_classes": num_classes, "best": best})
    per_token[f"{m.name} tokens"] = token_mean
    if m.kind == "vit":
      aggregated[f"{m.name} CLS token"] = accuracy["cls"]
      aggregated[f"{m.name} mean of all tokens"] = accuracy["mean"]
      aggregated[f"{m.name} mean without CLS"] = accuracy["mean_patch"]
    else:
      aggregated[f"{m.name} GAP"] = accuracy["mean"]
    lines.append(f"{m.name}: best layer accuracy " + ", ".join(f"{k} {100 * v:.0f}%"
                                                                for k, v in best.items())
                 + f" ({settings.shots}-shot, {num_classes} classes, chance "
                 f"{100 / num_classes:.0f}%, {len(test)} test images)")
  figures += plot_few_shot({"per-token probes (mean over tokens)": per_token,
                            "aggregated tokens": aggregated}, writer.figure("fig11_few_shot"),
                           shots=settings.shots, title="Few-shot linear probes (Fig. 11)")
  figures += plot_few_shot({"ViT vs CNN": {k: v for k, v in aggregated.items()
                                           if "CLS" in k or "GAP" in k}},
                           writer.figure("fig13_few_shot"), shots=settings.shots,
                           title="Few-shot linear probes (Fig. 13)")
  writer.section(f"Few-shot linear probes (Figs. 11, 13, D.4, F.1-F.3), N={len(ids)}", figures,
                 lines)


# ---------------------------------------------------------------------------------------------


def run(config, workdir: str) -> dict[str, Any]:
  """All analyses of `config.analysis` on `config.models`, written to `workdir` (single host).

  Returns {"files": every written path, "summary": path of summary.md}.
  """
  from repsim_jax.pipelines.run import Run
  start = time.perf_counter()
  context = Run("raghu", workdir, total_steps=7)
  workdir = context.workdir
  with context.step("models"):
    models = load_models(config, workdir)
  images = Images(config)
  writer = Writer(config, workdir, models)
  a = config.analysis
  stats: dict = {}
  steps = [
      ("cka", lambda: run_cka(models, images, writer, a.cka)),
      ("block statistics",
       lambda: stats.update(run_block_stats(models, images, writer, a.block_stats))),
      ("head subsets", lambda: run_head_subsets(models, images, writer, a.head_subsets, stats)),
      ("receptive fields", lambda: run_erf(models, images, writer, a.erf)),
      ("localization", lambda: run_localization(models, images, writer, a.localization)),
      ("few-shot probes", lambda: run_few_shot(models, images, writer, a.few_shot))]
  for name, step in steps:
    with context.step(name):
      step()
  summary = writer.summary(time.perf_counter() - start)
  context.finish(headline=f"summary: {summary}")
  return {"files": writer.files, "summary": summary}
