"""Attention distances and skip-connection statistics of a model, streamed over image batches
(Raghu et al. 2021, Figs. 3, 4, 7, C.5, E.1, E.2): one forward pass per batch feeds both.

References:
  Raghu, Unterthiner, Kornblith, Zhang, Dosovitskiy. "Do Vision Transformers See Like
  Convolutional Neural Networks?" NeurIPS 2021.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import jax
import numpy as np

from repsim_jax.analysis.attention import attention_distances
from repsim_jax.analysis.skip import resnet_skip_stats, transformer_skip_stats
from repsim_jax.analysis.tokens import TRANSFORMER_BLOCK


def block_statistics(forward: Callable[[jax.Array], object], batches: Iterable[jax.Array], *,
                     patch_size: int | Sequence[int] = 1, num_prefix_tokens: int = 1,
                     grid_shape: Sequence[int] | None = None, prefix_keys: str = "renormalize",
                     progress=None) -> dict[str, np.ndarray]:
  """Attention distances and skip-connection statistics averaged over a stream of images.

  Args:
    forward: images [B, H, W, C] -> `ModelOutput` (or its `blocks` dict) with sublayers, e.g. a
      jitted `lambda x: model(x, sublayers=True)`.
    batches: iterable of image batches (any sizes; results are means over all images, exactly
      as if every image came in one batch).
    patch_size, num_prefix_tokens, grid_shape, prefix_keys: as in `mean_attention_distance`.
    progress: optional `repsim_jax.progress.Progress`, updated with the number of images.
  Returns:
    transformer: {"attention_distance": [L, H], "attn_ratio", "attn_cosine", "mlp_ratio",
      "mlp_cosine": [L, T]} (`attention_distances`, `transformer_skip_stats`);
    conv ("stageS.blockBB" blocks): {"names": [L] str, "ratio": [L], "cosine": [L]}
      (`resnet_skip_stats`).
  """
  sums: dict[str, np.ndarray] = {}
  names = None
  count = 0
  for images in batches:
    out = forward(images)
    blocks = getattr(out, "blocks", out)
    n = int(np.shape(images)[0])
    if any(TRANSFORMER_BLOCK.match(name) for name in blocks):
      stats = {"attention_distance": attention_distances(
          blocks, patch_size=patch_size, num_prefix_tokens=num_prefix_tokens,
          grid_shape=grid_shape, prefix_keys=prefix_keys), **transformer_skip_stats(blocks)}
    else:
      stats = resnet_skip_stats(blocks)
      names = stats.pop("names")
    for key, value in stats.items():
      sums[key] = sums.get(key, 0.0) + n * np.asarray(value, np.float64)
    count += n
    if progress is not None:
      progress.update(n)
  if not count:
    raise ValueError("batches: no images")
  result = {key: (value / count).astype(np.float32) for key, value in sums.items()}
  if names is not None:
    result["names"] = np.asarray(names)
  return result
