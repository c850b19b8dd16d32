"""Result files: deterministic npz bytes, and the stored values that step records reload."""
from __future__ import annotations

import io
import os
import time

import numpy as np

from repsim_jax import results


def test_savez_bytes_depend_only_on_the_arrays(tmp_path):
  """Two writes a second apart give the same bytes (np.savez's differ by its zip entry times),
  and np.load reads back what np.savez would have stored."""
  arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "names": np.array(["x", "yz"])}
  first = io.BytesIO()
  results.savez(first, arrays)
  time.sleep(1.1)
  second = io.BytesIO()
  results.savez(second, arrays)
  assert first.getvalue() == second.getvalue()
  np.savez(tmp_path / "ref.npz", **arrays)
  with np.load(io.BytesIO(first.getvalue())) as got, np.load(tmp_path / "ref.npz") as want:
    assert got.files == want.files
    for k in want.files:
      assert got[k].dtype == want[k].dtype and got[k].tobytes() == want[k].tobytes()
  path = results.save_result(str(tmp_path), "r", arrays, extra={"n": 2})
  with open(path, "rb") as f:
    assert f.read() == first.getvalue()


def test_tree_round_trip_keeps_types_and_bits():
  import jax.numpy as jnp
  value = {("vit", "igpt"): np.linspace(0, 1, 7), "scalars": [np.float32(1 / 3), 0.1 + 0.2, 3,
                                                               float("inf"), True, None, "s"],
           7: {"nested": (np.int64(2**40), jnp.arange(3, dtype=jnp.int32))},
           "strings": np.array(["a", "bc"])}
  back = results.tree_from_bytes(results.tree_to_bytes(value))
  assert list(back) == list(value)
  np.testing.assert_array_equal(back[("vit", "igpt")], value[("vit", "igpt")])
  s = back["scalars"]
  assert type(s[0]) is np.float32 and s[0] == np.float32(1 / 3)
  assert s[1] == 0.1 + 0.2 and type(s[2]) is int and s[3] == float("inf") and s[4:] == [True,
                                                                                      None, "s"]
  nested = back[7]["nested"]
  assert isinstance(nested, tuple) and type(nested[0]) is np.int64 and nested[0] == 2**40
  assert isinstance(nested[1], np.ndarray) and nested[1].dtype == np.int32
  assert back["strings"].dtype == value["strings"].dtype


def test_tree_refuses_what_it_cannot_store_without_pickle():
  import pytest
  with pytest.raises(TypeError, match=r"value\['f'\]: a function"):
    results.tree_to_bytes({"ok": 1, "f": lambda: 0})
  with pytest.raises(TypeError, match="object array"):
    results.tree_to_bytes([np.array([object()])])


def test_write_atomic_leaves_no_temporary_file(tmp_path):
  path = str(tmp_path / "sub" / "record.json")
  results.write_atomic(path, "{}")
  results.write_atomic(path, b"[1]")
  assert open(path).read() == "[1]" and os.listdir(tmp_path / "sub") == ["record.json"]
