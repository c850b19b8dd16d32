"""Measures that compare the feature spaces directly: subspace overlap and neuron matching.

From ReSi (Klabunde et al. 2025, github.com/mklabunde/resi):

  eigenspace-overlap-score       (repsim/measures/eigenspace_overlap.py; May et al. 2019)
                                 ||U_x^T U_y||_F^2 / max(d_x, d_y), U = the left singular vectors
                                 of the (uncentred) representation up to its numerical rank
                                 (numpy's matrix_rank tolerance: s_max * max(n, d) * eps, float64)
  hard-correlation-match-score   (repsim/measures/correlation_match.py; Li et al. 2016)
                                 C = Pearson correlations between the neurons (columns) of x and y;
                                 the one-to-one matching of min(d_x, d_y) neurons that maximises
                                 the summed correlation (Hungarian, scipy linear_sum_assignment);
                                 the mean matched correlation
  soft-correlation-match-score   (mean_i max_j C_ij + mean_j max_i C_ij) / 2

A constant neuron correlates 0 with everything (sklearn's cosine of a zero vector). Preparation
(once per layer): the truncated singular vectors (float64 SVD on the host), or the centred
columns scaled to unit norm (float32); a pair is one product of those ([n, r_x] x [n, r_y], or
[d_x, n] x [n, d_y]) and, for the hard match, the assignment on the host.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics import validation

__all__ = ["singular_subspace", "unit_neurons", "eigenspace_overlap", "hard_correlation_match",
           "soft_correlation_match"]

_HI = jax.lax.Precision.HIGHEST


def singular_subspace(x, **unused_options) -> dict:
  """{"u": [n, rank] left singular vectors (float64), "d": number of features}."""
  x = np.asarray(validation.as_representation(x, "x"), np.float64)
  u, s, _ = np.linalg.svd(x, full_matrices=False)
  rank = int(np.sum(s > s.max(initial=0.0) * max(x.shape) * np.finfo(np.float64).eps))
  return {"u": u[:, :rank], "d": x.shape[1]}


def eigenspace_overlap(a: dict, b: dict, **unused_options) -> float:
  if a["u"].shape[0] != b["u"].shape[0]:
    raise ValueError(f"expected the same images in both representations, got n = "
                     f"{a['u'].shape[0]} and {b['u'].shape[0]}")
  return float(np.sum((a["u"].T @ b["u"]) ** 2) / max(a["d"], b["d"]))


def unit_neurons(x, **unused_options) -> jax.Array:
  """[n, d] -> columns centred and scaled to unit norm (float32; constant columns stay 0)."""
  x = np.asarray(validation.as_representation(x, "x"), np.float64)
  x = x - x.mean(axis=0)
  norms = np.linalg.norm(x, axis=0)
  return jnp.asarray(x / np.where(norms > 0, norms, 1.0), jnp.float32)


@jax.jit
def _correlations(a, b):
  return jnp.matmul(a.T, b, precision=_HI)


def _correlation_matrix(a, b) -> np.ndarray:
  if a.shape[0] != b.shape[0]:
    raise ValueError(f"expected the same images in both representations, got n = {a.shape[0]} "
                     f"and {b.shape[0]}")
  return np.asarray(_correlations(a, b), np.float64)


def hard_correlation_match(a, b, **unused_options) -> float:
  corr = _correlation_matrix(a, b)
  rows, cols = scipy.optimize.linear_sum_assignment(corr, maximize=True)
  return float(corr[rows, cols].mean())


def soft_correlation_match(a, b, **unused_options) -> float:
  corr = _correlation_matrix(a, b)
  return float((corr.max(axis=1).mean() + corr.max(axis=0).mean()) / 2)


_RESI = "Klabunde et al. 2025 (ReSi), github.com/mklabunde/resi repsim/measures/"
register(Measure(
    name="eigenspace-overlap-score", kind="similarity", pair=eigenspace_overlap,
    prepare=singular_subspace, preparation="left singular vectors",
    properties=Properties(symmetric=True, invariances=("orthogonal", "isotropic_scaling",
                                                       "invertible_linear", "permutation")),
    perfect=1.0, min_rows=2,
    reference="May et al. 2019; " + _RESI + "eigenspace_overlap.py"))
_MATCH_INVARIANCES = ("isotropic_scaling", "permutation", "translation")
register(Measure(
    name="hard-correlation-match-score", kind="similarity", pair=hard_correlation_match,
    prepare=unit_neurons, preparation="centred unit-norm neurons",
    properties=Properties(symmetric=True, invariances=_MATCH_INVARIANCES), perfect=1.0,
    min_rows=2, reference="Li et al. 2016; " + _RESI + "correlation_match.py"))
register(Measure(
    name="soft-correlation-match-score", kind="similarity", pair=soft_correlation_match,
    prepare=unit_neurons, preparation="centred unit-norm neurons",
    properties=Properties(symmetric=True, invariances=_MATCH_INVARIANCES), perfect=1.0,
    min_rows=2, reference="Li et al. 2016; " + _RESI + "correlation_match.py"))
