r"""Cost of the cross-process collectives: the II matrix by 1 process x 2 devices and by
2 processes x 1 device (jax.distributed on 127.0.0.1, Gloo on CPU), measured in one run.

  python benchmarks/bench_multiprocess.py                       # N=1e4, 4 layers of 128 dims
  python benchmarks/bench_multiprocess.py --n=20000 --layers=8 --d=256

Both runs use the same 2-device mesh, kernels, blocks and schedule; they differ only in where the
devices live: in one process the gathers to the host are memory copies, in two they go through
Gloo over TCP (and each process repeats the host-side steps). Each run times the fastest of
`--repeats` calls after one that compiles and, inside it, the gathers (`sharding.to_host`, after
the device work is done: transfer plus waiting for the other process). Prints ratio =
t(2 x 1) / t(1 x 2) and checks the matrices are identical. Launched through the test harness
(tests/multiprocess_harness.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)


def worker(args) -> None:
  from repsim_jax import sharding
  sharding.maybe_initialize_distributed()
  import jax
  from benchmarks.bench_imbalance import activations
  from repsim_jax.metrics import imbalance
  layers = activations(args.n, args.d, args.layers)
  gather_s = [0.0]
  to_host = sharding.to_host

  def timed_to_host(x):
    jax.block_until_ready(x)
    t = time.perf_counter()
    out = to_host(x)
    gather_s[0] += time.perf_counter() - t
    return out

  sharding.to_host = timed_to_host
  imbalance.information_imbalance_matrix(layers, k=args.k)  # compiles
  best = (float("inf"), 0.0)
  for _ in range(args.repeats):  # the fastest of a few: less noise from other load on the machine
    gather_s[0] = 0.0
    t = time.perf_counter()
    matrix = imbalance.information_imbalance_matrix(layers, k=args.k)
    best = min(best, (time.perf_counter() - t, gather_s[0]))
  if sharding.is_writer():
    np.save(args.out + ".npy", matrix)
  with open(f"{args.out}.{jax.process_index()}.json", "w") as f:
    json.dump({"seconds": best[0], "gather_s": best[1], "devices": jax.device_count()}, f)


def launch(num_processes: int, devices: int, args, out: str) -> dict:
  from multiprocess_harness import python_argv, run_processes
  run_processes(python_argv(os.path.abspath(__file__), "--worker", f"--out={out}",
                            f"--n={args.n}", f"--d={args.d}", f"--layers={args.layers}",
                            f"--k={args.k}", f"--repeats={args.repeats}"),
                num_processes=num_processes, devices_per_process=devices, timeout_s=1800)
  runs = []
  for i in range(num_processes):
    with open(f"{out}.{i}.json") as f:
      runs.append(json.load(f))
  assert all(r["devices"] == num_processes * devices for r in runs), runs
  return {"seconds": max(r["seconds"] for r in runs), "gather_s": max(r["gather_s"] for r in runs),
          "matrix": np.load(out + ".npy")}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--n", type=int, default=10_000)
  parser.add_argument("--layers", type=int, default=4)
  parser.add_argument("--d", type=int, default=128)
  parser.add_argument("--k", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=3, help="timed calls; the fastest counts")
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--out", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    return worker(args)
  with tempfile.TemporaryDirectory() as tmp:
    one = launch(1, 2, args, os.path.join(tmp, "one"))
    two = launch(2, 1, args, os.path.join(tmp, "two"))
  same = np.array_equal(one["matrix"], two["matrix"])
  print(f"II matrix N={args.n}, {args.layers} layers x {args.d} dims, k={args.k}, 2 CPU devices "
        f"({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}):\n"
        f"  1 process  x 2 devices: {one['seconds']:.2f} s (gathers {one['gather_s']:.3f} s)\n"
        f"  2 processes x 1 device: {two['seconds']:.2f} s (gathers {two['gather_s']:.3f} s)\n"
        f"  ratio 2x1 / 1x2 = {two['seconds'] / one['seconds']:.2f}; cross-process gathers "
        f"{two['gather_s'] / two['seconds']:.1%} of the 2-process time; matrices "
        f"{'identical' if same else 'DIFFER'}", flush=True)
  if not same:
    raise SystemExit("the 1-process and 2-process matrices differ")


if __name__ == "__main__":
  main()
