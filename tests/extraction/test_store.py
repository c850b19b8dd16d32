"""ActivationStore: round trips, chunk markers, resumability after a killed writer, refusals."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from repsim_jax.extraction import store as store_lib
from repsim_jax.extraction.store import (ActivationStore, IncompleteStoreError, StoreMismatchError,
                              load_store_layers)

CONFIG = {"model": {"id": "tiny", "fingerprint": "abc"}, "pooling": "mean_patch",
          "dataset": {"kind": "generated"}, "sampler": {"seed": 0}}
IDS = [f"img{i}" for i in range(10)]
SPECS = {"block_00": {"shape": [3], "pooling": "mean_patch"},
         "block_01": {"shape": [2, 4], "pooling": "tokens"}}


def _values(k, store):
  start, stop = store.chunk_bounds(k)
  rng = np.random.default_rng(k)
  return {"block_00": rng.normal(size=(stop - start, 3)).astype(np.float32),
          "block_01": rng.normal(size=(stop - start, 2, 4)).astype(np.float32)}


def _fill(store, chunks):
  for k in chunks:
    store.write_chunk(k, _values(k, store))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_round_trip_and_streaming(tmp_path, dtype):
  store = ActivationStore.open_or_create(str(tmp_path), config=CONFIG, ids=IDS, chunk_rows=4,
                                         dtype=dtype)
  store.ensure_layers(SPECS)
  assert store.num_chunks == 3 and store.chunk_bounds(2) == (8, 10)
  _fill(store, range(3))
  assert store.finalize()
  reopened = ActivationStore.open(str(tmp_path))
  assert reopened.layer_names == ["block_00", "block_01"] and reopened.ids == IDS
  for name in SPECS:
    expected = np.concatenate([_values(k, store)[name] for k in range(3)]).astype(dtype)
    got = reopened.layer(name)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, expected)
    blocks = list(reopened.iter_rows(name, 3))
    assert [len(b) for b in blocks] == [3, 3, 3, 1]
    np.testing.assert_array_equal(np.concatenate(blocks), expected)
  meta = json.load(open(tmp_path / "metadata.json"))
  assert meta["complete"] and meta["skipped_ids"] == [] and meta["config"]["ids"] == IDS
  assert meta["config"]["model"]["fingerprint"] == "abc" and "jax" in meta["versions"]
  assert reopened.valid_rows().all()
  names, arrays = load_store_layers(str(tmp_path), names="block_01,block_00")
  assert names == ["block_01", "block_00"]
  np.testing.assert_array_equal(arrays[1], reopened.layer("block_00"))
  with pytest.raises(KeyError, match="block_07"):
    load_store_layers(str(tmp_path), names=["block_07"])


def test_mismatch_is_refused_not_overwritten(tmp_path):
  store = ActivationStore.open_or_create(str(tmp_path), config=CONFIG, ids=IDS, chunk_rows=4)
  store.ensure_layers(SPECS)
  _fill(store, [0])
  same = ActivationStore.open_or_create(str(tmp_path), config=CONFIG, ids=IDS, chunk_rows=4)
  assert same.is_chunk_done(0) and not same.is_chunk_done(1)
  other_model = {**CONFIG, "model": {"id": "tiny", "fingerprint": "xyz"}}
  with pytest.raises(StoreMismatchError, match="model.fingerprint"):
    ActivationStore.open_or_create(str(tmp_path), config=other_model, ids=IDS, chunk_rows=4)
  with pytest.raises(StoreMismatchError, match="ids"):
    ActivationStore.open_or_create(str(tmp_path), config=CONFIG, ids=IDS[::-1], chunk_rows=4)
  with pytest.raises(StoreMismatchError, match="dtype"):
    ActivationStore.open_or_create(str(tmp_path), config=CONFIG, ids=IDS, chunk_rows=4,
                                   dtype="float16")
  with pytest.raises(StoreMismatchError, match="chunk_rows"):
    ActivationStore.open_or_create(str(tmp_path), config=CONFIG, ids=IDS, chunk_rows=5)
  with pytest.raises(StoreMismatchError, match="pooling"):
    same.ensure_layers({**SPECS, "block_00": {"shape": [3], "pooling": "cls"}})
  # the data written before is still there
  np.testing.assert_array_equal(same.layer("block_00")[:4], _values(0, same)["block_00"])


def test_bad_arguments(tmp_path):
  with pytest.raises(ValueError, match="dtype"):
    ActivationStore.open_or_create(str(tmp_path), config=CONFIG, ids=IDS, dtype="bfloat16")
  with pytest.raises(ValueError, match="duplicates"):
    ActivationStore.open_or_create(str(tmp_path), config=CONFIG, ids=["a", "a"])
  with pytest.raises(FileNotFoundError, match="metadata.json"):
    ActivationStore.open(str(tmp_path / "none"))
  store = ActivationStore.open_or_create(str(tmp_path), config=CONFIG, ids=IDS, chunk_rows=4)
  store.ensure_layers(SPECS)
  with pytest.raises(ValueError, match="expected shape"):
    store.write_chunk(2, {"block_00": np.zeros((4, 3)), "block_01": np.zeros((2, 2, 4))})
  with pytest.raises(ValueError, match="expected layers"):
    store.write_chunk(0, {"block_00": np.zeros((4, 3))})
  with pytest.raises(KeyError, match="no layer"):
    store.layer("block_99")


def test_killed_writer_leaves_store_resumable(tmp_path, monkeypatch):
  """A writer dying between data and marker (or a full disk) leaves that chunk to be redone."""
  store = ActivationStore.open_or_create(str(tmp_path), config=CONFIG, ids=IDS, chunk_rows=4)
  store.ensure_layers(SPECS)
  _fill(store, [0])
  real = store_lib._write_json_atomic
  def die(path, obj):
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(store_lib, "_write_json_atomic", die)
  with pytest.raises(OSError, match="No space"):
    store.write_chunk(1, {k: v + 1 for k, v in _values(1, store).items()})
  monkeypatch.setattr(store_lib, "_write_json_atomic", real)
  assert store.missing_chunks() == [1, 2] and not store.finalize()
  with pytest.raises(IncompleteStoreError, match="2 of 3 chunks missing"):
    ActivationStore.open(str(tmp_path))
  resumed = ActivationStore.open_or_create(str(tmp_path), config=CONFIG, ids=IDS, chunk_rows=4)
  _fill(resumed, resumed.missing_chunks())
  assert resumed.finalize()
  expected = np.concatenate([_values(k, store)["block_00"] for k in range(3)])
  np.testing.assert_array_equal(ActivationStore.open(str(tmp_path)).layer("block_00"), expected)
  assert not [f for f in os.listdir(tmp_path / "chunks") if ".tmp" in f]
