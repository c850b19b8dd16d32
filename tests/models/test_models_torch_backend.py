"""The torch backend (repsim_jax.models.torch_backend): a store extracted with backend="torch"
equals torch's own pooled hidden states, for families we have no JAX port of (ResNet: NCHW maps,
ViT-MSN: tokens) and for a ported one (MAE, without masking, equal to our JAX port's store)."""
from __future__ import annotations

import builtins

import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from configs.common import model as model_entry  # noqa: E402
from repsim_jax.data.generated import GeneratedSource  # noqa: E402
from repsim_jax.extraction.store import ActivationStore  # noqa: E402

NORM = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])


def _checkpoint(path, kind):
  torch.manual_seed(0)
  if kind == "resnet":
    model = transformers.ResNetModel(transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1]))
    processor = transformers.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875,
                                                    **NORM)
  elif kind == "vit_msn":  # with a processor we have not re-implemented: HF's own is used
    model = transformers.ViTMSNModel(transformers.ViTMSNConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=32, patch_size=8))
    processor = transformers.PoolFormerImageProcessor(size={"shortest_edge": 32}, crop_pct=0.9,
                                                      crop_size={"height": 32, "width": 32}, **NORM)
  else:  # vit_mae: ported, masks 75 % of the patches by default
    model = transformers.ViTMAEModel(transformers.ViTMAEConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=32, patch_size=8))
    processor = transformers.ViTImageProcessor(size={"height": 32, "width": 32}, **NORM)
  model.save_pretrained(path)
  processor.save_pretrained(path)
  return str(path)


def _config(entries):
  config = ml_collections.ConfigDict({
      "models": entries, "n_images": 12, "seed": 0, "batch_size": 4, "device_batch": None,
      "chunk_rows": 8, "store_dtype": "float32", "skip_bad_images": False, "num_threads": 2,
      "distributed": False,
      "dataset": {"kind": "generated", "n": 16, "size": (40, 36), "num_classes": 2, "seed": 0}})
  return config


def _torch_pooled(path, images, mode, prefix):
  """The reference: HF's own processor, AutoModel, hidden states pooled in numpy (float64)."""
  processor = transformers.AutoImageProcessor.from_pretrained(path)
  model = transformers.AutoModel.from_pretrained(path).eval()
  kwargs = {}
  if model.config.model_type == "vit_mae":  # every patch, in order
    model.config.mask_ratio = 0.0
    kwargs["noise"] = torch.arange(16, dtype=torch.float32).expand(len(images), -1)
  with torch.no_grad():
    hidden = model(**processor(images=images, return_tensors="pt"), output_hidden_states=True,
                   **kwargs).hidden_states
  out = []
  for h in hidden:
    h = h.double().numpy()
    if h.ndim == 4:  # NCHW maps: global average
      out.append(h.mean(axis=(2, 3)))
    else:
      out.append(h[:, prefix:].mean(1) if mode == "mean_patch" else h.mean(1))
  return out


def test_torch_backend_store_equals_torch_pooled_hidden_states(tmp_path):
  from repsim_jax.pipelines.extract import run
  entries = [model_entry("resnet", _checkpoint(tmp_path / "resnet", "resnet"), backend="torch"),
             model_entry("msn", _checkpoint(tmp_path / "msn", "vit_msn"), backend="torch"),
             model_entry("msn_cls", str(tmp_path / "msn"), backend="torch", pooling="mean_patch",
                         num_prefix_tokens=1)]
  config = _config(entries)
  stores = run(config, str(tmp_path / "work"))
  source = GeneratedSource(**{k: v for k, v in config.dataset.to_dict().items() if k != "kind"})
  # resnet: the pooling default its family module declares ("gap", the spatial mean of NCHW maps
  # that _torch_pooled takes); msn: a type we have not ported, the torch backend's "mean"
  for name, mode, prefix in [("resnet", "gap", 0), ("msn", "mean", 0), ("msn_cls", "mean_patch", 1)]:
    store = ActivationStore.open(stores[name])
    meta = store.metadata["config"]
    assert meta["model"]["backend"] == "torch"
    assert meta["preprocessing"]["implementation"] == (
        "repsim_jax.models.preprocessing" if name == "resnet"
        else "transformers.PoolFormerImageProcessorPil")
    assert meta["pooling"] == {"mode": mode, "num_prefix_tokens": prefix}
    images = [source.load(i).image for i in store.ids]
    expected = _torch_pooled(str(tmp_path / ("resnet" if name == "resnet" else "msn")), images,
                             mode, prefix)
    assert store.layer_names == ["embeddings"] + [f"block_{i:02d}" for i in range(len(expected) - 1)]
    for layer, want in zip(store.layer_names, expected):
      np.testing.assert_allclose(store.layer(layer), want, rtol=1e-5, atol=1e-5,
                                 err_msg=f"{name} {layer}")


def test_torch_backend_matches_the_jax_port(tmp_path):
  """MAE through torch (no masking, as the port) and through our port give the same store."""
  from repsim_jax.pipelines.extract import run
  path = _checkpoint(tmp_path / "mae", "vit_mae")
  config = _config([model_entry("mae_torch", path, backend="torch"), model_entry("mae_jax", path)])
  stores = run(config, str(tmp_path / "work"))
  a, b = ActivationStore.open(stores["mae_torch"]), ActivationStore.open(stores["mae_jax"])
  assert a.layer_names == b.layer_names == ["embeddings", "block_00", "block_01"]
  for layer in a.layer_names:
    np.testing.assert_allclose(a.layer(layer), b.layer(layer), rtol=1e-5, atol=1e-5)
  source = GeneratedSource(**{k: v for k, v in config.dataset.to_dict().items() if k != "kind"})
  expected = _torch_pooled(path, [source.load(i).image for i in a.ids], "mean_patch", 1)
  np.testing.assert_allclose(a.layer("block_01"), expected[2], rtol=1e-5, atol=1e-5)


def test_torch_model_output_and_device(tmp_path):
  from repsim_jax.models.torch_backend import TorchModel
  path = _checkpoint(tmp_path / "resnet", "resnet")
  model = TorchModel(path)
  assert model.device == ("cuda" if torch.cuda.is_available() else "cpu")
  assert "ResNetModel" in model.description
  x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
  out = model(x)
  reference = transformers.AutoModel.from_pretrained(path).eval()
  with torch.no_grad():
    want = reference(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), output_hidden_states=True)
  assert len(out.hidden_states) == len(want.hidden_states) == 3
  for ours, theirs in zip(out.hidden_states, want.hidden_states):
    np.testing.assert_allclose(ours, theirs.numpy().transpose(0, 2, 3, 1), rtol=1e-6, atol=1e-6)
  assert list(out.blocks) == ["embeddings", "block_00", "block_01"]
  with pytest.raises(ValueError, match="NHWC"):
    model(x[0])


def test_missing_torch_names_the_extra(monkeypatch):
  from repsim_jax.models import torch_backend
  real_import = builtins.__import__

  def no_torch(name, *args, **kwargs):
    if name == "torch" or name.startswith("torch."):
      raise ImportError("No module named 'torch'")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_torch)
  with pytest.raises(ImportError, match=r'pip install -e "\.\[torch\]".*torch==2\.13\.0'):
    torch_backend.TorchModel("/nonexistent")


def test_unknown_backend_is_an_error(tmp_path):
  from repsim_jax.extraction.extract import load_model
  with pytest.raises(ValueError, match="unknown backend 'tf'"):
    load_model(str(tmp_path), backend="tf")
