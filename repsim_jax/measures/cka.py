"""Centered kernel alignment as measures: linear and RBF kernels, Gretton's and Song's HSIC.

CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) (Kornblith et al. 2019), with the biased HSIC of
Gretton et al. 2005 ("gretton") or the unbiased HSIC_1 of Song et al. 2012 ("song"). Kernels and
conventions: `repsim_jax.metrics.kernel_alignment`. The alias `cka` is the linear kernel with
Song's estimator, the all-layer heatmap convention of `cka_matrix`, permutation tests and the
imbalance command (`repsim_jax.cka(x, y)` for one pair keeps its biased default).

Fast paths (linear kernel): the exact matrix (feature-space Gram sums, each layer centred once),
the bootstrap's weighted HSIC sums (`cka_weighted`, equal to CKA on the repeated rows), and the
permutation null recomputing only the cross terms.
"""
from __future__ import annotations

import functools

import numpy as np

from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics import cka_weighted, kernel_alignment

_REFERENCE = ("Kornblith et al., ICML 2019 (google-research representation_similarity); "
              "Song et al., JMLR 2012 (HSIC_1)")
_FAST = dict(mesh=None, block_size=None, memory_budget_bytes=None, dtype=np.float32)


def _declare(kernel: str, hsic: str, aliases: tuple[str, ...]) -> Measure:
  param = "linear" if kernel == "linear" else "rbf-threshold=1.0"
  pair = functools.partial(kernel_alignment.cka, kernel=kernel, hsic=hsic)

  def matrix(layers_a, layers_b, **fast):
    return kernel_alignment.cka_matrix(layers_a, layers_b, kernel=kernel, hsic=hsic)

  linear = kernel == "linear"
  return register(Measure(
      name=f"cka-kernel={param}-hsic={hsic}-score", aliases=aliases, kind="similarity",
      properties=Properties(symmetric=True, invariances=(
          "orthogonal", "isotropic_scaling", "translation")),
      preparation="nothing (centred inside the pair)", pair=pair,
      min_rows=4 if hsic == "song" else 2, reference=_REFERENCE, fast_options=_FAST,
      matrix=matrix,
      bootstrap=functools.partial(cka_weighted.weighted_cka, hsic=hsic) if linear else None,
      permutation_null=(
          (lambda la, lb, perms, **fast: kernel_alignment.cka_permutation_null(
              la, lb, perms, hsic=hsic)) if linear else None)))


_declare("linear", "song", ("cka", "cka-debiased", "cka-song"))
_declare("linear", "gretton", ("cka-biased", "cka-gretton"))
_declare("rbf", "gretton", ("cka-rbf",))
_declare("rbf", "song", ("cka-rbf-debiased",))
