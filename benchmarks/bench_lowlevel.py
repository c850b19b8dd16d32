"""Low-level features (Canny edge density, colour warmth, Sobel texture) for n images at 224²:
repsim_jax (JAX, vmapped, batched) vs a scikit-image loop over the same images.

Images are 224 x 224 crops of scikit-image's bundled photos (astronaut, coffee, chelsea, rocket,
camera, ...) with random offsets, flips and brightness, so Canny sees natural edge statistics. They
are generated batch by batch (generation is not timed) so 1e4 images never sit in memory at once.
The scikit-image loop can be timed on a subset (--skimage_n) and extrapolated; the printout says
so. Both report wall time and process CPU time (the machine may be shared).

  python benchmarks/bench_lowlevel.py                       # n = 1e4, the issue's target
  python benchmarks/bench_lowlevel.py --n 2048 --skimage_n 512   # busy machine
  python benchmarks/bench_lowlevel.py --cores 1             # one core for both (shared machine)
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from skimage import color, data, feature, filters

SOURCES = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "brick", "grass",
           "gravel", "page")


def make_batch(start: int, size: int, *, side: int = 224) -> np.ndarray:
  """Images start..start+size-1 (uint8 [size, side, side, 3]); image i depends only on i."""
  srcs = []
  for name in SOURCES:
    im = getattr(data, name)()
    if im.ndim == 2:
      im = np.repeat(im[..., None], 3, axis=-1)
    if min(im.shape[:2]) >= side:
      srcs.append(im[..., :3])
  out = np.empty((size, side, side, 3), np.uint8)
  for j in range(size):
    rng = np.random.default_rng(start + j)
    im = srcs[rng.integers(len(srcs))]
    y, x = rng.integers(0, im.shape[0] - side + 1), rng.integers(0, im.shape[1] - side + 1)
    crop = im[y:y + side, x:x + side].astype(np.float32)
    if rng.random() < 0.5:
      crop = crop[:, ::-1]
    out[j] = np.clip(crop * rng.uniform(0.7, 1.3), 0, 255).astype(np.uint8)
  return out


def skimage_features(images: np.ndarray) -> np.ndarray:
  """The reference loop: same definitions, one image at a time with scikit-image."""
  out = np.empty((len(images), 3))
  for i, im in enumerate(images):
    f = im.astype(np.float32) / 255
    grey = color.rgb2gray(f)
    out[i] = (feature.canny(grey).mean(), (f[..., 0] - f[..., 2]).mean(),
              filters.sobel(grey).std())
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=10_000, help="images for the JAX run")
  parser.add_argument("--skimage_n", type=int, default=None,
                      help="images for the scikit-image loop (default: all n)")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--cores", type=int, default=0,
                      help="pin the process (both loops) to this many cores before JAX starts; "
                           "XLA sizes its thread pool from the affinity mask (default: all)")
  args = parser.parse_args()
  if args.cores:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:args.cores])
  # after pinning: XLA reads the mask at start-up
  from repsim_jax.imaging import features as lowlevel
  n, bs = args.n, args.batch_size
  sk_n = min(args.skimage_n or n, n)

  warm = make_batch(0, bs)
  t = time.perf_counter()
  lowlevel.lowlevel_features(warm, batch_size=bs)  # the timed call: same static args, same cache
  compile_s = time.perf_counter() - t

  jax_wall = jax_cpu = sk_wall = sk_cpu = 0.0
  jax_vals, sk_vals = [], []
  for start in range(0, n, bs):
    batch = make_batch(start, min(bs, n - start))
    w, c = time.perf_counter(), time.process_time()
    vals = lowlevel.lowlevel_features(batch, batch_size=bs)
    jax_wall += time.perf_counter() - w
    jax_cpu += time.process_time() - c
    jax_vals.append(np.stack([vals[p] for p in lowlevel.PROPERTIES], 1))
    if start < sk_n:
      sub = batch[:sk_n - start]
      w, c = time.perf_counter(), time.process_time()
      sk_vals.append(skimage_features(sub))
      sk_wall += time.perf_counter() - w
      sk_cpu += time.process_time() - c
  jax_vals, sk_vals = np.concatenate(jax_vals), np.concatenate(sk_vals)
  diff = np.abs(jax_vals[:sk_n] - sk_vals)
  scale = n / sk_n
  note = "" if sk_n == n else f" (timed on {sk_n} images, x{scale:.1f} extrapolated)"
  print(f"agreement on {sk_n} images: |edge density diff| max {diff[:, 0].max():.2e}, "
        f"warmth max {diff[:, 1].max():.2e}, texture max {diff[:, 2].max():.2e}")
  print(f"{len(os.sched_getaffinity(0))} cores, batches of {bs}")
  print(f"lowlevel {n} x 224² wall: JAX {jax_wall:.1f} s (+{compile_s:.1f} s compile) vs skimage "
        f"loop {sk_wall * scale:.1f} s{note} = {sk_wall * scale / jax_wall:.1f}x")
  print(f"lowlevel {n} x 224² CPU:  JAX {jax_cpu:.1f} s vs skimage loop {sk_cpu * scale:.1f} s "
        f"= {sk_cpu * scale / jax_cpu:.1f}x  (per image: {1e3 * jax_wall / n:.2f} ms vs "
        f"{1e3 * sk_wall / sk_n:.2f} ms wall)")


if __name__ == "__main__":
  main()
