"""models.native: the C++ depthwise kernel is built from source on first use, cached, loaded by
concurrent processes, and its absence (no compiler, or switched off) changes nothing but speed.

The kernel's numbers are tested in test_layers.py (the "native" lowering against torch float64,
gradients, vmap) and in every ConvNeXt parity test (check_conv_lowerings builds each lowering).
"""
from __future__ import annotations

import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys

import pytest

from locations import ROOT
from repsim_jax.models import native

needs_compiler = pytest.mark.skipif(native.find_compiler() is None,
                                    reason="no C++ compiler here (the kernel is then not built)")

# Reports what a fresh process sees: native.status(), and the "native" depthwise lowering against
# the taps ("cpu") and a float64 numpy reference, on a 40-channel (partial block) input.
_PROBE = r"""
import json, sys
import numpy as np, jax, jax.numpy as jnp
from repsim_jax.models import layers, native
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 7, 10, 40)).astype(np.float32)
w = rng.standard_normal((7, 7, 1, 40)).astype(np.float32)
conv = lambda lw: np.asarray(jax.jit(lambda x, w: layers.conv2d(
    x, w, padding=3, groups=40, lowering=lw))(x, w))
xp = np.pad(x.astype(np.float64), ((0, 0), (3, 3), (3, 3), (0, 0)))
ref = sum(xp[:, i:i + 7, j:j + 10] * w[i, j, 0] for i in range(7) for j in range(7))
hlo = jax.jit(lambda x, w: layers.conv2d(x, w, padding=3, groups=40)).lower(x, w).compile().as_text()
# dense, 8 -> 64 channels, 3x3 stride 2 (width 19: whole tiles and a tail of every build)
xd = rng.standard_normal((2, 9, 38, 8)).astype(np.float32)
wd = rng.standard_normal((3, 3, 8, 64)).astype(np.float32)
dense = lambda lw: np.asarray(jax.jit(lambda x, w: layers.conv2d(
    x, w, stride=2, padding=1, lowering=lw))(xd, wd))
xdp = np.pad(xd.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
ref_d = sum(xdp[:, i:i + 9:2, j:j + 37:2] @ wd[i, j] for i in range(3) for j in range(3))
hlo_d = jax.jit(lambda x, w: layers.conv2d(x, w, stride=2, padding=1)).lower(xd, wd).compile().as_text()
st = native.status()
print(json.dumps(dict(available=st.available, path=st.path, reason=st.reason,
                      custom_call=native.DEPTHWISE_TARGET in hlo,
                      dense_custom_call=native.DENSE_TARGET in hlo_d,
                      err_native=float(np.abs(conv("native") - ref).max() / np.abs(ref).max()),
                      err_cpu=float(np.abs(conv("cpu") - ref).max() / np.abs(ref).max()),
                      err_dense=float(np.abs(dense(None) - ref_d).max() / np.abs(ref_d).max()),
                      tile=st.dense_tile_pixels, multiple=st.dense_channel_multiple)))
"""


def _probe(tmp_path: pathlib.Path, **env) -> subprocess.Popen:
  full = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
          "REPSIM_JAX_CACHE_DIR": str(tmp_path / "cache"), **env}
  full.pop("XLA_FLAGS", None)
  return subprocess.Popen([sys.executable, "-c", _PROBE], cwd=tmp_path, env=full, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _result(proc: subprocess.Popen) -> tuple[dict, str]:
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-4000:]
  return json.loads(out.strip().splitlines()[-1]), err


@needs_compiler
def test_concurrent_first_builds_share_one_cache(tmp_path):
  """Two processes start together on an empty cache: both build (or find) the same library,
  load it, compile the depthwise convolution to the custom call and get float32-exact sums."""
  first, second = _probe(tmp_path), _probe(tmp_path)
  results = [_result(first)[0], _result(second)[0]]
  for r in results:
    assert r["available"] and r["custom_call"] and r["dense_custom_call"], r
    assert max(r["err_native"], r["err_cpu"], r["err_dense"]) < 1e-6, r
  assert results[0]["path"] == results[1]["path"]
  built = sorted(p.name for p in (tmp_path / "cache" / "native").iterdir())
  assert built == [pathlib.Path(results[0]["path"]).name], built  # no temporary files left


@needs_compiler
@pytest.mark.parametrize("flags, tile, multiple", [("-O3", 6, 8), ("-O3 -mavx2 -mfma", 6, 16)])
def test_builds_for_other_cpus(tmp_path, flags, tile, multiple):
  """REPSIM_JAX_NATIVE_FLAGS builds for a generic x86-64 (SSE: 4 lanes) or an AVX2 CPU: the
  narrower vectors and the 6-pixel dense tile give the same numbers."""
  if platform.machine() not in ("x86_64", "AMD64"):
    pytest.skip("x86 flags")
  result, err = _result(_probe(tmp_path, REPSIM_JAX_NATIVE_FLAGS=flags))
  assert result["available"] and result["custom_call"] and result["dense_custom_call"], err[-3000:]
  assert (result["tile"], result["multiple"]) == (tile, multiple), result
  assert max(result["err_native"], result["err_dense"]) < 1e-6, result


def test_without_a_compiler_the_xla_lowering_runs(tmp_path):
  """CXX names no compiler: one warning that says why, no custom call, the same numbers."""
  result, err = _result(_probe(tmp_path, CXX=str(tmp_path / "no-such-compiler")))
  assert not result["available"] and not result["custom_call"], result
  assert not result["dense_custom_call"], result
  assert "no C++ compiler found" in result["reason"], result
  assert err.count("native CPU kernels unavailable") == 1, err[-3000:]
  assert max(result["err_native"], result["err_cpu"], result["err_dense"]) < 1e-6, result


def test_switched_off(tmp_path):
  result, err = _result(_probe(tmp_path, REPSIM_JAX_NATIVE="0"))
  assert not result["available"] and not result["custom_call"], result
  assert result["reason"] == "disabled by REPSIM_JAX_NATIVE"
  assert not (tmp_path / "cache").exists()
  assert result["err_native"] < 1e-6, result


@needs_compiler
def test_build_is_cached_by_key(tmp_path):
  """A second build with the same source reuses the file; a changed source is a new build;
  a source that does not compile raises BuildError with the compiler's message."""
  source = tmp_path / "conv.cc"
  shutil.copy(native.SOURCE, source)
  first = native.build(source, tmp_path / "out")
  mtime = first.stat().st_mtime_ns
  assert native.build(source, tmp_path / "out") == first and first.stat().st_mtime_ns == mtime
  source.write_text(native.SOURCE.read_text() + "\n// changed\n")
  assert native.build(source, tmp_path / "out") != first
  source.write_text("this is not C++\n")
  with pytest.raises(native.BuildError, match="this is not C"):
    native.build(source, tmp_path / "out")
  assert sorted(p.suffix for p in (tmp_path / "out").iterdir()) == [".so", ".so"]


def test_unwritable_cache_is_a_build_error(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("")
  if native.find_compiler() is None:
    pytest.skip("no C++ compiler here")
  with pytest.raises(native.BuildError, match="REPSIM_JAX_CACHE_DIR"):
    native.build(native.SOURCE, blocker / "cache")
