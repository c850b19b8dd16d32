"""DINOv3 ViT port vs transformers DINOv3ViTModel (tiny random perturbed, float32, rel <= 1e-5)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch_parity import check_parity, max_rel, random_images, transformer_hooks  # noqa: E402


def tiny_dinov3(**kw):
  cfg = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             image_size=32, patch_size=8, num_register_tokens=2, attn_implementation="eager")
  cfg.update(kw)
  torch.manual_seed(0)
  return transformers.DINOv3ViTModel(transformers.DINOv3ViTConfig(**cfg))


def dinov3_hooks(n):
  return transformer_hooks(n, "model.layer.{i}", attn="layer_scale1", attn_module="attention",
                           mid="norm2", mlp="layer_scale2")


def test_dinov3_matches_torch_every_layer(tmp_path):
  rows = check_parity(tiny_dinov3(), tmp_path, random_images((2, 32, 32, 3)), dinov3_hooks(2))
  assert rows[0].shape == (2, 1 + 2 + 16, 32)
  print("dinov3 max rel", max_rel(rows))


def test_dinov3_gated_mlp_other_size_no_registers(tmp_path):
  # gated SwiGLU MLP, all biases on, no register tokens, a 40x48 input (RoPE on 5x6 patches)
  model = tiny_dinov3(use_gated_mlp=True, hidden_act="silu", num_register_tokens=0,
                      key_bias=True, hidden_size=48, num_attention_heads=3)
  rows = check_parity(model, tmp_path, random_images((1, 40, 48, 3), seed=1), dinov3_hooks(2))
  assert rows[0].shape == (1, 1 + 5 * 6, 48)
  print("dinov3 gated max rel", max_rel(rows))
