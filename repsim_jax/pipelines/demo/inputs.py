"""The demo steps' representations: every block of the three models on the held-out world,
with the world's true factors and pixels of those images."""
from __future__ import annotations

import dataclasses

import ml_collections
import numpy as np

from repsim_jax.data.shapes_world import ShapesWorld, render_batch
from repsim_jax.extraction.representations import load_representations
from repsim_jax.pipelines.extract import extract_stores


@dataclasses.dataclass
class HeldOut:
  """The held-out images, their factors and every model's layers on them (rows aligned)."""
  ids: list[str]
  models: list[str]
  layers: dict[str, list[np.ndarray]]      # model -> L_m arrays [N, d_l]
  layer_names: dict[str, list[str]]
  representative: dict[str, list[int]]     # model -> (early, middle, late) layer indices
  images: np.ndarray                       # uint8 [N, H, W, 3]
  factors: dict[str, np.ndarray]           # `shapes_world` factor -> [N]
  classifiers: list[str]                   # models trained to classify shape
  next_pixel: list[str]                    # next-pixel models


def extract_held_out(config, workdir: str, checkpoints: dict[str, str]) -> HeldOut:
  """Extracts every block of the trained checkpoints on the held-out world (seed + 1) into
  `<workdir>/stores/<name>`, through the same extraction as the paper experiments, and reads
  them back."""
  w = config.world
  world = ShapesWorld(w.n_eval, seed=config.seed + 1, size=w.size)
  extraction = ml_collections.ConfigDict({
      "models": [ml_collections.ConfigDict(
          {"name": name, "checkpoint": path, "pooling": None, "num_prefix_tokens": None,
           "layers": None, "dtype": "float32", "tiny_random": False, "model_type": None})
                 for name, path in checkpoints.items()],
      "dataset": {"kind": "shapes_world", "n": w.n_eval, "seed": config.seed + 1,
                  "size": w.size},
      "n_images": None, "seed": config.seed, "batch_size": config.extract_batch_size,
      "device_batch": None, "chunk_rows": config.extract_batch_size * 8,
      "store_dtype": "float32", "skip_bad_images": False, "num_threads": 2, "distributed": False,
      "allow_numeric_path_change": config.allow_numeric_path_change,
  })
  reps = load_representations(world, world.ids, extract_stores(extraction, workdir))
  images, factors = render_batch([world.index(i) for i in reps.ids], seed=world.seed, size=w.size)
  return HeldOut(ids=reps.ids, models=reps.models, layers=reps.layers,
                 layer_names=reps.layer_names, representative=reps.representative, images=images,
                 factors=factors,
                 classifiers=[e.name for e in config.models if e.objective == "shape"],
                 next_pixel=[e.name for e in config.models if e.objective == "next_pixel"])
