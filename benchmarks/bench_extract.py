r"""Extraction throughput vs a plain transformers/torch loop, and peak host memory vs N.

  python benchmarks/bench_extract.py                  # both parts, CPU-sized defaults
  python benchmarks/bench_extract.py --part=throughput --n=512 --batch_size=64   # GPU
  python benchmarks/bench_extract.py --part=rss --rss_n=20000

throughput: ViT-B/16 (transformers' default ViTConfig, random weights) on generated images,
  every block mean-pooled over patch tokens and written to disk. Ours:
  `repsim_jax.pipelines.extract.run`
  (threaded decode + the checkpoint's image processor, jit step, ActivationStore); anchor: a
  DataLoader over the same images and processor, `output_hidden_states=True`, the same pooling
  in torch, np.save per layer. Ours is reported cold (load, convert, compile included) and warm
  (a second workdir: compiled step reused).
rss: peak resident memory of a process extracting N images from a 24-layer model (a small
  random ViT so that N = 20000 runs on a CPU), for two N and two chunk sizes: the store streams
  chunks to disk, so the peak follows chunk_rows, not N.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_enum("part", "all", ["all", "throughput", "rss"], "Which benchmark.")
flags.DEFINE_integer("n", 128, "Images for the throughput benchmark.")
flags.DEFINE_integer("batch_size", 32, "Batch size (both loops).")
flags.DEFINE_integer("threads", 4, "Loader threads (ours) / DataLoader workers (torch).")
flags.DEFINE_integer("rss_n", 20000, "Images for the large RSS run (the small one uses N/10).")
flags.DEFINE_string("workdir", None, "Scratch directory (default: a temp dir).")
FLAGS = flags.FLAGS


def _vit_b16_checkpoint(path: str) -> str:
  import torch
  import transformers
  if not os.path.exists(os.path.join(path, "config.json")):
    torch.manual_seed(0)
    transformers.ViTModel(transformers.ViTConfig(), add_pooling_layer=False).save_pretrained(path)
    transformers.ViTImageProcessor().save_pretrained(path)
  return path


def _config(checkpoint: str, n: int, batch_size: int, threads: int):
  from configs.common import base, model
  config = base([model("vit_b16", checkpoint)],
                {"kind": "generated", "n": n, "size": (256, 320), "num_classes": 10, "seed": 0})
  config.n_images, config.batch_size, config.chunk_rows = n, batch_size, 4 * batch_size
  config.num_threads = threads
  return config


def bench_ours(checkpoint: str, root: str) -> tuple[float, float]:
  from repsim_jax.pipelines.extract import run
  config = _config(checkpoint, FLAGS.n, FLAGS.batch_size, FLAGS.threads)
  start = time.perf_counter()
  run(config, os.path.join(root, "ours_cold"))
  cold = time.perf_counter() - start
  start = time.perf_counter()
  run(config, os.path.join(root, "ours_warm"))
  return cold, time.perf_counter() - start


def bench_torch(checkpoint: str, root: str) -> float:
  import numpy as np
  import torch
  import transformers
  from repsim_jax.data.generated import GeneratedSource
  from repsim_jax.data.sampler import sample_ids

  source = GeneratedSource(FLAGS.n, size=(256, 320), num_classes=10, seed=0)
  ids = sample_ids(source.ids, FLAGS.n, seed=0)
  processor = transformers.AutoImageProcessor.from_pretrained(checkpoint)

  class Images(torch.utils.data.Dataset):
    def __len__(self):
      return len(ids)

    def __getitem__(self, i):
      image = source.load(ids[i]).image
      return processor(images=image, return_tensors="pt")["pixel_values"][0]

  start = time.perf_counter()
  model = transformers.ViTModel.from_pretrained(checkpoint, add_pooling_layer=False).eval()
  loader = torch.utils.data.DataLoader(Images(), batch_size=FLAGS.batch_size,
                                       num_workers=FLAGS.threads)
  pooled = None
  with torch.no_grad():
    for pixel_values in loader:
      hidden = model(pixel_values=pixel_values, output_hidden_states=True).hidden_states
      rows = [h[:, 1:].mean(1).numpy() for h in hidden]
      pooled = rows if pooled is None else [np.concatenate([a, b]) for a, b in zip(pooled, rows)]
  os.makedirs(os.path.join(root, "torch"), exist_ok=True)
  for i, layer in enumerate(pooled):
    np.save(os.path.join(root, "torch", f"layer_{i:02d}.npy"), layer)
  return time.perf_counter() - start


_RSS_CHILD = r"""
import json, os, sys, time
sys.path.insert(0, {repo!r})
import numpy as np
from repsim_jax.data.generated import GeneratedSource
from repsim_jax.data.pipeline import resize_normalize
from repsim_jax.extraction.extract import extract
from repsim_jax.models import from_pretrained
from repsim_jax.extraction.store import ActivationStore
model = from_pretrained({ckpt!r})
source = GeneratedSource({n}, size=(16, 16))
store = ActivationStore.open_or_create({out!r}, config={{"model": "vit24"}}, ids=source.ids,
                                       chunk_rows={chunk_rows})
start = time.perf_counter()
extract(model, source, resize_normalize(size=(16, 16)), store, batch_size=256, num_threads=2)
seconds = time.perf_counter() - start
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
disk = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk({out!r}) for f in fs)
print(json.dumps({{"n": {n}, "chunk_rows": {chunk_rows}, "peak_rss_mb": int(hwm) / 1024,
                  "store_mb": disk / 2**20, "layers": len(store.layer_names), "seconds": seconds}}))
"""


def bench_rss(root: str) -> list[dict]:
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  ckpt = os.path.join(root, "vit24")
  if not os.path.exists(os.path.join(ckpt, "config.json")):  # written here: the child skips torch
    import torch
    import transformers
    torch.manual_seed(0)
    transformers.ViTModel(transformers.ViTConfig(
        hidden_size=128, num_hidden_layers=24, num_attention_heads=2, intermediate_size=256,
        image_size=16, patch_size=8), add_pooling_layer=False).save_pretrained(ckpt)
  out = []
  for n, chunk_rows in ((FLAGS.rss_n // 10, 1024), (FLAGS.rss_n, 1024), (FLAGS.rss_n, 4096)):
    code = _RSS_CHILD.format(repo=repo, ckpt=ckpt, n=n, chunk_rows=chunk_rows,
                             out=os.path.join(root, f"rss_{n}_{chunk_rows}"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode:
      raise RuntimeError(result.stderr[-3000:])
    out.append(json.loads(result.stdout.strip().splitlines()[-1]))
  return out


def main(argv):
  del argv
  root = FLAGS.workdir or tempfile.mkdtemp(prefix="bench_extract_")
  if FLAGS.part in ("all", "throughput"):
    checkpoint = _vit_b16_checkpoint(os.path.join(root, "vit_b16"))
    torch_s = bench_torch(checkpoint, root)
    cold_s, warm_s = bench_ours(checkpoint, root)
    n = FLAGS.n
    print(f"extract ViT-B/16 N={n} batch={FLAGS.batch_size}, 13 layers pooled to disk: "
          f"ours warm {warm_s:.1f} s ({n / warm_s:.1f} img/s), cold {cold_s:.1f} s "
          f"({n / cold_s:.1f} img/s) vs transformers torch loop {torch_s:.1f} s "
          f"({n / torch_s:.1f} img/s) = {torch_s / warm_s:.2f}x warm, {torch_s / cold_s:.2f}x cold")
  if FLAGS.part in ("all", "rss"):
    runs = bench_rss(root)
    for r in runs:
      print(f"peak RSS, 24-layer ViT (d=128), N={r['n']}, chunk_rows={r['chunk_rows']}: "
            f"{r['peak_rss_mb']:.0f} MB (store on disk {r['store_mb']:.0f} MB, {r['layers']} "
            f"layers, {r['seconds']:.0f} s)")
    small, large = runs[0], runs[1]
    print(f"peak RSS N={large['n']} vs N={small['n']}: {large['peak_rss_mb']:.0f} MB vs "
          f"{small['peak_rss_mb']:.0f} MB = {large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x "
          f"for {large['n'] / small['n']:.0f}x the rows")


if __name__ == "__main__":
  app.run(main)
