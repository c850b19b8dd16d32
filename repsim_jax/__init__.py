"""repsim_jax: compare the layer-by-layer representations of vision models, in JAX.

The public metric API (contracts in docs/design.md): information imbalance, its statistics,
the CKA family and neighbour-based measures, single pair and all-layer matrices, with their
uncertainty (bootstrap and subsample intervals, permutation-calibrated scores, the cross-encoder
subspace analysis). Every function
takes numpy or jax arrays [n, d] (layers of different widths are fine). The jit-friendly kernels
live in `repsim_jax.metrics.*`; models in `repsim_jax.models`, the pipelines of the two papers in
`repsim_jax.pipelines`.

Every measure is also declared once behind one protocol (`repsim_jax.measures`):
`measure(name)(x, y) -> float`, `measures()` (names, aliases, properties), `similarity_matrix(
layers_a, layers_b, measure=name) -> np.ndarray [La, Lb]`, with intervals and calibration for any
of them. One API: every pair function here returns a Python float, every matrix function an
np.ndarray [La, Lb] (the jit-friendly kernels in `repsim_jax.metrics.*` return 0-d arrays).

Defaults that differ on purpose (both are contracts): `cka(hsic="gretton")`, the biased estimator
of Kornblith et al. 2019's definition for one pair, and `cka_matrix(hsic="song")`, the unbiased
estimator of the all-layer heatmaps and minibatch CKA (Raghu et al. 2021, Nguyen et al. 2020),
whose batch sums do not depend on the batch size. `hsic=` chooses the HSIC estimator everywhere
(CKA, CKNNA, centring); the old `debiased=` / `unbiased=` keep working for one release, with a
DeprecationWarning.
"""
__version__ = "0.1.0"

from repsim_jax.analysis.subspace import cross_encoder_subspace
from repsim_jax.metrics.calibration import calibrate, permutation_test
from repsim_jax.measures import bootstrap as measure_bootstrap
from repsim_jax.measures import measure, measures, similarity_matrix
from repsim_jax.measures import subsets as measure_subsets
from repsim_jax.metrics import cca as _cca
from repsim_jax.metrics import knn_alignment as _knn_alignment
from repsim_jax.metrics import procrustes as _procrustes
from repsim_jax.metrics import validation as _validation
from repsim_jax.metrics.cca import pwcca_matrix, svcca_matrix
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
from repsim_jax.metrics.knn_alignment import cknna_matrix, mutual_knn_matrix
from repsim_jax.metrics.neighbours import knn
from repsim_jax.metrics.procrustes import procrustes_matrix

__all__ = [
    # every measure behind one protocol (names, properties, matrices, intervals, calibration)
    "measure", "measures", "similarity_matrix", "measure_bootstrap", "measure_subsets",
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


def cka(x, y, *, kernel: str = "linear", hsic: str | None = None, **kwargs) -> float:
  """CKA between two representations [n, d_x], [n, d_y] as a Python float (Kornblith et al. 2019).

  hsic="gretton" (the biased estimator) by default, unlike `cka_matrix` (see the module
  docstring); `debiased=` is its deprecated form. See `repsim_jax.metrics.kernel_alignment.cka`,
  the jit-friendly kernel returning a 0-d array. A constant or near-constant x or y warns (its
  CKA is 0 by convention).
  """
  value = float(_cka_kernel(x, y, kernel=kernel, hsic=hsic, **kwargs))  # validates x and y
  # Here, not in the jit-friendly kernel: the measure engine calls that once per layer pair.
  layers, names = ([x], ["x"]) if y is x else ([x, y], ["x", "y"])
  _validation.warn_degenerate_layers(layers, names, measure="cka", duplicates=False)
  return value


def procrustes(x, y) -> float:
  """Squared Procrustes distance 2 - 2 ||X^^T Y^||_* in [0, 2] on unit-norm centred x, y (Ding et
  al. 2021), the measure `procrustes-distance=squared_euclidean`, as a Python float."""
  return float(_procrustes.procrustes(x, y))


def svcca(x, y, *, keep: float = 0.99) -> float:
  """SVCCA (Raghu et al. 2017) as a Python float; see `repsim_jax.metrics.cca.svcca`."""
  return float(_cca.svcca(x, y, keep=keep))


def pwcca(x, y) -> float:
  """PWCCA (Morcos et al. 2018), weights from x, as a Python float; see `metrics.cca.pwcca`."""
  return float(_cca.pwcca(x, y))


def mutual_knn(x, y, *, k: int = 10, normalize: bool = True) -> float:
  """Mutual k-NN alignment (Huh et al. 2024) as a Python float; see `metrics.knn_alignment`."""
  return float(_knn_alignment.mutual_knn(x, y, k=k, normalize=normalize))


def cknna(x, y, *, k: int = 10, normalize: bool = True, hsic: str | None = None,
          **kwargs) -> float:
  """CKNNA (Huh et al. 2024) as a Python float; `unbiased=` is the deprecated form of `hsic`."""
  return float(_knn_alignment.cknna(x, y, k=k, normalize=normalize, hsic=hsic, **kwargs))
