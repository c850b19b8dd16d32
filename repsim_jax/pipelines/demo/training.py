"""The demo's models: a ViT and a ConvNeXt trained to classify shape, and an ImageGPT-style
next-pixel model on k-means colour clusters (as iGPT), all our NNX ports trained with optax
(`repsim_jax.training`) and saved as native checkpoints (`models.loading.save_pretrained`,
orbax) that `from_pretrained` and the extraction read back like downloaded ones."""
from __future__ import annotations

import inspect
import json
import os
from typing import Any

import numpy as np

from repsim_jax.pipelines.run import Run


def _hf_config(entry, clusters: int | None):
  import transformers
  arch = dict(entry.arch)
  if entry.objective == "next_pixel":  # iGPT: the colour clusters (+ SOS) are the vocabulary
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


def _training_record(config, entry, seed: int) -> dict[str, Any]:
  return {"model": entry.to_dict(), "world": config.world.to_dict(), "seed": seed}


def train_model(entry, train_images: np.ndarray, train_factors: dict[str, np.ndarray],
                run: Run, *, seed: int | None = None) -> tuple[str, dict[str, Any]]:
  """Trains one model of `run.config.models` (or reuses its checkpoint under
  `<workdir>/checkpoints/<name>`); returns (path, record). `seed` (default `run.config.seed`)
  seeds the initialisation, the batch order and iGPT's colour clusters: the measure benchmark
  trains each model with several seeds on the same images."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from repsim_jax import training
  from repsim_jax.models import loading, registry
  from repsim_jax.models.preprocessing import from_config_dict
  config = run.config
  path = os.path.join(run.workdir, "checkpoints", entry.name)
  seed = config.seed if seed is None else seed
  record = _training_record(config, entry, seed)
  meta_path = os.path.join(path, "repsim_jax.json")
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      saved = json.load(f)
    if saved.get("training") == json.loads(json.dumps(record)):
      run.log(f"{entry.name}: reusing the trained checkpoint {path}")
      return path, saved
    raise ValueError(f"{path} holds a {entry.name!r} trained with another config; use a fresh "
                     f"--workdir (or delete that folder) to train again")
  clusters = None
  if entry.objective == "next_pixel":
    clusters = colour_clusters(train_images, entry.clusters, seed=seed)
  hf_config = _hf_config(entry, None if clusters is None else len(clusters))
  preprocessor = _preprocessor_config(entry, config.world.size, clusters)
  inputs = from_config_dict(preprocessor)(list(train_images))
  family = registry.family(entry.model_type)
  # the classifier head reads the blocks: a backbone's own pooler would be trained for nothing
  takes_pooler = "add_pooling_layer" in inspect.signature(family.build).parameters
  options = {"add_pooling_layer": False} if takes_pooler else {}
  backbone = family.build(hf_config, dtype=jnp.float32, rngs=nnx.Rngs(seed), **options)
  if entry.objective == "shape":
    dim = hf_config.hidden_sizes[-1] if hasattr(hf_config, "hidden_sizes") else (
        hf_config.hidden_size)
    model = training.Classifier(backbone, dim=dim,
                                num_classes=int(train_factors["shape"].max()) + 1,
                                rngs=nnx.Rngs(seed + 1))
    loss, data = training.classification_loss, (inputs, train_factors["shape"].astype(np.int32))
  elif entry.objective == "next_pixel":
    model = training.NextPixel(backbone, dim=hf_config.n_embd, vocab_size=hf_config.vocab_size,
                               rngs=nnx.Rngs(seed + 1))
    loss, data = training.next_pixel_loss, (inputs.astype(np.int32),)
  else:
    raise ValueError(f"model {entry.name!r}: objective {entry.objective!r}; expected 'shape' or "
                     f"'next_pixel'")
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(backbone, nnx.Param)))
  run.log(f"{entry.name}: training {entry.model_type} ({n_params / 1e3:.0f}k parameters) on "
       f"{entry.objective} for {entry.steps} steps of {entry.batch_size} images")
  history = training.fit(model, loss, data, steps=entry.steps, batch_size=entry.batch_size,
                         lr=entry.lr, seed=seed, name=f"train {entry.name}",
                         progress=run.log)
  tail = max(1, entry.steps // 10)
  summary = {"seconds": history["seconds"], "parameters": n_params,
             "final_loss": float(history["loss"][-tail:].mean()),
             "final_train_accuracy": float(history["accuracy"][-tail:].mean())}
  run.log(f"{entry.name}: trained in {summary['seconds']:.0f} s, loss {summary['final_loss']:.3f}, "
       f"train accuracy {summary['final_train_accuracy']:.1%}")
  meta = {"training": record, "result": summary, "objective": entry.objective}
  loading.save_pretrained(backbone, hf_config, path, preprocessor_config=preprocessor,
                          metadata=meta)
  run.save(f"train_{entry.name}", {"loss": history["loss"], "accuracy": history["accuracy"]},
           extra=meta)
  return path, meta
