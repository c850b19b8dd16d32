"""Swin port vs transformers SwinModel (tiny random perturbed models, float32, rel err <= 1e-5 per
tensor): windowed and shifted-window attention, padding of the image and of the token grid,
patch merging of odd grids, stage-wise hidden states, every block and sublayer."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch_parity import check_parity, max_rel, random_images  # noqa: E402

from repsim_jax.models.parity import torch_hooks  # noqa: E402


def tiny_swin(**kw):
  cfg = dict(image_size=32, patch_size=2, embed_dim=16, depths=[2, 2, 2], num_heads=[2, 2, 4],
             window_size=4, attn_implementation="eager")
  cfg.update(kw)
  torch.manual_seed(0)
  return transformers.SwinModel(transformers.SwinConfig(**cfg))


def test_swin_matches_torch_every_block(tmp_path):
  # 16x16 -> 8x8 -> 4x4 token grids; window 4, shift 2 in odd blocks; the last stage's grid is
  # one window, so it attends globally without shift
  model = tiny_swin()
  rows = check_parity(model, tmp_path, random_images((2, 32, 32, 3)),
                      torch_hooks(model.config, sublayers=True))
  shapes = {r.name: r.shape for r in rows}
  assert shapes["hidden_states.0"] == (2, 256, 16) and shapes["hidden_states.3"] == (2, 16, 64)
  assert shapes["stage0.block01"] == (2, 256, 16) and shapes["stage2.block01"] == (2, 16, 64)
  assert shapes["stage0.block01.attn_probs"] == (2 * 16, 2, 16, 16)
  assert shapes["pooler_output"] == (2, 64)
  print("swin max rel", max_rel(rows))


@pytest.mark.parametrize("size, absolute", [((42, 50), False), ((44, 52), True)])
def test_swin_padding_odd_grids_and_absolute_positions(size, absolute, tmp_path):
  # patch 4: 42x50 images are zero-padded to 44x52 -> 11x13 patches (torch cannot resize absolute
  # positions for padded images, so those get 44x52); window 3 pads the grid to 12x15; merging
  # pads 11x13 -> 6x7, then 3x4 (one window: no shift). Also absolute position embeddings
  # resized bicubically, no qkv bias, another activation, MLP ratio and eps.
  model = tiny_swin(image_size=24, patch_size=4, window_size=3, embed_dim=12, num_heads=[3, 2, 3],
                    depths=[2, 3, 2], use_absolute_embeddings=absolute, qkv_bias=False,
                    hidden_act="gelu_new", mlp_ratio=2.0, layer_norm_eps=1e-6)
  rows = check_parity(model, tmp_path, random_images((1, *size, 3), seed=1),
                      torch_hooks(model.config, sublayers=True),
                      torch_kwargs={"interpolate_pos_encoding": True},
                      our_kwargs={"interpolate_pos_encoding": True})
  shapes = {r.name: r.shape for r in rows}
  assert shapes["hidden_states.0"] == (1, 11 * 13, 12)
  assert shapes["hidden_states.1"] == (1, 6 * 7, 24) and shapes["hidden_states.2"] == (1, 3 * 4, 48)
  print(f"swin {size} absolute={absolute} max rel", max_rel(rows))


def test_shifted_window_mask_matches_transformers():
  from repsim_jax.models.layers import shifted_window_mask
  layer = transformers.models.swin.modeling_swin.SwinLayer(
      transformers.SwinConfig(window_size=4), dim=8, input_resolution=(12, 8), num_heads=2,
      shift_size=2)
  ref = layer.get_attn_mask(12, 8, dtype=torch.float32, device="cpu").numpy()
  np.testing.assert_array_equal(shifted_window_mask(12, 8, 4, 2), ref)


def test_swin_grid_smaller_than_window_is_a_clear_error(tmp_path):
  from repsim_jax.models import from_pretrained
  tiny_swin(depths=[1, 1], num_heads=[2, 2]).save_pretrained(tmp_path / "ckpt")
  ours = from_pretrained(tmp_path / "ckpt", use_cache=False)
  with pytest.raises(ValueError, match="smaller than the 4x4 window"):
    ours(np.zeros((1, 12, 12, 3), np.float32))  # 6x6 patches, then 3x3 tokens


def test_swin_bfloat16_compute_stays_close(tmp_path):
  # bfloat16 compute (float32 params, float32 softmax / norm statistics / biases and masks)
  import jax.numpy as jnp
  model = tiny_swin()
  rows = check_parity(model, tmp_path, random_images((2, 32, 32, 3)),
                      torch_hooks(model.config, sublayers=True), dtype=jnp.bfloat16, rtol=3e-2,
                      atol=1e-3)
  assert max_rel(rows) > 1e-4  # it really ran in bfloat16
  print("swin bfloat16 max rel", max_rel(rows))
