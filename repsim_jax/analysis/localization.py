"""Localization: CKA between one position's representation and the input patches at every
location (Raghu et al. 2021, Sec. 7, Figs. 9, 10, D.1-D.3).

References:
  Raghu, Unterthiner, Kornblith, Zhang, Dosovitskiy. "Do Vision Transformers See Like
  Convolutional Neural Networks?" NeurIPS 2021.
"""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from repsim_jax.analysis.tokens import as_array, feature_grid, pair
from repsim_jax.metrics import kernel_alignment


def image_patches(images: jax.Array, patch_size: int | Sequence[int]) -> jax.Array:
  """Non-overlapping patches: [N, H, W, C] -> [N, H // ph, W // pw, ph * pw * C].

  Each patch is flattened row-major (rows, then columns, then channels); H and W must be
  multiples of the patch size. numpy in, numpy out; JAX in, JAX out.
  """
  images = as_array(images)
  if images.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
  ph, pw = pair(patch_size, "patch_size")
  n, h, w, c = images.shape
  if h % ph or w % pw:
    raise ValueError(f"images: size {h}x{w} is not a multiple of patch_size {ph}x{pw}")
  x = images.reshape(n, h // ph, ph, w // pw, pw, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h // ph, w // pw, ph * pw * c)


def localization_maps(features: jax.Array, images: jax.Array, *,
                      patch_size: int | Sequence[int] | None = None,
                      num_prefix_tokens: int = 1, grid_shape: Sequence[int] | None = None,
                      tokens: Sequence[Sequence[int]] | None = None, debiased: bool = True,
                      batch_size: int | None = None, **cka_options) -> np.ndarray:
  """CKA between one position's representation and the input patches at every location.

  Args:
    features: one layer on N images: tokens [N, T, D] (prefix tokens dropped, the rest
      reshaped to the patch grid) or an NHWC feature map [N, h, w, C] (a ResNet "token" is all
      channels at one spatial position).
    images: [N, H, W, C] the inputs (as fed to the model).
    patch_size: input patch size; default H // h (and W // w) so that the patch grid matches
      the feature grid, as in Figs. 9 and D.3.
    tokens: (row, col) feature-grid positions to map; default all, row-major.
    debiased, batch_size, **cka_options: passed to `repsim_jax.cka_matrix`
      (linear CKA). The exact path holds all K + P token / patch representations (features when
      N > d, else N x N Grams); for many images pass batch_size (minibatch CKA, memory
      (K + P) * batch_size^2 floats per batch, independent of N) and, for the paper's
      protocol, n_samples=10240, repeats=20, seed=....
  Returns:
    [K, grid_h', grid_w'] maps: entry [k, a, b] = CKA(features at tokens[k], patch (a, b)),
    K = len(tokens) (or h * w for all positions, row-major).

  References:
    Raghu et al. 2021, Sec. 7, Figs. 9, 10, D.1-D.3.
  """
  # Rearranged on the host: one XLA compile per token slice would dominate the run time.
  features = np.asarray(feature_grid(np.asarray(features), num_prefix_tokens, grid_shape))
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[0] != features.shape[0]:
    raise ValueError(f"images must be [N, H, W, C] with N = {features.shape[0]} (the number of "
                     f"feature rows), got shape {images.shape}")
  gh, gw = features.shape[1:3]
  if patch_size is None:
    if images.shape[1] % gh or images.shape[2] % gw:
      raise ValueError(f"images {images.shape[1:3]} are not a multiple of the feature grid "
                       f"{(gh, gw)}; pass patch_size")
    patch_size = (images.shape[1] // gh, images.shape[2] // gw)
  patches = np.asarray(image_patches(images, patch_size))
  ph_grid, pw_grid = patches.shape[1:3]
  if tokens is None:
    tokens = [(r, c) for r in range(gh) for c in range(gw)]
  token_reps = [features[:, r, c, :] for r, c in tokens]
  patch_reps = [patches[:, a, b, :] for a in range(ph_grid) for b in range(pw_grid)]
  similarity = np.asarray(kernel_alignment.cka_matrix(
      token_reps, patch_reps, hsic="song" if debiased else "gretton", batch_size=batch_size,
      **cka_options))
  return similarity.reshape(len(token_reps), ph_grid, pw_grid)
