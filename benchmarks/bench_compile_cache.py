r"""The persistent XLA compilation cache: the imbalance command's first process vs the next one.

  python benchmarks/bench_compile_cache.py [--n=4000] [--layers=6] [--dim=256]

Writes a 6-layer .npz (N=4000) to a temp dir and runs the README's imbalance command on it as
separate processes: (1) with the cache off, (2) with an empty cache (fills it), (3) with the warm
cache. Prints the process wall time and the II step's time (from the command's closing summary)
of each, and the ratio warm / first; the three matrices must be identical.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

_N = flags.DEFINE_integer("n", 4000, "points")
_LAYERS = flags.DEFINE_integer("layers", 6, "layers (the matrix is layers x layers)")
_DIM = flags.DEFINE_integer("dim", 256, "width of each layer")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(cwd: str, cache: str) -> tuple[float, float, np.ndarray]:
  argv = [sys.executable, "-m", "experiments.imbalance", "--workdir=runs/ii",
          "--config=configs/imbalance.py:inputs_a=acts.npz"]
  env = {**os.environ, "REPSIM_XLA_CACHE": cache, "PYTHONPATH": ROOT}
  start = time.perf_counter()
  proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=True)
  wall = time.perf_counter() - start
  step = float(re.search(r"information imbalance ([0-9.]+) s", proc.stdout).group(1))
  with np.load(os.path.join(cwd, "runs", "ii", "imbalance.npz")) as z:
    return wall, step, z["imbalance"]


def main(argv):
  del argv
  rng = np.random.default_rng(0)
  latent = rng.normal(size=(_N.value, 16))
  with tempfile.TemporaryDirectory() as tmp:
    np.savez(os.path.join(tmp, "acts.npz"), **{
        f"layer_{i}": (latent @ rng.normal(size=(16, _DIM.value))
                       + 0.2 * i * rng.normal(size=(_N.value, _DIM.value))).astype(np.float32)
        for i in range(_LAYERS.value)})
    cache = os.path.join(tmp, "xla")
    off = _run(tmp, "off")
    first = _run(tmp, cache)
    warm = _run(tmp, cache)
  assert np.array_equal(off[2], first[2]) and np.array_equal(first[2], warm[2])
  print(f"II command, {_LAYERS.value}x{_LAYERS.value} layers, N={_N.value}, d={_DIM.value} "
        f"(identical matrices in all three runs)")
  for name, (wall, step, _) in (("cache off", off), ("first process (fills the cache)", first),
                                ("second process (warm cache)", warm)):
    print(f"  {name:<34} process {wall:6.2f} s   II step {step:6.2f} s")
  print(f"warm / first: process {warm[0] / first[0]:.2f}x, II step {warm[1] / first[1]:.2f}x "
        f"({first[1] / warm[1]:.1f}x faster)")


if __name__ == "__main__":
  app.run(main)
