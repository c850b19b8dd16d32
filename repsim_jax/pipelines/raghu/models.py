"""What the Raghu et al. (2021) steps run on: the loaded models and the config's images.

Images are read once per model and analysis, preprocessed with the checkpoint's own processor,
and pushed through one jit-compiled forward pass per model (`jit_forward(sublayers=True)`; the
last batch is padded so every batch reuses the same program). Only what an analysis needs
(pooled vectors, a few token maps, streamed sums) is kept on the host, so memory is bounded by
the per-analysis `n_images`, not by the dataset.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx

from repsim_jax import data as data_lib
from repsim_jax.extraction.extract import open_model
from repsim_jax.models.outputs import block_names
from repsim_jax.progress import Progress
from repsim_jax.results import fingerprint

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

  def abstract_blocks(self) -> dict[str, jax.ShapeDtypeStruct]:
    """Shapes of every block output at the compiled batch size (nothing runs)."""
    return jax.eval_shape(self.forward, jax.ShapeDtypeStruct((self.batch_size, *self.input_shape),
                                                             np.float32)).blocks


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
  from repsim_jax.models import loading
  models = []
  for entry in config.models:
    if (entry.get("backend") or "jax") != "jax":
      raise ValueError(f"raghu: model {entry.name!r} has backend {entry.backend!r}; the Raghu et "
                       f"al. analyses need our JAX ports (gradients, sublayers, attention values)")
    opened = open_model(entry, workdir)
    probe = opened.preprocess(np.zeros((64, 64, 3), np.uint8))
    forward = loading.jit_forward(opened.module, sublayers=True)
    abstract = jax.eval_shape(forward, jax.ShapeDtypeStruct((config.batch_size, *probe.shape),
                                                            probe.dtype))
    kind = "vit" if any(n.startswith("block_") for n in abstract.blocks) else "cnn"
    models.append(Model(
        name=entry.name, kind=kind, module=opened.module, forward=forward,
        preprocess=opened.preprocess, input_shape=tuple(probe.shape),
        num_prefix_tokens=opened.num_prefix_tokens if kind == "vit" else 0,
        patch_size=int(opened.hf_config.get("patch_size", 1)) if kind == "vit" else 1,
        fingerprint=opened.fingerprint, layers=ordered_layers(abstract.blocks, sublayers=True),
        batch_size=config.batch_size))
    logging.info("raghu: loaded %s (%s, %d layers incl. sublayers) from %s", entry.name, kind,
                 len(models[-1].layers), opened.path)
  return models


class ImageBatches:
  """The config's image source, seeded nested samples of it, and batches for one model."""

  def __init__(self, config):
    self.source = data_lib.from_config(config.dataset)
    self.config = config

  def ids(self, n: int | None) -> list[str]:
    n = n or self.config.n_images
    if n > len(self.source.ids):
      logging.warning("raghu: %d images asked for, the source has %d; using all", n,
                      len(self.source.ids))
      n = len(self.source.ids)
    return data_lib.sample_ids(self.source.ids, n, seed=self.config.seed)

  def sample(self, n: int | None) -> tuple[list[str], dict[str, str]]:
    """(`ids(n)`, {"image_ids": their fingerprint}): a step's images and the input its results
    record."""
    ids = self.ids(n)
    return ids, {"image_ids": fingerprint(np.asarray(ids))}

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


@dataclasses.dataclass
class Inputs:
  """The "representations" of the Raghu steps: the models and the images they run on."""
  models: list[Model]
  images: ImageBatches
