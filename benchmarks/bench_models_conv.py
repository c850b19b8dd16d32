"""Images/s of our jit-compiled convolutional ports vs the transformers torch models on the same
CPU, same batch, same inputs (random weights; speed does not depend on their values).

  python benchmarks/bench_models_conv.py --batch=8 --repeats=5 [--conv_models=convnext_b,bit_r50x1]

Prints e.g. "convnext_b batch 8: ours 20.1 img/s vs torch 25.0 img/s = 0.80x". Timing and
flags as benchmarks/bench_models_vit.py (shared helpers imported from there).
"""
from __future__ import annotations

import pathlib
import tempfile

from absl import app, flags

# --batch and --repeats (and the timing) come from the ViT benchmark; its --models is unused here
from bench_models_vit import _BATCH, _REPEATS, time_pair

_MODELS = flags.DEFINE_list("conv_models", ["convnext_b", "bit_r50x1"], "which models")
_SIZE = flags.DEFINE_integer("size", 224, "image side")


def configs():
  import transformers
  from repsim_jax.models.bit import RAGHU_CONFIGS
  return {
      # facebook/convnext-base-224
      "convnext_b": lambda: transformers.ConvNextModel(transformers.ConvNextConfig(
          depths=[3, 3, 27, 3], hidden_sizes=[128, 256, 512, 1024])),
      "convnextv2_b": lambda: transformers.ConvNextV2Model(transformers.ConvNextV2Config(
          depths=[3, 3, 27, 3], hidden_sizes=[128, 256, 512, 1024])),
      "bit_r50x1": lambda: transformers.BitModel(
          transformers.BitConfig(**RAGHU_CONFIGS["resnet50x1"])),
  }


def main(argv):
  del argv
  import numpy as np
  import torch
  from repsim_jax.models import from_pretrained, jit_forward
  print(f"torch threads {torch.get_num_threads()}, batch {_BATCH.value}, {_SIZE.value}px")
  for name in _MODELS.value:
    torch_model = configs()[name]().eval()
    with tempfile.TemporaryDirectory() as tmp:
      torch_model.save_pretrained(pathlib.Path(tmp))
      ours = jit_forward(from_pretrained(tmp, use_cache=False))
    images = np.random.default_rng(0).standard_normal(
        (_BATCH.value, _SIZE.value, _SIZE.value, 3), np.float32)
    ours_ips, torch_ips = time_pair(torch_model, ours, images, repeats=_REPEATS.value)
    print(f"{name} batch {_BATCH.value}: ours {ours_ips:.1f} img/s vs torch {torch_ips:.1f} img/s "
          f"= {ours_ips / torch_ips:.2f}x", flush=True)


if __name__ == "__main__":
  app.run(main)
