"""A built-in "model" with known information flow, for the II demo and for tests.

A latent z ~ N(0, I_D) describes each of N points. Layer l keeps the first D - l * drop latent
coordinates (information is lost with depth, as in a network that discards input detail), maps
them with a random orthogonal embedding into `width` dimensions and adds isotropic noise.

Ground truth: layer l contains everything layer l' > l contains, so Delta(l -> l') < Delta(l' -> l)
(the deep layer cannot recover the dropped coordinates, while the early layer's extra coordinates
only blur the deep layer's neighbourhoods), and adjacent layers are closer than distant ones:
Delta grows with |l - l'| in both directions.
"""
from __future__ import annotations

import numpy as np


def information_loss_layers(n: int = 2000, *, n_layers: int = 8, latent_dim: int = 16,
                            drop: int = 2, width: int = 32, noise: float = 0.05,
                            seed: int = 0) -> list[np.ndarray]:
  """Returns `n_layers` float32 arrays [n, width] (see the module docstring)."""
  if latent_dim - (n_layers - 1) * drop < 1:
    raise ValueError(f"latent_dim={latent_dim} too small to drop {drop} coordinates per layer "
                     f"over {n_layers} layers")
  if width < latent_dim:
    raise ValueError(f"width={width} must be >= latent_dim={latent_dim}")
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, latent_dim))
  layers = []
  for layer in range(n_layers):
    kept = latent_dim - layer * drop
    embed, _ = np.linalg.qr(rng.normal(size=(width, kept)))  # orthonormal columns
    x = z[:, :kept] @ embed.T + noise * rng.normal(size=(n, width))
    layers.append(x.astype(np.float32))
  return layers
