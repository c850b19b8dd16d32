"""Classic ResNet port vs transformers ResNetModel (tiny random perturbed models, float32, every
hidden state, every residual unit and its branch within rel err 1e-5, as the other conv ports)."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from repsim_jax.models import resnet  # noqa: E402
from torch_parity import (check_conv_lowerings, check_parity, max_rel, perturb_,  # noqa: E402
                          random_images)


def tiny_resnet(**kw):
  cfg = dict(depths=[1, 2, 1, 1], hidden_sizes=[16, 32, 48, 64], embedding_size=8)
  cfg.update(kw)
  torch.manual_seed(0)
  return transformers.ResNetModel(transformers.ResNetConfig(**cfg))


@pytest.mark.parametrize("kw", [
    dict(layer_type="bottleneck"),  # ResNet-50/101/152 (v1.5: stride on the 3x3)
    dict(layer_type="bottleneck", downsample_in_bottleneck=True, downsample_in_first_stage=True),
    dict(layer_type="basic"),  # ResNet-18/34
])
def test_resnet_matches_torch_every_unit(kw, tmp_path):
  model = tiny_resnet(**kw)
  rows = check_parity(model, tmp_path, random_images((2, 45, 38, 3)),
                      resnet.torch_hooks(model.config), channels_last=True)
  names = [r.name for r in rows]
  assert [n for n in names if n.startswith("hidden_states.")] == [
      f"hidden_states.{i}" for i in range(5)]  # stem + 4 stages, as torch
  assert "stage1.block01.branch" in names and "pooler_output" in names
  print(f"resnet {kw}: {len(rows)} tensors, max rel err {max_rel(rows):.2e}")


def test_resnet_conv_lowerings_agree(tmp_path):
  """Every convolution lowering within the parity bound of torch, and equal to each other to
  float32 rounding."""
  model = perturb_(tiny_resnet())
  rows = check_conv_lowerings(model, resnet, tmp_path, random_images((2, 41, 37, 3), seed=2),
                              resnet.torch_hooks(model.config), rtol=2e-6)
  print(f"resnet: conv lowerings max rel {max_rel(rows):.1e} over {len(rows)} tensors")


def test_resnet_task_checkpoint_converts_like_base_model():
  """ResNetForImageClassification weights ("resnet." prefix, classifier head) convert to the base
  model's parameters; a missing weight is named."""
  torch.manual_seed(0)
  task = transformers.ResNetForImageClassification(transformers.ResNetConfig(
      depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 48, 64], embedding_size=8, num_labels=3))
  perturb_(task)
  sd = {k: v.numpy() for k, v in task.state_dict().items()}
  base = {k.removeprefix("resnet."): v for k, v in sd.items() if k.startswith("resnet.")}
  ours, ref = resnet.convert(sd, task.config), resnet.convert(base, task.config)
  var = base["encoder.stages.2.layers.0.shortcut.normalization.running_var"]
  np.testing.assert_array_equal(ours["stages"][2]["units"][0]["shortcut"]["norm"]["var"], var)
  np.testing.assert_array_equal(ref["stages"][2]["units"][0]["shortcut"]["norm"]["var"], var)
  del base["encoder.stages.1.layers.0.layer.1.normalization.running_mean"]
  with pytest.raises(KeyError, match="layer.1.normalization.running_mean"):
    resnet.convert(base, task.config)


def test_resnet_tiny_random_checkpoint_runs_on_its_preprocessing(tmp_path):
  """The family's tiny config as a native random checkpoint: loads, preprocesses like
  microsoft/resnet-50 (ConvNextImageProcessor), pools with its declared default."""
  from repsim_jax.extraction.pooling import default_pooling, pool
  from repsim_jax.models import from_pretrained, jit_forward, load_preprocessor
  from repsim_jax.tiny_checkpoints import tiny_random_checkpoint
  path = tiny_random_checkpoint("resnet", str(tmp_path / "resnet"))
  image = np.random.default_rng(0).integers(0, 256, (40, 36, 3), dtype=np.uint8)
  out = jit_forward(from_pretrained(path, use_cache=False))(load_preprocessor(path)([image]))
  assert len(out.hidden_states) == 5 and out.hidden_states[-1].shape == (1, 1, 1, 32)
  assert default_pooling("resnet") == "gap"
  pooled = pool(out.hidden_states[-1], "gap")
  np.testing.assert_allclose(pooled[:, None, None, :], out.pooler_output, rtol=1e-6)
  assert np.isfinite(np.asarray(pooled)).all()
