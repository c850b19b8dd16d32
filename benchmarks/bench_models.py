"""Images/s of our jit-compiled ports vs the transformers torch models, same CPU, same batch.

  python -m benchmarks.bench_models                      # ViT-B/16, DINOv2-B, ConvNeXt-B, ImageGPT-S
  python -m benchmarks.bench_models --models=vit_b16 --batch=8 --iters=5
  python -m benchmarks.bench_models --models=dinov3_b16,convnextv2_b,bit_r50x1   # other families
  python -m benchmarks.bench_models --models=clip_b16,siglip_b16,mae_b,deit_b,beit_b,dinov2reg_b,swin_b
  python -m benchmarks.bench_models --models=convnext_xl       # the paper's ConvNeXt (~2.3x ConvNeXt-B)

Random weights from the configs (no download): the torch model is created from its config, and
our port gets the very same weights through `convert` + `load_params` (the first outputs are
checked against each other, so both sides do the same work). Both run float32 inference on the
same inputs; torch with `output_hidden_states=True` in inference mode, ours through
`jit_forward` (which returns every hidden state and every block output). torch gets
`--threads` threads (default: the CPUs this process may use); XLA's CPU client uses the same
cores through its own thread pool. Calls of the two alternate and the median time per call of
each is used (the machine may be shared: the 1-min load average is printed with each row). The
compile time of our first call is reported separately and excluded from the rate. Prints a line
per port ("ViT-B/16 batch 8: ours X img/s vs torch Y img/s = Zx") and, at the end, the table of
ratios (ours img/s / torch img/s).
"""
from __future__ import annotations

import os
import time

from absl import app, flags

_MODELS = flags.DEFINE_list("models", ["vit_b16", "dinov2_b", "convnext_b", "imagegpt_s"],
                            "which configs to run")
_BATCH = flags.DEFINE_integer("batch", 8, "images per forward pass")
_ITERS = flags.DEFINE_integer("iters", 5, "timed forward passes per framework (after a warm-up)")
_THREADS = flags.DEFINE_integer("threads", None, "torch threads (default: usable CPUs)")


def _configs():
  import transformers
  from repsim_jax.models.bit import RAGHU_CONFIGS
  return {
      "vit_b16": ("ViT-B/16", transformers.ViTConfig(), "ViTModel", 224),
      "dinov2_b": ("DINOv2-B", transformers.Dinov2Config(
          hidden_size=768, num_hidden_layers=12, num_attention_heads=12, patch_size=14,
          image_size=518), "Dinov2Model", 224),
      "convnext_b": ("ConvNeXt-B", transformers.ConvNextConfig(
          depths=[3, 3, 27, 3], hidden_sizes=[128, 256, 512, 1024]), "ConvNextModel", 224),
      "imagegpt_s": ("ImageGPT-S", transformers.ImageGPTConfig(
          n_embd=512, n_layer=24, n_head=8), "ImageGPTModel", None),
      # not in the default list: the other families the papers use
      "dinov3_b16": ("DINOv3 ViT-B/16", transformers.DINOv3ViTConfig(
          hidden_size=768, num_attention_heads=12, intermediate_size=3072,
          num_register_tokens=4), "DINOv3ViTModel", 224),
      "convnextv2_b": ("ConvNeXt V2-B", transformers.ConvNextV2Config(
          depths=[3, 3, 27, 3], hidden_sizes=[128, 256, 512, 1024]), "ConvNextV2Model", 224),
      "bit_r50x1": ("BiT-R50x1", transformers.BitConfig(**RAGHU_CONFIGS["resnet50x1"]),
                    "BitModel", 224),
      # the other encoders (issue 13), base sizes at 224
      "clip_b16": ("CLIP ViT-B/16", transformers.CLIPVisionConfig(patch_size=16),
                   "CLIPVisionModel", 224),
      "siglip_b16": ("SigLIP B/16", transformers.SiglipVisionConfig(), "SiglipVisionModel", 224),
      "mae_b": ("MAE-B (no masking)", transformers.ViTMAEConfig(), "ViTMAEModel", 224),
      "deit_b": ("DeiT-B (distilled)", transformers.DeiTConfig(), "DeiTModel", 224),
      "beit_b": ("BEiT-B", transformers.BeitConfig(use_relative_position_bias=True),
                 "BeitModel", 224),
      "dinov2reg_b": ("DINOv2-B + registers", transformers.Dinov2WithRegistersConfig(
          hidden_size=768, num_hidden_layers=12, num_attention_heads=12, patch_size=14,
          image_size=518, num_register_tokens=4), "Dinov2WithRegistersModel", 224),
      "swin_b": ("Swin-B", transformers.SwinConfig(
          embed_dim=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]), "SwinModel", 224),
      "convnext_xl": ("ConvNeXt-XL", transformers.ConvNextConfig(
          depths=[3, 3, 27, 3], hidden_sizes=[256, 512, 1024, 2048]), "ConvNextModel", 224),
  }


def _timed_pair(ours, theirs, iters: int) -> tuple[float, float]:
  """Seconds per call of each: the median over iters calls, after one untimed call of each.

  The two run interleaved (ours, torch, torch, ours, ...), so that a burst of load from other
  processes on a shared machine hits both alike; the median, because single calls get descheduled.
  """
  ours(), theirs()
  times: tuple[list[float], list[float]] = ([], [])
  for i in range(iters):
    for side, fn in ((0, ours), (1, theirs)) if i % 2 == 0 else ((1, theirs), (0, ours)):
      start = time.perf_counter()
      fn()
      times[side].append(time.perf_counter() - start)
  return tuple(sorted(t)[len(t) // 2] for t in times)


def bench_one(key: str, *, batch: int, iters: int) -> dict:
  import jax
  import jax.numpy as jnp
  import numpy as np
  import torch
  import transformers
  from flax import nnx

  from repsim_jax.models import jit_forward, load_params, registry

  label, config, cls_name, size = _configs()[key]
  config._attn_implementation = "eager"  # what our ports mirror (and what ImageGPT has)
  torch.manual_seed(0)
  torch_model = getattr(transformers, cls_name)(config).eval()
  fam = registry.family(config.model_type)
  state_dict = {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}
  params = fam.convert(state_dict, config)
  options = fam.build_options(params, config) if hasattr(fam, "build_options") else {}
  ours = nnx.eval_shape(lambda: fam.build(config, dtype=jnp.float32, rngs=nnx.Rngs(0), **options))
  load_params(ours, params)
  forward = jit_forward(ours)

  rng = np.random.default_rng(0)
  if size is None:  # ImageGPT: a full 32x32 image of cluster ids
    x_np = rng.integers(0, config.vocab_size - 1, (batch, config.n_positions))
    x_torch = torch.from_numpy(x_np)
  else:
    x_np = rng.standard_normal((batch, size, size, 3)).astype(np.float32)
    x_torch = torch.from_numpy(np.ascontiguousarray(x_np.transpose(0, 3, 1, 2)))
  x_jax = jax.device_put(x_np)
  # MAE: torch without masking, as our encoder (every patch, in order)
  from repsim_jax.models.torch_backend import reference_forward_kwargs
  torch_kwargs = reference_forward_kwargs(torch_model, batch)

  start = time.perf_counter()
  first = jax.block_until_ready(forward(x_jax))
  compile_s = time.perf_counter() - start
  with torch.inference_mode():
    ref = torch_model(x_torch, output_hidden_states=True, **torch_kwargs).last_hidden_state.numpy()
  if ref.ndim == 4:  # conv models: NCHW -> our NHWC
    ref = ref.transpose(0, 2, 3, 1)
  err = float(np.abs(np.asarray(first.last_hidden_state) - ref).max() / np.abs(ref).max())

  def torch_call():
    with torch.inference_mode():
      torch_model(x_torch, output_hidden_states=True, **torch_kwargs)

  load = os.getloadavg()[0]
  ours_s, torch_s = _timed_pair(lambda: jax.block_until_ready(forward(x_jax)), torch_call, iters)
  return dict(label=label, ours=batch / ours_s, torch=batch / torch_s, ratio=torch_s / ours_s,
              compile_s=compile_s, err=err, load=(load, os.getloadavg()[0]))


def main(argv) -> None:
  del argv
  import torch
  threads = _THREADS.value or len(os.sched_getaffinity(0))
  torch.set_num_threads(threads)
  import jax
  from repsim_jax.models.layers import compiler_options, conv_lowering
  platform = jax.default_backend()
  print(f"CPU: {len(os.sched_getaffinity(0))} usable cores, torch threads {threads}, "
        f"jax {jax.__version__} {jax.devices()[0].platform}, torch {torch.__version__}, "
        f"iters {_ITERS.value}, our XLA options {compiler_options(platform)}, "
        f"conv lowering {conv_lowering(platform)!r}")
  rows = []
  for key in _MODELS.value:
    r = bench_one(key, batch=_BATCH.value, iters=_ITERS.value)
    rows.append(r)
    print(f"{r['label']} batch {_BATCH.value}: ours {r['ours']:.2f} img/s vs torch {r['torch']:.2f} "
          f"img/s = {r['ratio']:.2f}x   (compile {r['compile_s']:.1f} s, last_hidden_state rel err "
          f"{r['err']:.1e}, 1-min load {r['load'][0]:.1f} -> {r['load'][1]:.1f})", flush=True)
  # The figure lives here: ours vs torch = (ours img/s) / (torch img/s), measured interleaved.
  print(f"\nbatch {_BATCH.value}, {threads} threads, median of {_ITERS.value} interleaved calls each")
  print("| port | ours img/s | torch img/s | ours vs torch | 1-min load |\n|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['label']} | {r['ours']:.2f} | {r['torch']:.2f} | {r['ratio']:.2f}x | "
          f"{r['load'][0]:.1f} -> {r['load'][1]:.1f} |")


if __name__ == "__main__":
  app.run(main)
