"""Top-10 neighbours among N x 1536 with the blocked kNN: time and peak memory as N grows.

The paper's neighbourhoods search 1e5 images with d up to 1536; an N x N float32 matrix would be
40 GB. Each N runs in a fresh subprocess so its peak RSS is its own. The anchor, measured in the
same run, is scikit-learn's brute-force NearestNeighbors (cosine) at the same N where --sklearn_max
allows. The memory line says how peak RSS grows between the smallest and largest N (N^2 would be
a slope of 2 in log-log).

  python benchmarks/bench_neighbours.py                     # N = 1e5, the issue's target
  python benchmarks/bench_neighbours.py --n 5000 10000 20000 --sklearn_max 20000   # busy machine
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

_CHILD = r"""
import json, resource, sys, time
import numpy as np
n, d, k, queries, impl, block = [json.loads(a) for a in sys.argv[1:]]
x = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
q = np.arange(n) if queries is None else np.random.default_rng(1).choice(n, queries, replace=False)
if impl == "jax":
  from repsim_jax.metrics.neighbours import knn
  knn(x[:256], k, metric="cosine", queries=np.arange(min(len(q), 64)), block_size=block)  # warm up
  base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  t = time.perf_counter()
  dist, idx = knn(x, k, metric="cosine", queries=q, block_size=block)
else:
  from sklearn.neighbors import NearestNeighbors
  base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  t = time.perf_counter()
  nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", metric="cosine").fit(x)
  dist, idx = nn.kneighbors(x[q])
  idx = idx[:, 1:]
elapsed = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(seconds=elapsed, peak_rss_mb=peak / 1024, input_mb=x.nbytes / 2**20,
                      growth_mb=(peak - base) / 1024, first=np.asarray(idx)[:, 0].tolist())))
"""


def _run(n, d, k, queries, impl, block):
  args = [json.dumps(v) for v in (n, d, k, queries, impl, block)]
  out = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True,
                       check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, nargs="+", default=[100_000])
  parser.add_argument("--d", type=int, default=1536)
  parser.add_argument("--k", type=int, default=10)
  parser.add_argument("--queries", type=int, default=None,
                      help="query only this many random rows (default: all N rows)")
  parser.add_argument("--block_size", type=int, default=None)
  parser.add_argument("--sklearn_max", type=int, default=20_000,
                      help="largest N at which the scikit-learn anchor is run")
  args = parser.parse_args()
  rows = []
  for n in sorted(args.n):
    r = _run(n, args.d, args.k, args.queries, "jax", args.block_size)
    m = args.queries or n
    line = (f"knn top-{args.k} of {m} queries among {n} x {args.d} (cosine): {r['seconds']:.2f} s, "
            f"peak RSS {r['peak_rss_mb']:.0f} MB, +{r['growth_mb']:.0f} MB during the call "
            f"(input {r['input_mb']:.0f} MB; an N x N float32 matrix: {4 * n * n / 2**20:.0f} MB)")
    if n <= args.sklearn_max:
      s = _run(n, args.d, args.k, args.queries, "sklearn", None)
      same = sum(a == b for a, b in zip(r["first"], s["first"])) / len(r["first"])
      line += (f" | sklearn brute {s['seconds']:.2f} s, +{s['growth_mb']:.0f} MB"
               f" = {s['seconds'] / r['seconds']:.1f}x (same nearest neighbour for {100 * same:.1f} %)")
    print(line, flush=True)
    rows.append((n, r))
  if len(rows) > 1:
    (n0, r0), (n1, r1) = rows[0], rows[-1]
    t_slope = math.log(r1["seconds"] / r0["seconds"]) / math.log(n1 / n0)
    m0, m1 = (r["peak_rss_mb"] for r in (r0, r1))
    m_slope = math.log(m1 / m0) / math.log(n1 / n0)
    g_slope = math.log(max(r1["growth_mb"], 1) / max(r0["growth_mb"], 1)) / math.log(n1 / n0)
    print(f"scaling N {n0} -> {n1}: time ~ N^{t_slope:.2f} (the work is queries x N), peak RSS "
          f"~ N^{m_slope:.2f}, growth during the call ~ N^{g_slope:.2f} (an N x N matrix: N^2)")


if __name__ == "__main__":
  main()
