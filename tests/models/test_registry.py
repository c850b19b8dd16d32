"""The family declarations (models/registry.py): every family module found by the scan declares
the whole contract, and what it declares is consistent with transformers' own models."""
from __future__ import annotations

import pytest

from repsim_jax.extraction import pooling
from repsim_jax.models import preprocessing, registry
from repsim_jax.tiny_checkpoints import tiny_config

MODEL_TYPES = sorted(registry.model_types())


def test_every_family_declares_the_contract():
  assert len(MODEL_TYPES) >= 19 and {"vit", "convnext", "imagegpt", "resnet"} <= set(MODEL_TYPES)
  for fam in registry.families():
    for name in ("build", "convert", "torch_hooks", "tiny_config"):
      assert callable(getattr(fam, name, None)), (fam.__name__, name)
    for model_type, spec in fam.MODEL_TYPES.items():
      assert registry.family(model_type) is fam
      assert spec.pooling in pooling.MODES, model_type
      assert pooling.default_pooling(model_type) == spec.pooling
      # convolutional families pool feature maps; token families do not ask for "gap"
      assert (spec.pooling == "gap") == spec.feature_maps, model_type


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_tiny_config_hooks_and_processor_fit_the_torch_model(model_type):
  """The tiny config is of a type the same family serves, its preprocessor is one the families
  declare, and every torch hook names a submodule of transformers' model for it."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  from repsim_jax.models import torch_backend
  config, processor = tiny_config(model_type, 32)
  assert registry.family(config.model_type) is registry.family(model_type)
  assert preprocessing.from_config_dict(processor).name in preprocessing.image_processors()
  torch.manual_seed(0)
  cls = torch_backend.vision_model_class(config.model_type)
  model = transformers.AutoModel.from_config(config) if cls is transformers.AutoModel else cls(config)
  modules = dict(model.named_modules())
  for name, spec in registry.family(model_type).torch_hooks(config, sublayers=True).items():
    path = spec if isinstance(spec, str) else spec[0]
    assert path in modules, (model_type, name, path)


def test_pooling_tables_are_read_off_the_declarations():
  assert pooling.DEFAULT_POOLING == {t: s.pooling for t, s in registry.model_types().items()}
  assert pooling.default_num_prefix_tokens({"model_type": "deit"}) == 2
  assert pooling.default_num_prefix_tokens({"model_type": "dinov2_with_registers",
                                            "num_register_tokens": 4}) == 5
  assert pooling.default_num_prefix_tokens({"model_type": "ijepa"}) == 0  # not ported: none
  with pytest.raises(ValueError, match=r"unknown model_type 'bert'; supported: .*resnet"):
    registry.family("bert")
