"""Computes DADApy reference values; runs inside the DADApy venv (see install_dadapy.sh).

  python dadapy_imbalance.py cases.npz out.npz

cases.npz holds layers "L{i}" ([N, d_i]) and "pairs" [P, 2] (a, b layer indices), "ks" [K],
"metrics" (names). out.npz: "ii_{metric}_k{k}" [P] from compute_nn_distances(maxk=N-1) +
_return_imbalance (DADApy used at its best), and "public_{metric}_k{k}" [P, 2] from the public
MetricComparisons.return_information_imbalace (both directions).
"""
import sys
import warnings

import numpy as np
from dadapy import MetricComparisons
from dadapy._utils.metric_comparisons import _return_imbalance
from dadapy._utils.utils import compute_nn_distances

warnings.simplefilter("ignore")
cases = np.load(sys.argv[1])
# float64, as our side of the comparison: sklearn computes float32 input in float32, whose
# rounding (and so the order of near neighbours) depends on the CPU's BLAS kernels
layers = [cases[f"L{i}"].astype(np.float64) for i in range(int(cases["n_layers"]))]
n = len(layers[0])
out = {}
rng = np.random.default_rng(0)  # unused with maxk = N - 1: every rank is found
for metric in cases["metrics"]:
  metric = str(metric)
  idx = [compute_nn_distances(x, n - 1, metric=metric)[1] for x in layers]
  for k in cases["ks"]:
    k = int(k)
    out[f"ii_{metric}_k{k}"] = np.array(
        [_return_imbalance(idx[a], idx[b], rng, k=k) for a, b in cases["pairs"]])
    public = []
    for a, b in cases["pairs"][:2]:
      mc = MetricComparisons(coordinates=layers[a], maxk=n - 1)
      mc.metric = metric
      ab, ba = mc.return_information_imbalace(layers[b], k=k, subset_size=n)
      public.append([ab[0], ba[0]])
    out[f"public_{metric}_k{k}"] = np.array(public)
np.savez(sys.argv[2], **out)
