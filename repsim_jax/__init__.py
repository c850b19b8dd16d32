"""repsim_jax: compare the layer-by-layer representations of vision models, in JAX.

The public metric API (contracts in DESIGN.md): information imbalance and CKA, single pair and
all-layer matrices, with their uncertainty: bootstrap and subsample intervals
(`repsim_jax.metrics.intervals`), permutation-calibrated scores (`repsim_jax.metrics.calibration`)
and the cross-encoder subspace analysis. The jit-friendly kernels live in `repsim_jax.metrics.*`.
"""
__version__ = "0.1.0"

from repsim_jax.metrics.cka import RAGHU_PROTOCOL, cka_matrix
from repsim_jax.metrics.cka import cka as _cka_kernel
from repsim_jax.metrics.imbalance import (information_imbalance, information_imbalance_matrix,
                                           information_imbalance_pair)
from repsim_jax.metrics.imbalance_stats import imbalance_subsets
from repsim_jax.metrics.intervals import (cka_bootstrap, cka_subsets, format_interval,
                                          imbalance_bootstrap)
from repsim_jax.metrics.calibration import calibrate, permutation_test
from repsim_jax.analysis.subspace import cross_encoder_subspace


def cka(x, y, *, kernel: str = "linear", debiased: bool = False, **kwargs) -> float:
  """CKA between two representations [n, d_x], [n, d_y] as a Python float (Kornblith et al. 2019).

  See `repsim_jax.metrics.cka.cka`, the jit-friendly kernel returning a 0-d array.
  """
  return float(_cka_kernel(x, y, kernel=kernel, debiased=debiased, **kwargs))
