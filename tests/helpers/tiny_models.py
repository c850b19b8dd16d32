"""Tiny NNX models that follow the ModelOutput contract, for extraction tests (seconds to compile)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from repsim_jax.models.outputs import ModelOutput


class TinyBlock(nnx.Module):
  def __init__(self, dim: int, heads: int, *, rngs: nnx.Rngs):
    self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
    self.attn = nnx.MultiHeadAttention(heads, dim, decode=False, rngs=rngs)
    self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
    self.fc1 = nnx.Linear(dim, 2 * dim, rngs=rngs)
    self.fc2 = nnx.Linear(2 * dim, dim, rngs=rngs)

  def __call__(self, x):
    x = x + self.attn(self.norm1(x))
    return x + self.fc2(jax.nn.gelu(self.fc1(self.norm2(x))))


class TinyViT(nnx.Module):
  """NHWC images -> CLS + registers + patch tokens; blocks "embeddings", "block_00", ..."""

  def __init__(self, *, patch: int = 4, dim: int = 16, depth: int = 3, heads: int = 2,
               registers: int = 0, seed: int = 0):
    rngs = nnx.Rngs(seed)
    self.patch_embed = nnx.Conv(3, dim, (patch, patch), strides=(patch, patch), rngs=rngs)
    self.cls = nnx.Param(jax.random.normal(rngs.params(), (1, 1 + registers, dim)))
    self.blocks = nnx.List([TinyBlock(dim, heads, rngs=rngs) for _ in range(depth)])

  def __call__(self, x):
    p = self.patch_embed(x)
    tokens = p.reshape(p.shape[0], -1, p.shape[-1])
    h = jnp.concatenate([jnp.broadcast_to(self.cls[...], (x.shape[0], *self.cls.shape[1:])),
                         tokens], axis=1)
    blocks = {"embeddings": h}
    hidden = [h]
    for i, block in enumerate(self.blocks):
      h = block(h)
      blocks[f"block_{i:02d}"] = h
      hidden.append(h)
    return ModelOutput(hidden_states=tuple(hidden), blocks=blocks, last_hidden_state=h)


class TinyConvNet(nnx.Module):
  """NHWC images -> NHWC maps; blocks "stem", "stage0.block00", "stage1.block00"."""

  def __init__(self, *, width: int = 8, seed: int = 0):
    rngs = nnx.Rngs(seed)
    self.stem = nnx.Conv(3, width, (3, 3), strides=(2, 2), rngs=rngs)
    self.c0 = nnx.Conv(width, width, (3, 3), rngs=rngs)
    self.c1 = nnx.Conv(width, 2 * width, (3, 3), strides=(2, 2), rngs=rngs)

  def __call__(self, x):
    s = self.stem(x)
    b0 = s + jax.nn.relu(self.c0(s))
    b1 = jax.nn.relu(self.c1(b0))
    blocks = {"stem": s, "stage0.block00": b0, "stage1.block00": b1}
    return ModelOutput(hidden_states=(s, b0, b1), blocks=blocks, last_hidden_state=b1)


def numpy_init(cls, *, seed: int = 0, scale: float = 0.3, **kwargs):
  """Builds `cls(**kwargs)` with weights drawn in numpy: no eager jax op (each would compile)."""
  import numpy as np
  graphdef, abstract = nnx.split(nnx.eval_shape(lambda: cls(**kwargs)))
  rng = np.random.default_rng(seed)
  state = jax.tree.map(lambda s: jnp.asarray(rng.normal(0, scale, s.shape).astype(s.dtype)),
                       abstract)
  return nnx.merge(graphdef, state)
