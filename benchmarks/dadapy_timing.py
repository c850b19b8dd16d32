"""Times DADApy inside its own venv (see tests/reference/install_dadapy.sh); prints JSON.

  python dadapy_timing.py data.npz '{"layers": 2, "pairs": [[0, 1], [1, 0]], "k": 1}'

DADApy used at its best: neighbour lists once per layer (compute_nn_distances with
maxk = N - 1, i.e. exact), then one rank pass per ordered pair (_return_imbalance).
"""
import json
import sys
import time
import warnings

import numpy as np
from dadapy._utils.metric_comparisons import _return_imbalance
from dadapy._utils.utils import compute_nn_distances

warnings.simplefilter("ignore")
spec = json.loads(sys.argv[2])
data = np.load(sys.argv[1])
rng = np.random.default_rng(0)
idx, t_layers = [], []
for i in range(spec["layers"]):
  x = data[f"L{i}"]
  t = time.perf_counter()
  idx.append(compute_nn_distances(x, len(x) - 1, metric=spec.get("metric", "euclidean"))[1])
  t_layers.append(time.perf_counter() - t)
values, t_pairs = [], []
for a, b in spec["pairs"]:
  t = time.perf_counter()
  values.append(_return_imbalance(idx[a], idx[b], rng, k=spec["k"]))
  t_pairs.append(time.perf_counter() - t)
print(json.dumps({"t_layers": t_layers, "t_pairs": t_pairs, "values": values}))
