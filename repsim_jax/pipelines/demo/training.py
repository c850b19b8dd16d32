"""The embedded default: the whole pipeline on the shapes-and-colours world, offline, in minutes.

`run(config, workdir)` (configs/demo.py) reads top to bottom:

  1. the world (`repsim_jax.data.shapes_world`): a training set and a held-out set with a
     different seed, every image's shape, colours, texture, clutter, position known;
  2. three small models trained with optax (`repsim_jax.training`) from our own NNX ports: a ViT
     and a ConvNeXt classifying shape, and an ImageGPT-style next-pixel model on k-means colour
     clusters (as iGPT); each saved as a native checkpoint (`models.loading.save_pretrained`,
     orbax) under <workdir>/checkpoints/<name> and reused when the training config matches;
  3. extraction of every block on the held-out images into ActivationStores, through the same
     driver as the paper experiments (`repsim_jax.extract.extract_stores`, `models.from_pretrained`);
  4. the analyses, with the library functions and figure code of the paper experiments: II
     between all layers of all models (+ smoothness), CKA between all layers, nearest-neighbour
     grids, neighbour category sharing for the world's *true* colour / texture / clutter factors,
     shape and colour probes per layer;
  5. findings: the questions the world was built for, each measured, checked and repeated on a
     shuffled-label control that must not pass; <workdir>/report.html shows all of it.

Everything is seeded: the same config gives the same numbers on the same machine.

References:
  Mahaut & Baroni 2026, "Similarity of Processing Steps in Vision Model Representations".
  Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited" (CKA).
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable

import numpy as np
from absl import logging

from repsim_jax.results import save_result


def _say(message: str) -> None:
  logging.info("demo: %s", message)


def effective_config(config):
  """The config with `quick` sizes applied (`config.quick_sizes` override the full ones)."""
  config = config.copy_and_resolve_references() if hasattr(config, "copy_and_resolve_references") \
      else config
  if config.get("quick"):
    q = config.quick_sizes
    config.world.n_train, config.world.n_eval = q.n_train, q.n_eval
    for m in config.models:
      m.steps = max(10, int(round(m.steps * q.steps_scale)))
    config.analysis.group_size = q.group_size
  return config


# ----------------------------------------------------------------------------- models


def _hf_config(entry, clusters: int | None):
  import transformers
  arch = dict(entry.arch)
  if entry.model_type == "imagegpt":
    arch.update(vocab_size=clusters + 1, n_positions=entry.image_side ** 2)
  return transformers.AutoConfig.for_model(entry.model_type, **arch)


def _preprocessor_config(entry, size: int, clusters: np.ndarray | None) -> dict[str, Any]:
  if entry.objective == "next_pixel":  # iGPT: resize, [-1, 1], nearest colour cluster
    return {"image_processor_type": "ImageGPTImageProcessor", "do_resize": True,
            "size": {"height": entry.image_side, "width": entry.image_side}, "resample": 2,
            "do_normalize": True, "do_color_quantize": True, "clusters": clusters.tolist()}
  return {"image_processor_type": "ViTImageProcessor", "do_resize": True,
          "size": {"height": size, "width": size}, "resample": 2, "do_rescale": True,
          "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5] * 3,
          "image_std": [0.5] * 3}


def colour_clusters(images: np.ndarray, k: int, *, seed: int = 0, iterations: int = 15,
                    max_pixels: int = 200_000) -> np.ndarray:
  """k colour clusters [k, 3] in [-1, 1] by k-means on the images' pixels (as iGPT's 512).

  images: uint8 [n, H, W, 3]. Seeded k-means++ seeding (Arthur & Vassilvitskii 2007), then
  Lloyd's algorithm; an empty cluster keeps its previous centre. Clusters are sorted by
  brightness so ids are stable across runs.
  """
  rng = np.random.default_rng(seed)
  pixels = images.reshape(-1, 3).astype(np.float32) / 127.5 - 1.0
  if len(pixels) > max_pixels:
    pixels = pixels[rng.choice(len(pixels), max_pixels, replace=False)]
  if len(np.unique(pixels, axis=0)) < k:
    raise ValueError(f"colour_clusters: fewer than k={k} distinct colours")
  sq = lambda c: (np.sum(pixels ** 2, 1)[:, None] - 2 * pixels @ c.T  # noqa: E731
                  + np.sum(c ** 2, 1)[None])
  centres = pixels[[rng.integers(len(pixels))]]
  for _ in range(1, k):
    d = np.maximum(sq(centres).min(axis=1), 0).astype(np.float64)
    centres = np.concatenate([centres, pixels[[rng.choice(len(pixels), p=d / d.sum())]]])
  for _ in range(iterations):
    assign = np.argmin(sq(centres), axis=1)
    for c in range(k):
      members = pixels[assign == c]
      if len(members):
        centres[c] = members.mean(axis=0)
  return centres[np.argsort(centres.sum(axis=1), kind="stable")]


def _training_record(config, entry) -> dict[str, Any]:
  return {"model": entry.to_dict(), "world": config.world.to_dict(), "seed": config.seed}


def train_model(config, entry, workdir: str, train_images: np.ndarray,
                train_factors: dict[str, np.ndarray]) -> tuple[str, dict[str, Any]]:
  """Trains one model of `config.models` (or reuses its checkpoint); returns (path, record)."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from repsim_jax import training
  from repsim_jax.models import loading, registry
  from repsim_jax.models.preprocessing import from_config_dict
  path = os.path.join(workdir, "checkpoints", entry.name)
  record = _training_record(config, entry)
  meta_path = os.path.join(path, "repsim_jax.json")
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      saved = json.load(f)
    if saved.get("training") == json.loads(json.dumps(record)):
      _say(f"{entry.name}: reusing the trained checkpoint {path}")
      return path, saved
    raise ValueError(f"{path} holds a {entry.name!r} trained with another config; use a fresh "
                     f"--workdir (or delete that folder) to train again")
  clusters = None
  if entry.objective == "next_pixel":
    clusters = colour_clusters(train_images, entry.clusters, seed=config.seed)
  hf_config = _hf_config(entry, None if clusters is None else len(clusters))
  preprocessor = _preprocessor_config(entry, config.world.size, clusters)
  inputs = from_config_dict(preprocessor)(list(train_images))
  family = registry.family(entry.model_type)
  options = {"add_pooling_layer": False} if entry.model_type == "vit" else {}
  backbone = family.build(hf_config, dtype=jnp.float32, rngs=nnx.Rngs(config.seed), **options)
  if entry.objective == "shape":
    dim = hf_config.hidden_sizes[-1] if hasattr(hf_config, "hidden_sizes") else (
        hf_config.hidden_size)
    model = training.Classifier(backbone, dim=dim,
                                num_classes=int(train_factors["shape"].max()) + 1,
                                rngs=nnx.Rngs(config.seed + 1))
    loss, data = training.classification_loss, (inputs, train_factors["shape"].astype(np.int32))
  elif entry.objective == "next_pixel":
    model = training.NextPixel(backbone, dim=hf_config.n_embd, vocab_size=hf_config.vocab_size,
                               rngs=nnx.Rngs(config.seed + 1))
    loss, data = training.next_pixel_loss, (inputs.astype(np.int32),)
  else:
    raise ValueError(f"model {entry.name!r}: objective {entry.objective!r}; expected 'shape' or "
                     f"'next_pixel'")
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(backbone, nnx.Param)))
  _say(f"{entry.name}: training a {entry.model_type} ({n_params / 1e3:.0f}k parameters) on "
       f"{entry.objective} for {entry.steps} steps of {entry.batch_size} images")
  history = training.fit(model, loss, data, steps=entry.steps, batch_size=entry.batch_size,
                         lr=entry.lr, seed=config.seed, name=f"train {entry.name}",
                         progress=_say)
  tail = max(1, entry.steps // 10)
  summary = {"seconds": history["seconds"], "parameters": n_params,
             "final_loss": float(history["loss"][-tail:].mean()),
             "final_train_accuracy": float(history["accuracy"][-tail:].mean())}
  _say(f"{entry.name}: trained in {summary['seconds']:.0f} s, loss {summary['final_loss']:.3f}, "
       f"train accuracy {summary['final_train_accuracy']:.1%}")
  meta = {"training": record, "result": summary, "objective": entry.objective}
  loading.save_pretrained(backbone, hf_config, path, preprocessor_config=preprocessor,
                          metadata=meta)
  save_result(workdir, f"train_{entry.name}", {"loss": history["loss"],
                                               "accuracy": history["accuracy"]},
              config=config, extra=meta)
  return path, meta


# ----------------------------------------------------------------------------- representations


def _extract(config, workdir: str, checkpoints: dict[str, str]) -> dict[str, str]:
  import ml_collections
  from repsim_jax import extract as extract_lib
  ex = ml_collections.ConfigDict({
      "models": [ml_collections.ConfigDict(
          {"name": name, "checkpoint": path, "pooling": None, "num_prefix_tokens": None,
           "layers": None, "dtype": "float32", "tiny_random": False, "model_type": None})
                 for name, path in checkpoints.items()],
      "dataset": {"kind": "shapes_world", "n": config.world.n_eval, "seed": config.seed + 1,
                  "size": config.world.size},
      "n_images": None, "seed": config.seed, "batch_size": config.extract_batch_size,
      "device_batch": None, "chunk_rows": config.extract_batch_size * 8,
      "store_dtype": "float32", "skip_bad_images": False, "num_threads": 2, "distributed": False,
  })
  return extract_lib.extract_stores(ex, workdir)


# ----------------------------------------------------------------------------- analyses


def adjacent_vs_distant(matrix: np.ndarray) -> tuple[float, float]:
  """Mean II between adjacent layers (|i - j| = 1) and between distant ones (|i - j| >= L / 2),
  both directions, of one model's [L, L] self-II matrix."""
  m = np.asarray(matrix)
  gap = np.abs(np.subtract.outer(np.arange(len(m)), np.arange(len(m))))
  return float(m[gap == 1].mean()), float(m[gap >= max(2, len(m) // 2)].mean())


def imbalance_analysis(layers: dict[str, list[np.ndarray]], cfg, *,
                       permute_rows_seed: int | None = None) -> dict[tuple[str, str], np.ndarray]:
  """II between every layer of every model, as {(A, B): [L_A, L_B]} blocks of one matrix call.

  permute_rows_seed: the control: every layer's rows are permuted independently (the images no
  longer correspond across layers), which must wipe out the layer structure.
  """
  from repsim_jax.metrics.imbalance import imbalance_between_models
  if permute_rows_seed is not None:
    rng = np.random.default_rng(permute_rows_seed)
    layers = {m: [x[rng.permutation(len(x))] for x in xs] for m, xs in layers.items()}
  return imbalance_between_models(layers, k=cfg.k, metric="euclidean")


def probe_analysis(layers: dict[str, list[np.ndarray]], labels: np.ndarray, cfg, *,
                   shuffle_seed: int | None = None) -> dict[str, np.ndarray]:
  """{model: accuracy per layer} of a multi-class linear probe (shared hyperparameters)."""
  from repsim_jax.analysis.probes import multiclass_probe_accuracy
  labels = np.asarray(labels)
  if shuffle_seed is not None:
    labels = np.random.default_rng(shuffle_seed).permutation(labels)
  return {m: multiclass_probe_accuracy(xs, labels, seed=cfg.probe_seed,
                                       test_fraction=cfg.probe_test_fraction)
          for m, xs in layers.items()}


def colour_sharing(layers: dict[str, list[np.ndarray]], hue: np.ndarray, cfg, *,
                   shuffle_seed: int | None = None) -> tuple[dict[str, np.ndarray], float]:
  """({model: fraction of the k neighbours with the image's background hue, per layer},
  exact random baseline)."""
  from repsim_jax.analysis.lowlevel import neighbour_sharing_by_layer, random_sharing_baseline
  hue = np.asarray(hue)
  if shuffle_seed is not None:
    hue = np.random.default_rng(shuffle_seed).permutation(hue)
  membership = hue[:, None] == np.unique(hue)[None, :]
  sharing = {m: neighbour_sharing_by_layer(xs, membership, k=cfg.k_neighbours).mean(axis=1)
             for m, xs in layers.items()}
  return sharing, random_sharing_baseline(membership)


# ----------------------------------------------------------------------------- findings


def findings(results: dict[str, Any], classifiers: list[str], next_pixel: list[str],
             cfg) -> list[dict[str, Any]]:
  """The world's questions as checks: [{"statement", "measured", "holds"}], from `results`
  holding "shape_probe", "colour_sharing" ({model: per layer}) and "imbalance" ({(A, B): [L, L]}).

  "First" is layer 0, the embedding / stem output that enters the first block (what the pixels
  give after one linear map), "last" the last block. (In the tiny ViT, global attention makes
  shape readable already after block 1; the per-layer tables in the report show every layer.)
  """
  out = []
  for m in classifiers:
    acc = results["shape_probe"][m]
    out.append({"statement": f"{m}: shape-probe accuracy rises from the first layer to the last "
                             f"block by more than {cfg.min_probe_gain:.0%}",
                "measured": f"{acc[0]:.1%} → {acc[-1]:.1%}",
                "holds": float(acc[-1] - acc[0]) > cfg.min_probe_gain})
  for m in classifiers:
    share = results["colour_sharing"][m]
    out.append({"statement": f"{m}: neighbours sharing the image's colour fall from the first "
                             f"layer to the last block by more than {cfg.min_colour_drop:.0%}",
                "measured": f"{share[0]:.1%} → {share[-1]:.1%}",
                "holds": float(share[0] - share[-1]) > cfg.min_colour_drop})
  for m in next_pixel:
    share = results["colour_sharing"][m]
    out.append({"statement": f"{m} (next pixel): colour-sharing neighbours stay high (the last "
                             f"block keeps {cfg.min_colour_kept_next_pixel:.0%} of the first "
                             f"layer's share, and above {cfg.min_colour_next_pixel:.0%})",
                "measured": f"{share[0]:.1%} → {share[-1]:.1%}",
                "holds": (float(share[-1]) >= cfg.min_colour_kept_next_pixel * float(share[0])
                          and float(share[-1]) > cfg.min_colour_next_pixel)})
  for m in classifiers + next_pixel:
    adjacent, distant = adjacent_vs_distant(results["imbalance"][(m, m)])
    out.append({"statement": f"{m}: adjacent-layer II is below {cfg.max_adjacent_ratio:.0%} of "
                             f"distant-layer II",
                "measured": f"{adjacent:.3f} vs {distant:.3f}",
                "holds": adjacent < cfg.max_adjacent_ratio * distant})
  return out


# ----------------------------------------------------------------------------- driver


def _table_per_layer(values: dict[str, np.ndarray],
                     fmt: Callable[[float], str]) -> tuple[list[str], list[list[str]]]:
  """A model x layer table; layer 0 is the embedding / stem output, the last the last block."""
  depth = max(len(v) for v in values.values())
  header = ["model"] + [f"layer {i}" for i in range(depth)]
  rows = [[m] + [fmt(x) for x in v] + [""] * (depth - len(v)) for m, v in values.items()]
  return header, rows


def run(config, workdir: str) -> dict[str, Any]:
  """Runs the demo end to end; returns {"report": path, "findings": [...], "control": [...],
  plus the analysis results}."""
  from repsim_jax.analysis.lowlevel import lowlevel_neighbour_analysis
  from repsim_jax.analysis.neighbourhoods import neighbourhoods
  from repsim_jax.analysis.paper import figure_path, load_representations
  from repsim_jax.data.shapes_world import HUES, SHAPES, ShapesWorld, render_batch
  from repsim_jax.metrics.kernel_alignment import cka_matrix
  from repsim_jax.metrics.imbalance_stats import smoothness
  from repsim_jax.plotting.heatmap import layer_heatmap
  from repsim_jax.plotting.imbalance import plot_imbalance_grid
  from repsim_jax.plotting.lowlevel import plot_neighbour_sharing
  from repsim_jax.plotting.neighbourhoods import plot_neighbourhoods
  from repsim_jax.plotting.probes import plot_ood_probes
  from repsim_jax.report import HtmlReport
  from repsim_jax.pipelines.run import Run
  config = effective_config(config)
  cfg = config.analysis
  context = Run("demo", workdir)
  workdir = context.workdir
  w = config.world
  _say(f"world: {w.n_train} training images (seed {config.seed}), {w.n_eval} held-out images "
       f"(seed {config.seed + 1}), {w.size}x{w.size}{' [quick]' if config.get('quick') else ''}")

  # 1-2. world and models
  with context.step("world"):
    train_images, train_factors = render_batch(range(w.n_train), seed=config.seed, size=w.size)
  checkpoints, training = {}, {}
  for entry in config.models:
    with context.step(f"train {entry.name}"):
      checkpoints[entry.name], training[entry.name] = train_model(config, entry, workdir,
                                                                  train_images, train_factors)
  del train_images

  # 3. extraction on the held-out world
  with context.step("extract"):
    world = ShapesWorld(w.n_eval, seed=config.seed + 1, size=w.size)
    reps = load_representations(world, world.ids, _extract(config, workdir, checkpoints))
    ids, names, layers, representative = (reps.ids, reps.layer_names, reps.layers,
                                          reps.representative)
    images, factors = render_batch([world.index(i) for i in ids], seed=world.seed,
                                   size=w.size)
  classifiers = [e.name for e in config.models if e.objective == "shape"]
  next_pixel = [e.name for e in config.models if e.objective == "next_pixel"]
  models = reps.models
  results: dict[str, Any] = {}
  report = HtmlReport("repsim_jax demo: the shapes-and-colours world", workdir)

  # 4a. II and smoothness
  with context.step("imbalance"):
    _say(f"information imbalance between all {sum(len(v) for v in layers.values())} layers of "
         f"{len(models)} models (N={len(ids)}, k={cfg.k})")
    ii = imbalance_analysis(layers, cfg)
    results["imbalance"] = ii
    for (a, b), block in ii.items():
      save_result(os.path.join(workdir, "imbalance"), f"ii_{a}__{b}",
                  {"imbalance": block, "layers_a": np.array(names[a]),
                   "layers_b": np.array(names[b])}, config=config,
                  extra={"direction": f"{a} → {b}", "n": len(ids), "k": cfg.k})
    smooth = {m: float(smoothness(ii[(m, m)][representative[m]], axis=-1).mean())
              for m in models}
    results["smoothness"] = smooth

  # 4b. CKA
  with context.step("cka"):
    union = [x for m in models for x in layers[m]]
    labels_union = [f"{m}/{n}" for m in models for n in names[m]]
    cka = cka_matrix(union, union, debiased=True)
    results["cka"] = cka
    save_result(workdir, "cka", {"cka": cka, "layers": np.array(labels_union)}, config=config)

  # 4c. probes
  with context.step("probes"):
    shape_probe = probe_analysis(layers, factors["shape"], cfg)
    colour_probe = probe_analysis(layers, factors["background_hue"], cfg)
    results.update(shape_probe=shape_probe, colour_probe=colour_probe)
    save_result(workdir, "probes", {**{f"shape/{m}": v for m, v in shape_probe.items()},
                                    **{f"colour/{m}": v for m, v in colour_probe.items()}},
                config=config)

  # 4d. neighbour sharing: true colour category, and the paper's low-level categories
  with context.step("neighbour sharing"):
    colour_share, colour_baseline = colour_sharing(layers, factors["background_hue"], cfg)
    results.update(colour_sharing=colour_share, colour_baseline=colour_baseline)
    true_factors = {"colour warmth": factors["warmth"], "texture": factors["texture"],
                    "clutter": factors["clutter"].astype(np.float64)}
    low = lowlevel_neighbour_analysis(layers, true_factors, group_size=cfg.group_size,
                                      k=cfg.k_neighbours)
    results["lowlevel"] = {s: {"baseline": v["baseline"], "sharing": v["sharing"]}
                           for s, v in low.items()}
    save_result(workdir, "neighbour_sharing",
                {**{f"colour/{m}": v for m, v in colour_share.items()},
                 **{f"{s}/{m}": v for s, r in low.items() for m, v in r["sharing"].items()}},
                config=config, extra={"colour_baseline": colour_baseline,
                                      "baselines": {s: r["baseline"] for s, r in low.items()}})

  # 4e. neighbourhood grids
  with context.step("neighbourhoods"):
    queries = np.random.default_rng(config.seed).choice(len(ids), cfg.n_queries, replace=False)
    grids = neighbourhoods(layers, queries, k=cfg.k_grid, layers=representative)

  # 5. findings and the shuffled-label control
  results["findings"] = findings(results, classifiers, next_pixel, cfg)
  with context.step("shuffled-label control"):
    control = {"shape_probe": probe_analysis(layers, factors["shape"], cfg,
                                             shuffle_seed=config.seed + 7),
               "colour_sharing": colour_sharing(layers, factors["background_hue"], cfg,
                                                shuffle_seed=config.seed + 7)[0],
               "imbalance": imbalance_analysis(layers, cfg, permute_rows_seed=config.seed + 7)}
    results["control"] = findings(control, classifiers, next_pixel, cfg)
    results["control_results"] = control
    save_result(workdir, "control",
                {**{f"shape/{m}": v for m, v in control["shape_probe"].items()},
                 **{f"colour/{m}": v for m, v in control["colour_sharing"].items()},
                 **{f"imbalance/{a}__{b}": v for (a, b), v in control["imbalance"].items()}},
                config=config, extra={"shuffle_seed": config.seed + 7})

  # 6. report
  with context.step("report"):
    s = report.section("What this is")
    s.note(f"{w.n_eval} held-out images of a generated world ({len(SHAPES)} shapes: "
           f"{', '.join(SHAPES)}; {len(HUES)} object / background hues, half warm; random "
           f"texture noise, clutter lines, position, size). Models trained here in "
           f"{sum(t['result']['seconds'] for t in training.values()):.0f} s: "
           + "; ".join(f"{m} ({t['objective']}, {t['result']['parameters'] / 1e3:.0f}k params, "
                       f"final train accuracy {t['result']['final_train_accuracy']:.1%})"
                       for m, t in training.items()) + ". 'Layer 0' is the embedding / stem output.")
    s = report.section("Findings (measured on this run)")
    rows = [[f["statement"], f["measured"], f["holds"], c["measured"], c["holds"]]
            for f, c in zip(results["findings"], results["control"])]
    s.table(["statement", "measured", "holds", "shuffled-label control", "control holds"], rows)
    s.note("Control: probes and colour sharing with the labels shuffled over images; II with every "
           "layer's rows permuted independently. A check that still held on the control would "
           "measure nothing.")
    s = report.section("Probes: shape and colour (background hue) per layer")
    s.figure("Linear probe accuracy per layer", plot_ood_probes(
        {"shape (5 classes)": shape_probe, "background hue (8 classes)": colour_probe},
        figure_path(workdir, "probes"), title="Linear probes per layer (held-out images)"))
    s.table(*_table_per_layer(shape_probe, lambda x: f"{x:.1%}"))
    s = report.section("Neighbours sharing a category, per layer")
    panels = {"background hue": (colour_share, colour_baseline)}
    panels.update({scope: (v["sharing"], v["baseline"]) for scope, v in low.items()})
    s.figure(f"% of the {cfg.k_neighbours} nearest neighbours (cosine) sharing the image's "
             f"category; dashed: exact random baseline",
             plot_neighbour_sharing(panels, figure_path(workdir, "neighbour_sharing"),
                                    k=cfg.k_neighbours))
    s.table(*_table_per_layer(colour_share, lambda x: f"{x:.1%}"))
    s = report.section("Information imbalance between all layers")
    s.figure("Early / middle / late layer of A predicting every layer of B (A → B)",
             plot_imbalance_grid(ii, figure_path(workdir, "imbalance_grid"), models=models,
                                 representative=representative, layer_names=names))
    for m in models:
      s.figure(f"II {m} → {m}", layer_heatmap(
          ii[(m, m)], row_labels=names[m], col_labels=names[m], title=f"II {m} → {m}",
          path=figure_path(workdir, f"ii_{m}"), cbar_label="Δ(row → column)", vmin=0, vmax=1))
    s.table(["model", "adjacent-layer II", "distant-layer II",
             "smoothness (std of adjacent II differences)"],
            [[m, *adjacent_vs_distant(ii[(m, m)]), smooth[m]] for m in models])
    s = report.section("CKA between all layers of all models")
    s.figure("Unbiased linear CKA", layer_heatmap(
        cka, row_labels=labels_union, col_labels=labels_union, title="CKA, all layers",
        path=figure_path(workdir, "cka"), cbar_label="CKA", cmap="magma", origin="lower", vmin=0,
        vmax=1))
    s = report.section("Nearest neighbours at the early, middle and late layer")
    for q in range(len(queries)):
      f = {k: v[queries[q]] for k, v in factors.items()}
      s.figure(f"query {ids[queries[q]]}: {SHAPES[f['shape']]}, "
               f"{HUES[f['object_hue']][0]} on {HUES[f['background_hue']][0]}",
               plot_neighbourhoods(images, int(queries[q]), grids["indices"][:, :, q],
                                   figure_path(workdir, f"neighbours_{q}"), model_names=models))
    path = report.write()
  holds = sum(f["holds"] for f in results["findings"])
  control_holds = sum(f["holds"] for f in results["control"])
  save_result(workdir, "findings", {}, config=config,
              extra={"findings": results["findings"], "control": results["control"]})
  text = context.finish(headline=f"{holds}/{len(results['findings'])} findings hold "
                        f"({control_holds} on the shuffled-label control); report: {path}")
  if context.is_writer:
    print("\n".join(f"  [{'yes' if f['holds'] else 'NO '}] {f['statement']}: {f['measured']}"
                    for f in results["findings"]), flush=True)
  results.update(report=path, layer_names=names, training=training, closing_summary=text)
  return results
