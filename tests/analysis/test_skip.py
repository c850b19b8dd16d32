"""Skip-connection statistics (repsim_jax.analysis.skip) against numpy norms and cosines."""
from __future__ import annotations

import numpy as np
import pytest

from repsim_jax.analysis.skip import (resnet_skip_stats, skip_connection_stats,
                                      summarize_token_stats, transformer_skip_stats)


# --------------------------------------------------------------------------------------------
# Skip connections


def _numpy_skip(z, fz):
  z = np.asarray(z, np.float64).reshape(z.shape[0], -1, z.shape[-1])
  fz = np.asarray(fz, np.float64).reshape(fz.shape[0], -1, fz.shape[-1])
  zn, fn = np.linalg.norm(z, axis=-1), np.linalg.norm(fz, axis=-1)
  return (zn / fn).mean(0), ((z * fz).sum(-1) / (zn * fn)).mean(0)


def test_skip_connection_stats_match_numpy():
  rng = np.random.default_rng(7)
  for shape in ((3, 5, 8), (2, 3, 4, 6)):
    z = rng.normal(size=shape).astype(np.float32) * 3.0
    fz = (0.5 * z + rng.normal(size=shape)).astype(np.float32)
    ratio, cosine = skip_connection_stats(z, fz)
    ref_ratio, ref_cos = _numpy_skip(z, fz)
    np.testing.assert_allclose(np.asarray(ratio), ref_ratio, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(cosine), ref_cos, rtol=1e-5, atol=1e-6)
  ratio, cosine = skip_connection_stats(np.ones((1, 2, 3)), np.zeros((1, 2, 3)))
  assert np.all(np.isfinite(np.asarray(ratio))) and np.all(np.asarray(cosine) == 0)
  with pytest.raises(ValueError, match="same shape"):
    skip_connection_stats(np.ones((1, 2, 3)), np.ones((1, 2, 4)))


def test_transformer_and_resnet_skip_stats():
  rng = np.random.default_rng(8)
  normal = lambda *s: rng.normal(size=s).astype(np.float32)
  blocks = {"embeddings": normal(2, 5, 4)}
  for i in range(3):
    blocks[f"block_{i:02d}.attn"] = normal(2, 5, 4)
    blocks[f"block_{i:02d}.mid"] = normal(2, 5, 4)
    blocks[f"block_{i:02d}.mlp"] = normal(2, 5, 4)
    blocks[f"block_{i:02d}"] = normal(2, 5, 4)
  stats = transformer_skip_stats(dict(reversed(blocks.items())))  # order comes from names
  assert stats["attn_ratio"].shape == (3, 5)
  for i in range(3):
    z = blocks["embeddings"] if i == 0 else blocks[f"block_{i - 1:02d}"]
    ratio, cosine = _numpy_skip(z, blocks[f"block_{i:02d}.attn"])
    np.testing.assert_allclose(stats["attn_ratio"][i], ratio, rtol=1e-5)
    np.testing.assert_allclose(stats["attn_cosine"][i], cosine, rtol=1e-5, atol=1e-6)
    ratio, cosine = _numpy_skip(blocks[f"block_{i:02d}.mid"], blocks[f"block_{i:02d}.mlp"])
    np.testing.assert_allclose(stats["mlp_ratio"][i], ratio, rtol=1e-5)
    np.testing.assert_allclose(stats["mlp_cosine"][i], cosine, rtol=1e-5, atol=1e-6)
  summary = summarize_token_stats(stats["mlp_ratio"], num_prefix_tokens=1)
  np.testing.assert_allclose(summary["cls"], stats["mlp_ratio"][:, 0])
  np.testing.assert_allclose(summary["tokens"], stats["mlp_ratio"][:, 1:].mean(1))
  assert "cls" not in summarize_token_stats(stats["mlp_ratio"], num_prefix_tokens=0)

  conv = {"stem": normal(2, 4, 4, 3),
          "stage0.block00": normal(2, 4, 4, 3), "stage0.block00.branch": normal(2, 4, 4, 3),
          "stage1.block00": normal(2, 2, 2, 6), "stage1.block00.branch": normal(2, 2, 2, 6),
          "stage1.block01": normal(2, 2, 2, 6), "stage1.block01.branch": normal(2, 2, 2, 6)}
  res = resnet_skip_stats(dict(sorted(conv.items(), reverse=True)))
  assert res["names"] == ["stage0.block00", "stage1.block00", "stage1.block01"]
  assert np.isnan(res["ratio"][1]) and np.isnan(res["cosine"][1])  # projection shortcut
  conv["stage1.block00.shortcut"] = normal(2, 2, 2, 6)  # ... unless the model gives it
  res_with_shortcut = resnet_skip_stats(conv)
  for k, (z, fz) in ((0, ("stem", "stage0.block00.branch")),
                     (2, ("stage1.block00", "stage1.block01.branch"))):
    ratio, cosine = _numpy_skip(conv[z], conv[fz])
    np.testing.assert_allclose(res["ratio"][k], ratio.mean(), rtol=1e-5)
    np.testing.assert_allclose(res["cosine"][k], cosine.mean(), rtol=1e-5, atol=1e-6)
  ratio, _ = _numpy_skip(conv["stage1.block00.shortcut"], conv["stage1.block00.branch"])
  np.testing.assert_allclose(res_with_shortcut["ratio"][1], ratio.mean(), rtol=1e-5)
