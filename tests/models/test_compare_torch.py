"""experiments.compare_torch end to end on a tiny ImageGPT checkpoint (with its preprocessor):
exit status 0 on a faithful port, 1 when one converted parameter is corrupted, and the table
names exactly the tensors downstream of the corruption."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch_parity import perturb_  # noqa: E402  (tests/helpers)

def _tiny_imagegpt(path):
  torch.manual_seed(0)
  config = transformers.ImageGPTConfig(vocab_size=33, n_positions=16, n_embd=32, n_layer=2, n_head=4)
  perturb_(transformers.ImageGPTModel(config), scale=0.2).save_pretrained(path)
  rng = np.random.default_rng(0)
  (path / "preprocessor_config.json").write_text(json.dumps({
      "image_processor_type": "ImageGPTImageProcessor", "size": {"height": 4, "width": 4},
      "clusters": rng.uniform(-1, 1, (32, 3)).tolist()}))


def _run_tool(argv):
  """The tool as `python -m experiments.compare_torch ...` runs it: absl parses argv and exits
  with main's status (in-process, to keep the test fast)."""
  from absl import app, flags

  from experiments import compare_torch
  flags.FLAGS.unparse_flags()
  with pytest.raises(SystemExit) as exit_info:
    app.run(compare_torch.main, argv=["compare_torch", *argv])
  return exit_info.value.code


def test_passes_on_faithful_checkpoint(tmp_path, capsys):
  _tiny_imagegpt(tmp_path / "ckpt")
  status = _run_tool([f"--model={tmp_path / 'ckpt'}", "--n_images=2", "--sublayers",
                      "--image_size=24", f"--cache_dir={tmp_path / 'cache'}"])
  out = capsys.readouterr().out
  assert status == 0, out
  assert "ImageGPTImageProcessor" in out and "block_01.attn_probs" in out
  # 3 hidden states + last_hidden_state + embeddings + 2 blocks * (block + 4 sublayers)
  assert "15/15 within rtol=0.0001" in out, out


def test_corrupted_parameter_exits_nonzero(tmp_path, capsys, monkeypatch):
  """One converted weight of block 1 off by 0.05 (a converter bug the tool must catch): the
  embeddings and block 0 still match, block 1 and everything after it fail."""
  from repsim_jax.models import imagegpt
  _tiny_imagegpt(tmp_path / "ckpt")
  convert = imagegpt.convert

  def corrupted(state_dict, config):
    params = convert(state_dict, config)
    fc1 = params["layers"][1]["mlp"]["fc1"]
    fc1["kernel"] = fc1["kernel"].copy()  # the converted arrays are read-only memory maps
    fc1["kernel"][3, 5] += 0.05
    return params

  monkeypatch.setattr(imagegpt, "convert", corrupted)
  status = _run_tool([f"--model={tmp_path / 'ckpt'}", "--n_images=2", "--image_size=24",
                      "--no_cache"])
  out = capsys.readouterr().out
  assert status == 1, out
  failed = {line.split()[0] for line in out.splitlines() if line.endswith("FAIL") or "FAIL  <-" in line}
  assert failed == {"block_01", "hidden_states.2", "last_hidden_state"}, out


@pytest.mark.parametrize("model_type", ["vit", "dinov2", "dinov3_vit", "convnext", "convnextv2",
                                        "dinov3_convnext", "bit", "imagegpt", "deit", "vit_mae",
                                        "clip_vision_model", "siglip_vision_model",
                                        "dinov2_with_registers", "beit", "data2vec-vision",
                                        "swin"])
def test_hook_tables_name_real_torch_modules(model_type):
  """Every torch path the tool hooks exists in the family's base model (guards against
  transformers renaming modules); the same names as our blocks."""
  from repsim_jax.models import parity
  small = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
               image_size=16, patch_size=8)
  conv = dict(depths=[1, 2, 1, 1], hidden_sizes=[8, 8, 16, 16])
  config = {
      "vit": lambda: transformers.ViTConfig(**small),
      "dinov2": lambda: transformers.Dinov2Config(**small),
      "dinov3_vit": lambda: transformers.DINOv3ViTConfig(**small),
      "convnext": lambda: transformers.ConvNextConfig(**conv),
      "convnextv2": lambda: transformers.ConvNextV2Config(**conv),
      "dinov3_convnext": lambda: transformers.DINOv3ConvNextConfig(**conv),
      "bit": lambda: transformers.BitConfig(depths=[1, 2, 1, 1], hidden_sizes=[8, 8, 16, 16],
                                            embedding_size=8, num_groups=4),
      "imagegpt": lambda: transformers.ImageGPTConfig(n_embd=16, n_layer=2, n_head=2,
                                                      n_positions=16, vocab_size=9),
      "deit": lambda: transformers.DeiTConfig(**small),
      "vit_mae": lambda: transformers.ViTMAEConfig(**small),
      "clip_vision_model": lambda: transformers.CLIPVisionConfig(**small),
      "siglip_vision_model": lambda: transformers.SiglipVisionConfig(**small),
      "dinov2_with_registers": lambda: transformers.Dinov2WithRegistersConfig(
          **{k: v for k, v in small.items() if k != "intermediate_size"}),
      "beit": lambda: transformers.BeitConfig(**small),
      "data2vec-vision": lambda: transformers.Data2VecVisionConfig(**small),
      "swin": lambda: transformers.SwinConfig(image_size=16, patch_size=2, embed_dim=8,
                                              depths=[2, 1], num_heads=[2, 2], window_size=4),
  }[model_type]()
  with torch.device("meta"):  # module names only: skip allocating and initialising weights
    model = transformers.AutoModel.from_config(config)
  modules = dict(model.named_modules())
  hooks = parity.torch_hooks(config, sublayers=True)
  paths = {spec if isinstance(spec, str) else spec[0] for spec in hooks.values()}
  assert not paths - set(modules), sorted(paths - set(modules))
  blocks = [n for n in hooks if n.count(".") == (1 if n.startswith("stage") else 0)]
  assert len(blocks) == 1 + sum(getattr(config, "depths", [])) + (
      0 if hasattr(config, "depths") else config.num_hidden_layers)


@pytest.mark.parametrize("kind", ["clip_full", "vit_mae", "data2vec", "swin"])
def test_new_families_compare_clean_with_sublayers(kind, tmp_path):
  """compare_checkpoint (the tool's library call) on the families whose torch reference needs
  care: a full CLIPModel checkpoint (compared through its vision tower), MAE (torch run without
  masking), Data2Vec-vision (attention probabilities only on request), Swin (stage hooks)."""
  from repsim_jax.models.parity import compare_checkpoint
  from torch_parity import tiny_torch_checkpoint
  path = tmp_path / "ckpt"
  torch.manual_seed(0)
  if kind == "clip_full":
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, image_size=32, patch_size=8)
    text = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    perturb_(transformers.CLIPModel(transformers.CLIPConfig(
        text_config=text, vision_config=vision))).save_pretrained(path)
    transformers.CLIPImageProcessor(size={"shortest_edge": 32},
                                    crop_size={"height": 32, "width": 32}).save_pretrained(path)
  elif kind == "data2vec":
    perturb_(transformers.Data2VecVisionModel(transformers.Data2VecVisionConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        image_size=32, patch_size=8, use_relative_position_bias=True))).save_pretrained(path)
  else:
    perturb_(transformers.AutoModel.from_pretrained(tiny_torch_checkpoint(kind, path))
             ).save_pretrained(path)
  transformers.logging.set_verbosity_error()  # the CLIP text tower is "unexpected" for the tower
  comparison = compare_checkpoint(str(path), n_images=2, image_size=40, sublayers=True,
                                  use_cache=False)
  transformers.logging.set_verbosity_warning()
  assert comparison.ok, [r for r in comparison.rows if not r.ok]
  names = [r.name for r in comparison.rows]
  assert any(n.endswith(".attn_probs") for n in names) and "hidden_states.1" in names


def test_runlocal_compares_tiny_checkpoints_in_one_table(tmp_path, capsys):
  """The offline variant: tiny transformers checkpoints written by torch under the workdir, one
  summary table, exit status 0 (two families here; the variant's default is every family)."""
  status = _run_tool(["--config=configs/compare_torch.py:runlocal,model_types=vit+swin",
                      f"--workdir={tmp_path}"])
  out = capsys.readouterr().out
  assert status == 0, out
  assert (tmp_path / "checkpoints" / "swin" / "model.safetensors").is_file()
  lines = out.splitlines()
  header = next(i for i, line in enumerate(lines) if line.startswith("model type"))
  rows = [line.split() for line in lines[header + 1:] if line.strip()]
  assert [r[0] for r in rows] == ["vit", "swin"] and all(r[-1] == "ok" for r in rows), out
  assert "orbax" not in out.lower()


def test_family_model_types_cover_every_family():
  from experiments import compare_torch
  from repsim_jax.models import registry
  types = compare_torch.family_model_types()
  assert len(types) == len(set(registry.FAMILIES.values()))
  assert {registry.FAMILIES[t] for t in types} == set(registry.FAMILIES.values())


def test_our_own_checkpoint_format_is_named(tmp_path, capsys):
  """A native (orbax) checkpoint, as runlocal writes, is refused with the format it needs."""
  from repsim_jax.tiny_checkpoints import tiny_random_checkpoint
  path = tiny_random_checkpoint("vit", str(tmp_path / "native"))
  status = _run_tool([f"--model={path}"])
  out = capsys.readouterr().out
  assert status == 2, out
  assert out.startswith(f"error: {path} is a checkpoint in our own format (orbax parameters"), out
  assert "needs a transformers checkpoint: config.json with model.safetensors" in out
