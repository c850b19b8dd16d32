"""repsim_jax: compare the layer-by-layer representations of vision models, in JAX.

The public metric API (contracts in docs/design.md): information imbalance, its statistics,
the CKA family and neighbour-based measures, single pair and all-layer matrices, with their
uncertainty (bootstrap and subsample intervals, permutation-calibrated scores, the cross-encoder
subspace analysis). Every function
takes numpy or jax arrays [n, d] (layers of different widths are fine). The jit-friendly kernels
live in `repsim_jax.metrics.*`; models in `repsim_jax.models`, the pipelines of the two papers in
`repsim_jax.pipelines`.

Defaults that differ on purpose (both are contracts): `cka(debiased=False)`, the biased estimator
of Kornblith et al. 2019's definition for one pair, and `cka_matrix(debiased=True)`, the unbiased
estimator of the all-layer heatmaps and minibatch CKA (Raghu et al. 2021, Nguyen et al. 2020),
whose batch sums do not depend on the batch size.
"""
__version__ = "0.1.0"

from repsim_jax.analysis.subspace import cross_encoder_subspace
from repsim_jax.metrics.calibration import calibrate, permutation_test
from repsim_jax.metrics.cca import pwcca, pwcca_matrix, svcca, svcca_matrix
from repsim_jax.metrics.distances import pairwise_distances
from repsim_jax.metrics.imbalance import (imbalance_between_models, information_imbalance,
                                           information_imbalance_matrix,
                                           information_imbalance_pair)
from repsim_jax.metrics.imbalance_stats import (imbalance_subsets, sample_size_curve, smoothness,
                                                 smoothness_curve)
from repsim_jax.metrics.intervals import (cka_bootstrap, cka_subsets, format_interval,
                                          imbalance_bootstrap)
from repsim_jax.metrics.kernel_alignment import RAGHU_PROTOCOL, cka_matrix
from repsim_jax.metrics.kernel_alignment import cka as _cka_kernel
from repsim_jax.metrics.knn_alignment import cknna, cknna_matrix, mutual_knn, mutual_knn_matrix
from repsim_jax.metrics.neighbours import knn
from repsim_jax.metrics.procrustes import procrustes, procrustes_matrix

__all__ = [
    # information imbalance (Glielmo et al. 2022; Mahaut & Baroni 2026)
    "information_imbalance", "information_imbalance_matrix", "information_imbalance_pair",
    "imbalance_between_models",
    # its statistics (Mahaut & Baroni 2026, App. B)
    "imbalance_subsets", "sample_size_curve", "smoothness", "smoothness_curve",
    # the CKA family (Kornblith et al. 2019; Raghu et al. 2021) and CCA / Procrustes
    "cka", "cka_matrix", "RAGHU_PROTOCOL", "svcca", "svcca_matrix", "pwcca", "pwcca_matrix",
    "procrustes", "procrustes_matrix",
    # neighbours and distances (Huh et al. 2024 for mutual k-NN / CKNNA)
    "knn", "pairwise_distances", "mutual_knn", "mutual_knn_matrix", "cknna", "cknna_matrix",
    # uncertainty: intervals, permutation calibration, the cross-encoder subspace analysis
    "imbalance_bootstrap", "cka_bootstrap", "cka_subsets", "format_interval", "calibrate",
    "permutation_test", "cross_encoder_subspace",
]


def cka(x, y, *, kernel: str = "linear", debiased: bool = False, **kwargs) -> float:
  """CKA between two representations [n, d_x], [n, d_y] as a Python float (Kornblith et al. 2019).

  debiased=False (the biased estimator) by default, unlike `cka_matrix` (see the module
  docstring). See `repsim_jax.metrics.kernel_alignment.cka`, the jit-friendly kernel returning a
  0-d array.
  """
  return float(_cka_kernel(x, y, kernel=kernel, debiased=debiased, **kwargs))
