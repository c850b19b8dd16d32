"""repsim_jax: compare the layer-by-layer representations of vision models, in JAX."""
__version__ = "0.1.0"

from repsim_jax.metrics.imbalance import information_imbalance, information_imbalance_matrix
