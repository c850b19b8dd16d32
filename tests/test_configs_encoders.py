"""The encoder catalogue (configs/encoders.py) through configs/mahaut_baroni.py: names pick hub
ids without downloading anything, and the tiny versions of every new family extract exactly
what transformers computes (HF processor, torch model, pooled in numpy)."""
from __future__ import annotations

import numpy as np
import pytest

from configs import encoders, mahaut_baroni
from repsim_jax.models import registry


def test_models_by_name_extend_the_paper():
  config = mahaut_baroni.get_config("models=clip_l+dinov2_g+siglip_so400m,n=2000")
  assert [m.name for m in config.models] == ["clip_l", "dinov2_g", "siglip_so400m"]
  assert [m.checkpoint for m in config.models] == [
      "openai/clip-vit-large-patch14", "facebook/dinov2-giant", "google/siglip-so400m-patch14-384"]
  assert config.n_images == 2000 and all(m.backend == "jax" for m in config.models)
  with pytest.raises(ValueError, match=r"unknown models \['clip_xxl'\].*clip_l"):
    mahaut_baroni.get_config("models=clip_l+clip_xxl")


def test_encoders_variant_has_the_most_used_and_the_papers_four():
  names = [m.name for m in mahaut_baroni.get_config("encoders").models]
  assert names[:4] == list(mahaut_baroni.MAIN)
  assert set(names[4:]) == {"clip_l", "siglip_so400m", "mae_l", "dinov2_l", "deit_b", "beit_l",
                            "swin_l"}


def test_catalogue_entries_are_hub_ids_of_ported_families_or_torch():
  for name, entry in encoders.ENCODERS.items():
    assert entry.name == name and entry.checkpoint.count("/") == 1, name
    assert entry.backend in ("jax", "torch")
  assert encoders.ENCODERS["ijepa_h"].backend == "torch"
  for entry in encoders.TINY.values():  # every tiny family has a JAX port
    assert entry.tiny_random and registry.family(entry.model_type)


def test_unknown_model_type_error_names_every_family():
  with pytest.raises(ValueError) as info:
    registry.family("bert")
  for model_type in ("vit", "deit", "vit_mae", "clip", "siglip", "dinov2", "dinov2_with_registers",
                     "dinov3_vit", "beit", "data2vec-vision", "swin", "convnext", "imagegpt", "bit"):
    assert f"{model_type}," in str(info.value) + ",", model_type


def test_runlocal_tiny_checkpoints_of_the_new_families_load_without_torch(tmp_path):
  """runlocal writes native tiny checkpoints with our own ports (no torch): each loads, runs on
  its own preprocessing and has the torch class's outputs (no pooler for MAE)."""
  from repsim_jax.models import from_pretrained, jit_forward, load_preprocessor
  from repsim_jax.models.outputs import block_names
  from repsim_jax.tiny_checkpoints import tiny_random_checkpoint
  image = np.random.default_rng(0).integers(0, 256, (40, 36, 3), dtype=np.uint8)
  for name, entry in encoders.TINY.items():
    path = tiny_random_checkpoint(entry.model_type, str(tmp_path / name))
    out = jit_forward(from_pretrained(path, use_cache=False))(load_preprocessor(path)([image]))
    names = block_names(out.blocks)
    assert names[0] == "embeddings" and len(names) == 5, (name, names)  # 4 blocks (Swin: 2 + 2)
    assert np.isfinite(np.asarray(out.last_hidden_state)).all()
    assert (out.pooler_output is None) == (name == "mae"), name


# ~30 s: one extraction per new family, each checked against transformers end to end.
def test_runlocal_new_families_match_transformers(tmp_path):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  from repsim_jax.data.generated import GeneratedSource
  from repsim_jax.pipelines.extract import run
  from repsim_jax.extraction.store import ActivationStore
  from torch_parity import tiny_torch_checkpoint
  config = mahaut_baroni.get_config("runlocal,models=" + "+".join(encoders.TINY))
  config.n_images, config.chunk_rows = 8, 8
  for entry in config.models:  # the runlocal architectures as transformers torch checkpoints
    entry.update(tiny_random=False, checkpoint=tiny_torch_checkpoint(
        entry.model_type, tmp_path / "checkpoints" / entry.name))
  stores = run(config, str(tmp_path))
  source = GeneratedSource(**{k: v for k, v in config.dataset.to_dict().items() if k != "kind"})
  # (pooling, prefix tokens) by family: [CLS] (+ DeiT's distillation token, + registers), or none
  expected_pooling = {"clip": ("mean_patch", 1), "siglip": ("mean", 0), "deit": ("mean_patch", 2),
                      "mae": ("mean_patch", 1), "beit": ("mean_patch", 1),
                      "dinov2_reg": ("mean_patch", 3), "swin": ("mean", 0)}
  for name, (mode, prefix) in expected_pooling.items():
    store = ActivationStore.open(stores[name])
    assert store.metadata["config"]["pooling"] == {"mode": mode, "num_prefix_tokens": prefix}
    ckpt = str(tmp_path / "checkpoints" / name)
    processor = transformers.AutoImageProcessor.from_pretrained(ckpt)
    model_type = store.metadata["config"]["model"]["model_type"]
    torch_model = transformers.AutoModel.from_pretrained(ckpt).eval()
    images = [source.load(i).image for i in store.ids]
    kwargs = {}
    if model_type == "vit_mae":  # the port sees every patch, in order
      torch_model.config.mask_ratio = 0.0
      kwargs["noise"] = torch.arange(16, dtype=torch.float32).expand(len(images), -1)
    with torch.no_grad():
      hidden = torch_model(**processor(images=images, return_tensors="pt"),
                           output_hidden_states=True, **kwargs).hidden_states
    # Swin: our layers are its blocks; torch's hidden states are the stage outputs after
    # merging, so compare the embeddings and the last stage's last block
    pairs = (list(zip(store.layer_names, hidden)) if model_type != "swin"
             else [("embeddings", hidden[0]), (store.layer_names[-1], hidden[-1])])
    if model_type != "swin":
      assert len(store.layer_names) == len(hidden)
    for layer, h in pairs:
      h = h.double().numpy()
      want = h[:, prefix:].mean(1) if mode == "mean_patch" else h.mean(1)
      np.testing.assert_allclose(store.layer(layer), want, rtol=1e-4, atol=1e-5,
                                 err_msg=f"{name} {layer}")
