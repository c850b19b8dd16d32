"""Images/s of our jit-compiled ViT-family ports vs the transformers torch models on the same
CPU, same batch, same inputs (random weights; speed does not depend on their values).

  python benchmarks/bench_models_vit.py --batch=8 --repeats=5 [--models=vit_b16,dinov2_b]

Prints e.g. "vit_b16 batch 8: ours 41.2 img/s vs torch 35.0 img/s = 1.18x". Both run with all
cores (torch.get_num_threads(); XLA's CPU backend uses its own pool over all cores).
"""
from __future__ import annotations

import pathlib
import statistics
import tempfile
import time

from absl import app, flags

_BATCH = flags.DEFINE_integer("batch", 8, "images per call")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed calls (after one warm-up call)")
_MODELS = flags.DEFINE_list("models", ["vit_b16", "dinov2_b", "dinov3_b16"], "which models")


def configs():
  import transformers
  return {
      "vit_b16": lambda: transformers.ViTModel(transformers.ViTConfig()),
      "dinov2_b": lambda: transformers.Dinov2Model(transformers.Dinov2Config(image_size=224)),
      "dinov3_b16": lambda: transformers.DINOv3ViTModel(transformers.DINOv3ViTConfig(
          hidden_size=768, num_attention_heads=12, intermediate_size=3072,
          num_register_tokens=4)),
  }


def median_seconds(fn, repeats: int) -> float:
  fn()  # warm-up (jit compile for ours)
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def time_pair(torch_model, our_forward, images_nhwc, *, repeats: int) -> tuple[float, float]:
  """(our images/s, torch images/s) for one batch, median over `repeats` calls."""
  import jax
  import numpy as np
  import torch
  x_torch = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
  x_ours = jax.device_put(images_nhwc)

  def run_torch():
    with torch.no_grad():
      torch_model(x_torch)

  def run_ours():
    jax.block_until_ready(our_forward(x_ours).last_hidden_state)

  n = images_nhwc.shape[0]
  return n / median_seconds(run_ours, repeats), n / median_seconds(run_torch, repeats)


def main(argv):
  del argv
  import numpy as np
  import torch
  from repsim_jax.models import from_pretrained, jit_forward
  print(f"torch threads {torch.get_num_threads()}, batch {_BATCH.value}")
  for name in _MODELS.value:
    torch_model = configs()[name]().eval()
    with tempfile.TemporaryDirectory() as tmp:
      torch_model.save_pretrained(pathlib.Path(tmp))
      ours = jit_forward(from_pretrained(tmp, use_cache=False))
    size = torch_model.config.image_size
    images = np.random.default_rng(0).standard_normal((_BATCH.value, size, size, 3), np.float32)
    ours_ips, torch_ips = time_pair(torch_model, ours, images, repeats=_REPEATS.value)
    print(f"{name} batch {_BATCH.value}: ours {ours_ips:.1f} img/s vs torch {torch_ips:.1f} img/s "
          f"= {ours_ips / torch_ips:.2f}x", flush=True)


if __name__ == "__main__":
  app.run(main)
