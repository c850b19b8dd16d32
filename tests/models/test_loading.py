"""from_pretrained: local dirs, sharded / .bin checkpoints, the HF cache, the orbax cache of
converted parameters, meshes, and every error path."""
from __future__ import annotations

import json
import pathlib
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from repsim_jax.models import from_pretrained, load_params, loading, registry  # noqa: E402


def params_of(model) -> dict:
  return jax.tree_util.tree_map(np.asarray, nnx.state(model, nnx.Param).to_pure_dict())


def assert_same_params(a, b):
  fa, fb = loading._flatten(a), loading._flatten(b)
  assert fa.keys() == fb.keys()
  for k in fa:
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=str(k))


@pytest.fixture(scope="module")
def vit_ckpt(tmp_path_factory) -> pathlib.Path:
  torch.manual_seed(0)
  cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                               intermediate_size=64, image_size=32, patch_size=8)
  model = transformers.ViTModel(cfg)
  path = tmp_path_factory.mktemp("vit") / "ckpt"
  model.save_pretrained(path)
  return path


@pytest.fixture(scope="module")
def reference_params(vit_ckpt) -> dict:
  return params_of(from_pretrained(vit_ckpt, use_cache=False))


def test_params_are_the_torch_weights(vit_ckpt, reference_params):
  from safetensors.numpy import load_file
  sd = load_file(vit_ckpt / "model.safetensors")
  p = reference_params
  # save_pretrained writes the legacy (hub) names, which transformers renames on load
  np.testing.assert_array_equal(p["layers"][0]["attention"]["q_proj"]["kernel"],
                                sd["encoder.layer.0.attention.attention.query.weight"].T)
  np.testing.assert_array_equal(p["embeddings"]["patch_embeddings"]["projection"]["kernel"],
                                sd["embeddings.patch_embeddings.projection.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(p["layernorm"]["scale"], sd["layernorm.weight"])


def test_orbax_cache_round_trip_skips_conversion(vit_ckpt, reference_params, tmp_path,
                                                 monkeypatch):
  first = from_pretrained(vit_ckpt, cache_dir=tmp_path)
  assert not first.loaded_from_cache
  entries = list(tmp_path.iterdir())
  assert len(entries) == 1 and entries[0].name.startswith("vit-")
  fam = registry.family("vit")

  def no_convert(*a, **k):
    raise AssertionError("conversion ran although the cache holds the parameters")

  monkeypatch.setattr(fam, "convert", no_convert)
  second = from_pretrained(vit_ckpt, cache_dir=tmp_path)
  assert second.loaded_from_cache
  assert_same_params(params_of(second), reference_params)


def test_cache_key_changes_with_the_weights(vit_ckpt, tmp_path):
  ckpt = tmp_path / "ckpt"
  shutil.copytree(vit_ckpt, ckpt)
  files = loading.weight_files(ckpt)
  key = loading.fingerprint(ckpt, files)
  data = bytearray((ckpt / "model.safetensors").read_bytes())
  data[-1] ^= 0xFF  # flip bits in the last weight
  (ckpt / "model.safetensors").write_bytes(bytes(data))
  assert loading.fingerprint(ckpt, files) != key


def test_sharded_safetensors_and_pytorch_bin(vit_ckpt, reference_params, tmp_path):
  torch.manual_seed(0)
  model = transformers.ViTModel.from_pretrained(vit_ckpt)
  model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
  assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
  assert_same_params(params_of(from_pretrained(tmp_path / "sharded", use_cache=False)),
                     reference_params)
  (tmp_path / "bin").mkdir()
  shutil.copy(vit_ckpt / "config.json", tmp_path / "bin")
  torch.save(model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
  assert_same_params(params_of(from_pretrained(tmp_path / "bin", use_cache=False)),
                     reference_params)


def test_hub_id_from_local_hf_cache(vit_ckpt, reference_params, tmp_path):
  # the layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/...}
  commit = "0123456789abcdef0123456789abcdef01234567"
  repo = tmp_path / "hub" / "models--tiny-org--tiny-vit"
  (repo / "refs").mkdir(parents=True)
  (repo / "refs" / "main").write_text(commit)
  shutil.copytree(vit_ckpt, repo / "snapshots" / commit)
  model = from_pretrained("tiny-org/tiny-vit", hf_cache_dir=str(tmp_path / "hub"), use_cache=False)
  assert_same_params(params_of(model), reference_params)


def test_missing_hub_id_says_how_to_fetch_it(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"'no-org/no-model'.*hf download no-org/no-model"):
    from_pretrained("no-org/no-model", hf_cache_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError, match="neither a checkpoint directory"):
    from_pretrained(str(tmp_path / "does" / "not" / "exist"))


def test_unknown_model_type_lists_families(tmp_path):
  transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                          intermediate_size=64).save_pretrained(tmp_path)
  with pytest.raises(ValueError, match=r"unknown model_type 'bert'.*dinov2.*vit"):
    from_pretrained(tmp_path)


def test_no_weights_and_broken_weight_files(vit_ckpt, tmp_path):
  (tmp_path / "empty").mkdir()
  shutil.copy(vit_ckpt / "config.json", tmp_path / "empty")
  with pytest.raises(FileNotFoundError, match="has no weights"):
    from_pretrained(tmp_path / "empty")
  data = (vit_ckpt / "model.safetensors").read_bytes()
  for name, broken in [("truncated", data[: len(data) // 2]), ("header", data[:8] + b"{garbage"),
                       ("tiny", data[:5])]:
    ckpt = tmp_path / name
    ckpt.mkdir()
    shutil.copy(vit_ckpt / "config.json", ckpt)
    (ckpt / "model.safetensors").write_bytes(broken)
    with pytest.raises(ValueError, match=f"corrupted or truncated safetensors file .*{name}"):
      from_pretrained(ckpt, use_cache=False)


def test_load_params_reports_missing_unexpected_and_shapes(vit_ckpt, reference_params):
  model = from_pretrained(vit_ckpt, use_cache=False)
  bad = jax.tree_util.tree_map(lambda x: x, reference_params)
  del bad["layernorm"]["bias"]
  bad["extra"] = np.zeros(3, np.float32)
  bad["pooler"]["kernel"] = np.zeros((32, 5), np.float32)
  with pytest.raises(ValueError) as e:
    load_params(model, bad)
  msg = str(e.value)
  assert "missing 1: ['layernorm.bias']" in msg and "unexpected 1: ['extra']" in msg
  assert "pooler.kernel: model (32, 32) vs checkpoint (32, 5)" in msg


def test_unconverted_torch_weights_are_an_error(vit_ckpt):
  from safetensors.numpy import load_file
  sd = load_file(vit_ckpt / "model.safetensors")
  sd["layers.0.surprise.weight"] = np.zeros(2, np.float32)
  config = transformers.AutoConfig.from_pretrained(vit_ckpt)
  with pytest.raises(ValueError, match="does not use: \\['layers.0.surprise.weight'\\]"):
    registry.family("vit").convert(sd, config)


def test_mesh_placement(vit_ckpt, reference_params):
  devices = np.array(jax.devices()[:1]).reshape(1, 1)
  mesh = jax.sharding.Mesh(devices, ("data", "model"))
  model = from_pretrained(vit_ckpt, use_cache=False, mesh=mesh)
  for leaf in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)):
    assert isinstance(leaf.sharding, jax.sharding.NamedSharding)
  assert_same_params(params_of(model), reference_params)
  big = jax.sharding.AbstractMesh((2, 4), ("data", "model"))
  P = jax.sharding.PartitionSpec
  assert loading.param_sharding(big, (1024, 4096)).spec == P(None, "model")
  assert loading.param_sharding(big, (1024, 4098)).spec == P()  # not divisible by 4
  assert loading.param_sharding(big, (4096,)).spec == P()
  assert loading.param_sharding(big, (32, 64)).spec == P()  # small: replicated


@pytest.mark.parametrize("family", ["vit", "dinov2", "dinov3_vit", "deit", "vit_mae", "beit",
                                    "dinov2_with_registers", "swin"])
def test_current_and_legacy_torch_names_convert_alike(family, tmp_path):
  # in-memory state_dict: transformers v5 names; save_pretrained: legacy names as on the hub
  from safetensors.numpy import load_file
  torch.manual_seed(0)
  kw = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, image_size=32,
            patch_size=8)
  model = {"vit": lambda: transformers.ViTModel(transformers.ViTConfig(intermediate_size=64, **kw)),
           "dinov2": lambda: transformers.Dinov2Model(transformers.Dinov2Config(
               mlp_ratio=2, use_swiglu_ffn=True, **kw)),
           "dinov3_vit": lambda: transformers.DINOv3ViTModel(transformers.DINOv3ViTConfig(
               intermediate_size=64, use_gated_mlp=True, num_register_tokens=1, **kw)),
           "deit": lambda: transformers.DeiTModel(transformers.DeiTConfig(intermediate_size=64, **kw)),
           "vit_mae": lambda: transformers.ViTMAEModel(transformers.ViTMAEConfig(
               intermediate_size=64, **kw)),
           "beit": lambda: transformers.BeitModel(transformers.BeitConfig(
               intermediate_size=64, use_relative_position_bias=True,
               use_shared_relative_position_bias=True, **kw)),
           "dinov2_with_registers": lambda: transformers.Dinov2WithRegistersModel(
               transformers.Dinov2WithRegistersConfig(mlp_ratio=2, use_swiglu_ffn=True, **kw)),
           "swin": lambda: transformers.SwinModel(transformers.SwinConfig(
               image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[2, 2],
               window_size=4))}[family]()
  model.save_pretrained(tmp_path)
  legacy = load_file(tmp_path / "model.safetensors")
  current = {k: v.numpy() for k, v in model.state_dict().items()}
  assert set(legacy) != set(current)
  convert = registry.family(family).convert
  assert_same_params(convert(current, model.config), convert(legacy, model.config))


SHARDED_SCRIPT = """
import os, sys
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
import jax, numpy as np
from repsim_jax.models import from_pretrained, jit_forward
P = jax.sharding.PartitionSpec
ckpt, x_path, out_path = sys.argv[1:4]
mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
model = from_pretrained(ckpt, use_cache=False, mesh=mesh, min_shard_size=0)
assert model.layers[0].mlp.fc1.kernel[...].sharding.spec == P(None, "model")
assert model.embeddings.cls_token[...].sharding.spec == P()
x = jax.device_put(np.load(x_path), jax.sharding.NamedSharding(mesh, P("data")))
out = jit_forward(model, sublayers=True)(x)
np.savez(out_path, **{k: np.asarray(v) for k, v in out.blocks.items()},
         last_hidden_state=np.asarray(out.last_hidden_state))
"""


def test_params_sharded_over_8_fake_devices_give_the_same_outputs(vit_ckpt, tmp_path):
  import os
  import subprocess
  import sys
  from repsim_jax.models import jit_forward
  x = np.random.default_rng(0).standard_normal((4, 32, 32, 3)).astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  from locations import ROOT as root
  env = dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
  proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT, str(vit_ckpt),
                         str(tmp_path / "x.npy"), str(tmp_path / "out.npz")],
                        env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  sharded = np.load(tmp_path / "out.npz")
  out = jit_forward(from_pretrained(vit_ckpt, use_cache=False), sublayers=True)(x)
  ref = dict(out.blocks, last_hidden_state=out.last_hidden_state)
  assert set(sharded.files) == set(ref)
  for k in ref:
    np.testing.assert_allclose(sharded[k], np.asarray(ref[k]), rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_vision_tower_under_its_hub_prefix_converts_alike(kind):
  # hub CLIPVisionModel / SiglipVisionModel checkpoints keep their weights under vision_model.
  torch.manual_seed(0)
  cfg = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
             image_size=32, patch_size=8)
  model = (transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**cfg)) if kind == "clip"
           else transformers.SiglipVisionModel(transformers.SiglipVisionConfig(**cfg)))
  current = {k: v.numpy() for k, v in model.state_dict().items()}
  hub = {f"vision_model.{k}": v for k, v in current.items()}
  convert = registry.family(model.config.model_type).convert
  assert_same_params(convert(current, model.config), convert(hub, model.config))


def test_jit_forward_returns_the_models_outputs_once_each(vit_ckpt):
  """jit_forward = the eager model call, leaf for leaf, whether called at top level (its own
  compiler options), inside jit / eval_shape / grad (nested), or with a float64 numpy input; and
  the compiled function returns each distinct array once (a block's output that is also a
  hidden state is not copied into a second output buffer)."""
  from repsim_jax.models import jit_forward
  model = from_pretrained(vit_ckpt, use_cache=False)
  x = np.random.default_rng(0).standard_normal((2, 32, 32, 3))
  eager = model(jax.numpy.asarray(x, jax.numpy.float32), sublayers=True)
  forward = jit_forward(model, sublayers=True)

  def same(out):
    ref_leaves, ref_tree = jax.tree.flatten(eager)
    leaves, tree = jax.tree.flatten(out)
    assert tree == ref_tree
    for got, ref in zip(leaves, ref_leaves):
      np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-5, atol=1e-5)

  same(forward(x))                                   # numpy float64: jit sees float32
  same(forward(x.astype(np.float32)))
  same(jax.jit(lambda x: forward(x))(x.astype(np.float32)))
  shapes = jax.eval_shape(forward, jax.ShapeDtypeStruct(x.shape, np.float32))
  assert jax.tree.map(lambda a: a.shape, shapes) == jax.tree.map(lambda a: a.shape, eager)
  grad = jax.grad(lambda x: forward(x).last_hidden_state.sum())(x.astype(np.float32))
  ref_grad = jax.grad(lambda x: model(x).last_hidden_state.sum())(x.astype(np.float32))
  np.testing.assert_allclose(np.asarray(grad), np.asarray(ref_grad), rtol=1e-4, atol=1e-6)

  leaves = jax.tree.leaves(eager)
  distinct = len({id(leaf) for leaf in leaves})
  assert distinct < len(leaves)  # the port does repeat arrays
  jaxpr = jax.make_jaxpr(forward)(x.astype(np.float32))
  (call,) = [e for e in jaxpr.eqns if e.primitive.name in ("pjit", "jit")]
  assert len(call.outvars) == distinct
