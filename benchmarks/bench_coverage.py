r"""Coverage of every interval we print, on generative models whose E[value at N] is known.

  python benchmarks/bench_coverage.py --quick  # 4 cases, N in {200, 500}, 120 data sets each
  python benchmarks/bench_coverage.py          # 96 cases, N up to 2000, 400 data sets: days on
                                               # 2 CPU cores (N^2 work per replicate)
  python benchmarks/bench_coverage.py --models=clusters --n=1000 --k=10 --metric=cosine --sets=300
  python benchmarks/bench_coverage.py --quick --default_only --sets=1000 --raw=/tmp/cov.npz

--default_only measures the default interval alone ("halves", II's and CKA's), precisely and
cheaply: each data set gets one weighted pass over the plain value and the 150 halves and quarters
(no bootstrap replicates, no subset intervals, which are the bulk of the cost), and the truth
comes from the data sets themselves: the value on data set s is one draw of the value at N, so
E[value at N] for judging data set s is the mean over the other data sets (leave-one-out: it is
independent of s) and the ideal sd is their spread; no separate truth runs. With --raw, every
data set's raw numbers (estimate, std, var_half, var_quarter, rate, and the truth it is judged
against) go to an .npz, so other calibrations (the quantile's degrees of freedom, the rate rule)
can be judged offline (`benchmarks/coverage_calibration.py`) without recomputing anything.

A case is a latent structure (`MODELS`), a width d, N, k and a metric. Each model draws a
predicting layer A and three predicted layers B (strong, medium, weak dependence on A's latent);
one call per data set gives all three pairs. The truth is E[value at N] over `--truth` fresh data
sets (Monte Carlo; its standard error is printed next to the sd it is judged against); then
`--sets` further fresh data sets each get every interval, and a row reports

  coverage   how often the interval holds the truth, ± its binomial standard error
             sqrt(c (1 - c) / sets) (nominal 0.95);
  width      mean width over the ideal 2 z sd = 3.92 sd, sd the spread of the value over the
             truth's data sets (an interval that knew the sampling distribution exactly).

Intervals: II and CKA (debiased, as `cka_matrix`): `imbalance_bootstrap` / `cka_bootstrap` with
method "halves" (the default of both), "percentile" and "basic", all from the same pass;
and the subset intervals (`imbalance_subsets`, `cka_subsets`, 4 disjoint subsets of N/4), judged
against what they estimate: E[value at N = subset_size] (their own Monte Carlo truth; their
ideal width is that of the mean of 4 values, and a t interval on 3 degrees of freedom is ~1.5x
that by construction).
"""
from __future__ import annotations

import argparse
import itertools
import time
import warnings

import numpy as np

import repsim_jax
from repsim_jax.metrics import cka_weighted, imbalance_weighted, intervals

Z = 1.959963984540054


def _shared(n, d, rng, fixed):
  """A: a 4-dim Gaussian latent, linearly embedded, plus noise; B: 2 of its 4 dimensions (an
  information loss) with noise 0.3, 1, 3 (strong, medium, weak)."""
  z = rng.normal(size=(n, 4))
  a = z @ fixed.normal(size=(4, d)) + 0.5 * rng.normal(size=(n, d))
  w = fixed.normal(size=(2, d))
  return a, [z[:, :2] @ w + s * rng.normal(size=(n, d)) for s in (0.3, 1.0, 3.0)]


def _nonlinear(n, d, rng, fixed):
  """A: tanh of a 3-dim latent's projection; B: sin of another projection of the same latent,
  noise 0.2, 0.7, 2."""
  z = rng.normal(size=(n, 3))
  a = np.tanh(z @ fixed.normal(size=(3, d))) + 0.3 * rng.normal(size=(n, d))
  w = fixed.normal(size=(3, d))
  return a, [np.sin(1.5 * z @ w) + s * rng.normal(size=(n, d)) for s in (0.2, 0.7, 2.0)]


def _clusters(n, d, rng, fixed):
  """Ten classes (like a labelled image set) with a continuous 3-dim latent inside each: A holds
  both; B the class centres scaled 2, 0.7, 0.25 and one latent dimension, noise 0.7."""
  c = rng.integers(0, 10, n)
  z = rng.normal(size=(n, 3))
  a = (1.5 * fixed.normal(size=(10, d)))[c] + 0.5 * z @ fixed.normal(size=(3, d)) \
      + 0.5 * rng.normal(size=(n, d))
  mu, w = fixed.normal(size=(10, d)), fixed.normal(size=(1, d))
  return a, [s * mu[c] + 0.5 * z[:, :1] @ w + 0.7 * rng.normal(size=(n, d))
             for s in (2.0, 0.7, 0.25)]


MODELS = {"shared": _shared, "nonlinear": _nonlinear, "clusters": _clusters}
STRENGTHS = ("strong", "medium", "weak")


def draw(model, n, d, rng):
  """One data set: ([A], [B_strong, B_medium, B_weak]) as float32; the model's projections are
  fixed (seeded by the model's name), the latents and the noise are fresh from `rng`."""
  fixed = np.random.default_rng(sum(map(ord, model)))
  a, bs = MODELS[model](n, d, rng, fixed)
  return [a.astype(np.float32)], [b.astype(np.float32) for b in bs]


def plain(measure, a, b, k, metric):
  if measure == "II":
    return repsim_jax.information_imbalance_matrix(a, b, k=k, metric=metric,
                                                   check_duplicates=False)[0]
  return repsim_jax.cka_matrix(a, b, debiased=True)[0]


def truth(model, n, d, measure, k, metric, count, seed):
  """(mean, sd, standard error of the mean) of the value at N over `count` fresh data sets."""
  rng = np.random.default_rng(seed)
  values = np.array([plain(measure, *draw(model, n, d, rng), k, metric) for _ in range(count)])
  sd = values.std(axis=0, ddof=1)
  return values.mean(axis=0), sd, sd / np.sqrt(count)


def intervals_of(measure, a, b, k, metric, seed, n_boot):
  """{interval name: (low [3], high [3])} for one data set, and the subset intervals."""
  if measure == "II":
    out = repsim_jax.imbalance_bootstrap(a, b, n_boot=n_boot, seed=seed, k=k, metric=metric)
    sub = repsim_jax.imbalance_subsets(a, b, subset_size=len(a[0]) // 4, seed=seed, k=k,
                                       metric=metric)
  else:
    out = repsim_jax.cka_bootstrap(a, b, n_boot=n_boot, seed=seed, method="halves")
    sub = repsim_jax.cka_subsets(a, b, subset_size=len(a[0]) // 4, seed=seed)
  got = {"halves": (out["low"][0], out["high"][0])}
  for method in intervals.METHODS:
    iv = intervals.bootstrap_interval(out["value"], out["replicates"], method=method)
    got[method] = (iv["low"][0], iv["high"][0])
  return got, (sub["low"][0], sub["high"][0])


def run_case(model, n, d, k, metric, measures, sets, truth_sets, n_boot, seed=0):
  rows = []
  for measure in measures:
    started = time.perf_counter()
    mean, sd, se = truth(model, n, d, measure, k, metric, truth_sets, seed + 1)
    sub_mean, sub_sd, _ = truth(model, n // 4, d, measure, k, metric, truth_sets, seed + 2)
    hits, widths = {}, {}
    rng = np.random.default_rng(seed + 3)
    for s in range(sets):
      a, b = draw(model, n, d, rng)
      got, (sub_low, sub_high) = intervals_of(measure, a, b, k, metric, seed + 100 + s, n_boot)
      got["subsets (at N/4)"] = (sub_low, sub_high)
      for name, (low, high) in got.items():
        # subsets: the mean of 4 independent values at N/4, sd sub_sd / 2
        target, ideal = (sub_mean, sub_sd / 2) if name.startswith("subsets") else (mean, sd)
        hits.setdefault(name, []).append((low <= target) & (target <= high))
        widths.setdefault(name, []).append((high - low) / (2 * Z * ideal))
    label = f"{model} d={d} N={n} k={k} {metric}"
    print(f"\n{measure}: {label}  ({sets} data sets, truth over {truth_sets}, "
          f"{time.perf_counter() - started:.0f} s)", flush=True)
    print("  E[value at N] " + "  ".join(f"{s}: {m:.4f} (sd {v:.4f}, s.e. {e:.4f})"
                                         for s, m, v, e in zip(STRENGTHS, mean, sd, se)))
    for name in hits:
      cov = np.mean(hits[name], axis=0)
      err = np.sqrt(cov * (1 - cov) / sets)
      wid = np.mean(widths[name], axis=0)
      cells = "  ".join(f"{c:.3f} ± {e:.3f} (width {w:.2f})" for c, e, w in zip(cov, err, wid))
      print(f"  {name:18s} {cells}", flush=True)
      rows.append((measure, label, name, cov, err, wid))
  return rows


def default_of(measure, a, b, k, metric, seed):
  """`halves_interval`'s dict for one data set: the default interval of `imbalance_bootstrap` /
  `cka_bootstrap` (same seed: the same splits, so the same interval), from one weighted pass over
  the plain value and the halves and quarters only, without the bootstrap replicates."""
  n, splits = len(a[0]), intervals.DEFAULT_SPLITS
  weights = np.concatenate([np.ones((1, n), np.int32), intervals.halves_weights(n, splits, seed)])
  if measure == "II":
    values = imbalance_weighted.weighted_imbalance(a, b, weights, k=k, metric=metric)
  else:
    values = cka_weighted.weighted_cka(a, b, weights)
  values = values[:, 0]  # [R, 3]: one A, three B
  return intervals.halves_interval(values[0], values[1:1 + 2 * splits], values[1 + 2 * splits:],
                                   n=n)


RAW_KEYS = ("estimate", "std", "half_width", "var_half", "var_quarter", "rate")


def run_default_case(model, n, d, k, metric, measures, sets, seed=0):
  """The default interval's coverage on `sets` data sets, judged against the leave-one-out mean
  of the other data sets' values (module docstring); ([table rows], {raw key: array})."""
  rows, raw = [], {}
  label = f"{model} d={d} N={n} k={k} {metric}"
  for measure in measures:
    started = time.perf_counter()
    rng = np.random.default_rng(seed + 3)
    got = {key: [] for key in RAW_KEYS}
    for s in range(sets):
      out = default_of(measure, *draw(model, n, d, rng), k, metric, seed + 100 + s)
      got["estimate"].append(out["value"])
      for key in RAW_KEYS[1:]:
        got[key].append(out[key])
    got = {key: np.array(v) for key, v in got.items()}  # [sets, 3] each
    est = got["estimate"]
    truth = (est.sum(axis=0) - est) / (sets - 1)  # leave-one-out E[value at N]
    sd = est.std(axis=0, ddof=1)
    hits = np.abs(est - truth) <= got["half_width"]
    cov = hits.mean(axis=0)
    err = np.sqrt(cov * (1 - cov) / sets)
    wid = got["half_width"].mean(axis=0) / (Z * sd)
    print(f"\n{measure}: {label}  ({sets} data sets, truth: leave-one-out mean of the others, "
          f"{time.perf_counter() - started:.0f} s)", flush=True)
    print("  E[value at N] " + "  ".join(f"{s}: {m:.4f} (sd {v:.4f}, s.e. {v / np.sqrt(sets):.4f})"
                                         for s, m, v in zip(STRENGTHS, est.mean(0), sd)))
    cells = "  ".join(f"{c:.3f} ± {e:.3f} (width {w:.2f})" for c, e, w in zip(cov, err, wid))
    print(f"  {'halves':18s} {cells}", flush=True)
    rows.append((measure, label, "halves", cov, err, wid))
    prefix = f"{measure}|{label}|"
    raw.update({prefix + key: v for key, v in got.items()})
    raw.update({prefix + "truth": truth, prefix + "sd": sd, prefix + "n": np.array(n),
                prefix + "seed": np.array(seed)})
  return rows, raw


def summary(rows):
  print("\nSummary (coverage over all cases and strengths; nominal 0.95):")
  for measure, name in sorted({(r[0], r[2]) for r in rows}):
    cov = np.concatenate([r[3] for r in rows if (r[0], r[2]) == (measure, name)])
    wid = np.concatenate([r[5] for r in rows if (r[0], r[2]) == (measure, name)])
    print(f"  {measure:3s} {name:18s} coverage {cov.min():.3f}-{cov.max():.3f} "
          f"(mean {cov.mean():.3f}), width {wid.min():.2f}-{wid.max():.2f} x ideal")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true",
                      help="4 cases at N = 200 and 500, 120 data sets, truth over 300")
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument("--n", default="200,500,1000,2000")
  parser.add_argument("--d", default="16,128")
  parser.add_argument("--k", default="1,10")
  parser.add_argument("--metric", default="euclidean,cosine")
  parser.add_argument("--measures", default="II,CKA")
  parser.add_argument("--sets", type=int, default=None,
                      help="data sets per case (coverage); default 400, --quick 120")
  parser.add_argument("--truth", type=int, default=1000, help="data sets for E[value at N]")
  parser.add_argument("--n_boot", type=int, default=200)
  parser.add_argument("--default_only", action="store_true",
                      help="the default interval (halves) alone, truth from the data sets")
  parser.add_argument("--raw", default=None, help="with --default_only: .npz of raw results")
  parser.add_argument("--seed", type=int, default=0, help="draws data sets and splits")
  args = parser.parse_args()
  measures = args.measures.split(",")
  if args.quick:
    cases = [("shared", 200, 16, 1, "euclidean"), ("clusters", 500, 16, 1, "euclidean"),
             ("nonlinear", 500, 128, 10, "cosine"), ("shared", 500, 16, 10, "euclidean")]
    sets, truth_sets = args.sets or 120, 300
  else:
    cases = list(itertools.product(args.models.split(","), map(int, args.n.split(",")),
                                   map(int, args.d.split(",")), map(int, args.k.split(",")),
                                   args.metric.split(",")))
    sets, truth_sets = args.sets or 400, args.truth
  if args.default_only:
    print(f"default interval only: {len(cases)} cases x {measures}, {sets} data sets each, "
          f"seed {args.seed}", flush=True)
    rows, raw = [], {}
    warnings.simplefilter("ignore")
    for case in cases:
      got, got_raw = run_default_case(*case, measures, sets, args.seed)
      rows += got
      raw.update(got_raw)
      if args.raw:  # after every case, so a long run's finished cases are kept
        np.savez(args.raw, **raw)
    summary(rows)
    return
  print(f"{'quick' if args.quick else 'full'} mode: {len(cases)} cases x {measures}, {sets} data "
        f"sets each, truth over {truth_sets}, n_boot={args.n_boot}"
        + ("" if args.quick else " (days on 2 CPU cores at the defaults: select cases with "
                                  "--models/--n/--d/--k/--metric, or run on an accelerator)"),
        flush=True)
  rows = []
  warnings.simplefilter("ignore")  # the models are continuous: no duplicate points
  for case in cases:
    rows += run_case(*case, measures, sets, truth_sets, args.n_boot, args.seed)
  summary(rows)


if __name__ == "__main__":
  main()
