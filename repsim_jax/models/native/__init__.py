"""Native CPU kernels for what XLA:CPU compiles poorly, built from source on first use.

Two convolutions (`conv.cc`, float32, NHWC), XLA FFI handlers that XLA's CPU runtime calls with
its own intra-op thread pool; `layers.conv2d` uses them for the "native" lowering and, when JAX's
default backend is the CPU, for the per-platform default:
  depthwise (stride 1): XLA:CPU lowers ConvNeXt's depthwise 7x7 to a fused loop that reloads all
    49 taps for every output vector (~10 GFMA/s on the AVX-512 dev machine); this kernel keeps an
    8-pixel tile and the kernel row in registers (~60-70 GFMA/s, as fast as torch's oneDNN).
  dense (groups 1, input pre-padded, any stride): a direct convolution with a register tile of
    14 pixels x 32 channels (AVX-512; 6 x 16 with AVX2), for BiT's convolutions (see
    layers.conv2d for where it is used).

Built the way torch.utils.cpp_extension and Triton build theirs: the first process that needs it
compiles `conv.cc` with the host's C++ compiler ($CXX, else c++, g++ or clang++) for the
host's CPU (-march=native) against jaxlib's FFI headers (~3 s), into a cache keyed by everything
that can change the binary (source, compiler and its version, flags, jaxlib version, machine and
CPU feature flags, so a home directory shared by different cluster nodes holds one build per kind
of node). Later processes load it. Concurrent builders each write a temporary file and rename it
into place. Where no build is possible (no compiler, no headers, read-only cache) `status()` says
why, one warning is logged, and `layers.conv2d` computes the same convolution in XLA (the "cpu"
lowering), so nothing fails for lack of a compiler.

Environment:
  REPSIM_JAX_NATIVE=0       never build or load (the XLA lowerings everywhere).
  REPSIM_JAX_CACHE_DIR      where builds go (default $XDG_CACHE_HOME/repsim_jax or
                            ~/.cache/repsim_jax), under native/.
  CXX                       the compiler to use.
  REPSIM_JAX_NATIVE_FLAGS   compiler flags instead of "-O3 -march=native" (e.g. "-O3 -mavx2
                            -mfma" for one build that runs on every node of a mixed cluster).
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax import resources

SOURCE = pathlib.Path(__file__).with_name("conv.cc")
DEPTHWISE_TARGET = "repsim_jax_depthwise_conv2d"
DENSE_TARGET = "repsim_jax_dense_conv2d"
_HANDLERS = {DEPTHWISE_TARGET: "RepsimDepthwiseConv", DENSE_TARGET: "RepsimDenseConv"}
BUILD_TIMEOUT_S = 300
# Tried in order: tuned for this CPU first, then generic code for a compiler that refuses it.
_FLAG_SETS = (("-O3", "-march=native"), ("-O3",))
_COMMON = ("-std=c++17", "-shared", "-fPIC", "-w")


class BuildError(RuntimeError):
  """The native kernels could not be built or loaded; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Status:
  """available: the FFI targets are registered; path: the shared library; reason: why not;
  dense_tile_pixels, dense_channel_multiple: the dense kernel's register tile as built (its
  output-channel count must be a multiple of the latter)."""
  available: bool
  path: str | None = None
  reason: str | None = None
  dense_tile_pixels: int = 0
  dense_channel_multiple: int = 0


def cache_dir() -> pathlib.Path:
  """$REPSIM_JAX_CACHE_DIR, else $XDG_CACHE_HOME/repsim_jax, else ~/.cache/repsim_jax."""
  root = os.environ.get("REPSIM_JAX_CACHE_DIR") or os.path.join(
      os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
      "repsim_jax")
  return pathlib.Path(os.path.abspath(root)) / "native"


def find_compiler() -> str | None:
  """$CXX (a name on PATH or a path), else the first of c++, g++, clang++ on PATH."""
  if os.environ.get("CXX"):
    return shutil.which(os.environ["CXX"])
  return next(filter(None, map(shutil.which, ("c++", "g++", "clang++"))), None)


def build(source: pathlib.Path = SOURCE, out_dir: pathlib.Path | None = None,
          compiler: str | None = None) -> pathlib.Path:
  """The shared library of `source` under `out_dir` (default `cache_dir()`), built unless a
  build with the same key is there. Raises BuildError naming the cause."""
  compiler = compiler or find_compiler()
  if compiler is None:
    raise BuildError("no C++ compiler found (set CXX, or install g++ or clang++)")
  out_dir = out_dir or cache_dir()
  include = jax.ffi.include_dir()
  # everything but the flags that can change the binary (CPU flags: -march=native)
  build_inputs = (source.read_bytes(), compiler, _compiler_version(compiler), _COMMON,
                  jax.__version__, _jaxlib_version(), platform.machine(), sys.platform,
                  sorted(resources.host_cpu_flags()) or platform.processor())

  def target(flags):
    key = hashlib.sha256(repr((build_inputs, flags)).encode()).hexdigest()[:20]
    return out_dir / f"{source.stem}-{key}.so"

  flag_sets = ((tuple(os.environ["REPSIM_JAX_NATIVE_FLAGS"].split()),)
               if os.environ.get("REPSIM_JAX_NATIVE_FLAGS") else _FLAG_SETS)
  for flags in flag_sets:  # any earlier build, also a fallback one (no retrying what failed)
    if target(flags).exists():
      return target(flags)
  errors = []
  for flags in flag_sets:
    path = target(flags)
    try:
      out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise BuildError(f"cannot create the build cache {out_dir}: {e} (set REPSIM_JAX_CACHE_DIR "
                       f"to a writable directory)") from e
    fd, tmp = tempfile.mkstemp(suffix=".so.tmp", dir=out_dir)
    os.close(fd)
    cmd = [compiler, *flags, *_COMMON, f"-I{include}", str(source), "-o", tmp]
    start = time.perf_counter()
    try:
      done = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
      done = None
      errors.append(f"{' '.join(cmd)}: {e}")
    if done is not None and done.returncode == 0:
      os.replace(tmp, path)  # atomic: a concurrent builder's identical file may be replaced
      logging.info("native: built %s in %.1f s", path, time.perf_counter() - start)
      return path
    pathlib.Path(tmp).unlink(missing_ok=True)
    if done is not None:
      errors.append(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
  raise BuildError("compiling failed:\n" + "\n".join(errors))


@functools.lru_cache(maxsize=1)
def status() -> Status:
  """Builds (or finds) and registers the kernels once per process; never raises."""
  if os.environ.get("REPSIM_JAX_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
    return Status(False, reason="disabled by REPSIM_JAX_NATIVE")
  try:
    path = build()
    lib = ctypes.cdll.LoadLibrary(str(path))
    for target, symbol in _HANDLERS.items():
      jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
  except (BuildError, OSError, AttributeError) as e:
    logging.warning("native CPU kernels unavailable, using the XLA lowering instead (same "
                    "results, slower convolutions): %s", e)
    return Status(False, reason=str(e))
  return Status(True, path=str(path), dense_tile_pixels=lib.RepsimDenseTilePixels(),
                dense_channel_multiple=lib.RepsimDenseChannelMultiple())


def depthwise_conv2d(x: jax.Array, kernel: jax.Array,
                     pads: tuple[tuple[int, int], tuple[int, int]]) -> jax.Array:
  """The native depthwise convolution (no differentiation rule: see layers.conv2d).

  x: [B, H, W, C] float32, kernel: [kh, kw, C] float32, pads ((top, bottom), (left, right)) >= 0
  -> [B, H + top + bottom - kh + 1, W + left + right - kw + 1, C], stride 1.
  Raises BuildError if `status()` is not available.
  """
  (top, bottom), (left, right) = pads
  b, h, w, c = x.shape
  kh, kw, _ = kernel.shape
  out = jax.ShapeDtypeStruct((b, h + top + bottom - kh + 1, w + left + right - kw + 1, c),
                             jnp.float32)
  return _call(DEPTHWISE_TARGET, out, x, kernel, pad_top=top, pad_bottom=bottom, pad_left=left,
               pad_right=right)


def dense_conv2d(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
  """The native dense convolution of an already padded input (no differentiation rule).

  x: [B, H, W, Ci] float32, kernel: [kh, kw, Ci, Co] float32 (HWIO), Co a multiple of
  `status().dense_channel_multiple`
  -> [B, (H - kh) // stride + 1, (W - kw) // stride + 1, Co].
  Raises BuildError if `status()` is not available.
  """
  b, h, w, _ = x.shape
  kh, kw, _, co = kernel.shape
  out = jax.ShapeDtypeStruct((b, (h - kh) // stride + 1, (w - kw) // stride + 1, co), jnp.float32)
  return _call(DENSE_TARGET, out, x, kernel, stride=stride)


def _call(target: str, out: jax.ShapeDtypeStruct, *args, **attrs) -> jax.Array:
  st = status()
  if not st.available:
    raise BuildError(st.reason)
  y = jax.ffi.ffi_call(target, out, vmap_method="sequential")(
      *args, **{k: np.int64(v) for k, v in attrs.items()})
  # Inside shard_map, an FFI result is typed as invariant across the mesh whatever its inputs;
  # it varies along the axes its inputs vary along (jax checks this against the other branch of
  # layers.conv2d's platform_dependent).
  varying = set().union(*(_varying_axes(a) for a in args))
  return jax.lax.pcast(y, tuple(sorted(varying)), to="varying") if varying else y


def _varying_axes(a) -> frozenset[str]:
  """The mesh axes `a` varies along inside shard_map (`aval.vma` before jax 0.10)."""
  aval = jax.typeof(a)
  manual = getattr(aval, "manual_axis_type", None)
  return frozenset(manual.varying if manual is not None else getattr(aval, "vma", ()))


def _compiler_version(compiler: str) -> str:
  try:
    return subprocess.run([compiler, "--version"], capture_output=True, text=True,
                          timeout=60).stdout
  except (OSError, subprocess.TimeoutExpired):
    return ""


def _jaxlib_version() -> str:
  import jaxlib  # pylint: disable=import-outside-toplevel
  return jaxlib.__version__
