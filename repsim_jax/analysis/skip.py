"""Skip connections: norm ratio ||z|| / ||f(z)|| and cos(z, f(z)) per position, for every
sublayer of a transformer and every block of a ResNet (Raghu et al. 2021, Sec. 6, Figs. 7, E.1,
E.2).

References:
  Raghu, Unterthiner, Kornblith, Zhang, Dosovitskiy. "Do Vision Transformers See Like
  Convolutional Neural Networks?" NeurIPS 2021.
"""
from __future__ import annotations

import re
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.analysis.tokens import transformer_block_indices
from repsim_jax.models.outputs import block_names


@jax.jit
def _skip_stats(z, fz):
  z, fz = z.astype(jnp.float32), fz.astype(jnp.float32)
  tiny = jnp.finfo(jnp.float32).tiny
  z_norm = jnp.sqrt(jnp.sum(z * z, -1))
  f_norm = jnp.sqrt(jnp.sum(fz * fz, -1))
  ratio = z_norm / jnp.maximum(f_norm, tiny)
  cosine = jnp.sum(z * fz, -1) / jnp.maximum(z_norm * f_norm, tiny)
  return ratio.mean(0), cosine.mean(0)


def skip_connection_stats(z: jax.Array, fz: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Norm ratio ||z|| / ||f(z)|| and cosine similarity cos(z, f(z)) per position.

  Args:
    z: the skip (identity) branch, i.e. the residual stream entering the sublayer:
      [B, T, D] tokens or [B, H, W, C] NHWC.
    fz: the long branch output added to it (attention or MLP output after any layer scale;
      the residual branch of a ResNet block), same shape as z.
  Returns:
    (ratio, cosine), each [T] or [H * W] (positions row-major): the per-image values averaged
    over images (mean of ratios, not ratio of mean norms). A zero-norm f(z) gives a huge but
    finite ratio; a zero vector has cosine 0.

  References:
    Raghu et al. 2021, Sec. 6, Figs. 7, E.1, E.2.
  """
  z, fz = jnp.asarray(z), jnp.asarray(fz)
  if z.shape != fz.shape or z.ndim not in (3, 4):
    raise ValueError(f"z and fz must have the same shape, [B, T, D] or [B, H, W, C]; got "
                     f"{z.shape} and {fz.shape}")
  if z.ndim == 4:
    z, fz = (a.reshape(a.shape[0], -1, a.shape[-1]) for a in (z, fz))
  return _skip_stats(z, fz)


def transformer_skip_stats(blocks: Mapping[str, jax.Array]) -> dict[str, np.ndarray]:
  """Skip-connection statistics of every attention and MLP sublayer of a transformer.

  Uses `ModelOutput.blocks` with sublayers: for block i the attention sublayer has
  z = the block input ("embeddings" for i = 0, else "block_{i-1}") and f(z) = "block_i.attn";
  the MLP sublayer has z = "block_i.mid" and f(z) = "block_i.mlp".

  Returns:
    {"attn_ratio", "attn_cosine", "mlp_ratio", "mlp_cosine"}: each [L, T] (block x token),
    the heatmaps of Figs. 7 (left) and E.1; `summarize_token_stats` gives the line plots.
  """
  out = {k: [] for k in ("attn_ratio", "attn_cosine", "mlp_ratio", "mlp_cosine")}
  indices = transformer_block_indices(blocks)
  for pos, i in enumerate(indices):
    block_input = "embeddings" if pos == 0 else f"block_{indices[pos - 1]:02d}"
    pairs = {"attn": (block_input, f"block_{i:02d}.attn"),
             "mlp": (f"block_{i:02d}.mid", f"block_{i:02d}.mlp")}
    for branch, (z_name, f_name) in pairs.items():
      for name in (z_name, f_name):
        if name not in blocks:
          raise KeyError(f"blocks: missing {name!r}; run the model with sublayers=True")
      ratio, cosine = skip_connection_stats(blocks[z_name], blocks[f_name])
      out[f"{branch}_ratio"].append(np.asarray(ratio))
      out[f"{branch}_cosine"].append(np.asarray(cosine))
  return {k: np.stack(v) for k, v in out.items()}


def resnet_skip_stats(blocks: Mapping[str, jax.Array]) -> dict[str, np.ndarray | list[str]]:
  """Skip-connection statistics of every ResNet block, averaged over spatial positions.

  For block "stageS.blockBB", z = the shortcut: "stageS.blockBB.shortcut" when the model
  gives it, else the previous block's output ("stem" before the first), which is the shortcut
  of an identity block; f(z) = "stageS.blockBB.branch" (residual branch before the add). Where
  the shortcut is a projection (or follows a downsampling layer) and not given, z and f(z)
  differ in shape and that block's entries are NaN.

  Returns:
    {"names": [L] block names, "ratio": [L], "cosine": [L]}.
  """
  names = sorted((n for n in block_names(blocks) if n.startswith("stage")),
                 key=lambda n: tuple(int(d) for d in re.findall(r"\d+", n)))
  if not names:
    raise ValueError(f"blocks: no 'stageS.blockBB' entries (got {sorted(blocks)[:8]} ...)")
  ratios, cosines = [], []
  previous = "stem"
  for name in names:
    branch = f"{name}.branch"
    if branch not in blocks:
      raise KeyError(f"blocks: missing {branch!r}; run the model with sublayers=True")
    z, fz = blocks.get(f"{name}.shortcut", blocks.get(previous)), blocks[branch]
    if z is None or np.shape(z) != np.shape(fz):
      ratios.append(np.nan)
      cosines.append(np.nan)
    else:
      ratio, cosine = skip_connection_stats(z, fz)
      ratios.append(float(jnp.mean(ratio)))
      cosines.append(float(jnp.mean(cosine)))
    previous = name
  return {"names": names, "ratio": np.asarray(ratios), "cosine": np.asarray(cosines)}


def summarize_token_stats(stats: jax.Array, *, num_prefix_tokens: int = 1) -> dict[str, np.ndarray]:
  """Figs. 7 (right) / E.2 aggregation of a [L, T] block x token statistic.

  Returns {"cls": [L] token 0, "tokens": [L] mean over the patch tokens (tokens
  num_prefix_tokens...), "all": [L] mean over all tokens}; "cls" is absent when
  num_prefix_tokens == 0 (a GAP model has no CLS token).
  """
  stats = np.asarray(stats)
  if stats.ndim != 2 or stats.shape[1] <= num_prefix_tokens:
    raise ValueError(f"stats must be [L, T] with T > num_prefix_tokens, got {stats.shape}")
  out = {"tokens": stats[:, num_prefix_tokens:].mean(1), "all": stats.mean(1)}
  if num_prefix_tokens:
    out["cls"] = stats[:, 0]
  return out
