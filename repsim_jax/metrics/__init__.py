"""Pure JAX metric kernels: distances, neighbours, information imbalance, CKA and friends."""
