"""The geometric measures (RSA, shape metrics, Procrustes variants, Bures, predictivity) at scale,
against their reference implementations.

  PYTHONPATH=$PWD python benchmarks/bench_measures.py --quick        # minutes: N=300, 2 layers
  PYTHONPATH=$PWD python benchmarks/bench_measures.py                # the full table (hours on
      # a CPU): two 12-layer models, d = 768, N = 1e4; N = 1e5 for the streamed RSA comparators;
      # each reference run at N = 1000, 2000, 4000, ... up to --ref_max_n in a subprocess with
      # --ref_timeout seconds and --ref_mem_gb of address space, until it fails.

Per measure it prints: the [L, L] matrix time (first call: compilation included) and the peak
resident memory during it above the resident set before it (which holds the inputs); the
reference's largest N that ran and the first N that failed (time or memory); at that largest N, one pair's time from features for the
reference and for us (`measure(name)(x, y)`, warm) and their ratio, measured in the same run.

References: rsatoolbox 0.3.2 (calc_rdm + compare) for RSA; for the others the numpy
transcriptions of netrep / ReSi / diffscore / GULP used as references by tests/measures/
(netrep and ReSi are not installable from PyPI).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource as os_resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests", "measures")

# measure name -> reference key (see `reference_pair`)
MEASURES = {
    "rsa-rdm=correlation-compare=pearson-score": "rsatoolbox:correlation:corr",
    "rsa-rdm=squared_euclidean-compare=cosine_cov-score": "rsatoolbox:euclidean:cosine_cov",
    "rsa-rdm=correlation-compare=spearman-score": "rsatoolbox:correlation:spearman",
    "rsa-rdm=correlation-compare=tau_b-score": "rsatoolbox:correlation:tau-b",
    "shape_metric-alpha=0.5-distance=angular": "test_shape:netrep_linear",
    "permutation_metric-distance=angular": "test_shape:netrep_permutation",
    "procrustes-distance=euclidean": "test_shape:resi_centred_normalized",
    "bures-distance": "test_shape:resi_size_and_shape",
    "aligned_cossim-score": "test_shape:resi_aligned_cossim",
    "linear_regression-r2-cv=5folds-score": "test_predictivity:diffscore_r2",
    "ridge-lambda=1-r2-cv=5folds-score": "test_predictivity:diffscore_r2",
    "gulp-lambda=0-distance": "test_predictivity:resi_gulp",
    "cca-squared_correlation-score": "test_predictivity:textbook_cca_squared",
}
STREAMED = [m for m in MEASURES if any(f"compare={c}-" in m for c in
                                       ("pearson", "cosine", "cosine_cov", "corr_cov"))]


def layers(n, d, count, seed):
  """`count` related float32 layers [n, d]: a shared latent mixed per layer, plus noise."""
  rng = np.random.default_rng(seed)
  z = np.random.default_rng(0).normal(size=(n, 16))
  base, drift = rng.normal(size=(16, d)), rng.normal(size=(16, d))
  out = []
  for layer in range(count):
    t = layer / max(count - 1, 1)
    mix = np.cos(t) * base + np.sin(t) * drift
    out.append(np.maximum(z @ mix + (0.3 + t) * rng.normal(size=(n, d)), 0).astype(np.float32))
  return out


def _load(module):
  spec = importlib.util.spec_from_file_location(module, os.path.join(TESTS, f"{module}.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def reference_pair(key, name):
  """(x, y) -> one pair's value by the reference implementation, from features (imports done
  here, outside the timed call)."""
  if key.startswith("rsatoolbox"):
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm, compare
    _, rdm_method, comparator = key.split(":")

    def rsatoolbox_pair(x, y):
      ra, rb = calc_rdm(Dataset(x), method=rdm_method), calc_rdm(Dataset(y), method=rdm_method)
      return float(compare(ra, rb, method=comparator)[0, 0])
    return rsatoolbox_pair
  module, func = key.split(":")
  f = getattr(_load(module), func)
  extra = {"netrep_linear": (0.5, "angular"), "netrep_permutation": ("angular",),
           "diffscore_r2": (5, 1.0 if name.startswith("ridge") else 0.0),
           "resi_gulp": (0.0,)}.get(func, ())
  return lambda x, y: f(x, y, *extra)


def run_reference_child(args):
  limit = int(args.ref_mem_gb * 2 ** 30)  # the reference's memory budget, set in the child
  os_resource.setrlimit(os_resource.RLIMIT_AS, (limit, limit))
  x, y = (v.astype(np.float64) for v in layers(args.n, args.d, 2, seed=1))
  pair = reference_pair(MEASURES[args.child], args.child)
  t0 = time.perf_counter()
  value = pair(x, y)
  print(json.dumps({"time": time.perf_counter() - t0, "value": value}))


def reference_ladder(name, args):
  """Reference pair timings at N = ref_min_n * 2^k until one fails: (results by N, failed N)."""
  ok, failed, n = {}, None, args.ref_min_n
  while n <= args.ref_max_n:
    cmd = [sys.executable, os.path.abspath(__file__), f"--child={name}", f"--n={n}",
           f"--d={args.d}", f"--ref_mem_gb={args.ref_mem_gb}"]
    try:
      proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.ref_timeout)
      if proc.returncode != 0:
        failed = (n, "memory" if "MemoryError" in proc.stderr or "alloc" in proc.stderr
                  else f"error rc={proc.returncode}")
        break
      ok[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    except subprocess.TimeoutExpired:
      failed = (n, f"time > {args.ref_timeout}s")
      break
    n *= 2
  return ok, failed


def ours_pair_time(name, n, d):
  from repsim_jax.measures import measure
  x, y = layers(n, d, 2, seed=1)
  m = measure(name)
  m(x, y)  # compile
  t0 = time.perf_counter()
  value = m(x, y)
  return time.perf_counter() - t0, value


def ours_matrix(name, n, d, count):
  from repsim_jax import resources
  from repsim_jax.measures import similarity_matrix
  la, lb = layers(n, d, count, seed=1), layers(n, d, count, seed=2)
  resources.reset_peak_rss()
  before = resources.rss_bytes()
  t0 = time.perf_counter()
  similarity_matrix(la, lb, measure=name)
  # Above the resident set before the call (the inputs are already in it).
  return time.perf_counter() - t0, resources.peak_rss_bytes() - before


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--quick", action="store_true", help="N=300, 2 layers, d=32, small ladder")
  p.add_argument("--n", type=int, default=10_000)
  p.add_argument("--n_stream", type=int, default=100_000)
  p.add_argument("--layers", type=int, default=12)
  p.add_argument("--d", type=int, default=768)
  p.add_argument("--ref_min_n", type=int, default=1000)
  p.add_argument("--ref_max_n", type=int, default=100_000)
  p.add_argument("--ref_timeout", type=float, default=600)
  p.add_argument("--ref_mem_gb", type=float, default=16)
  p.add_argument("--measures", default="", help="comma-separated subset of the names")
  p.add_argument("--child", default="", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    return run_reference_child(args)
  if args.quick:
    args.n, args.n_stream, args.layers, args.d = 300, 600, 2, 32
    args.ref_min_n, args.ref_max_n, args.ref_timeout, args.ref_mem_gb = 200, 400, 60, 4
  from repsim_jax.resources import format_bytes
  names = args.measures.split(",") if args.measures else list(MEASURES)
  print(f"# bench_measures: {args.layers}x{args.layers} layers, d={args.d}, N={args.n} "
        f"(streamed RSA also N={args.n_stream}); reference ladder N={args.ref_min_n}.."
        f"{args.ref_max_n}, {args.ref_timeout:g}s, {args.ref_mem_gb:g} GB")
  print("| measure | N | matrix time | peak RSS above inputs | ref ok up to N | ref fails at | "
        "ref pair s | ours pair s | ref/ours |")
  print("|---|---|---|---|---|---|---|---|---|")
  for name in names:
    sizes = [args.n] + ([args.n_stream] if name in STREAMED else [])
    ok, failed = reference_ladder(name, args)
    if ok:
      big = max(ok)
      ours_t, ours_v = ours_pair_time(name, big, args.d)
      ref_t = ok[big]["time"]
      assert np.isclose(ours_v, ok[big]["value"], rtol=1e-3, atol=1e-4), (name, ours_v, ok[big])
      ref_cols = (f"{big} | {failed[0]} ({failed[1]})" if failed else f"{big} | not reached",
                  f"{ref_t:.3g} | {ours_t:.3g} | {ref_t / ours_t:.1f}x")
    else:
      ref_cols = (f"- | {failed[0]} ({failed[1]})", "- | - | -")
    for n in sizes:
      t, peak = ours_matrix(name, n, args.d, args.layers)
      print(f"| {name} | {n} | {t:.3g} s | {format_bytes(peak)} | {ref_cols[0]} | "
            f"{ref_cols[1]} |", flush=True)


if __name__ == "__main__":
  main()
