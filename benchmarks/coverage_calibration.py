r"""Calibration of the default ("halves") interval, judged offline on saved raw coverage data.

  python benchmarks/bench_coverage.py --quick --default_only --sets=1000 --raw=/tmp/cov.npz
  python benchmarks/coverage_calibration.py /tmp/cov.npz [more.npz ...]
  python benchmarks/coverage_calibration.py --table /tmp/cov.npz  # the library's default only

`bench_coverage.py --raw` saves, per case, measure and data set, the estimate, the variances at
N/2 and N/4 (`intervals.split_variances`) and the leave-one-out truth. From them this script
reports, per cell (case x strength):

  sd         the sd of the value at N over the data sets (what the interval's std should be);
  rate       the true secant exponents of Var(m) ~ m^-beta between N/4 and N/2 (from the mean
             of the unbiased var_quarter and var_half) and between N/2 and N (var_half, sd^2);
  std/sd     E[std] / sd for the library's std (`intervals.extrapolated_std`): its bias;
  cv         the coefficient of variation of that std over the data sets: its noise;
  df         2 / Var(log std^2), the degrees of freedom of a chi-square variance with that noise
             (what the Student-t quantile of `intervals.HALVES_DF` stands for);

and the coverage of each candidate rule (rate rule x quantile), so that a calibration choice is
measured on the same data sets without recomputing anything.

Rate rules (Var at N from v2 = Var at N/2 and v4 = Var at N/4):
  midpoint   v2 * 2^-(1 + beta) / 2, beta = log2(v4 / v2) clipped to [0.5, 3] (the library's);
  clt        v2 / 2 (beta = 1, the central-limit rate);
  measured   v2 * 2^-beta (beta clipped as above);
  two-term   a / m + b / m^2 through (N/4, v4) and (N/2, v2): (6 v2 - v4) / 8, clipped to
             [v2 / 4, v2 / 2] (a, b >= 0: rate between 1 and 2);
  linear     the same (6 v2 - v4) / 8, only floored at v2 / 8 (rate 3): a linear combination of
             unbiased variances, unbiased wherever the two-term model holds.

Quantiles: z, Student's t on 20 or 40 degrees of freedom, and "satt": t on the
Welch-Satterthwaite degrees of freedom of the rule's variance, from S = 50 split halves (v2 ~ a
chi-square on S degrees of freedom) and Q = 25 splits into quarters (v4: 3 Q).
"""
from __future__ import annotations

import argparse
import collections

import numpy as np
import scipy.special

from repsim_jax.metrics import intervals


def var_at_n(rule, v2, v4):
  """Var of the value at N from the variances at N/2 (v2) and N/4 (v4) under a rate rule."""
  with np.errstate(divide="ignore", invalid="ignore"):
    beta = np.clip(np.nan_to_num(np.log2(v4 / v2), nan=1.0, posinf=3.0, neginf=0.5), 0.5, 3.0)
  if rule == "midpoint":
    return v2 * 2.0 ** -((1 + beta) / 2)
  if rule == "clt":
    return v2 / 2
  if rule == "measured":
    return v2 * 2.0 ** -beta
  if rule == "two-term":
    return np.clip((6 * v2 - v4) / 8, v2 / 4, v2 / 2)
  if rule == "linear":
    return np.maximum((6 * v2 - v4) / 8, v2 / 8)
  raise ValueError(rule)


def satterthwaite_df(rule, v2, v4, s=50, q=25):
  """Degrees of freedom of the rule's variance: v2 ~ chi-square on s, v4 on 3 q (delta method
  for the log-linear rules, Welch-Satterthwaite for the linear ones)."""
  if rule == "midpoint":  # v2^1.5 v4^-0.5
    return np.full_like(v2, 1 / (2.25 / s + 0.25 / (3 * q)))
  if rule == "clt":
    return np.full_like(v2, float(s))
  if rule == "measured":  # v2^2 / v4
    return np.full_like(v2, 1 / (4 / s + 1 / (3 * q)))
  return np.maximum((6 * v2 - v4) ** 2 / (36 * v2 ** 2 / s + v4 ** 2 / (3 * q)), 1.0)


RULES = ("midpoint", "clt", "measured", "two-term", "linear")
QUANTILES = {"z": np.inf, "t20": 20, "t40": 40, "satt": None}


def load(paths):
  """{(measure, case): {key: array}} over the .npz files (a later file's sets are appended)."""
  cells = collections.defaultdict(lambda: collections.defaultdict(list))
  for path in paths:
    with np.load(path) as raw:
      for key in raw.files:
        measure, case, name = key.split("|")
        cells[(measure, case)][name].append(raw[key])
  return cells


def evaluate(cells, confidence=0.95):
  """Rows per (measure, case): diagnostics and the coverage of every rule x quantile."""
  out = []
  p = (1 + confidence) / 2
  for (measure, case), got in sorted(cells.items()):
    est = np.concatenate(got["estimate"])
    if len(got["estimate"]) > 1:  # several runs: the leave-one-out truth over all of them
      truth = (est.sum(0) - est) / (len(est) - 1)
    else:
      truth = got["truth"][0]
    v2, v4 = np.concatenate(got["var_half"]), np.concatenate(got["var_quarter"])
    n = int(got["n"][0])
    sd = est.std(axis=0, ddof=1)
    std, _ = intervals.extrapolated_std(v2, v4, n)
    var = std ** 2
    row = {"measure": measure, "case": case, "sets": len(est), "sd": sd,
           "bias": std.mean(0) / sd, "rms_bias": np.sqrt(var.mean(0)) / sd,
           "cv": std.std(0, ddof=1) / std.mean(0),
           "df": 2 / np.var(np.log(var), axis=0, ddof=1),
           # the true secant rates: E[v4] / E[v2] (unbiased variances) and E[v2] / sd^2
           "beta_42": np.log2(v4.mean(0) / v2.mean(0)), "beta_21": np.log2(v2.mean(0) / sd ** 2),
           "coverage": {}, "width": {}}
    for rule in RULES:
      s = np.sqrt(var_at_n(rule, v2, v4))
      for name, df in QUANTILES.items():
        if df is None:
          df = satterthwaite_df(rule, v2, v4)
        q = scipy.special.ndtri(p) if np.all(np.isinf(df)) else scipy.special.stdtrit(df, p)
        row["coverage"][rule, name] = np.mean(np.abs(est - truth) <= q * s, axis=0)
        row["width"][rule, name] = np.mean(q * s, axis=0) / (scipy.special.ndtri(p) * sd)
    out.append(row)
  return out


def library_table(cells, confidence=0.95):
  """Markdown rows of the library's default interval (`intervals.extrapolated_std`, t on
  `intervals.halves_df`) per case and strength: coverage ± binomial s.e. and width / ideal."""
  p = (1 + confidence) / 2
  splits = intervals.DEFAULT_SPLITS
  q = scipy.special.stdtrit(intervals.halves_df(splits, splits // 2), p)
  lines = ["| measure | case | data sets | seeds | strong | medium | weak |",
           "|---|---|---|---|---|---|---|"]
  for (measure, case), got in sorted(cells.items()):
    est = np.concatenate(got["estimate"])
    truth = (est.sum(0) - est) / (len(est) - 1)  # leave-one-out over every run
    std, _ = intervals.extrapolated_std(np.concatenate(got["var_half"]),
                                        np.concatenate(got["var_quarter"]), int(got["n"][0]))
    sd = est.std(axis=0, ddof=1)
    cov = np.mean(np.abs(est - truth) <= q * std, axis=0)
    err = np.sqrt(cov * (1 - cov) / len(est))
    wid = np.mean(std, axis=0) * q / (scipy.special.ndtri(p) * sd)
    seeds = ",".join(str(int(x)) for x in got["seed"])
    lines.append(f"| {measure} | {case} | {len(est)} | {seeds} | " + " | ".join(
        f"{c:.3f} ± {e:.3f} ({w:.2f})" for c, e, w in zip(cov, err, wid)) + " |")
  return "\n".join(lines)


def report(rows):
  fmt = lambda v, f: " ".join(f"{x:{f}}" for x in v)
  for r in rows:
    print(f"\n{r['measure']}: {r['case']}  ({r['sets']} data sets)")
    print(f"  sd {fmt(r['sd'], '.4f')}   std/sd {fmt(r['bias'], '.3f')}   "
          f"rms std/sd {fmt(r['rms_bias'], '.3f')}   cv {fmt(r['cv'], '.3f')}   "
          f"df {fmt(r['df'], '.0f')}   rate N/4->N/2 {fmt(r['beta_42'], '.2f')}   N/2->N "
          f"{fmt(r['beta_21'], '.2f')}")
    for (rule, name), cov in r["coverage"].items():
      print(f"  {rule:9s} {name:4s} coverage {fmt(cov, '.3f')}  width "
            f"{fmt(r['width'][rule, name], '.2f')}")
  print("\nOver all cells (coverage min-max, mean; width min-max; cells outside [0.93, 0.97]):")
  for measure in sorted({r["measure"] for r in rows}):
    mine = [r for r in rows if r["measure"] == measure]
    for key in mine[0]["coverage"]:
      cov = np.concatenate([r["coverage"][key] for r in mine])
      wid = np.concatenate([r["width"][key] for r in mine])
      bad = int(np.sum((cov < 0.93) | (cov > 0.97)))
      print(f"  {measure:3s} {key[0]:9s} {key[1]:4s} {cov.min():.3f}-{cov.max():.3f} "
            f"(mean {cov.mean():.3f})  width {wid.min():.2f}-{wid.max():.2f}  outside: {bad} "
            f"of {len(cov)}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("raw", nargs="+", help=".npz files of bench_coverage.py --raw")
  parser.add_argument("--table", action="store_true",
                      help="only the library's default interval, as a markdown table: coverage "
                           "± binomial s.e. (width / ideal 3.92 sd) per case and strength")
  args = parser.parse_args()
  cells = load(args.raw)
  if args.table:
    print(library_table(cells))
  else:
    report(evaluate(cells))


if __name__ == "__main__":
  main()
