"""DeiT port vs transformers DeiTModel ([CLS] + distillation token; tiny random perturbed model,
float32, rel err <= 1e-5 per tensor)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch_parity import check_parity, max_rel, random_images  # noqa: E402

from repsim_jax.models.parity import torch_hooks  # noqa: E402


def tiny_deit(**kw):
  cfg = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             image_size=32, patch_size=8, attn_implementation="eager")
  cfg.update(kw)
  torch.manual_seed(0)
  return transformers.DeiTModel(transformers.DeiTConfig(**cfg))


def test_deit_matches_torch_every_layer(tmp_path):
  model = tiny_deit()
  rows = check_parity(model, tmp_path, random_images((2, 32, 32, 3)),
                      torch_hooks(model.config, sublayers=True))
  names = [r.name for r in rows]
  assert rows[0].shape == (2, 2 + 16, 32)  # [CLS], distillation token, 4x4 patches
  assert "pooler_output" in names and "block_01.attn_probs" in names and "embeddings" in names
  print("deit max rel", max_rel(rows))


def test_deit_interpolated_other_config(tmp_path):
  # no qkv bias, quick_gelu, patch 16, 3 layers, a 48x40 input with interpolate_pos_encoding
  model = tiny_deit(patch_size=16, qkv_bias=False, hidden_act="quick_gelu", num_hidden_layers=3,
                    layer_norm_eps=1e-6)
  rows = check_parity(model, tmp_path, random_images((1, 48, 40, 3), seed=1),
                      torch_hooks(model.config, sublayers=True),
                      torch_kwargs={"interpolate_pos_encoding": True},
                      our_kwargs={"interpolate_pos_encoding": True})
  assert rows[0].shape == (1, 2 + 3 * 2, 32)
  print("deit interpolated max rel", max_rel(rows))


def test_deit_with_teacher_checkpoint(tmp_path):
  # the hub's distilled DeiTs are DeiTForImageClassificationWithTeacher: two heads, ignored
  torch.manual_seed(0)
  cfg = transformers.DeiTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                intermediate_size=64, image_size=32, patch_size=8, num_labels=3,
                                attn_implementation="eager")
  clf = transformers.DeiTForImageClassificationWithTeacher(cfg)
  rows = check_parity(clf, tmp_path, random_images((1, 32, 32, 3)), {"block_00": "deit.layers.0"})
  assert "pooler_output" not in [r.name for r in rows]
