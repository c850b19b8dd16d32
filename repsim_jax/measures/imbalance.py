"""Information imbalance as measures: DADApy's convention and Acevedo et al.'s.

Delta(A -> B) (Glielmo et al. 2022): 0 when A's neighbourhoods are B's, about 1 when unrelated,
so a distance-like score (lower = more similar) and not symmetric. Kernels and conventions:
`repsim_jax.metrics.imbalance` (the two conventions side by side in `information_imbalance`).

Fast paths (DADApy's convention): the streaming rank-count matrix, the bootstrap's weighted rank
counts (`imbalance_weighted`: copies of the query image are not its own neighbours, so on a
bootstrap resample with repeated images it is not the plain Delta of the repeated rows, which
the generic path computes; on 0/1 weights, i.e. subsets, the two agree exactly), and the
permutation null counted inside the same distance pass (`imbalance_null`).
"""
from __future__ import annotations

import jax
import numpy as np

from repsim_jax import sharding
from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics import imbalance, imbalance_null, imbalance_weighted

_FAST = dict(block_size=None, memory_budget_bytes=None, mesh=None, dtype=np.float32,
             check_duplicates=True, fused=None, progress=None)
_PROPERTIES = Properties(symmetric=False,
                         invariances=("orthogonal", "isotropic_scaling", "translation"))
_REFERENCE = ("Glielmo et al., PNAS Nexus 2022; DADApy MetricComparisons (Glielmo et al., "
              "Patterns 2022)")


def _pair(convention):
  def pair(a, b, **opts):
    # One process's first device: the engine spreads the pairs, so no collective here.
    mesh = sharding.row_mesh([jax.local_devices()[0]])
    return imbalance.information_imbalance_matrix(
        [np.asarray(a)], [np.asarray(b)], convention=convention, mesh=mesh,
        check_duplicates=False, **opts)[0, 0]
  return pair


def _matrix(convention):
  def matrix(layers_a, layers_b, **opts):
    return imbalance.information_imbalance_matrix(layers_a, layers_b, convention=convention,
                                                  **opts)
  return matrix


def _bootstrap(layers_a, layers_b, weights, *, k, metric, ties, block_size, memory_budget_bytes,
               mesh, dtype, **unused):
  if ties != "min":
    return None  # the weighted counts rank with ties "min" only: the generic path
  return imbalance_weighted.weighted_imbalance(
      layers_a, layers_b, weights, k=k, metric=metric, mesh=mesh, block_size=block_size,
      memory_budget_bytes=memory_budget_bytes, dtype=dtype)


def _null(layers_a, layers_b, perms, *, k, metric, ties, block_size, memory_budget_bytes, mesh,
          dtype, **unused):
  return imbalance_null.imbalance_permutation_null(
      layers_a, layers_b, perms, k=k, metric=metric, ties=ties, mesh=mesh,
      block_size=block_size, memory_budget_bytes=memory_budget_bytes, dtype=dtype)


register(Measure(
    name="information_imbalance-convention=dadapy-distance", aliases=("imbalance", "ii"),
    kind="distance", properties=_PROPERTIES, pair=_pair("dadapy"), preparation="nothing",
    options=dict(k=1, metric="euclidean", ties="min"), fast_options=_FAST, min_rows=3,
    reference=_REFERENCE + "; equals DADApy on tie-free data (tests/reference)",
    matrix=_matrix("dadapy"), bootstrap=_bootstrap, permutation_null=_null))

register(Measure(
    name="information_imbalance-convention=acevedo-distance", aliases=("imbalance-acevedo",),
    kind="distance", properties=_PROPERTIES, pair=_pair("acevedo"), preparation="nothing",
    options=dict(k=1, metric="euclidean", ties="min", seed=0, query_rows=None),
    fast_options={k: v for k, v in _FAST.items() if k not in ("fused", "progress")},
    min_rows=5, reference="Acevedo et al., arXiv:2505.17101 (2025), the authors' code",
    matrix=_matrix("acevedo")))
