r"""The analysis stage of Mahaut & Baroni (2026) at the paper's scale, on this machine.

  python benchmarks/bench_paper_scale.py                   # N = 1e4 images, every step
  python benchmarks/bench_paper_scale.py --n=3000
  python benchmarks/bench_paper_scale.py --n=100000 --steps=neighbourhoods   # Figs. 15-17
  python benchmarks/bench_paper_scale.py --n=200 --steps=imbalance --models=vit_l,convnext_xl

1. Stores. One `ActivationStore` per main model (iGPT-L, DINOv2-giant, ConvNeXt-XL, ViT-L/16)
   under `<workdir>/stores/<model>`, with exactly the layer names, counts and pooled widths our
   ports give at full size (abstract evaluation of the port: no weights, nothing runs) and the
   metadata a real extraction writes (`extraction.extract.model_store_config`: the catalogue's
   checkpoint id, the checkpoint's preprocessing, the family's pooling; the weights fingerprint
   says "synthetic"). The images are `generated` (1000 classes, label = index % 1000), so the
   low-level step has pixels and the probes have labels; the out-of-domain probes get their own
   generated dataset (100 classes) and stores under `<workdir>/ood/synthetic_ood`.
2. Activations. Structured, not noise: every image has a low-level latent (its own) and a semantic
   latent (its class centre plus its own offset). Layer l of a model at relative depth t holds
   [(1 - t) * low, t * semantic] through a fixed random projection of the model (one per stage
   for ConvNeXt), plus noise; ConvNeXt's depth schedule jitters, so its curves are rougher. II,
   probes and neighbours all see depth-dependent structure.
3. The pipeline. `repsim_jax.pipelines.mahaut_baroni.run` on `configs/mahaut_baroni.py` (the
   paper's settings) with the dataset switched to the generated images, exactly as
   `experiments.mahaut_baroni` runs it: it finds the complete stores and reuses them.

It prints, per step, seconds, peak resident memory and an estimate of the step's floating-point
work (dominant terms, formulas in `flops`), so the run can be scaled to other hardware; the last
line gives the total time and the peak. At --n=100000 only the early / middle / late layers are
written (every other layer keeps the store's fill value: 152 layers x 1e5 rows would be ~80 GB);
run only --steps=neighbourhoods there.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

_N = flags.DEFINE_integer("n", 10_000, "images (the paper: 1e4; 1e5 for Figs. 15-17)")
_STEPS = flags.DEFINE_list("steps", None, "analysis steps (default: the config's, all of them)")
_MODELS = flags.DEFINE_list("models", None, "main models to include (default: all four)")
_WORKDIR = flags.DEFINE_string("workdir", None, "where the stores and results go (default: a "
                               "temporary folder, removed at the end)")
_OOD_N = flags.DEFINE_integer("ood_n", None, "images of the synthetic out-of-domain dataset "
                              "(default: min(n, 10000))")
_LATENT = flags.DEFINE_integer("latent", 64, "dimension of each latent (low-level, semantic)")
_SEED = flags.DEFINE_integer("seed", 0, "seed of the synthetic activations")

NUM_CLASSES = 1000
OOD_CLASSES = 100
IMAGE_SIZE = (64, 64)  # generated images; the low-level step resizes them to 224 as configured
IMAGENET_NORM = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}


def architectures():
  """Model name -> (transformers config of the full-size checkpoint, its preprocessor config):
  the hub's config.json values of the catalogue's four main checkpoints."""
  import transformers as tr
  square = {"height": 224, "width": 224}
  clusters = np.random.default_rng(0).uniform(-1, 1, size=(512, 3)).round(6).tolist()
  return {
      "igpt_l": (tr.ImageGPTConfig(vocab_size=513, n_positions=1024, n_embd=1536, n_layer=48,
                                   n_head=16),
                 {"image_processor_type": "ImageGPTImageProcessor", "clusters": clusters,
                  "do_color_quantize": True, "size": {"height": 32, "width": 32}}),
      "dinov2_g": (tr.Dinov2Config(hidden_size=1536, num_hidden_layers=40, num_attention_heads=24,
                                   mlp_ratio=4, use_swiglu_ffn=True, image_size=518,
                                   patch_size=14),
                   {"image_processor_type": "BitImageProcessor", "size": {"shortest_edge": 256},
                    "crop_size": square, "do_center_crop": True, **IMAGENET_NORM}),
      "convnext_xl": (tr.ConvNextConfig(hidden_sizes=[256, 512, 1024, 2048], depths=[3, 3, 27, 3]),
                      {"image_processor_type": "ConvNextImageProcessor",
                       "size": {"shortest_edge": 224}, "crop_pct": 0.875, **IMAGENET_NORM}),
      "vit_l": (tr.ViTConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                             intermediate_size=4096, image_size=224, patch_size=16),
                {"image_processor_type": "ViTImageProcessor", "size": square,
                 "image_mean": [0.5] * 3, "image_std": [0.5] * 3}),
  }


_LAYOUTS: dict[str, tuple] = {}


def model_layout(name: str, model_config, source):
  """(OpenedModel without weights, {layer: pooled shape}, {layer: pooling}) of a main model at
  full size: the port built abstractly, its blocks pooled abstractly (once per model)."""
  if name not in _LAYOUTS:
    _LAYOUTS[name] = _model_layout(name, model_config, source)
  return _LAYOUTS[name]


def _model_layout(name: str, model_config, source):
  import jax.numpy as jnp
  from flax import nnx
  from repsim_jax.extraction import extract
  from repsim_jax.models import registry
  hf_config, preprocessor = architectures()[name]
  with tempfile.TemporaryDirectory() as d:
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
      json.dump(preprocessor, f)
    preprocess, preprocessing = extract.hf_preprocess(d)
  config_json = hf_config.to_dict()
  pooling, prefix = extract.model_pooling(model_config, config_json)
  module = nnx.eval_shape(lambda: registry.family(hf_config.model_type).build(
      hf_config, dtype=jnp.float32, rngs=nnx.Rngs(0)))
  example = np.asarray(preprocess(source.load(source.ids[0]).image))
  shapes, modes = extract.abstract_layer_shapes(module, example, pooling,
                                                num_prefix_tokens=prefix)
  opened = extract.OpenedModel(
      name=name, path="", hf_config=config_json, module=None, preprocess=preprocess,
      preprocessing=preprocessing, pooling=pooling, num_prefix_tokens=prefix, dtype="float32",
      backend="jax", fingerprint="synthetic:benchmarks/bench_paper_scale.py")
  return opened, shapes, modes


class Latents:
  """The images' latents, drawn per row from seeds (any rows, in any order, same values)."""

  def __init__(self, labels: np.ndarray, dim: int, seed: int):
    self.labels, self.dim, self.seed = labels, dim, seed
    self.centres = np.random.default_rng([seed, 1]).normal(size=(labels.max() + 1, dim))

  def rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([self.seed, 2, start])
    low = rng.normal(size=(stop - start, self.dim))
    semantic = self.centres[self.labels[start:stop]] + 0.7 * rng.normal(size=(stop - start,
                                                                              self.dim))
    return low, semantic


def depth_schedule(name: str, names: list[str], seed: int) -> np.ndarray:
  """Relative depth t in [0, 1] of each layer; jittered for ConvNeXt (rougher curves)."""
  t = np.linspace(0.0, 1.0, len(names))
  if name.startswith("convnext"):
    t = np.clip(t + np.random.default_rng([seed, 3]).normal(0, 0.08, len(t)), 0, 1)
    t[0], t[-1] = 0.0, 1.0
  return t


def projections(name: str, widths: dict[str, int], latent: int, seed: int) -> dict[int, np.ndarray]:
  """One fixed random projection [2 * latent, width] per distinct width (a ConvNeXt stage)."""
  rng = np.random.default_rng([seed, 4, sum(map(ord, name))])
  return {w: (rng.normal(size=(2 * latent, w)) / np.sqrt(2 * latent)).astype(np.float32)
          for w in sorted(set(widths.values()))}


def write_store(path: str, name: str, model_config, source, ids, *, latents: Latents,
                seed: int, chunk_rows: int, only: set[str] | None = None) -> dict[str, int]:
  """Writes one model's complete store of synthetic activations; returns {layer: width}.
  `only`: layer names to fill (the others keep the fill value)."""
  from repsim_jax.extraction.extract import layer_specs, model_store_config
  from repsim_jax.extraction.store import ActivationStore
  opened, shapes, modes = model_layout(name, model_config, source)
  widths = {n: int(np.prod(s)) for n, s in shapes.items()}
  store = ActivationStore.open_or_create(
      path, config=model_store_config(model_config, opened, source, ids, seed=seed),
      ids=ids, chunk_rows=chunk_rows)
  store.ensure_layers(layer_specs(shapes, modes, opened.num_prefix_tokens))
  names = list(widths)
  t = depth_schedule(name, names, latents.seed)
  proj = projections(name, widths, latents.dim, latents.seed)
  noise = 0.3 if name.startswith("convnext") else 0.15
  for k in store.missing_chunks():
    start, stop = store.chunk_bounds(k)
    low, semantic = latents.rows(start, stop)
    rng = np.random.default_rng([latents.seed, 5, sum(map(ord, name)), k])
    values = {}
    for l, layer in enumerate(names):
      if only is not None and layer not in only:
        continue
      mixed = np.concatenate([(1 - t[l]) * low, t[l] * semantic], axis=1).astype(np.float32)
      x = mixed @ proj[widths[layer]]
      x += noise * rng.standard_normal(x.shape, dtype=np.float32)
      values[layer] = x.reshape(stop - start, *shapes[layer])
    store.write_chunk(k, values, partial=only is not None)
  store.finalize()
  return widths


def flops(step: str, n: int, widths: dict[str, list[int]], config, *, ood_n: int) -> float:
  """Dominant floating-point work of a step (multiply-adds count 2, comparisons 1), from shapes:

    imbalance       every distinct layer's N x N distances once (2 N^2 d) + the rank counts
                    (N^2 comparisons per ordered layer pair, L^2 pairs in the union); with
                    n_boot, per model 4 + L more distance passes and N^2 x n_boot weighted
                    additions per layer (the headline intervals)
    sample_size     per model and subsample of size s: its layers' distances (2 s^2 d each) +
                    3 x L rank counts (s^2 each)
    neighbourhoods  the queries' distances to every image at 3 layers per model (2 q N d)
    lowlevel        the selected images' features (~100 flops per pixel) + cosine neighbours at
                    3 layers per model (2 n^2 d)
    probes          per layer and class: the balanced sample's Gram matrix (2 m^2 d) and the
                    kernel logistic fit (iterations x m^2)
    ood             per layer: `iterations` L-BFGS steps, each a forward and backward pass of
                    an [n, d] x [d, C] logistic model (~6 n d C)
    subspace        per model the late layer's covariance (2 N d^2); per pair and permutation
                    the k x k cross products of Procrustes and CKA (~4 N k^2)
  """
  from repsim_jax.models.outputs import representative_indices
  a = config.analysis
  all_d = [d for ws in widths.values() for d in ws]
  if step == "imbalance":
    m = a.imbalance.n or n
    boot = a.imbalance.get("n_boot") or 0
    intervals = sum(2.0 * m * m * (sum(ws) + 4 * max(ws)) + float(m) * m * boot * len(ws)
                    for ws in widths.values()) if boot else 0.0
    return 2.0 * m * m * sum(all_d) + float(m) * m * len(all_d) ** 2 + intervals
  if step == "sample_size":
    sizes = [s for s in a.sample_size.sizes if s <= n]
    return float(sum((1 if s == n else a.sample_size.n_subsamples)  # size N: computed once
                     * (2.0 * s * s * sum(ws) + 3 * len(ws) * s * s)
                     for s in sizes for ws in widths.values()))
  rep = [ws[i] for ws in widths.values() for i in representative_indices(len(ws))]
  if step == "neighbourhoods":
    return 2.0 * a.neighbourhoods.n_queries * n * sum(rep)
  if step == "lowlevel":
    m = min(a.lowlevel.n_images, n)
    h, w = a.lowlevel.image_size
    return 100.0 * m * h * w + 2.0 * m * m * sum(rep)
  if step == "probes":
    per_class = n / NUM_CLASSES
    m = 2 * per_class
    return NUM_CLASSES * (2.0 * m * m * sum(all_d) + 50.0 * m * m * len(all_d))
  if step == "ood":
    return a.ood.iterations * 6.0 * ood_n * OOD_CLASSES * sum(all_d)
  if step == "subspace":
    k, pairs = a.subspace.k, len(widths) * (len(widths) - 1) / 2
    late = rep[2::3]  # the default layer
    return 2.0 * n * sum(d * d for d in late) + pairs * (a.subspace.n_perm + 1) * 4.0 * n * k * k
  return 0.0


def paper_config(n: int, workdir: str, *, models, steps, ood_n: int):
  from configs import mahaut_baroni
  config = mahaut_baroni.get_config()
  if models:
    config.models = [m for m in config.models if m.name in models]
  config.dataset = {"kind": "generated", "n": n, "size": IMAGE_SIZE, "num_classes": NUM_CLASSES,
                    "seed": 0}
  config.n_images = None
  a = config.analysis
  if steps:
    a.steps = tuple(steps)
  # the main images' own labels (1000 classes): the paper probes ImageNet-1k val, 50 per class
  a.probes.dataset = None
  a.probes.min_images_per_class = max(2, min(10, n // NUM_CLASSES))
  a.ood.n_images = None
  a.ood.datasets = [{"kind": "generated", "name": "synthetic_ood", "n": ood_n,
                     "size": IMAGE_SIZE, "num_classes": OOD_CLASSES, "seed": 1,
                     "label_key": "label"}]
  return config


def main(argv):
  del argv
  from repsim_jax import data as data_lib
  from repsim_jax import resources
  from repsim_jax.pipelines import mahaut_baroni
  n = _N.value
  ood_n = _OOD_N.value or min(n, 10_000)
  workdir = _WORKDIR.value or tempfile.mkdtemp(prefix="bench_paper_scale_")
  workdir = os.path.abspath(workdir)
  config = paper_config(n, workdir, models=_MODELS.value, steps=_STEPS.value, ood_n=ood_n)
  partial = n > 20_000  # only the neighbourhood layers: every layer would not fit on disk
  if partial and set(config.analysis.steps) - {"neighbourhoods"}:
    raise app.UsageError(f"--n={n}: only the early / middle / late layers are written above "
                         "2e4 images; run --steps=neighbourhoods")
  total_start = time.perf_counter()
  resources.reset_peak_rss()
  widths: dict[str, list[int]] = {}
  write_start = time.perf_counter()
  for subdir, dataset, tag in (("", config.dataset, "main"),
                               (os.path.join("ood", "synthetic_ood"),
                                config.analysis.ood.datasets[0], "ood")):
    if tag == "ood" and "ood" not in config.analysis.steps:
      continue
    source = data_lib.from_config(dataset)
    ids = data_lib.sample_ids(source.ids, None, seed=config.seed)
    labels = np.array([source.index(i) % dataset["num_classes"] for i in ids])
    latents = Latents(labels, _LATENT.value, _SEED.value + (tag == "ood"))
    for model_config in config.models:
      path = os.path.join(workdir, subdir, "stores", model_config.name)
      only = None
      if partial:
        from repsim_jax.extraction.representations import early_middle_late
        _, shapes, _ = model_layout(model_config.name, model_config, source)
        only = set(early_middle_late(list(shapes)).values())
      w = write_store(path, model_config.name, model_config, source, ids, latents=latents,
                      seed=config.seed, chunk_rows=config.chunk_rows, only=only)
      if tag == "main":
        widths[model_config.name] = list(w.values())
        print(f"store {model_config.name}: {len(w)} layers, widths "
              f"{sorted(set(w.values()))}, {n} images", flush=True)
  write_seconds = time.perf_counter() - write_start
  write_peak = resources.peak_rss_bytes()
  print(f"stores written in {write_seconds:.1f} s (peak memory "
        f"{resources.format_bytes(write_peak)}); {sum(map(len, widths.values()))} layers",
        flush=True)

  records = mahaut_baroni.run(config, workdir)["step_records"]
  print(f"\nMahaut & Baroni analysis stage, N={n}, models {', '.join(widths)} "
        f"({sum(map(len, widths.values()))} layers), load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
  print(f"{'step':<44} {'seconds':>9} {'peak RSS':>10} {'FLOPs (est.)':>13} {'GFLOP/s':>8}")
  names = ["representations"] + list(config.analysis.steps)
  for record, name in zip(records, names):
    f = flops(name, n, widths, config, ood_n=ood_n)
    rate = f"{f / record['seconds'] / 1e9:8.1f}" if f else f"{'':>8}"
    print(f"{record['step']:<44} {record['seconds']:9.1f} "
          f"{resources.format_bytes(record['peak_rss_bytes']):>10} "
          f"{(f'{f:.2e}' if f else '-'):>13} {rate}")
  peak = max([write_peak] + [r["peak_rss_bytes"] for r in records])
  total = time.perf_counter() - total_start
  if not _WORKDIR.value:
    shutil.rmtree(workdir, ignore_errors=True)
  print(f"total {total:.1f} s (stores {write_seconds:.1f} s, analysis "
        f"{sum(r['seconds'] for r in records):.1f} s), peak RSS {resources.format_bytes(peak)}")


if __name__ == "__main__":
  logging.set_verbosity(logging.INFO)
  app.run(main)
