"""Minibatch CKA matrix (repsim_jax.cka_matrix) vs a per-pair torch loop, and peak memory vs N.

  PYTHONPATH=$PWD python benchmarks/bench_cka.py                  # 24 x 24, 10240 x 768, b=1024
  PYTHONPATH=$PWD python benchmarks/bench_cka.py --torch_pairs=576 # time every torch pair

Anchor: the loop existing CKA libraries run (torch_cka, anatome-style): one (layer_i, layer_j)
pair at a time, per batch both Gram matrices recomputed and the unbiased HSIC (Song et al. 2012)
of (K, L), (K, K), (L, L) evaluated in torch float32, summed over batches. Written here with
sum(K * L) instead of trace(K @ L) (a faster anchor than the libraries' own code). The anchor's
cost is the same for every pair, so by default it is timed on the first `--torch_pairs` pairs and
scaled to the full matrix (printed as such); its values are compared on those pairs.

Memory: cka_matrix reads rows batch by batch from array-likes; the memory part feeds it lazy
synthetic layers (rows generated on access) at several N in fresh subprocesses and prints the
peak resident memory of each, which stays flat in N.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np


class SyntheticLayer:
  """Lazy [n, d] float32 layer: rows of a latent z mixed by a layer-dependent matrix plus noise.

  Neighbouring layers share most of their mixing matrix, so CKA falls off smoothly with depth as
  in a real network. Rows are generated on access from per-block seeds (1024-row blocks), so the
  same row always has the same value and nothing of size n is held.
  """
  block = 1024

  def __init__(self, n: int, d: int, layer: int, *, latent: int = 64, seed: int = 0):
    self.shape, self.dtype, self.ndim = (n, d), np.dtype(np.float32), 2
    rng = np.random.default_rng([seed, 10_000])
    base = rng.normal(size=(latent, d))
    drift = rng.normal(size=(latent, d))
    t = layer / 24.0
    self.mix = (np.cos(t * np.pi / 2) * base + np.sin(t * np.pi / 2) * drift) / np.sqrt(latent)
    self.layer, self.seed, self.noise = layer, seed, 0.3 + 0.7 * t

  def _block(self, k: int) -> np.ndarray:
    z = np.random.default_rng([self.seed, k]).normal(size=(self.block, self.mix.shape[0]))
    eps = np.random.default_rng([self.seed, k, self.layer + 1]).normal(
        size=(self.block, self.shape[1]))
    return np.maximum(z @ self.mix + self.noise * eps, 0.0).astype(np.float32)  # ReLU-like

  def __getitem__(self, rows):
    if not isinstance(rows, slice):
      raise TypeError("SyntheticLayer supports row slices only")
    lo, hi, _ = rows.indices(self.shape[0])
    blocks = [self._block(k) for k in range(lo // self.block, (hi - 1) // self.block + 1)]
    out = np.concatenate(blocks)
    start = (lo // self.block) * self.block
    return out[lo - start:hi - start]


def torch_per_pair(layers_a, layers_b, pairs, batch_size, *, device="cpu"):
  """The per-pair loop: CKA for each (i, j) in `pairs`, recomputing Grams per pair and batch
  (on `device`: the accelerator suite runs it on the GPU)."""
  import torch

  def hsic1(k, l):
    m = k.shape[0]
    k, l = k.clone(), l.clone()
    k.fill_diagonal_(0)
    l.fill_diagonal_(0)
    ones = torch.ones(m, dtype=k.dtype, device=k.device)
    value = (torch.sum(k * l) + k.sum() * l.sum() / ((m - 1) * (m - 2))
             - 2.0 / (m - 2) * (ones @ k) @ (l @ ones))
    return float(value) / (m * (m - 3))

  out = {}
  n = layers_a[0].shape[0]
  with torch.no_grad():
    for i, j in pairs:
      kl = kk = ll = 0.0
      for t in range(n // batch_size):
        x = torch.from_numpy(layers_a[i][t * batch_size:(t + 1) * batch_size]).to(device)
        y = torch.from_numpy(layers_b[j][t * batch_size:(t + 1) * batch_size]).to(device)
        k, l = x @ x.T, y @ y.T
        kl += hsic1(k, l)
        kk += hsic1(k, k)
        ll += hsic1(l, l)
      out[(i, j)] = kl / np.sqrt(kk * ll)
  return out


def peak_memory_child(n: int, layers: int, width: int, batch_size: int) -> None:
  from repsim_jax.metrics.kernel_alignment import cka_matrix
  la = [SyntheticLayer(n, width, l) for l in range(layers)]
  m = cka_matrix(la, la, batch_size=batch_size)
  assert np.all(np.isfinite(m))
  # VmHWM is this process's own high-water mark; getrusage's ru_maxrss would carry over the
  # parent's RSS across fork + exec.
  with open("/proc/self/status") as f:
    peak_mb = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
  print(json.dumps({"n": n, "peak_rss_mb": peak_mb}))


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--layers", type=int, default=24)
  p.add_argument("--n", type=int, default=10240)
  p.add_argument("--width", type=int, default=768)
  p.add_argument("--batch_size", type=int, default=1024)
  p.add_argument("--torch_pairs", type=int, default=24, help="pairs timed in the torch loop")
  p.add_argument("--memory_ns", default="2048,8192,20480")
  p.add_argument("--memory_layers", type=int, default=4)
  p.add_argument("--memory_only", action="store_true", help="skip the timing part")
  p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    return peak_memory_child(args.child, args.memory_layers, args.width, args.batch_size)

  if not args.memory_only:
    timing(args)
  memory(args)


def timing(args) -> None:
  import jax
  import torch
  from repsim_jax.metrics.kernel_alignment import cka_matrix

  print(f"jax {jax.__version__} on {jax.devices()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); this machine is shared with other jobs, "
        f"timings are noisy")
  la = [SyntheticLayer(args.n, args.width, l)[0:args.n] for l in range(args.layers)]
  L, b = args.layers, args.batch_size

  # Warm-up on two batches compiles the per-step kernel (same shapes as the timed run).
  warm = [x[:min(args.n, 2 * b)] for x in la]
  cka_matrix(warm, warm, batch_size=b)
  t0 = time.perf_counter()
  ours = cka_matrix(la, la, batch_size=b)
  t_ours = time.perf_counter() - t0

  pairs = [(i, j) for i in range(L) for j in range(L)][:args.torch_pairs]
  t0 = time.perf_counter()
  ref = torch_per_pair(la, la, pairs, b)
  t_pairs = time.perf_counter() - t0
  t_torch = t_pairs * (L * L) / len(pairs)
  diff = max(abs(ours[i, j] - v) for (i, j), v in ref.items())
  scaled = "" if len(pairs) == L * L else f" (timed {len(pairs)} pairs: {t_pairs:.1f} s, scaled)"
  print(f"minibatch CKA {L}x{L}, N={args.n}, d={args.width}, batch {b}: "
        f"{t_ours:.1f} s vs torch per-pair loop {t_torch:.1f} s{scaled} = {t_torch / t_ours:.1f}x")
  print(f"max |repsim_jax - torch| over {len(pairs)} pairs: {diff:.2e}; "
        f"CKA range [{ours.min():.3f}, {ours.max():.3f}]")
  print(f"work per batch: {L} Gram matrices (each layer once) vs {2 * L * L} in the per-pair "
        f"loop")


def memory(args) -> None:
  b, rows = args.batch_size, []
  for n in [int(v) for v in args.memory_ns.split(",")]:
    out = subprocess.run([sys.executable, __file__, f"--child={n}",
                          f"--memory_layers={args.memory_layers}", f"--width={args.width}",
                          f"--batch_size={b}"], capture_output=True, text=True, check=True)
    rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
  print(f"peak RSS, {args.memory_layers} layers x {args.width}, batch {b}, lazy inputs: "
        + ", ".join(f"N={r['n']}: {r['peak_rss_mb']:.0f} MB" for r in rows))


if __name__ == "__main__":
  main()
