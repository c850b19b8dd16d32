"""Neighbour-based measures of Huh et al. 2024: mutual k-NN alignment and CKNNA.

Kernels and conventions (cosine neighbours by default, self excluded, ties to the lower index,
the reference's 1e-6 in CKNNA): `repsim_jax.metrics.knn_alignment`. Each layer is prepared once:
its k-NN lists (mutual k-NN), or its Gram matrix, k-NN mask and masked self-HSIC (CKNNA).
Fast paths: the matrices, and permutation nulls that gather each layer's lists / Gram once
computed.
"""
from __future__ import annotations

from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics import knn_alignment
from repsim_jax.metrics.kernel_alignment import resolve_hsic

_REFERENCE = "Huh et al., ICML 2024 (github minyoungg/platonic-rep, metrics.py)"
_INVARIANCES = ("orthogonal", "isotropic_scaling", "permutation")


def _unbiased(hsic: str) -> bool:
  return resolve_hsic(hsic, None, old_name="unbiased", default="song", where="cknna")


register(Measure(
    name="mutual_knn-k=10-score", aliases=("mutual_knn", "mknn"), kind="similarity",
    properties=Properties(symmetric=True, invariances=_INVARIANCES),
    preparation="k-NN lists",
    prepare=lambda x, *, k, normalize: knn_alignment.knn_indices(x, k=k, normalize=normalize),
    pair=lambda ia, ib, **unused: knn_alignment.knn_overlap(ia, ib),
    options=dict(k=10, normalize=True), min_rows=3, reference=_REFERENCE,
    matrix=knn_alignment.mutual_knn_matrix,
    permutation_null=knn_alignment.mutual_knn_permutation_null))

# CKNNA is not symmetric: the reference's unbiased HSIC of the masked (non-symmetric) Grams has
# a cross term sum_j (sum_i A_ij)(sum_l B_jl) that changes when A and B swap.
register(Measure(
    name="cknna-k=10-score", aliases=("cknna",), kind="similarity",
    properties=Properties(symmetric=False, invariances=_INVARIANCES),
    preparation="Gram matrix, k-NN mask and masked self-HSIC",
    prepare=lambda x, *, k, normalize, hsic: knn_alignment.cknna_layer(
        x, k=k, normalize=normalize, unbiased=_unbiased(hsic)),
    pair=lambda pa, pb, *, hsic, **unused: knn_alignment.cknna_prepared(
        pa, pb, unbiased=_unbiased(hsic)),
    options=dict(k=10, normalize=True, hsic="song"), min_rows=4,
    reference=_REFERENCE + "; Song et al., JMLR 2012 (HSIC_1)",
    matrix=knn_alignment.cknna_matrix, permutation_null=knn_alignment.cknna_permutation_null))
