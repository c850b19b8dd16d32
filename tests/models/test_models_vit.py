"""ViT port vs transformers ViTModel (tiny random perturbed model, float32, rel err <= 1e-5)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch_parity import check_parity, max_rel, random_images, transformer_hooks  # noqa: E402


def tiny_vit(**kw):
  cfg = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             image_size=32, patch_size=8, attn_implementation="eager")
  cfg.update(kw)
  torch.manual_seed(0)
  return transformers.ViTModel(transformers.ViTConfig(**cfg))


def vit_hooks(n):
  return transformer_hooks(n, "layers.{i}", attn="attention", attn_module="attention",
                           mid="layernorm_after", mlp="mlp")


def test_vit_matches_torch_every_layer(tmp_path):
  model = tiny_vit()
  rows = check_parity(model, tmp_path, random_images((2, 32, 32, 3)), vit_hooks(2))
  names = [r.name for r in rows]
  assert names[:3] == ["hidden_states.0", "hidden_states.1", "hidden_states.2"]
  assert "pooler_output" in names and "block_01.attn_probs" in names
  print("vit max rel", max_rel(rows))


def test_vit_interpolated_position_embeddings_and_patch_32(tmp_path):
  # another patch size, no qkv bias, quick_gelu; a 48x40 input with interpolation as torch
  model = tiny_vit(patch_size=16, qkv_bias=False, hidden_act="quick_gelu", num_hidden_layers=1)
  rows = check_parity(model, tmp_path, random_images((1, 48, 40, 3), seed=1), vit_hooks(1),
                      torch_kwargs={"interpolate_pos_encoding": True},
                      our_kwargs={"interpolate_pos_encoding": True})
  assert rows[0].shape == (1, 1 + 3 * 2, 32)


def test_vit_bad_inputs(tmp_path):
  from repsim_jax.models import from_pretrained
  model = tiny_vit()
  model.save_pretrained(tmp_path / "ckpt")
  ours = from_pretrained(tmp_path / "ckpt", use_cache=False)
  with pytest.raises(ValueError, match="does not match the model's 32x32"):
    ours(np.zeros((1, 48, 48, 3), np.float32))
  with pytest.raises(ValueError, match="NCHW"):
    ours(np.zeros((1, 3, 32, 32), np.float32))
  with pytest.raises(TypeError, match="floating point"):
    ours(np.zeros((1, 32, 32, 3), np.uint8))


def test_vit_task_checkpoint_without_pooler(tmp_path):
  torch.manual_seed(0)
  cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                               intermediate_size=64, image_size=32, patch_size=8, num_labels=3,
                               attn_implementation="eager")
  clf = transformers.ViTForImageClassification(cfg)
  rows = check_parity(clf, tmp_path, random_images((1, 32, 32, 3)),
                      {"block_00": "vit.layers.0"})
  assert "pooler_output" not in [r.name for r in rows]


def test_vit_bfloat16_compute_stays_close(tmp_path):
  # bfloat16 compute (float32 params, float32 softmax / norm statistics): ~3 significant digits
  import jax.numpy as jnp
  rows = check_parity(tiny_vit(), tmp_path, random_images((2, 32, 32, 3)), vit_hooks(2),
                      dtype=jnp.bfloat16, rtol=3e-2, atol=1e-3)
  assert max_rel(rows) > 1e-4  # it really ran in bfloat16
  print("vit bfloat16 max rel", max_rel(rows))
