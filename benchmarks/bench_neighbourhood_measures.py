"""Neighbourhood measures at N = 1e5: ours (streaming kNN engine) against the references' routes.

For each of the six neighbourhood measures (`repsim_jax.measures.neighbourhood`) on two related
representations [N, d], the time of one pair including both layers' neighbour lists, and, where
N <= --reference_max, the time of the reference's own route, measured in the same run:

  ReSi (jaccard, rank similarity, second-order cosine): sklearn NearestNeighbors(k + 1, cosine)
    fit + kneighbors on all rows, the first column dropped, per-row Python set loops; second-order
    cosine also builds the two dense N x N sklearn pairwise_distances matrices, as ReSi does;
  platonic-rep (cycle, LCS, edit distance): the dense torch N x N inner-product matrix of the
    L2-normalised rows, diagonal filled with -1e8, a full argsort per row, per-row Python dynamic
    programmes for LCS and edit distance.

The per-row loops are the tests' transcriptions (tests/helpers/knn_measure_reference.py).

The references are memory-bound at N^2 (an N x N float32 matrix is 40 GB at N = 1e5), so they
run only up to --reference_max; the line reports |ours - reference| there (ties aside, the same
value). Run the full benchmark on an accelerator or a quiet many-core machine:

  python benchmarks/bench_neighbourhood_measures.py                     # N = 1e5, d = 256;
                                                                       # references to N = 2e4
  python benchmarks/bench_neighbourhood_measures.py --quick             # N = 2000, d = 64
  python benchmarks/bench_neighbourhood_measures.py --n 20000 50000 100000 --reference_max 20000
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

from repsim_jax.measures import measure

# the per-row loops of the references, transcribed once for the tests and this benchmark
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "helpers"))
import knn_measure_reference  # noqa: E402

NAMES = ["jaccard-k=10-metric=cosine-score", "rank-similarity-k=10-metric=cosine-score",
         "second-order-cosine-k=10-metric=cosine-score", "cycle-knn-k=10-metric=cosine-score",
         "lcs-knn-k=10-metric=cosine-score", "edit-distance-knn-k=10-metric=cosine-score"]


def data(n, d, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, d), dtype=np.float32)
  w = rng.standard_normal((d, d), dtype=np.float32) / np.sqrt(d)
  y = np.tanh(x @ w) + 0.3 * rng.standard_normal((n, d), dtype=np.float32)
  return x, y.astype(np.float32)


# --- the references' routes (their algorithms and libraries, written out here) ------------------

def resi_lists(x, k):
  from sklearn.neighbors import NearestNeighbors
  nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(x)
  return nn.kneighbors(x)[1][:, 1:]


def platonic_lists(x, k):
  import torch
  f = torch.nn.functional.normalize(torch.as_tensor(x), dim=-1)
  return (f @ f.T).fill_diagonal_(-1e8).argsort(dim=1, descending=True)[:, :k].numpy()


def reference(name, x, y, k=10):
  """The measure by the reference's route: its neighbour lists (and, for second-order cosine,
  its two dense sklearn distance matrices), then the transcribed per-row loops."""
  if name.startswith(("jaccard", "rank", "second")):
    na, nb = resi_lists(x, k), resi_lists(y, k)
    if name.startswith("second"):
      import sklearn.metrics
      return knn_measure_reference.score(
          name, na, nb, sklearn.metrics.pairwise_distances(x, metric="cosine"),
          sklearn.metrics.pairwise_distances(y, metric="cosine"))
    return knn_measure_reference.score(name, na, nb)
  return knn_measure_reference.score(name, platonic_lists(x, k), platonic_lists(y, k))


def timed(fn):
  t = time.perf_counter()
  value = fn()
  return float(value), time.perf_counter() - t


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, nargs="+", default=[100_000])
  parser.add_argument("--d", type=int, default=256)
  parser.add_argument("--reference_max", type=int, default=20_000,
                      help="largest N at which the references' dense routes are run")
  parser.add_argument("--quick", action="store_true", help="N = 2000, d = 64 (a smoke run)")
  args = parser.parse_args()
  if args.quick:
    args.n, args.d, args.reference_max = [2000], 64, 2000
  small = data(64, args.d)
  for name in NAMES:  # compile outside the timings
    measure(name)(*small)
  print(f"{'measure':46s} {'N':>7s} {'ours s':>8s} {'ref s':>8s} {'speed-up':>8s} {'|diff|':>8s}")
  for n in args.n:
    x, y = data(n, args.d)
    for name in NAMES:
      ours, t_ours = timed(lambda: measure(name)(x, y))
      line = f"{name:46s} {n:7d} {t_ours:8.2f}"
      if n <= args.reference_max:
        ref, t_ref = timed(lambda: reference(name, x, y))
        line += f" {t_ref:8.2f} {t_ref / t_ours:7.1f}x {abs(ours - ref):8.1e}"
      else:
        line += (f" {'-':>8s} {'-':>8s} {'-':>8s}  (reference needs N x N: "
                 f"{4 * n * n / 2**30:.0f} GiB)")
      print(line, flush=True)


if __name__ == "__main__":
  main()
