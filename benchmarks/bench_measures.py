"""The geometric measures (RSA, shape metrics, Procrustes variants, Bures, predictivity) at scale,
against their reference implementations.

  PYTHONPATH=$PWD python benchmarks/bench_measures.py --quick        # minutes: N=300, 2 layers
  PYTHONPATH=$PWD python benchmarks/bench_measures.py --estimate     # one pair per measure at
      # N = 1e4 and 1e5, d = 768: prepare / pair times and the full table's estimated time
  PYTHONPATH=$PWD python benchmarks/bench_measures.py                # the full table: two
      # 12-layer models, d = 768, N = 1e4; N = 1e5 for every measure in LARGE_N; each reference
      # run at N = 1000, 2000, 4000, ... up to --ref_max_n in a subprocess with --ref_timeout
      # seconds and --ref_mem_gb of address space, until it fails.

Per measure and N it prints: the layers of the matrix (12x12 unless LAYERS_FOR or --layers_for
gives fewer, for measures whose 144 pairs would take hours; the row says so), the matrix time
(first call: compilation included) and the peak resident memory during it above the resident set
before it (which holds the inputs); the reference's largest N that ran and the first N that
failed (time or memory); at that largest N, one pair's time from features for the reference and
for us (`measure(name)(x, y)`, warm) and their ratio, measured in the same run.

N = 1e5 (LARGE_N): every measure here whose cost is O(N d^2) time and O(N d) memory per layer
pair: the Gram-form RSA comparators (pearson, cosine, cosine_cov, corr_cov on squared euclidean,
correlation or cosine RDMs: one d x d product per pair, repsim_jax/measures/rsa.py) and the
shape, Procrustes, Bures, GULP, CCA and regression measures (d x d cross products, SVDs / eigh
of d x d, least squares on [N, d]). Not the rank comparators (spearman, tau_b): they rank all
N (N - 1) / 2 RDM entries, 20 GB per layer at N = 1e5. The layers are generated in float32 once
per N and shared by the measures (24 x 1e5 x 768 float32 = 7.4 GB).

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
RANKED = ("spearman", "rho_a", "tau_a", "tau_b")
# Measures run at N = --n_stream too: every one but the rank comparators (module docstring).
LARGE_N = [m for m in MEASURES if not any(f"compare={c}-" in m for c in RANKED)]
# (measure, N) -> layers per model where the 12 x 12 matrix would take hours on a 2-core CPU
# (`--estimate` measures one pair; the row prints the layers used). Overridden by --layers_for.
LAYERS_FOR = {}


def layers(n, d, count, seed):
  """`count` related float32 layers [n, d]: a shared latent mixed per layer, plus noise, made
  in float32 one layer at a time (the N = 1e5 table holds 24 of them)."""
  rng = np.random.default_rng(seed)
  z = np.random.default_rng(0).normal(size=(n, 16)).astype(np.float32)
  base, drift = rng.normal(size=(16, d)), rng.normal(size=(16, d))
  out = []
  for layer in range(count):
    t = layer / max(count - 1, 1)
    mix = (np.cos(t) * base + np.sin(t) * drift).astype(np.float32)
    x = z @ mix
    x += np.float32(0.3 + t) * rng.standard_normal(size=(n, d), dtype=np.float32)
    out.append(np.maximum(x, 0, out=x))
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


def pair_costs(name, x, y):
  """Seconds to prepare one layer and for one prepared pair, warm, as (wall, CPU) each: a
  matrix of La x Lb layers costs (La + Lb) preparations and La Lb pairs, apart from
  compilation. CPU seconds (every thread) stay meaningful on a shared or paused machine."""
  import jax
  from repsim_jax.measures import measure
  m = measure(name)
  opts = m.resolve_options({})

  def timed(fn, *args):
    jax.block_until_ready(fn(*args, **opts))  # compile
    t0, c0 = time.perf_counter(), time.process_time()
    out = jax.block_until_ready(fn(*args, **opts))
    return np.array([time.perf_counter() - t0, time.process_time() - c0]), out
  prep_x, px = timed(m.prepare, x)
  prep_y, py = timed(m.prepare, y)
  pair, _ = timed(m.pair, px, py)
  return (prep_x + prep_y) / 2, pair


def ours_matrix(name, la, lb):
  from repsim_jax import resources
  from repsim_jax.measures import similarity_matrix
  resources.reset_peak_rss()
  before = resources.rss_bytes()
  t0 = time.perf_counter()
  similarity_matrix(la, lb, measure=name)
  # Above the resident set before the call (the inputs are already in it).
  return time.perf_counter() - t0, resources.peak_rss_bytes() - before


def reference_columns(name, args):
  """The row's reference cells: (ok up to N | fails at, ref pair s | ours pair s | ratio)."""
  ok, failed = reference_ladder(name, args)
  if not ok:
    return f"- | {failed[0]} ({failed[1]})", "- | - | -"
  big = max(ok)
  ours_t, ours_v = ours_pair_time(name, big, args.d)
  ref_t = ok[big]["time"]
  assert np.isclose(ours_v, ok[big]["value"], rtol=1e-3, atol=1e-4), (name, ours_v, ok[big])
  return (f"{big} | {failed[0]} ({failed[1]})" if failed else f"{big} | not reached",
          f"{ref_t:.3g} | {ours_t:.3g} | {ref_t / ours_t:.1f}x")


def parse_layers_for(text):
  """'NAME[@N]=L,...' -> {(name, N or None): L}; a name holds '=' itself, so L follows the
  last one."""
  out = {}
  for item in filter(None, text.split(",")):
    key, _, count = item.rpartition("=")
    name, _, n = key.partition("@")
    if name not in MEASURES:
      raise SystemExit(f"--layers_for: unknown measure {name!r}; expected one of {list(MEASURES)}")
    out[(name, int(float(n)) if n else None)] = int(count)
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--quick", action="store_true", help="N=300, 2 layers, d=32, small ladder")
  p.add_argument("--estimate", action="store_true",
                 help="time one layer pair per measure and N; print the full table's estimate")
  p.add_argument("--n", type=int, default=10_000)
  p.add_argument("--n_stream", type=int, default=100_000)
  p.add_argument("--layers", type=int, default=12)
  p.add_argument("--layers_for", default="",
                 help="NAME[@N]=L,...: an L x L matrix for that measure (at that N only); "
                      "default LAYERS_FOR")
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
  fewer = {} if args.quick else {**LAYERS_FOR, **parse_layers_for(args.layers_for)}

  def layer_count(name, n):
    return min(args.layers, fewer.get((name, n), fewer.get((name, None), args.layers)))

  print(f"# bench_measures: {args.layers}x{args.layers} layers, d={args.d}, N={args.n} "
        f"(LARGE_N also N={args.n_stream}); reference ladder N={args.ref_min_n}.."
        f"{args.ref_max_n}, {args.ref_timeout:g}s, {args.ref_mem_gb:g} GB")
  if args.estimate:
    print("| measure | N | prepare s / layer (cpu s) | pair s (cpu s) | est. matrix (layers) |")
    print("|---|---|---|---|---|")
  else:
    print("| measure | N | layers | matrix time | peak RSS above inputs | ref ok up to N | "
          "ref fails at | ref pair s | ours pair s | ref/ours |")
    print("|---|---|---|---|---|---|---|---|---|---|")
  refs, total = {}, np.zeros(2)
  for n in [n for n in dict.fromkeys((args.n, args.n_stream)) if n > 0]:  # --n_stream 0: skip
    todo = [name for name in names if n == args.n or name in LARGE_N]
    if not todo:
      continue
    count = 2 if args.estimate else max(layer_count(name, n) for name in todo)
    la, lb = layers(n, args.d, count, seed=1), layers(n, args.d, count, seed=2)
    for name in todo:
      size = layer_count(name, n)
      if args.estimate:
        prep, pair = pair_costs(name, la[0], lb[0])
        est = 2 * size * prep + size * size * pair
        total += est
        print(f"| {name} | {n} | {prep[0]:.3g} ({prep[1]:.3g}) | {pair[0]:.3g} ({pair[1]:.3g}) "
              f"| {est[0]:.0f} s ({est[1]:.0f} cpu-s), {size}x{size} |", flush=True)
        continue
      if name not in refs:
        refs[name] = reference_columns(name, args)
      t, peak = ours_matrix(name, la[:size], lb[:size])
      shown = f"{size}x{size}" + (" (fewer: LAYERS_FOR)" if size < args.layers else "")
      print(f"| {name} | {n} | {shown} | {t:.3g} s | {format_bytes(peak)} | "
            f"{refs[name][0]} | {refs[name][1]} |", flush=True)
    del la, lb
  if args.estimate:
    print(f"# estimated matrices: {total[0] / 60:.0f} min wall here, {total[1] / 60:.0f} CPU-min "
          f"(compilation and the reference ladders not included; each ladder rung is capped at "
          f"--ref_timeout={args.ref_timeout:g} s)")


if __name__ == "__main__":
  main()
