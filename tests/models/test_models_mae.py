"""MAE encoder port vs transformers ViTMAEModel, run without masking (mask_ratio 0, identity
noise: every patch in order), tiny random perturbed model, float32, rel err <= 1e-5 per tensor."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch_parity import check_parity, max_rel, random_images  # noqa: E402

from repsim_jax.models.parity import torch_hooks  # noqa: E402
from repsim_jax.models.torch_backend import reference_forward_kwargs  # noqa: E402


def tiny_mae(**kw):
  cfg = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
             image_size=32, patch_size=8, attn_implementation="eager")  # mask_ratio: 0.75
  cfg.update(kw)
  torch.manual_seed(0)
  return transformers.ViTMAEModel(transformers.ViTMAEConfig(**cfg))


def test_mae_encoder_matches_torch_without_masking(tmp_path):
  model = tiny_mae()
  assert model.config.mask_ratio == 0.75
  kwargs = reference_forward_kwargs(model, 2)  # mask_ratio -> 0, noise = arange
  assert model.config.mask_ratio == 0.0
  rows = check_parity(model, tmp_path, random_images((2, 32, 32, 3)),
                      torch_hooks(model.config, sublayers=True), torch_kwargs=kwargs)
  assert rows[0].shape == (2, 1 + 16, 32)
  assert "pooler_output" not in [r.name for r in rows]
  print("mae max rel", max_rel(rows))


def test_mae_patches_in_raster_order(tmp_path):
  # identity noise keeps torch's patches in raster order: its ids_restore is arange
  model = tiny_mae(num_hidden_layers=1)
  kwargs = reference_forward_kwargs(model, 1)
  out = model(torch.from_numpy(random_images((1, 3, 32, 32))), **kwargs)
  np.testing.assert_array_equal(out.ids_restore.numpy(), np.arange(16)[None])
  assert out.mask.sum() == 0


def test_mae_other_config_interpolated(tmp_path):
  model = tiny_mae(hidden_act="gelu_new", qkv_bias=False, patch_size=4, num_hidden_layers=3,
                   hidden_size=48, num_attention_heads=3)
  kwargs = reference_forward_kwargs(model, 1, (40, 36))  # 10x9 patches
  rows = check_parity(model, tmp_path, random_images((1, 40, 36, 3), seed=2),
                      torch_hooks(model.config, sublayers=True),
                      torch_kwargs={**kwargs, "interpolate_pos_encoding": True},
                      our_kwargs={"interpolate_pos_encoding": True})
  assert rows[0].shape == (1, 1 + 90, 48)
  print("mae interpolated max rel", max_rel(rows))
