"""CLIP and SigLIP vision towers vs transformers CLIPVisionModel / SiglipVisionModel (tiny
random perturbed models, float32, rel err <= 1e-5 per tensor), also read out of a full
CLIPModel / SiglipModel checkpoint."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch_parity import check_parity, max_rel, perturb_, random_images  # noqa: E402

from repsim_jax.models.parity import torch_hooks  # noqa: E402

VISION = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              image_size=32, patch_size=8)


def tiny(kind, **kw):
  cls, config = {"clip": (transformers.CLIPVisionModel, transformers.CLIPVisionConfig),
                 "siglip": (transformers.SiglipVisionModel, transformers.SiglipVisionConfig)}[kind]
  torch.manual_seed(0)
  return cls(config(**{**VISION, **kw}, attn_implementation="eager"))


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_vision_tower_matches_torch_every_layer(kind, tmp_path):
  model = tiny(kind)
  rows = check_parity(model, tmp_path, random_images((2, 32, 32, 3)),
                      torch_hooks(model.config, sublayers=True))
  names = [r.name for r in rows]
  assert rows[0].shape == (2, (kind == "clip") + 16, 32)
  assert "pooler_output" in names and "block_01.attn_probs" in names and "embeddings" in names
  print(f"{kind} max rel", max_rel(rows))


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_vision_tower_other_config_interpolated(kind, tmp_path):
  # 3 layers, other activation / eps / widths, a 40x56 input with interpolated positions
  kw = dict(hidden_act="gelu", layer_norm_eps=1e-6, num_hidden_layers=3, hidden_size=48,
            num_attention_heads=3, intermediate_size=80, patch_size=4)
  model = tiny(kind, **kw)
  rows = check_parity(model, tmp_path, random_images((1, 40, 56, 3), seed=3),
                      torch_hooks(model.config, sublayers=True),
                      torch_kwargs={"interpolate_pos_encoding": True},
                      our_kwargs={"interpolate_pos_encoding": True})
  assert rows[0].shape == (1, (kind == "clip") + 10 * 14, 48)
  print(f"{kind} other config max rel", max_rel(rows))


def test_siglip_without_head(tmp_path):
  model = tiny("siglip", vision_use_head=False, num_hidden_layers=1)
  rows = check_parity(model, tmp_path, random_images((1, 32, 32, 3)),
                      torch_hooks(model.config, sublayers=True))
  assert "pooler_output" not in [r.name for r in rows]


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_vision_tower_of_a_full_image_text_checkpoint(kind, tmp_path):
  """A CLIPModel / SiglipModel checkpoint loads as its vision tower (text tower ignored) and
  matches the torch vision model loaded from the same checkpoint."""
  from repsim_jax.models import from_pretrained, jit_forward
  from repsim_jax.models.parity import compare, flatten_output, run_torch
  full_cls, config_cls, text_cls = {
      "clip": (transformers.CLIPModel, transformers.CLIPConfig, transformers.CLIPTextConfig),
      "siglip": (transformers.SiglipModel, transformers.SiglipConfig,
                 transformers.SiglipTextConfig)}[kind]
  text = text_cls(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=32, vocab_size=99).to_dict()
  config = config_cls(text_config=text, vision_config=VISION)
  torch.manual_seed(0)
  full = perturb_(full_cls(config).eval())
  full.save_pretrained(tmp_path / "ckpt")
  ours = from_pretrained(tmp_path / "ckpt", use_cache=False)
  assert ours.name == ("CLIPVisionModel" if kind == "clip" else "SiglipVisionModel")
  from repsim_jax.models.torch_backend import vision_model_class
  transformers.logging.set_verbosity_error()  # the text tower is "unexpected" for the tower
  reference = vision_model_class(config.model_type).from_pretrained(
      tmp_path / "ckpt", attn_implementation="eager").eval()
  transformers.logging.set_verbosity_warning()
  images = random_images((2, 32, 32, 3), seed=4)
  ref = run_torch(reference, torch.from_numpy(images.transpose(0, 3, 1, 2).copy()),
                  torch_hooks(config, sublayers=True))
  rows = compare(flatten_output(jit_forward(ours, sublayers=True)(images)), ref)
  assert all(r.ok for r in rows), [r for r in rows if not r.ok]
  assert len(rows) == 3 + 2 + 1 + 2 * 5  # hidden states, last / pooled, embeddings, blocks
  # the tower's weights are the full model's vision_model weights
  np.testing.assert_array_equal(
      np.asarray(ours.post_layernorm.scale[...]),
      full.vision_model.post_layernorm.weight.detach().numpy())
