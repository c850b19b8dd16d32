"""Canonical correlation measures: SVCCA (Raghu et al. 2017) and PWCCA (Morcos et al. 2018).

Kernels and conventions (canonical correlations from the thin SVDs, numerical rank, PWCCA
weights from the first argument's centred neurons): `repsim_jax.metrics.cca`. Each layer is
prepared once: its centred thin SVD (truncated to 99% of the variance for SVCCA).
"""
from __future__ import annotations

from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics import cca

register(Measure(
    name="svcca-var=0.99-score", aliases=("svcca",), kind="similarity",
    properties=Properties(symmetric=True, invariances=(
        "orthogonal", "isotropic_scaling", "translation")),
    preparation="centred SVD, 99% of the variance",
    prepare=lambda x: cca.cca_layer(x, keep=0.99),
    pair=lambda a, b: cca.svcca_prepared(a, b),
    matrix=lambda la, lb: cca.svcca_matrix(la, lb, keep=0.99),
    reference="Raghu et al., NeurIPS 2017; google/svcca"))

register(Measure(
    name="pwcca-score", aliases=("pwcca",), kind="similarity",
    properties=Properties(symmetric=False, invariances=(
        "isotropic_scaling", "translation", "permutation")),
    preparation="centred SVD (numerical rank)",
    prepare=lambda x: cca.cca_layer(x), pair=lambda a, b: cca.pwcca_prepared(a, b),
    matrix=cca.pwcca_matrix, reference="Morcos et al., NeurIPS 2018; google/svcca pwcca.py"))
