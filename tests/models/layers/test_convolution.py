"""layers.conv2d: every lowering ("xla": XLA's convolution op, "cpu": per-tap multiply-adds and
matmuls) against torch.nn.functional.conv2d in
float64, for every kind of convolution the ports use (depthwise 7x7, 1x1 strided, non-overlapping
patches, 3x3 with TF-SAME padding) and the fallbacks (grouped, strided/dilated depthwise); the
per-platform choice; gradients (forward and reverse mode, vmap); bfloat16."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repsim_jax import resources
from repsim_jax.models import layers

torch = pytest.importorskip("torch")

# name: (x shape NHWC, kernel size, out channels, groups, stride, padding, dilation)
CASES = {
    "depthwise 7x7 (ConvNeXt)": ((2, 13, 11, 8), 7, 8, 8, 1, 3, 1),
    "depthwise 7x7, 40 channels, width 19": ((3, 6, 19, 40), 7, 40, 40, 1, 3, 1),
    "depthwise 5x5, uneven padding": ((1, 9, 8, 17), 5, 17, 17, 1, ((1, 3), (4, 0)), 1),
    "depthwise 3x3 stride 2 dilation 2": ((2, 12, 9, 6), 3, 6, 6, 2, 2, 2),
    "1x1 stride 2 (BiT downsample)": ((2, 9, 10, 6), 1, 12, 1, 2, 0, 1),
    "1x1 padded": ((1, 5, 4, 3), 1, 4, 1, 1, ((1, 0), (0, 2)), 1),
    "patches 4x4/4, trailing pixels dropped": ((2, 18, 17, 3), 4, 8, 1, 4, 0, 1),
    "patches 2x2/2 (ConvNeXt downsample)": ((2, 8, 6, 8), 2, 16, 1, 2, 0, 1),
    "3x3 stride 2, TF-SAME padding": ((2, 9, 8, 4), 3, 6, 1, 2, ((0, 1), (1, 1)), 1),
    "7x7 stride 2 (BiT stem)": ((1, 20, 18, 3), 7, 8, 1, 2, 3, 1),
    "7x7 stride 2, 32 out (BiT stem)": ((2, 20, 31, 3), 7, 32, 1, 2, 3, 1),
    "3x3, 64 out, width 33": ((2, 10, 33, 8), 3, 64, 1, 1, 1, 1),
    "3x3, 96 in, 32 out, width 5": ((1, 6, 5, 96), 3, 32, 1, 1, 1, 1),
    "3x3 stride 2, 96 out, TF-SAME padding": ((1, 9, 8, 4), 3, 96, 1, 2, ((0, 1), (1, 1)), 1),
    "grouped 3x3, 2 groups": ((1, 8, 8, 4), 3, 6, 2, 1, 1, 1),
}


def _case(name, seed=0):
  shape, k, cout, groups, stride, padding, dilation = CASES[name]
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(shape).astype(np.float32)
  w = rng.standard_normal((k, k, shape[-1] // groups, cout)).astype(np.float32)
  return x, w, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def _torch_conv64(x, w, *, stride, padding, dilation, groups):
  """torch.nn.functional.conv2d in float64 on NHWC / HWIO arrays (explicit zero padding)."""
  pads = ((padding, padding),) * 2 if isinstance(padding, int) else padding
  xt = torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float64))
  xt = torch.nn.functional.pad(xt, (*pads[1], *pads[0]))
  wt = torch.from_numpy(w.transpose(3, 2, 0, 1).astype(np.float64))
  out = torch.nn.functional.conv2d(xt, wt, stride=stride, dilation=dilation, groups=groups)
  return out.numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("lowering", [None, *layers.CONV_LOWERINGS])
@pytest.mark.parametrize("name", list(CASES))
def test_conv2d_matches_torch(name, lowering):
  x, w, kw = _case(name)
  ref = _torch_conv64(x, w, **kw)
  out = jax.jit(lambda x, w: layers.conv2d(x, w, lowering=lowering, **kw))(x, w)
  assert out.shape == ref.shape and out.dtype == jnp.float32
  # float32 rounding of sums of k*k*cin products of N(0, 1) values
  np.testing.assert_allclose(np.asarray(out), ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_conv2d_lowerings_agree_at_convnext_size():
  """ConvNeXt-B's stage-2 depthwise conv (batch 2): all lowerings agree to float32 rounding."""
  rng = np.random.default_rng(1)
  x = rng.standard_normal((2, 14, 14, 512)).astype(np.float32)
  w = (rng.standard_normal((7, 7, 1, 512)) / 7).astype(np.float32)
  out = {lw: np.asarray(jax.jit(lambda x, w: layers.conv2d(x, w, padding=3, groups=512,
                                                           lowering=lw))(x, w))
         for lw in layers.CONV_LOWERINGS}
  ref = _torch_conv64(x, w, stride=1, padding=3, dilation=1, groups=512)
  scale = np.abs(ref).max()
  for lw in ("cpu",):
    assert np.abs(out[lw] - out["xla"]).max() <= 1e-6 * scale, lw
    assert np.abs(out[lw] - ref).max() <= 1e-6 * scale, lw


def test_conv2d_lowering_chosen_per_platform():
  """lowering=None compiles the "cpu" lowering for the CPU (`conv_lowering`): no convolution op
  for a depthwise 7x7, a 1x1 or a patch convolution (a 3x3 stays XLA's op), and the "xla"
  lowering (every other platform's) keeps it."""
  def hlo(lowering, name):
    x, w, kw = _case(name)
    fn = jax.jit(lambda x, w: layers.conv2d(x, w, lowering=lowering, **kw))
    return fn.lower(x, w).compile().as_text()

  assert jax.default_backend() == "cpu"
  assert layers.conv_lowering("cpu") == "cpu"
  assert layers.conv_lowering("gpu") == layers.conv_lowering("tpu") == "xla"
  for name in ("depthwise 7x7 (ConvNeXt)", "1x1 stride 2 (BiT downsample)",
               "patches 4x4/4, trailing pixels dropped"):
    assert " convolution(" not in hlo(None, name), name
    assert " convolution(" in hlo("xla", name), name
  assert " convolution(" in hlo(None, "3x3 stride 2, TF-SAME padding")


@pytest.mark.parametrize("name", ["depthwise 7x7 (ConvNeXt)", "depthwise 5x5, uneven padding",
                                  "3x3 stride 2, 96 out, TF-SAME padding"])
def test_conv2d_gradients_agree(name):
  """Input and kernel gradients (effective receptive fields; reverse mode) and forward-mode
  derivatives are the same under every lowering, also under vmap."""
  x, w, kw = _case(name)
  f = {lw: (lambda x, w, lw=lw: jnp.sum(jnp.sin(layers.conv2d(x, w, lowering=lw, **kw))))
       for lw in (None, *layers.CONV_LOWERINGS)}
  grads = {lw: jax.grad(fn, argnums=(0, 1))(x, w) for lw, fn in f.items()}
  tangents = {lw: jax.jvp(fn, (x, w), (np.cos(x), np.sin(w)))[1] for lw, fn in f.items()}
  batched = {lw: jax.vmap(jax.grad(fn), in_axes=(0, None))(np.stack([x, -x]), w)
             for lw, fn in f.items()}
  for lw in f:
    for got, want in zip(grads[lw], grads["xla"]):
      np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max(), err_msg=lw)
    np.testing.assert_allclose(tangents[lw], tangents["xla"], rtol=1e-5, err_msg=lw)
    np.testing.assert_allclose(batched[lw][0], grads["xla"][0], rtol=0,
                               atol=1e-5 * np.abs(grads["xla"][0]).max(), err_msg=lw)


def test_conv2d_bfloat16_depthwise():
  """bfloat16 in and out; the taps accumulate in float32, so the result is the float32 one
  rounded (not 49 bfloat16 roundings)."""
  x, w, kw = _case("depthwise 7x7 (ConvNeXt)")
  xb, wb = jnp.asarray(x, jnp.bfloat16), jnp.asarray(w, jnp.bfloat16)
  out = layers.conv2d(xb, wb, lowering="cpu", **kw)
  assert out.dtype == jnp.bfloat16
  exact = _torch_conv64(np.asarray(xb, np.float32), np.asarray(wb, np.float32), **kw)
  err = np.abs(np.asarray(out, np.float32) - exact).max() / np.abs(exact).max()
  assert err <= 2 ** -8, err


def test_conv2d_bad_arguments():
  x, w, kw = _case("depthwise 7x7 (ConvNeXt)")
  with pytest.raises(ValueError, match="lowering 'gpu'"):
    layers.conv2d(x, w, lowering="gpu", **kw)
  with pytest.raises(ValueError, match="input channels"):
    layers.conv2d(x[..., :4], w, **kw)
  with pytest.raises(ValueError, match="padding"):
    layers.conv2d(x, w, padding=((1, 1),), groups=8)


def test_compiler_options_per_platform(monkeypatch):
  """512-bit vectors on CPU hosts with AVX-512, nothing on others or on accelerators."""
  monkeypatch.setattr(resources, "host_cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
  assert layers.compiler_options("cpu") == {"xla_cpu_prefer_vector_width": 512}
  assert layers.compiler_options("gpu") == {} and layers.compiler_options("tpu") == {}
  monkeypatch.setattr(resources, "host_cpu_flags", lambda: frozenset({"avx2", "fma"}))
  assert layers.compiler_options("cpu") == {}


def test_wide_vectors_keep_the_numbers():
  """ConvNeXt's depthwise conv + layer norm + exact GELU compiled with 512-bit vectors: the same
  numbers as the default 256-bit code to float32 rounding, and as torch in float64."""
  rng = np.random.default_rng(2)
  x = rng.standard_normal((2, 14, 14, 256)).astype(np.float32)
  w = (rng.standard_normal((7, 7, 1, 256)) / 7).astype(np.float32)

  def block(x, w):
    y = layers.conv2d(x, w, padding=3, groups=256)
    y = (y - y.mean(-1, keepdims=True)) * jax.lax.rsqrt(y.var(-1, keepdims=True) + 1e-6)
    return layers.activation("gelu")(y)

  out = {width: np.asarray(jax.jit(block, compiler_options={
      "xla_cpu_prefer_vector_width": width})(x, w)) for width in (256, 512)}
  y = torch.from_numpy(_torch_conv64(x, w, stride=1, padding=3, dilation=1, groups=256))
  ref = torch.nn.functional.gelu(torch.nn.functional.layer_norm(y, (256,), eps=1e-6)).numpy()
  assert np.abs(out[512] - out[256]).max() <= 1e-5
  assert np.abs(out[512] - ref).max() <= 1e-5


def test_conv2d_inside_shard_map():
  """Extraction runs the forward inside shard_map (rows split over a mesh): both branches of the
  per-platform choice type-check there; numbers and input gradients as the "xla" lowering."""
  from jax.sharding import NamedSharding, PartitionSpec as P
  mesh = jax.make_mesh((1,), ("rows",))
  x, wd, _ = _case("depthwise 7x7 (ConvNeXt)")
  _, wn, _ = _case("3x3, 64 out, width 33")
  x = jax.device_put(x, NamedSharding(mesh, P("rows")))

  def features(lowering):
    def local(wd, wn, x):
      h = layers.conv2d(x, wd, padding=3, groups=8, lowering=lowering)
      return layers.conv2d(h, wn, padding=1, lowering=lowering)
    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P("rows")),
                                 out_specs=P("rows")))

  outs = {lw: features(lw)(wd, wn, x) for lw in (None, "xla")}
  np.testing.assert_allclose(outs[None], outs["xla"], rtol=0,
                             atol=1e-5 * np.abs(outs["xla"]).max())
  grads = {lw: jax.grad(lambda x, lw=lw: jnp.square(features(lw)(wd, wn, x)).sum())(x)
           for lw in (None, "xla")}
  np.testing.assert_allclose(grads[None], grads["xla"], rtol=0,
                             atol=1e-5 * np.abs(grads["xla"]).max())
