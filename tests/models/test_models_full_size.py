"""Full-size parity with random weights (opt-in: pytest --runslow). Needs ~4x the model's
float32 size in RAM (DINOv2-giant: ~18 GB; the other encoders, ViT-L size: ~5-7 GB)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from test_models_dinov2 import dinov2_hooks  # noqa: E402
from test_models_dinov3 import dinov3_hooks  # noqa: E402
from test_models_vit import vit_hooks  # noqa: E402
from torch_parity import check_parity, max_rel, random_images  # noqa: E402

from repsim_jax.models.parity import torch_hooks  # noqa: E402
from repsim_jax.models.torch_backend import reference_forward_kwargs  # noqa: E402

# (builder, hooks, input size); configs as the hub checkpoints google/vit-large-patch16-224,
# facebook/dinov2-giant (evaluated at 224, so its 37x37 position grid is interpolated) and
# facebook/dinov3-vitl16-pretrain-lvd1689m.
FULL_SIZE = {
    "vit_l16": (lambda: transformers.ViTModel(transformers.ViTConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        image_size=224, patch_size=16, attn_implementation="eager")), vit_hooks, 224),
    "dinov2_giant": (lambda: transformers.Dinov2Model(transformers.Dinov2Config(
        hidden_size=1536, num_hidden_layers=40, num_attention_heads=24, mlp_ratio=4,
        use_swiglu_ffn=True, image_size=518, patch_size=14, attn_implementation="eager")),
        dinov2_hooks, 224),
    "dinov3_vitl16": (lambda: transformers.DINOv3ViTModel(transformers.DINOv3ViTConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        image_size=224, patch_size=16, num_register_tokens=4, layerscale_value=1.0,
        attn_implementation="eager")), dinov3_hooks, 224),
}

# The other encoders, configs as their hub checkpoints (openai/clip-vit-large-patch14,
# google/siglip-so400m-patch14-384, facebook/vit-mae-large (run without masking),
# facebook/deit-base-distilled-patch16-224, microsoft/beit-large-patch16-224,
# facebook/dinov2-with-registers-large (evaluated at 224: antialiased position resize),
# microsoft/swin-large-patch4-window7-224); hooks: parity.torch_hooks, every block and sublayer.
ENCODERS = {
    "clip_l14": (lambda: transformers.CLIPVisionModel(transformers.CLIPVisionConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        image_size=224, patch_size=14, attn_implementation="eager")), 224),
    "siglip_so400m": (lambda: transformers.SiglipVisionModel(transformers.SiglipVisionConfig(
        hidden_size=1152, num_hidden_layers=27, num_attention_heads=16, intermediate_size=4304,
        image_size=384, patch_size=14, attn_implementation="eager")), 384),
    "mae_l": (lambda: transformers.ViTMAEModel(transformers.ViTMAEConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        image_size=224, patch_size=16, attn_implementation="eager")), 224),
    "deit_b": (lambda: transformers.DeiTModel(transformers.DeiTConfig(
        image_size=224, patch_size=16, attn_implementation="eager")), 224),
    "beit_l": (lambda: transformers.BeitModel(transformers.BeitConfig(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
        image_size=224, patch_size=16, use_relative_position_bias=True,
        layer_scale_init_value=1e-5, attn_implementation="eager")), 224),
    "dinov2_reg_l": (lambda: transformers.Dinov2WithRegistersModel(
        transformers.Dinov2WithRegistersConfig(
            hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4,
            image_size=518, patch_size=14, num_register_tokens=4,
            attn_implementation="eager")), 224),
    "swin_l": (lambda: transformers.SwinModel(transformers.SwinConfig(
        embed_dim=192, depths=[2, 2, 18, 2], num_heads=[6, 12, 24, 48], window_size=7,
        image_size=224, patch_size=4, attn_implementation="eager")), 224),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FULL_SIZE) + sorted(ENCODERS))
def test_full_size_matches_torch(name, tmp_path):
  torch.manual_seed(0)
  if name in FULL_SIZE:
    build, hooks, size = FULL_SIZE[name]
    model = build()
    hooks = hooks(model.config.num_hidden_layers)
  else:
    build, size = ENCODERS[name]
    model = build()
    hooks = torch_hooks(model.config, sublayers=True)
  rows = check_parity(model, tmp_path, random_images((1, size, size, 3)), hooks,
                      perturb_scale=0.01, torch_kwargs=reference_forward_kwargs(model, 1))
  print(f"{name}: max rel {max_rel(rows):.2e} over {len(rows)} entries")
