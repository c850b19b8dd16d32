r"""Information-imbalance benchmarks against DADApy, measured in one run on this machine.

  python benchmarks/bench_imbalance.py --case=all     # pair, matrix, gflops, scaling, large
  python benchmarks/bench_imbalance.py --case=matrix --n=10000 --layers=24 --d=1024

DADApy runs in its own venv (tests/reference/install_dadapy.sh), used at its best: neighbour
lists once per layer (compute_nn_distances, maxk = N - 1: exact), then one rank pass per ordered
pair. Where the full DADApy run would take too long, a measured subset of layers and pairs is
extrapolated (said in the output line). Each line prints a ratio against its anchor.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

import repsim_jax
from repsim_jax.metrics import imbalance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DADAPY_PYTHON = os.path.join(os.environ.get(
    "REPSIM_DADAPY_VENV", os.path.expanduser("~/.cache/repsim_jax/dadapy-venv")), "bin", "python")


def activations(n, d, n_layers, seed=0):
  """Layers of a synthetic network: a shared 32-d latent, mixed and rectified, plus noise."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, 32)).astype(np.float32)
  out = []
  for _ in range(n_layers):
    h = np.maximum(z @ rng.normal(size=(32, d)).astype(np.float32), 0)
    out.append(h + 0.5 * rng.normal(size=(n, d)).astype(np.float32))
    z = z + 0.3 * rng.normal(size=z.shape).astype(np.float32)
  return out


def dadapy(layers, pairs, k=1):
  with tempfile.TemporaryDirectory() as tmp:
    np.savez(os.path.join(tmp, "d.npz"), **{f"L{i}": x for i, x in enumerate(layers)})
    out = subprocess.run(
        [DADAPY_PYTHON, os.path.join(ROOT, "benchmarks", "dadapy_timing.py"),
         os.path.join(tmp, "d.npz"),
         json.dumps({"layers": len(layers), "pairs": pairs, "k": k})],
        capture_output=True, text=True, check=True)
  return json.loads(out.stdout)


def timed(fn):
  t = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t


def warm(n, d):
  """Compile the kernels for this shape outside the timed region (as any long run amortises)."""
  small = activations(n, d, 2, seed=99)
  repsim_jax.information_imbalance_pair(small[0], small[1])


def case_pair(args):
  a, b = activations(args.n, args.d_pair, 2)
  warm(args.n, args.d_pair)
  (ab, ba), t_ours = timed(lambda: repsim_jax.information_imbalance_pair(a, b))
  ref = dadapy([a, b], [[0, 1], [1, 0]])
  t_ref = sum(ref["t_layers"]) + sum(ref["t_pairs"])
  diff = max(abs(ab - ref["values"][0]), abs(ba - ref["values"][1]))
  print(f"II one pair both directions N={args.n} d={args.d_pair}: {t_ours:.1f} s vs DADApy "
        f"exact {t_ref:.1f} s = {t_ref / t_ours:.1f}x  (max |dDelta| {diff:.1e}; one rank = "
        f"{2 / args.n ** 2:.0e})", flush=True)


def case_matrix(args):
  layers = activations(args.n, args.d, args.layers)
  warm(args.n, args.d)
  m, t_ours = timed(lambda: repsim_jax.information_imbalance_matrix(layers))
  sub_layers, sub_pairs = min(args.dadapy_layers, args.layers), [[0, 1], [1, 0], [0, 0], [1, 1]]
  ref = dadapy(layers[:sub_layers], sub_pairs)
  t_layer, t_pair = np.mean(ref["t_layers"]), np.mean(ref["t_pairs"])
  t_ref = args.layers * t_layer + args.layers ** 2 * t_pair
  diff = np.max(np.abs(np.array(ref["values"]) - m[[0, 1, 0, 1], [1, 0, 0, 1]]))
  print(f"II {args.layers}x{args.layers} layers N={args.n} d={args.d}: {t_ours:.1f} s vs DADApy "
        f"best {t_ref:.0f} s = {t_ref / t_ours:.0f}x  (DADApy extrapolated from {sub_layers} "
        f"layers at {t_layer:.1f} s + {len(sub_pairs)} rank passes at {t_pair:.2f} s; "
        f"max |dDelta| on those {diff:.1e})", flush=True)


def case_gflops(args):
  n, d = args.n, args.d
  x = activations(n, d, 1)[0]
  warm(n, d)
  _, t_ours = timed(lambda: imbalance.information_imbalance_matrix([x], [x]))
  flops = 2.0 * n * n * d  # one fused pass: the [N, d] x [d, N] product, in row blocks
  xj = jnp.asarray(x)
  mm = jax.jit(lambda a: jnp.matmul(a, a.T, precision=jax.lax.Precision.HIGHEST))
  mm(xj).block_until_ready()
  _, t_mm = timed(lambda: mm(xj).block_until_ready())
  _, t_np = timed(lambda: x @ x.T)
  ours, jx, npf = flops / t_ours / 1e9, flops / t_mm / 1e9, flops / t_np / 1e9
  print(f"II distance work N={n} d={d}: {ours:.0f} GFLOP/s = {100 * ours / jx:.0f}% of plain "
        f"float32 matmul in XLA ({jx:.0f} GFLOP/s), {100 * ours / npf:.0f}% of numpy/OpenBLAS "
        f"({npf:.0f} GFLOP/s); whole II call incl. top-k, rank counting, float64 re-ranking",
        flush=True)


def case_scaling(args):
  sizes = [2500, 5000, 10000, 20000]
  times = []
  for n in sizes:
    layers = activations(n, args.d_pair, 2)
    warm(n, args.d_pair)
    times.append(timed(lambda: repsim_jax.information_imbalance_pair(*layers))[1])
  slope = np.polyfit(np.log(sizes), np.log(times), 1)[0]
  pts = ", ".join(f"{n}: {t:.2f}s" for n, t in zip(sizes, times))
  print(f"II pair time vs N (d={args.d_pair}): {pts}; fitted exponent {slope:.2f} "
        f"(2 expected)", flush=True)


def case_large(args):
  """N = 1e5, d = 1536 one pair, in a subprocess so that its peak RSS is its own."""
  code = (f"import sys; sys.path.insert(0, {ROOT!r}); import time, resource; "
          "from benchmarks.bench_imbalance import activations; import repsim_jax; "
          f"a, b = activations({args.n_large}, 1536, 2); t = time.perf_counter(); "
          "v = repsim_jax.information_imbalance_pair(a, b); "
          "print(v, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  (vals, secs, rss_kb) = out.stdout.strip().rsplit(" ", 2)[0], *out.stdout.split()[-2:]
  rss_gb = int(rss_kb) / 2 ** 20
  dense = 16 * args.n_large ** 2 / 1e9
  print(f"II one pair both directions N={args.n_large} d=1536: {float(secs):.0f} s, peak RSS "
        f"{rss_gb:.1f} GB (inputs alone {2 * args.n_large * 1536 * 4 / 2 ** 30:.1f} GB; "
        f"DADApy's N x N distances + indices would need {dense:.0f} GB = "
        f"{dense / rss_gb:.0f}x more); Delta = {vals}", flush=True)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--case", default="all",
                 choices=["all", "pair", "matrix", "gflops", "scaling", "large"])
  p.add_argument("--n", type=int, default=10000)
  p.add_argument("--d", type=int, default=1024)
  p.add_argument("--d_pair", type=int, default=768)
  p.add_argument("--layers", type=int, default=24)
  p.add_argument("--dadapy_layers", type=int, default=2)
  p.add_argument("--n_large", type=int, default=100000)
  args = p.parse_args()
  print(f"devices: {jax.devices()}, cores: {os.cpu_count()}", flush=True)
  cases = ["pair", "matrix", "gflops", "scaling", "large"] if args.case == "all" else [args.case]
  for c in cases:
    globals()[f"case_{c}"](args)


if __name__ == "__main__":
  main()
