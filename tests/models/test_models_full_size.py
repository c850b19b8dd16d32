"""Full-size parity with random weights (opt-in: pytest --runslow). Needs ~4x the model's
float32 size in RAM (DINOv2-giant: ~18 GB)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from test_models_dinov2 import dinov2_hooks  # noqa: E402
from test_models_dinov3 import dinov3_hooks  # noqa: E402
from test_models_vit import vit_hooks  # noqa: E402
from torch_parity import check_parity, max_rel, random_images  # noqa: E402

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


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FULL_SIZE))
def test_full_size_matches_torch(name, tmp_path):
  build, hooks, size = FULL_SIZE[name]
  torch.manual_seed(0)
  model = build()
  n = model.config.num_hidden_layers
  rows = check_parity(model, tmp_path, random_images((1, size, size, 3)), hooks(n),
                      perturb_scale=0.01)
  print(f"{name}: max rel {max_rel(rows):.2e} over {len(rows)} entries")
