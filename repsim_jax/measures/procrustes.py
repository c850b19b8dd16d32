"""Orthogonal Procrustes as measures, on centred representations scaled to unit Frobenius norm.

With X^, Y^ centred and unit-norm and ||.||_* the nuclear norm (`repsim_jax.metrics.procrustes`):

  procrustes-distance=squared_euclidean   min_Q ||X^ - Y^ Q||_F^2 = 2 - 2 ||X^^T Y^||_*, in
                                          [0, 2] (what `repsim_jax.procrustes` has computed;
                                          Ding et al. 2021)
  procrustes-distance=angular             arccos ||X^^T Y^||_*, in [0, pi/2], a metric
                                          (Williams et al. 2021)
  nbs-score                               ||X^^T Y^||_*, in [0, 1], the normalized Bures
                                          similarity (Harvey et al. 2023) = 1 - squared / 2

All three share one preparation per layer: U S of its thin SVD. The names are the similarity
repository's. A constant representation: squared distance 2, angle pi/2, NBS 0.
"""
from __future__ import annotations

import jax.numpy as jnp

from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics import procrustes

_PROPERTIES = dict(invariances=("orthogonal", "isotropic_scaling", "translation"))
_PREPARATION = "U S of the unit-norm centred SVD"
_REFERENCE = ("Ding et al., NeurIPS 2021; Williams et al., NeurIPS 2021 (netrep); "
              "Harvey et al., 2023 (NBS)")


def _layer(x):
  return procrustes.procrustes_layer(x)


register(Measure(
    name="procrustes-distance=squared_euclidean", aliases=("procrustes",), kind="distance",
    properties=Properties(**_PROPERTIES), preparation=_PREPARATION, prepare=_layer,
    pair=lambda a, b: procrustes.procrustes_prepared(a, b),
    matrix=lambda la, lb: procrustes.procrustes_matrix(la, lb), reference=_REFERENCE))

register(Measure(
    name="procrustes-distance=angular", aliases=("procrustes-angular",), kind="distance",
    properties=Properties(metric=True, **_PROPERTIES), preparation=_PREPARATION, prepare=_layer,
    pair=lambda a, b: jnp.arccos(procrustes.nuclear_prepared(a, b)), reference=_REFERENCE))

register(Measure(
    name="nbs-score", aliases=("nbs",), kind="similarity",
    properties=Properties(**_PROPERTIES), preparation=_PREPARATION, prepare=_layer,
    pair=lambda a, b: procrustes.nuclear_prepared(a, b), reference=_REFERENCE))
