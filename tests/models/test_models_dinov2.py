"""DINOv2 port vs transformers Dinov2Model (tiny random perturbed model, float32, rel <= 1e-5)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch_parity import check_parity, max_rel, random_images, transformer_hooks  # noqa: E402


def tiny_dinov2(**kw):
  cfg = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2,
             image_size=32, patch_size=8, attn_implementation="eager")
  cfg.update(kw)
  torch.manual_seed(0)
  return transformers.Dinov2Model(transformers.Dinov2Config(**cfg))


def dinov2_hooks(n):
  return transformer_hooks(n, "encoder.layer.{i}", attn="layer_scale1", attn_module="attention",
                           mid="norm2", mlp="layer_scale2")


def test_dinov2_matches_torch_every_layer(tmp_path):
  rows = check_parity(tiny_dinov2(), tmp_path, random_images((2, 32, 32, 3)), dinov2_hooks(2))
  print("dinov2 max rel", max_rel(rows))


def test_dinov2_swiglu_at_other_input_size(tmp_path):
  # SwiGLU MLP (as ViT-g) and a 40x56 input (5x7 patches, plus 3 trailing pixel rows dropped):
  # the position embeddings are resized bicubically from the config's 4x4 grid, as in torch.
  model = tiny_dinov2(use_swiglu_ffn=True, hidden_size=48, num_attention_heads=3)
  rows = check_parity(model, tmp_path, random_images((1, 43, 56, 3), seed=1), dinov2_hooks(2))
  assert rows[0].shape == (1, 1 + 5 * 7, 48)
  print("dinov2 swiglu max rel", max_rel(rows))


def test_bicubic_matches_torch_interpolate():
  # up, down, identity and mixed resizes of a [C, h, w] grid, as separable weight matrices
  from repsim_jax.models.layers import bicubic_matrix
  grid = np.random.default_rng(0).standard_normal((3, 5, 7)).astype(np.float32)
  for out_hw in [(9, 4), (5, 7), (3, 11), (16, 16)]:
    ref = torch.nn.functional.interpolate(torch.from_numpy(grid)[None], size=out_hw,
                                          mode="bicubic", align_corners=False)[0].numpy()
    ours = bicubic_matrix(5, out_hw[0]) @ grid @ bicubic_matrix(7, out_hw[1]).T
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


def tiny_dinov2_registers(**kw):
  cfg = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2,
             image_size=32, patch_size=8, num_register_tokens=4, attn_implementation="eager")
  cfg.update(kw)
  torch.manual_seed(0)
  return transformers.Dinov2WithRegistersModel(transformers.Dinov2WithRegistersConfig(**cfg))


def test_dinov2_with_registers_matches_torch_every_layer(tmp_path):
  from repsim_jax.models.parity import torch_hooks
  model = tiny_dinov2_registers()
  rows = check_parity(model, tmp_path, random_images((2, 32, 32, 3)),
                      torch_hooks(model.config, sublayers=True))
  assert rows[0].shape == (2, 1 + 4 + 16, 32)  # CLS, 4 registers, 4x4 patches
  print("dinov2 registers max rel", max_rel(rows))


def test_dinov2_with_registers_antialiased_interpolation(tmp_path):
  # SwiGLU, 1 register, 3 layers, a 40x72 input: the 4x4 position grid is resized to 5x9 with
  # torch's antialiased bicubic (A = -0.5), which differs from DINOv2's plain bicubic
  from repsim_jax.models.parity import torch_hooks
  model = tiny_dinov2_registers(use_swiglu_ffn=True, num_register_tokens=1, num_hidden_layers=3,
                                hidden_size=48, num_attention_heads=3, layerscale_value=0.5)
  rows = check_parity(model, tmp_path, random_images((1, 40, 72, 3), seed=1),
                      torch_hooks(model.config, sublayers=True))
  assert rows[0].shape == (1, 1 + 1 + 5 * 9, 48)
  print("dinov2 registers interpolated max rel", max_rel(rows))


def test_antialiased_resizes_match_torch_interpolate():
  from repsim_jax.models.layers import antialias_matrix, bilinear_matrix
  grid = np.random.default_rng(0).standard_normal((3, 5, 7)).astype(np.float32)
  for out_hw in [(9, 4), (5, 7), (3, 11), (16, 16), (2, 3)]:
    for mode, antialias in [("bicubic", True), ("bilinear", True), ("bilinear", False)]:
      ref = torch.nn.functional.interpolate(torch.from_numpy(grid)[None], size=out_hw, mode=mode,
                                            align_corners=False, antialias=antialias)[0].numpy()
      rows, cols = ((antialias_matrix(5, out_hw[0], mode), antialias_matrix(7, out_hw[1], mode))
                    if antialias else (bilinear_matrix(5, out_hw[0]), bilinear_matrix(7, out_hw[1])))
      np.testing.assert_allclose(rows @ grid @ cols.T, ref, rtol=1e-5, atol=1e-5,
                                 err_msg=f"{mode} antialias={antialias} {out_hw}")
