r"""Cost of II / CKA uncertainty next to the plain matrix, measured in the same run.

  python benchmarks/bench_uncertainty.py                 # 24x24 layers, N=1e4, d=768, 200 + 200
  python benchmarks/bench_uncertainty.py --quick         # N=2000, 6x6 layers, d=128
  python benchmarks/bench_uncertainty.py --case=null,bootstrap --n=5000 --layers=12

Two synthetic models (`bench_imbalance.activations`, different seeds) give a cross-model
[La, Lb] matrix. Each line prints a time and its ratio to the plain matrix of the same layers:

  plain      `information_imbalance_matrix` (fused schedule: one pass per distinct layer), and
             the two-phase schedule (La + Lb passes) that the null and the bootstrap share;
  null       `imbalance_permutation_null` with P permutations (all ranks counted in the same
             distance blocks) and with 1, so the marginal cost of one permutation shows;
  bootstrap  `weighted_imbalance` with 1 + B replicates and with 1 (plain), likewise;
  acevedo    the Acevedo-convention matrix (500 query rows);
  cka        `cka_matrix` (exact) against `cka_bootstrap` (B) and the CKA null (P).
A loop recomputing the matrix per permutation or replicate would cost P (B) times the plain one.
Timings include compilation unless --warm (each case run once untimed first).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import repsim_jax  # noqa: E402
from benchmarks.bench_imbalance import activations, timed  # noqa: E402
from repsim_jax.metrics import calibration, imbalance_null, imbalance_weighted  # noqa: E402
from repsim_jax.metrics import kernel_alignment  # noqa: E402
from repsim_jax.metrics import intervals  # noqa: E402


def run(fn, warm):
  if warm:
    fn()
  return timed(fn)


def line(what, seconds, anchor, extra=""):
  print(f"  {what}: {seconds:.2f} s = {seconds / anchor:.2f}x the plain matrix{extra}",
        flush=True)


def marginal(title, unit, count, t_all, t_base, base_count, t_plain, extra):
  """Time of `count` units (permutations, replicates), of the same kernel with `base_count`
  units, and the cost of each unit beyond those."""
  print(f"{title}:", flush=True)
  line(f"{count} {unit}s", t_all, t_plain, f" (a loop: {count}x; {extra})")
  plural = "" if base_count == 1 else "s"
  line(f"{base_count} {unit}{plural} (the kernel's fixed cost)", t_base, t_plain)
  line(f"each further {unit}", (t_all - t_base) / (count - base_count), t_plain)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--case", default="all",
                 help="all, or a comma list of: plain, null, bootstrap, acevedo, cka")
  p.add_argument("--n", type=int, default=10000)
  p.add_argument("--layers", type=int, default=24)
  p.add_argument("--d", type=int, default=768)
  p.add_argument("--n_perm", type=int, default=200)
  p.add_argument("--n_boot", type=int, default=200)
  p.add_argument("--quick", action="store_true", help="N=2000, 6x6 layers, d=128")
  p.add_argument("--warm", action="store_true", help="exclude compilation: run each case twice")
  args = p.parse_args()
  if args.quick:
    args.n, args.layers, args.d = 2000, 6, 128
  n, n_perm, n_boot = args.n, args.n_perm, args.n_boot
  print(f"devices: {jax.devices()}, cores: {os.cpu_count()}, load: {os.getloadavg()[0]:.1f}; "
        f"{args.layers}x{args.layers} layers, N={n}, d={args.d}", flush=True)
  layers_a = activations(n, args.d, args.layers, seed=0)
  layers_b = activations(n, args.d, args.layers, seed=1)
  cases = ["null", "bootstrap", "acevedo", "cka"] if args.case == "all" else args.case.split(",")
  unknown = set(cases) - {"plain", "null", "bootstrap", "acevedo", "cka"}
  if unknown:
    raise SystemExit(f"--case: unknown {sorted(unknown)}")

  plain, t_plain = run(lambda: repsim_jax.information_imbalance_matrix(layers_a, layers_b),
                       args.warm)
  _, t_two = run(lambda: repsim_jax.information_imbalance_matrix(layers_a, layers_b,
                                                                fused=False), args.warm)
  print(f"plain II matrix: fused {t_plain:.2f} s ({2 * args.layers} distance passes), "
        f"two-phase {t_two:.2f} s ({2 * args.layers} passes) = {t_two / t_plain:.2f}x",
        flush=True)

  if "null" in cases:
    perms = calibration.permutations(n, n_perm, seed=0)
    (obs, null), t_null = run(lambda: imbalance_null.imbalance_permutation_null(
        layers_a, layers_b, perms), args.warm)
    _, t_one = run(lambda: imbalance_null.imbalance_permutation_null(layers_a, layers_b,
                                                                     perms[:1]), args.warm)
    assert np.array_equal(obs, plain)
    marginal(f"II permutation null ({2 * args.layers} distance passes in all)", "permutation",
             n_perm, t_null, t_one, 1, t_plain,
             f"null mean {null.mean():.3f}, observed {obs.mean():.3f}")

  if "bootstrap" in cases:
    weights = np.concatenate([np.ones((1, n), np.int32), intervals.bootstrap_weights(n, n_boot, 0)])
    reps, t_boot = run(lambda: imbalance_weighted.weighted_imbalance(layers_a, layers_b, weights),
                       args.warm)
    _, t_base = run(lambda: imbalance_weighted.weighted_imbalance(layers_a, layers_b,
                                                                  weights[:1]), args.warm)
    assert np.array_equal(reps[0], plain)
    half = intervals.bootstrap_interval(reps[0], reps[1:])["half_width"]
    marginal(f"II image bootstrap, plus the plain value ({2 * args.layers} distance passes in "
             f"all)", "replicate", n_boot, t_boot, t_base, 0, t_plain,
             f"median 95% half-width {np.median(half):.4f}")

  if "acevedo" in cases:
    _, t_ac = run(lambda: repsim_jax.information_imbalance_matrix(
        layers_a, layers_b, convention="acevedo"), args.warm)
    print("Acevedo convention (500 query rows, one pass per distinct layer):", flush=True)
    line("matrix", t_ac, t_plain)

  if "cka" in cases:
    _, t_cka = run(lambda: repsim_jax.cka_matrix(layers_a, layers_b), args.warm)
    print(f"CKA (debiased, exact) {t_cka:.2f} s:", flush=True)
    _, t_cb = run(lambda: intervals.cka_bootstrap(layers_a, layers_b, n_boot=n_boot), args.warm)
    print(f"  {n_boot} bootstrap replicates: {t_cb:.2f} s = {t_cb / t_cka:.1f}x the plain CKA "
          f"matrix (one pass over Gram row blocks; a loop: {n_boot}x)", flush=True)
    perms = calibration.permutations(n, n_perm, seed=0)
    _, t_cn = run(lambda: kernel_alignment.cka_permutation_null(layers_a, layers_b, perms),
                  args.warm)
    print(f"  {n_perm} permutations: {t_cn:.2f} s = {t_cn / t_cka:.1f}x the plain CKA matrix "
          f"(cross terms recomputed per permutation)", flush=True)


if __name__ == "__main__":
  main()
