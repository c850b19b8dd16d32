"""BEiT and Data2Vec-vision ports vs transformers BeitModel / Data2VecVisionModel (tiny random
perturbed models, float32, rel err <= 1e-5 per tensor): relative position biases (per block and
shared, resized to other image sizes), layer scale, mean pooling, absolute positions."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch_parity import check_parity, max_rel, random_images  # noqa: E402

from repsim_jax.models.parity import forward_kwargs, torch_hooks  # noqa: E402

BASE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            image_size=32, patch_size=8, attn_implementation="eager")
# The released checkpoints' settings: per-block relative bias, layer scale, mean pooling.
FINETUNED = dict(use_relative_position_bias=True, layer_scale_init_value=0.1)
# Pre-training settings: shared bias, absolute positions too, [CLS] output with a final norm,
# no layer scale, another activation and eps.
OTHER = dict(use_shared_relative_position_bias=True, use_absolute_position_embeddings=True,
             use_mean_pooling=False, layer_scale_init_value=0.0, hidden_act="gelu_new",
             layer_norm_eps=1e-6, num_hidden_layers=3)


def tiny(kind, **kw):
  cls, config = {"beit": (transformers.BeitModel, transformers.BeitConfig),
                 "data2vec": (transformers.Data2VecVisionModel,
                              transformers.Data2VecVisionConfig)}[kind]
  torch.manual_seed(0)
  return cls(config(**{**BASE, **kw}))


@pytest.mark.parametrize("kind", ["beit", "data2vec"])
@pytest.mark.parametrize("variant", ["finetuned", "other"])
def test_beit_matches_torch_every_layer(kind, variant, tmp_path):
  model = tiny(kind, **(FINETUNED if variant == "finetuned" else OTHER))
  images = random_images((2, 32, 32, 3))
  rows = check_parity(model, tmp_path, images, torch_hooks(model.config, sublayers=True),
                      torch_kwargs=forward_kwargs(model, images, True))
  names = [r.name for r in rows]
  assert rows[0].shape == (2, 1 + 16, 32) and "block_01.attn_probs" in names
  assert ("pooler_output" in names) == (kind == "beit")  # Data2VecVisionModel has no pooler
  print(f"{kind} {variant} max rel", max_rel(rows))


@pytest.mark.parametrize("kind", ["beit", "data2vec"])
def test_beit_relative_bias_resized_to_another_image_size(kind, tmp_path):
  # 40x56 images: 5x7 patches, so the 4x4 window's bias tables (7x7 offsets + 3 [CLS] entries)
  # are resized bilinearly to 9x13 offsets, and absolute positions bicubically
  model = tiny(kind, **{**FINETUNED, **OTHER, "use_mean_pooling": True})
  images = random_images((1, 40, 56, 3), seed=1)
  rows = check_parity(model, tmp_path, images, torch_hooks(model.config, sublayers=True),
                      torch_kwargs=forward_kwargs(model, images, True))
  assert rows[0].shape == (1, 1 + 5 * 7, 32)
  print(f"{kind} resized bias max rel", max_rel(rows))


def test_relative_position_index_matches_transformers():
  import numpy as np
  from transformers.models.beit.modeling_beit import BeitRelativePositionBias
  from transformers.models.swin.modeling_swin import SwinRelativePositionBias
  from repsim_jax.models.layers import relative_position_index
  for window in [(4, 4), (3, 5), (7, 7)]:
    np.testing.assert_array_equal(
        relative_position_index(window, num_prefix_tokens=1),
        BeitRelativePositionBias.generate_relative_position_index(window).numpy())
  swin = SwinRelativePositionBias(2, (5, 5))
  np.testing.assert_array_equal(relative_position_index((5, 5)).reshape(-1),
                                swin.relative_position_index.numpy())


def test_beit_non_square_window_reads_the_table_as_torch(tmp_path):
  # a 4x6 training window (image_size 32x48) used on 5x7 patches: torch reads the (7, 11)
  # offset table as (11, 7) before resizing it; we do the same
  model = tiny("beit", **FINETUNED, image_size=[32, 48], num_hidden_layers=1)
  images = random_images((1, 40, 56, 3), seed=2)
  rows = check_parity(model, tmp_path, images, torch_hooks(model.config, sublayers=True))
  assert rows[0].shape == (1, 1 + 5 * 7, 32)
