"""CKA kernels against plain numpy (float64) versions of the reference formulas.

The numpy functions below transcribe Kornblith et al.'s reference code
(google-research/representation_similarity) and, for the minibatch path, the explicit unbiased
HSIC formula of Song et al. 2012 (eq. 5) rather than U-centering, so the two paths check each
other.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from caught import warnings_said
from locations import ROOT
from repsim_jax.metrics.kernel_alignment import RAGHU_PROTOCOL, cka, cka_matrix

TOL = 1e-5


# --- numpy references ------------------------------------------------------------------------

def np_gram_linear(x):
  return x.dot(x.T)


def np_gram_rbf(x, threshold=1.0):
  dot_products = x.dot(x.T)
  sq_norms = np.diag(dot_products)
  sq_distances = -2 * dot_products + sq_norms[:, None] + sq_norms[None, :]
  sq_median_distance = np.median(sq_distances)
  return np.exp(-sq_distances / (2 * threshold ** 2 * sq_median_distance))


def np_center_gram(gram, unbiased=False):
  gram = gram.copy()
  if unbiased:
    n = gram.shape[0]
    np.fill_diagonal(gram, 0)
    means = np.sum(gram, 0, dtype=np.float64) / (n - 2)
    means -= np.sum(means) / (2 * (n - 1))
    gram -= means[:, None]
    gram -= means[None, :]
    np.fill_diagonal(gram, 0)
  else:
    means = np.mean(gram, 0, dtype=np.float64)
    means -= np.mean(means) / 2
    gram -= means[:, None]
    gram -= means[None, :]
  return gram


def np_cka_gram(gram_x, gram_y, debiased=False):
  gram_x = np_center_gram(gram_x, unbiased=debiased)
  gram_y = np_center_gram(gram_y, unbiased=debiased)
  scaled_hsic = gram_x.ravel().dot(gram_y.ravel())
  return scaled_hsic / (np.linalg.norm(gram_x) * np.linalg.norm(gram_y))


def np_feature_space_linear_cka(x, y, debiased=False):
  x = x - np.mean(x, 0, keepdims=True)
  y = y - np.mean(y, 0, keepdims=True)
  dot = np.linalg.norm(x.T.dot(y)) ** 2
  norm_x = np.linalg.norm(x.T.dot(x))
  norm_y = np.linalg.norm(y.T.dot(y))
  if debiased:
    n = x.shape[0]

    def helper(xty, rx, ry, sx, sy):
      return xty - n / (n - 2.) * rx.dot(ry) + sx * sy / ((n - 1) * (n - 2))

    rx, ry = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
    sx, sy = rx.sum(), ry.sum()
    dot = helper(dot, rx, ry, sx, sy)
    norm_x = np.sqrt(helper(norm_x ** 2, rx, rx, sx, sx))
    norm_y = np.sqrt(helper(norm_y ** 2, ry, ry, sy, sy))
  return dot / (norm_x * norm_y)


def np_hsic1(k, l):
  """Song et al. 2012, eq. 5 (unbiased HSIC), written out term by term."""
  m = k.shape[0]
  k, l = k.copy(), l.copy()
  np.fill_diagonal(k, 0)
  np.fill_diagonal(l, 0)
  one = np.ones(m)
  return (np.trace(k @ l) + one @ k @ one * (one @ l @ one) / ((m - 1) * (m - 2))
          - 2.0 / (m - 2) * one @ k @ l @ one) / (m * (m - 3))


def np_hsic0(k, l):
  m = k.shape[0]
  h = np.eye(m) - 1.0 / m
  return np.trace(k @ h @ l @ h) / (m - 1) ** 2


def np_minibatch_cka(xs, ys, batch_size, debiased=True, rows=None):
  hsic = np_hsic1 if debiased else np_hsic0
  n = xs[0].shape[0] if rows is None else len(rows)
  order = np.arange(n) if rows is None else rows
  out = np.zeros((len(xs), len(ys)))
  for i, x in enumerate(xs):
    for j, y in enumerate(ys):
      kl = kk = ll = 0.0
      for t in range(n // batch_size):
        sel = order[t * batch_size:(t + 1) * batch_size]
        k, l = np_gram_linear(x[sel].astype(np.float64)), np_gram_linear(y[sel].astype(np.float64))
        kl, kk, ll = kl + hsic(k, l), kk + hsic(k, k), ll + hsic(l, l)
      out[i, j] = kl / np.sqrt(kk * ll)
  return out


def layers(n, widths, seed=0):
  """Related layers: each one a noisy random linear map of the previous (CKA away from 0 and 1)."""
  rng = np.random.default_rng(seed)
  h = rng.normal(size=(n, widths[0]))
  out = [h]
  for d in widths[1:]:
    h = np.tanh(h @ rng.normal(size=(h.shape[1], d)) / np.sqrt(h.shape[1])) + 0.5 * rng.normal(
        size=(n, d))
    out.append(h + 3.0)  # a common offset, as after a ReLU
  return [x.astype(np.float32) for x in out]


# --- single pair ------------------------------------------------------------------------------

@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("n,dx,dy", [(40, 6, 9), (12, 20, 6)])  # feature form, Gram form
def test_linear_cka_matches_reference(n, dx, dy, debiased):
  x, y = layers(n, [dx, dy])
  x64, y64 = x.astype(np.float64), y.astype(np.float64)
  want = np_cka_gram(np_gram_linear(x64), np_gram_linear(y64), debiased=debiased)
  np.testing.assert_allclose(np_feature_space_linear_cka(x64, y64, debiased), want, atol=1e-12)
  got = cka(x, y, debiased=debiased)
  assert abs(float(got) - want) <= TOL
  if debiased:
    jitted = jax.jit(lambda a, b: cka(a, b, debiased=True))(x, y)
    assert abs(float(jitted) - want) <= TOL


@pytest.mark.parametrize("debiased,threshold", [(False, 1.0), (True, 0.5)])
def test_rbf_cka_matches_reference(debiased, threshold):
  x, y = layers(40, [6, 9], seed=1)
  want = np_cka_gram(np_gram_rbf(x.astype(np.float64), threshold),
                     np_gram_rbf(y.astype(np.float64), threshold), debiased=debiased)
  got = cka(x, y, kernel="rbf", debiased=debiased, rbf_threshold=threshold)
  assert abs(float(got) - want) <= TOL


@pytest.mark.parametrize("kernel,debiased", [("linear", True), ("rbf", False)])
def test_invariances(kernel, debiased):
  x, y = layers(40, [9, 6], seed=2)
  base = float(cka(x, y, kernel=kernel, debiased=debiased))
  q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(9, 9)))
  rotated = (x @ q.astype(np.float32)) * 7.5  # orthogonal transform and isotropic scaling
  assert abs(float(cka(rotated, y, kernel=kernel, debiased=debiased)) - base) <= TOL
  assert abs(float(cka(x, x, kernel=kernel, debiased=debiased)) - 1.0) <= TOL


def test_degenerate_inputs():
  x, y = layers(40, [6, 9])
  const = np.full((40, 6), 2.5, np.float32)
  for kernel, debiased in (("linear", False), ("linear", True), ("rbf", False)):
    assert float(cka(const, y, kernel=kernel, debiased=debiased)) == 0.0
  assert float(cka(const, const, debiased=True)) == 0.0
  # More than half the pairs coincide: RBF median distance is 0, zero-bandwidth limit, finite.
  dup = np.repeat(x[:2], 20, axis=0)
  assert np.isfinite(float(cka(dup, y, kernel="rbf")))
  with pytest.raises(ValueError, match="x: contains NaN"):
    cka(np.full((5, 2), np.nan), y[:5])
  with pytest.raises(ValueError, match="same number of"):
    cka(x, y[:10])
  with pytest.raises(ValueError, match="n >= 4"):
    cka(x[:3], y[:3], debiased=True)
  with pytest.raises(ValueError, match="2-D"):
    cka(x[0], y[0])
  with pytest.raises(ValueError, match="kernel"):
    cka(x, y, kernel="poly")


# --- matrices -----------------------------------------------------------------------------------

@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("n", [40, 12])  # feature form (n > d), Gram form (n <= d)
def test_exact_matrix_matches_pairs(n, debiased):
  la = layers(n, [6, 20, 6], seed=4)  # n=12 <= 20: Gram form; n=40 > 20: feature form
  lb = layers(n, [20, 6], seed=5)
  got = cka_matrix(la, lb, debiased=debiased)
  want = np.array([[np_cka_gram(np_gram_linear(a.astype(np.float64)),
                                np_gram_linear(b.astype(np.float64)), debiased) for b in lb]
                   for a in la])
  np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
  sym = cka_matrix(la, la, debiased=debiased)
  np.testing.assert_array_equal(sym, sym.T)


def test_exact_matrix_rbf():
  la, lb = layers(12, [20, 6], seed=6), layers(12, [9], seed=7)
  got = cka_matrix(la, lb, kernel="rbf", debiased=True)
  want = np.array([[np_cka_gram(np_gram_rbf(a.astype(np.float64)),
                                np_gram_rbf(b.astype(np.float64)), True) for b in lb] for a in la])
  np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


@pytest.mark.parametrize("debiased", [True, False])
def test_minibatch_matches_numpy_estimator(debiased):
  la = layers(70, [6, 13, 9], seed=8)  # 70 rows, batch 16: 4 batches, 6 rows dropped
  lb = layers(70, [5, 8], seed=9)
  got = cka_matrix(la, lb, debiased=debiased, batch_size=16)
  want = np_minibatch_cka(la, lb, 16, debiased=debiased)
  np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
  # Several batches per device step and a padded last step give the same sums.
  again = cka_matrix(la, lb, debiased=debiased, batch_size=16, batches_per_device=3)
  np.testing.assert_array_equal(got, again)


def test_minibatch_protocol_and_memmap(tmp_path):
  la = layers(64, [6, 9], seed=10)
  paths = []
  for i, x in enumerate(la):  # the minibatch path reads batches from array-likes such as memmaps
    np.save(tmp_path / f"l{i}.npy", x)
    paths.append(np.load(tmp_path / f"l{i}.npy", mmap_mode="r"))
  got = cka_matrix(paths, paths, batch_size=8, n_samples=40, repeats=3, seed=123)
  rng = np.random.default_rng(123)
  want = np.mean([np_minibatch_cka(la, la, 8, rows=rng.permutation(64)[:40]) for _ in range(3)],
                 axis=0)
  np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
  assert RAGHU_PROTOCOL == dict(batch_size=1024, n_samples=10240, repeats=20)
  with pytest.raises(ValueError, match="seed"):
    cka_matrix(la, la, batch_size=8, repeats=2)


def test_constant_layer_warns_once_per_call():
  """`repsim_jax.cka` and `cka_matrix` (exact and minibatch) say once per call which layers are
  constant and what their 0 means, in the words of the other entry points
  (`validation.warn_degenerate_layers`); ordinary layers stay silent."""
  import repsim_jax
  x, y = layers(40, [6, 9])
  const = np.full((40, 6), 2.5, np.float32)
  near = (1000 + 1e-3 * np.random.default_rng(0).normal(size=(40, 5))).astype(np.float32)
  meaning = ("CKA with it is 0 by convention (undefined: no variance to align), or rounding "
             "noise when near-constant")
  head = "constant or near-constant layers (spread <= 1e-05 of the values): "
  value, said = warnings_said(lambda: repsim_jax.cka(const, y))
  assert value == 0.0 and said == [head + "x (constant); " + meaning]
  _, said = warnings_said(lambda: repsim_jax.cka(y, const, hsic="song"))
  assert said == [head + "y (constant); " + meaning]
  _, said = warnings_said(lambda: repsim_jax.cka(const, const.copy()))
  assert said == [head + "x (constant), y (constant); " + meaning]
  _, said = warnings_said(lambda: repsim_jax.cka(const, const))  # one layer: named once
  assert said == [head + "x (constant); " + meaning]
  assert warnings_said(lambda: repsim_jax.cka(x, y))[1] == []
  _, said = warnings_said(lambda: repsim_jax.cka(near, y))
  assert len(said) == 1 and said[0].startswith(head + "x (spread ") and "of its scale" in said[0]
  la, lb = [x, const, y], [y, np.zeros((40, 3), np.float32)]
  for opts in ({}, {"batch_size": 8}):
    got, said = warnings_said(lambda: cka_matrix(la, lb, **opts))
    assert said == [head + "layers_a[1] (constant), layers_b[1] (constant); " + meaning], opts
    assert np.all(got[1] == 0) and np.all(got[:, 1] == 0)
    _, said = warnings_said(lambda: cka_matrix(la, la, **opts))  # one list: each layer named once
    assert said == [head + "layers_a[1] (constant); " + meaning], opts
    assert warnings_said(lambda: cka_matrix([x, y], [y], **opts))[1] == []


def test_minibatch_degenerate_and_errors():
  la = layers(32, [4, 6], seed=11) + [np.zeros((32, 3), np.float32)]
  got = cka_matrix(la, la, batch_size=8)
  assert np.all(np.isfinite(got)) and np.all(got[2] == 0) and np.all(got[:, 2] == 0)
  with pytest.raises(ValueError, match="larger than the number of samples"):
    cka_matrix(la, la, batch_size=64)
  with pytest.raises(ValueError, match="batch_size"):
    cka_matrix(la, la, batch_size=3)
  with pytest.raises(ValueError, match="sequence"):
    cka_matrix(la[0], la)
  with pytest.raises(ValueError, match="only 'linear'"):
    cka_matrix(la, la, batch_size=8, kernel="rbf")


def test_many_float32_batches_stay_accurate():
  """Long streams: 400 batches accumulate in float64 on the host, no drift and no NaN."""
  la = layers(400 * 8, [4, 5], seed=12)
  got = cka_matrix(la, la, batch_size=8, batches_per_device=50)
  want = np_minibatch_cka(la, la, 8)
  np.testing.assert_allclose(got, want, atol=TOL, rtol=0)


# --- devices --------------------------------------------------------------------------------

_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, jax
    sys.path.insert(0, {root!r})
    from repsim_jax.metrics.kernel_alignment import cka_matrix
    assert jax.local_device_count() == 8, jax.local_devices()
    rng = np.random.default_rng(0)
    la = [rng.normal(size=(100, d)).astype(np.float32) for d in (5, 9)]
    noise = rng.normal(size=(100, 7)).astype(np.float32)
    lb = [la[0] @ rng.normal(size=(5, 7)).astype(np.float32) + noise]
    # 12 batches of 8 rows (4 rows dropped): one device, then whole batches over 8 devices.
    one = cka_matrix(la, lb, batch_size=8, devices=jax.devices()[:1])
    eight = cka_matrix(la, lb, batch_size=8, devices=jax.devices())
    np.save({out!r}, np.stack([one, eight]))
""")


def test_one_vs_eight_devices_identical(tmp_path):
  root = str(ROOT)
  out = tmp_path / "cka.npy"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  subprocess.run([sys.executable, "-c", _SCRIPT.format(root=root, out=str(out))], env=env,
                 check=True, timeout=120)
  one, eight = np.load(out)
  np.testing.assert_array_equal(one, eight)
  assert np.all(np.isfinite(one)) and 0.1 < one[0, 0] < 1
