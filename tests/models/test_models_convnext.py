"""ConvNeXt v1 / V2 / DINOv3 ports vs transformers (tiny random perturbed models, float32,
every hidden state and every block + residual branch within rel err 1e-5)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from repsim_jax.models.convnext import torch_hooks  # noqa: E402
from torch_parity import check_parity, max_rel, random_images  # noqa: E402

DEPTHS = [1, 2, 1, 1]

# model_type -> (config class, model class)
FAMILIES = {
    "convnext": ("ConvNextConfig", "ConvNextModel"),
    "convnextv2": ("ConvNextV2Config", "ConvNextV2Model"),
    "dinov3_convnext": ("DINOv3ConvNextConfig", "DINOv3ConvNextModel"),
}


def tiny(model_type: str, **kw):
  config_cls, model_cls = FAMILIES[model_type]
  cfg = dict(depths=DEPTHS, hidden_sizes=[8, 16, 24, 32])
  cfg.update(kw)
  torch.manual_seed(0)
  return getattr(transformers, model_cls)(getattr(transformers, config_cls)(**cfg))


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_convnext_matches_torch_every_block(model_type, tmp_path):
  model = tiny(model_type)
  # non-square sizes that strides of 4, 8, 16, 32 do not divide are floored as in torch
  size = {"convnext": (64, 64), "convnextv2": (60, 44), "dinov3_convnext": (64, 48)}[model_type]
  rows = check_parity(model, tmp_path, random_images((2, *size, 3)), torch_hooks(model.config),
                      channels_last=True)
  names = [r.name for r in rows]
  assert [n for n in names if n.startswith("hidden_states.")] == [
      f"hidden_states.{i}" for i in range(5)]
  assert sum(n.startswith("stage") and n.count(".") == 1 for n in names) == sum(DEPTHS)
  print(f"{model_type}: {len(rows)} tensors, max rel err {max_rel(rows):.2e}")


def test_convnext_outputs_layout(tmp_path):
  """Names, order and shapes of the output contract; V1 without layer scale and another patch
  size; a task checkpoint (ConvNextForImageClassification) loads the same backbone."""
  import jax
  from repsim_jax.models import from_pretrained
  from repsim_jax.models.outputs import block_names
  torch.manual_seed(0)
  cfg = transformers.ConvNextConfig(depths=[1, 1, 3, 1], hidden_sizes=[4, 8, 8, 16], patch_size=2,
                                    layer_scale_init_value=0.0, num_labels=3)
  task = transformers.ConvNextForImageClassification(cfg)
  task.save_pretrained(tmp_path / "task")
  ours = from_pretrained(tmp_path / "task", use_cache=False)
  images = random_images((1, 32, 32, 3), seed=1)
  rows = check_parity(task.convnext, tmp_path, images, torch_hooks(cfg),
                      channels_last=True, model=ours)
  assert max_rel(rows) < 1e-5
  out = jax.eval_shape(lambda x: ours(x), images)  # shapes and names only, nothing compiled
  # jit and eval_shape return dicts with sorted keys, so compare the set of names here
  assert set(block_names(out.blocks)) == {"stem", "stage0.block00", "stage1.block00", "stage2.block00",
                                     "stage2.block01", "stage2.block02", "stage3.block00"}
  assert [h.shape for h in out.hidden_states] == [
      (1, 16, 16, 4), (1, 16, 16, 4), (1, 8, 8, 8), (1, 4, 4, 8), (1, 2, 2, 16)]
  assert out.last_hidden_state.shape == (1, 2, 2, 16) and out.pooler_output.shape == (1, 16)


def test_dinov3_convnext_hub_names():
  """Hub DINOv3 ConvNeXt checkpoints name the stages without the "model." prefix (transformers
  renames them on load); both spellings convert to the same parameters."""
  from repsim_jax.models.convnext import convert
  model = tiny("dinov3_convnext")
  sd = {k: v.numpy() for k, v in model.state_dict().items()}
  ours = convert(sd, model.config)
  hub = convert({k.removeprefix("model."): v for k, v in sd.items()}, model.config)
  flat = lambda t, p="": ({f"{p}{k}": v for k, v in t.items() if not isinstance(v, dict)} | {
      n: x for k, v in t.items() if isinstance(v, dict) for n, x in flat(v, f"{p}{k}.").items()})
  assert sorted(flat(ours)) == sorted(flat(hub))
  for name, value in flat(ours).items():
    np.testing.assert_array_equal(value, flat(hub)[name])


def test_convnext_bad_inputs():
  from flax import nnx
  from repsim_jax.models.convnext import build, convert
  model = tiny("convnextv2")
  ours = nnx.eval_shape(lambda: build(model.config))  # input checks run before any parameter use
  with pytest.raises(ValueError, match="NCHW"):
    ours(np.zeros((1, 3, 32, 32), np.float32))
  with pytest.raises(TypeError, match="floating point"):
    ours(np.zeros((1, 32, 32, 3), np.uint8))
  sd = {k: v.numpy() for k, v in model.state_dict().items()}
  sd.pop("encoder.stages.2.layers.0.grn.weight")
  with pytest.raises(KeyError, match="grn.weight"):
    convert(sd, model.config)
  sd = {k: v.numpy() for k, v in model.state_dict().items()} | {"extra.weight": np.zeros(1)}
  with pytest.raises(ValueError, match="extra.weight"):
    convert(sd, model.config)


def test_convnext_bfloat16_compute():
  """dtype=bfloat16 computes in bfloat16 (parameters stay float32) and stays near torch float32."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from repsim_jax.models import jit_forward, load_params
  from repsim_jax.models.convnext import build, convert
  from torch_parity import perturb_
  model = perturb_(tiny("convnextv2")).eval()
  params = convert({k: v.numpy() for k, v in model.state_dict().items()}, model.config)
  ours = load_params(nnx.eval_shape(lambda: build(model.config, dtype=jnp.bfloat16)), params)
  assert {x.dtype for x in jax.tree.leaves(nnx.state(ours, nnx.Param))} == {jnp.dtype("float32")}
  images = random_images((1, 32, 32, 3))
  out = jit_forward(ours)(images)
  assert out.blocks["stage3.block00"].dtype == jnp.bfloat16
  with torch.no_grad():
    ref = model(torch.from_numpy(images.transpose(0, 3, 1, 2).copy())).pooler_output.numpy()
  rel = np.abs(np.asarray(out.pooler_output, np.float32) - ref).max() / np.abs(ref).max()
  assert 1e-5 < rel < 0.1, rel  # really bfloat16 (not silently float32), and close


@pytest.mark.slow
def test_convnext_xlarge_full_size_matches_torch(tmp_path):
  """ConvNeXt-XL (facebook/convnext-xlarge-224-22k config: 3+3+27+3 blocks, 256..2048
  channels), random weights, 224x224: every hidden state and all 36 blocks + branches."""
  model = tiny("convnext", depths=[3, 3, 27, 3], hidden_sizes=[256, 512, 1024, 2048])
  rows = check_parity(model, tmp_path, random_images((1, 224, 224, 3)), torch_hooks(model.config),
                      channels_last=True, perturb_scale=0.01)
  assert sum(r.name.startswith("stage") and r.name.count(".") == 1 for r in rows) == 36
  print(f"convnext-xlarge: max rel {max_rel(rows):.2e} over {len(rows)} entries")


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_convnext_conv_lowerings_agree(model_type, tmp_path):
  """XLA's convolution op (the GPU/TPU lowering) and the CPU lowering (depthwise taps, patch
  matmuls): each within the parity bound of torch, and both equal to float32 rounding."""
  from repsim_jax.models import convnext
  from torch_parity import check_conv_lowerings, perturb_
  model = perturb_(tiny(model_type))
  rows = check_conv_lowerings(model, convnext, tmp_path, random_images((2, 40, 36, 3), seed=2),
                              torch_hooks(model.config), rtol=2e-6)
  print(f"{model_type}: cpu vs xla lowering max rel {max_rel(rows):.1e} over {len(rows)} tensors")
