"""Extraction end to end on tiny NNX models: pooling, resume bit-identity, devices, bad inputs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repsim_jax.data.base import BadImageError
from repsim_jax.data.folder import ImageFolder
from repsim_jax.data.generated import GeneratedSource, write_image_folder
from repsim_jax.data.pipeline import resize_normalize
from repsim_jax.extraction.extract import extract
from repsim_jax.extraction.representations import early_middle_late
from repsim_jax.extraction.pooling import DEFAULT_POOLING, default_pooling, pool
from repsim_jax.extraction.store import ActivationStore, StoreMismatchError

from locations import HELPERS, ROOT
from tiny_models import TinyConvNet, TinyViT, numpy_init

PRE = resize_normalize(size=(16, 16))


def _np_pool(x, mode, prefix):
  x = np.asarray(x, np.float64)
  if x.ndim == 4:
    return x.mean(axis=(1, 2)) if mode in ("gap", "mean") else x.reshape(len(x), -1, x.shape[-1])
  return {"mean_patch": lambda: x[:, prefix:].mean(1), "cls": lambda: x[:, 0],
          "mean": lambda: x.mean(1), "tokens": lambda: x}[mode]()


def test_pooling_modes_match_numpy():
  rng = np.random.default_rng(0)
  tokens = rng.normal(size=(3, 7, 5)).astype(np.float32)
  maps = rng.normal(size=(3, 4, 2, 5)).astype(np.float32)
  for mode in ("mean_patch", "cls", "mean", "tokens"):
    got = jax.jit(lambda x: pool(x, mode, num_prefix_tokens=3))(tokens)
    np.testing.assert_allclose(got, _np_pool(tokens, mode, 3), rtol=1e-6, atol=1e-6)
  for mode in ("gap", "mean", "tokens"):
    np.testing.assert_allclose(jax.jit(lambda x: pool(x, mode))(maps), _np_pool(maps, mode, 0),
                               rtol=1e-6, atol=1e-6)
  # bfloat16 blocks are averaged in float32
  got = pool(jnp.asarray(tokens, jnp.bfloat16), "mean")
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, np.asarray(jnp.asarray(tokens, jnp.bfloat16), np.float64).mean(1),
                             rtol=1e-6)
  with pytest.raises(ValueError, match="unknown pooling"):
    pool(tokens, "max")
  with pytest.raises(ValueError, match="conv map"):
    pool(maps, "cls")
  with pytest.raises(ValueError, match="no patch tokens"):
    pool(tokens, "mean_patch", num_prefix_tokens=7)
  assert default_pooling("dinov2") == "mean_patch" and default_pooling("bit") == "gap"
  assert set(DEFAULT_POOLING) >= {"vit", "dinov2", "dinov3_vit", "imagegpt", "convnext", "bit"}
  # every ported family has a default (the torch backend pools other families with "mean")
  from repsim_jax.models.registry import FAMILIES
  assert set(DEFAULT_POOLING) >= set(FAMILIES)
  with pytest.raises(ValueError, match="pass pooling"):
    default_pooling("no_such_model")


def test_early_middle_late():
  names = [f"block_{i:02d}" for i in range(24)]
  expected = {"early": "block_01", "middle": "block_12", "late": "block_22"}
  assert early_middle_late(names) == early_middle_late(["embeddings"] + names) == expected
  conv = ["stem"] + [f"stage{s}.block{b:02d}" for s, d in enumerate((3, 3, 27, 3)) for b in range(d)]
  assert early_middle_late(conv) == {"early": "stage0.block01", "middle": "stage2.block12",
                                     "late": "stage3.block01"}
  with pytest.raises(ValueError, match="at least 3"):
    early_middle_late(["embeddings"] + names[:2])


_FORWARD = {}


def _reference(model, source, ids, layers, mode, prefix):
  """The straightforward loop: one image at a time through the model, pooled in numpy."""
  forward = _FORWARD.setdefault(id(model), jax.jit(lambda x: model(x).blocks))
  rows = {n: [] for n in layers}
  for i in ids:
    blocks = forward(PRE(source.load(i).image)[None])
    for n in layers:
      rows[n].append(_np_pool(blocks[n], mode, prefix)[0])
  return {n: np.stack(v) for n, v in rows.items()}


@pytest.fixture(scope="module")
def vit():
  return numpy_init(TinyViT, registers=2, depth=3)


# Most tests share these settings so the compiled step is reused (tests stay fast).
VIT = dict(batch_size=4, pooling="mean_patch", num_prefix_tokens=3, num_threads=2)


def test_extract_image_folder_matches_reference(tmp_path, vit):
  root = tmp_path / "imgs"
  write_image_folder(str(root), num_classes=3, per_class=4, size=(20, 18), modes=("RGB", "L", "CMYK"))
  folder = ImageFolder(str(root))
  store = ActivationStore.open_or_create(str(tmp_path / "store"), config={"model": "tiny_vit"},
                                         ids=folder.ids, chunk_rows=8)
  metrics = str(tmp_path / "metrics.jsonl")
  extract(vit, folder, PRE, store, metrics_path=metrics, progress_every_s=0.0, **VIT)
  store = ActivationStore.open(str(tmp_path / "store"))
  assert store.layer_names == ["embeddings", "block_00", "block_01", "block_02"]
  expected = _reference(vit, folder, folder.ids, store.layer_names, "mean_patch", 3)
  for name in store.layer_names:
    np.testing.assert_allclose(store.layer(name), expected[name], rtol=1e-5, atol=1e-5)
  assert store.layer_specs["block_01"] == {"shape": [16], "pooling": "mean_patch",
                                           "num_prefix_tokens": 3}
  lines = [json.loads(l) for l in open(metrics)]
  assert lines[-1]["done"] == 12 and lines[-1]["chunks_total"] == 2 and lines[-1]["rate"] > 0
  # a rerun finds nothing to do; a different pooling on the same store is refused
  calls = []
  extract(vit, folder, PRE, store, on_chunk_written=calls.append, **VIT)
  assert calls == []
  with pytest.raises(StoreMismatchError, match="pooling"):
    extract(vit, folder, PRE, store, **{**VIT, "pooling": "cls"})


def test_resume_after_failure_is_bit_identical(tmp_path, vit):
  source = GeneratedSource(22, size=(16, 16), seed=1)
  config = {"model": "tiny_vit", "dataset": source.describe()}
  kwargs = dict(batch_size=4, pooling={"embeddings": "cls", "block_00": "mean_patch",
                                       "block_01": "tokens", "block_02": "mean"},
                num_prefix_tokens=3, num_threads=2)
  full = ActivationStore.open_or_create(str(tmp_path / "full"), config=config, ids=source.ids,
                                        chunk_rows=8, dtype="float16")
  extract(vit, source, PRE, full, **kwargs)

  def fail_after_two(k):
    if k == 1:
      raise KeyboardInterrupt("injected failure after 2 chunks")
  path = str(tmp_path / "resumed")
  part = ActivationStore.open_or_create(path, config=config, ids=source.ids, chunk_rows=8,
                                        dtype="float16")
  with pytest.raises(KeyboardInterrupt):
    extract(vit, source, PRE, part, on_chunk_written=fail_after_two, **kwargs)
  assert part.missing_chunks() == [2]
  done = []
  resumed = ActivationStore.open_or_create(path, config=config, ids=source.ids, chunk_rows=8,
                                           dtype="float16")
  extract(vit, source, PRE, resumed, on_chunk_written=done.append, **kwargs)
  assert done == [2]  # only the incomplete chunk was computed again
  a, b = ActivationStore.open(str(tmp_path / "full")), ActivationStore.open(path)
  for name in a.layer_names:
    assert a.layer(name).dtype == np.float16
    np.testing.assert_array_equal(a.layer(name), b.layer(name))
    chunk_files = sorted(os.listdir(os.path.join(a.path, "layers", name)))
    for f in chunk_files:  # the on-disk bytes, too
      assert open(os.path.join(a.path, "layers", name, f), "rb").read() == \
             open(os.path.join(b.path, "layers", name, f), "rb").read()
  assert b.layer("block_01").shape == (22, 19, 16)


def test_conv_model_gap_and_layer_selection(tmp_path):
  model = numpy_init(TinyConvNet)
  source = GeneratedSource(6, size=(16, 16))
  store = ActivationStore.open_or_create(str(tmp_path), config={"model": "conv"}, ids=source.ids,
                                         chunk_rows=6)
  extract(model, source, PRE, store, batch_size=3, pooling="gap",
          layers=["stem", "stage1.block00"], num_threads=2)
  assert store.layer_names == ["stem", "stage1.block00"]
  expected = _reference(model, source, source.ids, store.layer_names, "gap", 0)
  for name in store.layer_names:
    np.testing.assert_allclose(store.layer(name), expected[name], rtol=1e-5, atol=1e-5)
  with pytest.raises(KeyError, match="not in the model's blocks"):
    extract(model, source, PRE, store, batch_size=3, pooling="gap", layers=["block_00"])
  with pytest.raises(ValueError, match="multiple of batch_size"):
    extract(model, source, PRE, store, batch_size=4, pooling="gap")


def test_tfds_mock_end_to_end(tmp_path, vit):
  tfds = pytest.importorskip("tensorflow_datasets")
  from repsim_jax.data.sampler import sample_ids
  from repsim_jax.data.tfds_source import TfdsSource
  with tfds.testing.mock_data(num_examples=10):
    source = TfdsSource("cifar100", "train")
    ids = sample_ids(source.ids, 6, seed=0)
    store = ActivationStore.open_or_create(str(tmp_path), config={"model": "tiny_vit"}, ids=ids,
                                           chunk_rows=4)
    extract(vit, source, PRE, store, **VIT)
    expected = _reference(vit, source, ids, ["block_02"], "mean_patch", 3)
  np.testing.assert_allclose(store.layer("block_02"), expected["block_02"], rtol=1e-5, atol=1e-5)


def test_bad_images_stop_or_are_recorded(tmp_path, vit):
  root = tmp_path / "imgs"
  write_image_folder(str(root), num_classes=2, per_class=3, size=(16, 16))
  (root / "n00000001" / "corrupt.JPEG").write_bytes(b"\xff\xd8garbage")
  folder = ImageFolder(str(root))
  config = {"model": "tiny_vit"}
  stop = ActivationStore.open_or_create(str(tmp_path / "stop"), config=config, ids=folder.ids,
                                        chunk_rows=4)
  with pytest.raises(BadImageError, match="n00000001/corrupt.JPEG") as err:
    extract(vit, folder, PRE, stop, **VIT)
  assert str(root) in str(err.value)
  skip = ActivationStore.open_or_create(str(tmp_path / "skip"), config=config, ids=folder.ids,
                                        chunk_rows=4)
  extract(vit, folder, PRE, skip, skip_bad_images=True, **VIT)
  skip = ActivationStore.open(str(tmp_path / "skip"))
  assert skip.num_rows == 7 and skip.skipped_ids == ["n00000001/corrupt.JPEG"]
  assert json.load(open(tmp_path / "skip" / "metadata.json"))["skipped_ids"] == skip.skipped_ids
  values, valid = skip.layer("block_00"), skip.valid_rows()
  assert np.isnan(values[~valid]).all() and np.isfinite(values[valid]).all()
  from repsim_jax.extraction.store import load_store_layers
  _, (kept,) = load_store_layers(str(tmp_path / "skip"), names="block_00")
  np.testing.assert_array_equal(kept, values[valid])
  good = [i for i in folder.ids if "corrupt" not in i]
  np.testing.assert_allclose(values[valid], _reference(vit, folder, good, ["block_00"], "mean_patch", 3)["block_00"],
                             rtol=1e-5, atol=1e-5)
  # a missing file (deleted after listing) is reported the same way
  os.remove(root / "n00000000" / "n00000000_0.JPEG")
  other = ActivationStore.open_or_create(str(tmp_path / "missing"), config=config, ids=folder.ids,
                                         chunk_rows=4)
  with pytest.raises(BadImageError, match="file not found"):
    extract(vit, folder, PRE, other, **VIT)
  with pytest.raises(KeyError, match="not in the source"):
    extract(vit, GeneratedSource(3), PRE, other, **VIT)


_DEVICES_SCRIPT = textwrap.dedent("""
  import os, sys
  sys.path.insert(0, {tests!r})
  import jax, numpy as np
  from tiny_models import TinyViT, numpy_init
  from repsim_jax.data.generated import GeneratedSource
  from repsim_jax.data.pipeline import resize_normalize
  from repsim_jax.extraction.extract import extract
  from repsim_jax.sharding import row_mesh
  from repsim_jax.extraction.store import ActivationStore
  assert jax.device_count() == 8, jax.devices()
  model, source, pre = numpy_init(TinyViT, depth=2), GeneratedSource(24, size=(16, 16)), resize_normalize(size=(16, 16))
  def run(path, devices, hosts=1):
    for host in range(hosts):  # hosts write disjoint chunk ranges of one store
      store = ActivationStore.open_or_create(path, config={{"m": 1}}, ids=source.ids, chunk_rows=8)
      extract(model, source, pre, store, batch_size=8, mesh=row_mesh(devices), device_batch=1, num_threads=2,
              process_index=host, process_count=hosts)
    return ActivationStore.open(path)
  one = run({out!r} + "/one", jax.devices()[:1])
  eight = run({out!r} + "/eight", jax.devices())
  hosts = run({out!r} + "/hosts", jax.devices()[:4], hosts=2)
  for name in one.layer_names:
    a, b, c = one.layer(name), eight.layer(name), hosts.layer(name)
    print(name, np.abs(a - b).max(), np.abs(a - c).max())
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
  print("OK")
""")


def test_one_vs_eight_fake_devices_identical(tmp_path):
  script = _DEVICES_SCRIPT.format(tests=str(HELPERS), out=str(tmp_path))
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.pathsep.join(
             [str(ROOT),
              os.environ.get("PYTHONPATH", "")])}
  result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr[-3000:]


# ~15 s alone, ~50 s on a loaded machine (torch import, checkpoint build): worth it in CI, since
# it is the one check of the whole extraction command against transformers.
def test_experiment_runlocal_matches_transformers(tmp_path):
  """`experiments.extract` on a tiny random ViT checkpoint vs transformers' ViTModel hidden states."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  from configs import raghu
  from repsim_jax.pipelines.extract import run
  from torch_parity import tiny_torch_checkpoint
  config = raghu.get_config("runlocal,models=vit")
  config.n_images, config.chunk_rows = 8, 8
  # the runlocal architecture as a transformers torch checkpoint (runlocal itself writes ours)
  ckpt = tiny_torch_checkpoint("vit", tmp_path / "torch_vit")
  config.models[0].update(tiny_random=False, checkpoint=ckpt)
  stores = run(config, str(tmp_path))
  store = ActivationStore.open(stores["vit"])
  assert store.layer_names == ["embeddings", "block_00", "block_01", "block_02", "block_03"]
  meta = store.metadata["config"]
  assert meta["pooling"] == {"mode": "mean_patch", "num_prefix_tokens": 1}
  assert meta["sampler"] == {"n": 8, "seed": 0} and len(meta["model"]["fingerprint"]) >= 16
  processor = transformers.AutoImageProcessor.from_pretrained(ckpt)
  torch_model = transformers.ViTModel.from_pretrained(ckpt, add_pooling_layer=False).eval()
  source = GeneratedSource(**{k: v for k, v in config.dataset.to_dict().items() if k != "kind"})
  images = [source.load(i).image for i in store.ids]
  with torch.no_grad():
    hidden = torch_model(**processor(images=images, return_tensors="pt"),
                         output_hidden_states=True).hidden_states
  for name, h in zip(store.layer_names, hidden):
    np.testing.assert_allclose(store.layer(name), h[:, 1:].mean(1).numpy(), rtol=1e-4, atol=1e-4)
  # the same command again resumes (nothing to do) and agrees with the store's config
  assert run(config, str(tmp_path)) == stores
  config.seed = 1
  with pytest.raises(StoreMismatchError, match="ids"):
    run(config, str(tmp_path))


def _bfloat16_copy(model):
  """The same model with bfloat16 parameters: another numeric path (its rows round differently)."""
  from flax import nnx
  graphdef, state = nnx.split(model)
  return nnx.merge(graphdef, jax.tree.map(lambda p: p.astype(jnp.bfloat16), state))


def test_resume_under_another_numeric_path_is_refused_or_recorded(tmp_path, vit):
  import jaxlib
  from repsim_jax.extraction.store import NumericPathError
  source = GeneratedSource(12, size=(16, 16), seed=2)
  path = str(tmp_path / "store")
  open_store = lambda **kw: ActivationStore.open_or_create(path, config={"model": "tiny_vit"},
                                                           ids=source.ids, chunk_rows=4, **kw)

  def stop_after_first(k):
    raise KeyboardInterrupt("injected failure after 1 chunk")
  with pytest.raises(KeyboardInterrupt):
    extract(vit, source, PRE, open_store(), on_chunk_written=stop_after_first, **VIT)
  (written,) = open_store().numeric_paths
  device = jax.local_devices()[0]
  assert written["dtype"] == "float32" and written["backend"] == "jax"
  assert (written["jax"], written["jaxlib"]) == (jax.__version__, jaxlib.__version__)
  assert (written["platform"], written["device_kind"]) == (device.platform, device.device_kind)
  assert written["conv_lowering"] in ("xla", "cpu", "native")

  # resumed with bfloat16 weights: refused, the message names both paths and the override
  half = _bfloat16_copy(vit)
  with pytest.raises(NumericPathError) as err:
    extract(half, source, PRE, open_store(), **VIT)
  message = str(err.value)
  assert "dtype: store has 'float32', this run has 'bfloat16'" in message
  assert '"dtype": "float32"' in message and '"dtype": "bfloat16"' in message
  assert "--config.allow_numeric_path_change=True" in message
  assert open_store().missing_chunks() == [1, 2]  # nothing written

  # the same path resumes; allowed explicitly, the other path resumes and is recorded
  calls = []
  extract(half, source, PRE, open_store(allow_numeric_path_change=True),
          on_chunk_written=calls.append, **VIT)
  assert calls == [1, 2]
  store = ActivationStore.open(path)
  assert [p["dtype"] for p in store.numeric_paths] == ["float32", "bfloat16"]
  assert json.load(open(os.path.join(path, "metadata.json")))["numeric_paths"] == \
      store.numeric_paths
  # the bfloat16 rows are not the float32 ones (the record is not a formality)
  full = ActivationStore.open_or_create(str(tmp_path / "f32"), config={"model": "tiny_vit"},
                                        ids=source.ids, chunk_rows=4)
  extract(vit, source, PRE, full, **VIT)
  a, b = full.layer("block_02"), store.layer("block_02")
  np.testing.assert_array_equal(a[:4], b[:4])
  assert not np.array_equal(a[4:], b[4:])
