"""Block statistics streamed over batches (repsim_jax.analysis.block_statistics) equal one batch."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.analysis.attention import attention_distances
from repsim_jax.analysis.block_statistics import block_statistics
from repsim_jax.analysis.localization import image_patches
from repsim_jax.analysis.skip import resnet_skip_stats, transformer_skip_stats
from repsim_jax.models.outputs import ModelOutput
from repsim_jax.progress import Progress


def _tiny_transformer(seed=0, dim=8, heads=2, num_blocks=2, patch=4):
  """A pre-norm-free toy ViT (CLS + 4x4 patches) returning ModelOutput with sublayers."""
  rng = np.random.default_rng(seed)  # numpy: eager jax.random calls would each compile
  embed = (rng.normal(size=(patch * patch * 3, dim)) * 0.3).astype(np.float32)
  cls = rng.normal(size=(1, 1, dim)).astype(np.float32)
  weights = [[(rng.normal(size=(dim, dim)) * 0.3).astype(np.float32) for _ in range(5)]
             for _ in range(num_blocks)]

  def forward(images):
    tokens = image_patches(images, patch)
    tokens = tokens.reshape(images.shape[0], -1, tokens.shape[-1]) @ embed
    x = jnp.concatenate([jnp.broadcast_to(cls, (images.shape[0], 1, dim)), tokens], 1)
    blocks = {"embeddings": x}
    for i, (wq, wk, wv, wo, wm) in enumerate(weights):
      split = lambda y: y.reshape(y.shape[0], y.shape[1], heads, -1)
      q, k, v = split(x @ wq), split(x @ wk), split(x @ wv)
      probs = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k), -1)
      attn = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(x.shape) @ wo
      mid = x + attn
      mlp = jnp.tanh(mid @ wm)
      x = mid + mlp
      blocks.update({f"block_{i:02d}": x, f"block_{i:02d}.attn": attn,
                     f"block_{i:02d}.attn_probs": probs, f"block_{i:02d}.mid": mid,
                     f"block_{i:02d}.mlp": mlp})
    return ModelOutput(hidden_states=(), blocks=blocks)

  return forward


def _tiny_resnet(seed=0):
  rng = np.random.default_rng(seed)
  conv = lambda x, w, stride=1: jax.lax.conv_general_dilated(
      x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  w_stem, w0, w1 = ((rng.normal(size=s) * 0.3).astype(np.float32)
                    for s in ((3, 3, 3, 4), (3, 3, 4, 4), (3, 3, 4, 6)))

  def forward(images):
    stem = conv(images, w_stem)
    branch0 = conv(jax.nn.relu(stem), w0)
    block0 = stem + branch0
    branch1 = conv(jax.nn.relu(block0), w1, 2)  # projection block: shortcut not exposed
    block1 = branch1 + conv(block0, w1, 2)
    return {"stem": stem, "stage0.block00": block0, "stage0.block00.branch": branch0,
            "stage1.block00": block1, "stage1.block00.branch": branch1}

  return forward


def test_block_statistics_stream_equals_one_batch():
  rng = np.random.default_rng(13)
  images = rng.normal(size=(5, 12, 12, 3)).astype(np.float32)
  forward = jax.jit(_tiny_transformer())
  lines = []
  progress = Progress("stats", 5, unit="images", every_s=0.0, log=lines.append)
  streamed = block_statistics(forward, [images[:3], images[3:]], patch_size=4,
                              progress=progress)
  blocks = forward(images).blocks
  np.testing.assert_allclose(streamed["attention_distance"],
                             attention_distances(blocks, patch_size=4), rtol=1e-5)
  for key, value in transformer_skip_stats(blocks).items():
    np.testing.assert_allclose(streamed[key], value, rtol=1e-5, atol=1e-6)
  assert streamed["attn_ratio"].shape == (2, 10) and len(lines) == 2
  forward = jax.jit(_tiny_resnet())
  streamed = block_statistics(forward, [images[:2]])  # one shape: one compile
  direct = resnet_skip_stats(forward(images[:2]))
  assert list(streamed["names"]) == direct["names"]
  np.testing.assert_allclose(streamed["ratio"], direct["ratio"], rtol=1e-5)  # NaN == NaN
  assert np.isnan(streamed["cosine"][1]) and np.isfinite(streamed["cosine"][0])
