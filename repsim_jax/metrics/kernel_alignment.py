"""Centered kernel alignment (CKA): exact, debiased, and minibatch (streamed, sharded) forms.

Conventions (identical to the reference code of Kornblith et al. 2019,
github.com/google-research/google-research/tree/master/representation_similarity):

* linear CKA uses the feature-space form ||X^T Y||_F^2 when n > max(d_x, d_y), the Gram form
  <HKH, HLH> otherwise (the two agree to rounding);
* RBF kernel: k(a, b) = exp(-|a - b|^2 / (2 * threshold^2 * median_sq)), with median_sq the
  median of all n^2 squared distances (diagonal included), `threshold` defaulting to 1;
* debiased: HSIC_1 of Song et al. 2012 through U-centering (Szekely & Rizzo 2014):
  diagonal zeroed, K~_ij = K_ij - r_i/(n-2) - r_j/(n-2) + S/((n-1)(n-2)), diagonal zeroed again;
  <K~, L~> = n (n - 3) HSIC_1(K, L). The common factor cancels in CKA.

Degenerate inputs. A representation whose rows are all equal has a zero centered Gram matrix,
so CKA is 0/0; every function here returns 0 for it (no shared variance), never NaN. The
unbiased self-similarity <K~, K~> is a squared norm, hence >= 0; rounding can make the
feature-space form slightly negative, so it is clipped at 0. The unbiased cross term can be
negative (debiased CKA of unrelated representations scatters around 0): it is returned as is.

References:
  Kornblith, Norouzi, Lee, Hinton. Similarity of Neural Network Representations Revisited.
    ICML 2019.
  Song, Smola, Gretton, Bedo, Borgwardt. Feature Selection via Dependence Maximization.
    JMLR 13, 2012 (unbiased HSIC estimator).
  Szekely, Rizzo. Partial distance correlation with methods for dissimilarities.
    Annals of Statistics 42, 2014 (U-centering).
  Nguyen, Raghu, Kornblith. Do Wide and Deep Networks Learn the Same Things? ICLR 2021
    (arXiv 2020) (minibatch CKA).
  Raghu et al. Do Vision Transformers See Like Convolutional Neural Networks? NeurIPS 2021
    (batch 1024, 10240 samples without replacement, 20 repeats).
"""
from __future__ import annotations

import functools
import warnings
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from repsim_jax import sharding as mesh_lib
from repsim_jax.progress import Progress
from repsim_jax.metrics import validation
from repsim_jax.metrics.validation import (as_layer, as_layer_list, check_rows, float_dtype,
                                            layer_lists)

_HI = jax.lax.Precision.HIGHEST

# The HSIC estimators, chosen with one keyword everywhere (`hsic=`): "gretton", the biased
# HSIC_0 = tr(K H L H) / n^2 of Gretton et al. 2005; "song", the unbiased HSIC_1 of Song et al.
# 2012 (eq. 5), a U-statistic. The similarity repository names them the same way
# (`cka-kernel=linear-hsic=gretton-score`, `...-hsic=song-score`).
HSIC_ESTIMATORS = ("gretton", "song")


def resolve_hsic(hsic: str | None, old: bool | None, *, old_name: str, default: str,
                 where: str) -> bool:
  """True for Song's unbiased estimator, False for Gretton's biased one.

  `hsic` is the keyword; `old` the deprecated boolean it replaces (`debiased=` in CKA,
  `unbiased=` in CKNNA and `center_gram`), accepted for one release with a DeprecationWarning.
  """
  if old is not None:
    warnings.warn(f"{where}: {old_name}= is deprecated; pass hsic="
                  f"{'song' if old else 'gretton'!r} instead", DeprecationWarning, stacklevel=3)
    want = "song" if old else "gretton"
    if hsic is not None and hsic != want:
      raise ValueError(f"{where}: {old_name}={old} contradicts hsic={hsic!r}")
    hsic = want
  hsic = default if hsic is None else hsic
  if hsic not in HSIC_ESTIMATORS:
    raise ValueError(f"{where}: hsic must be one of {HSIC_ESTIMATORS}, got {hsic!r}")
  return hsic == "song"

# The protocol of Raghu et al. 2021 (appendix, "Additional details on CKA implementation"):
# `cka_matrix(a, b, **RAGHU_PROTOCOL, seed=0)`.
RAGHU_PROTOCOL = dict(batch_size=1024, n_samples=10240, repeats=20)


# ---------------------------------------------------------------------------------------------
# Building blocks (all pure, jit-friendly).

def center_features(x: jax.Array) -> jax.Array:
  """x: [n, d] -> column-centered [n, d].

  Shifts by the first row before removing the mean: CKA is translation invariant, the shift makes
  a constant representation exactly zero (so it is detected without a tolerance) and reduces
  float32 cancellation for representations with a large common offset (e.g. after a ReLU).
  """
  x = x - x[:1]
  return x - jnp.mean(x, axis=0, keepdims=True)


def gram_linear(x: jax.Array) -> jax.Array:
  """x: [n, d] -> K = X X^T, [n, n]."""
  return jnp.matmul(x, x.T, precision=_HI)


def gram_rbf(x: jax.Array, *, threshold: float = 1.0) -> jax.Array:
  """x: [n, d] -> RBF Gram [n, n], bandwidth^2 = threshold^2 * median squared distance.

  If the median squared distance is 0 (more than half of all pairs coincide) the kernel is taken
  at its zero-bandwidth limit, K_ij = [x_i == x_j], instead of 0/0.
  """
  x = center_features(x)
  dots = gram_linear(x)
  sq = jnp.diagonal(dots)
  d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * dots, 0.0)
  med = jnp.median(d2)
  safe = jnp.where(med > 0, med, 1.0)
  k = jnp.exp(-d2 / (2.0 * threshold ** 2 * safe))
  return jnp.where(med > 0, k, (d2 == 0).astype(k.dtype))


def center_gram(gram: jax.Array, *, hsic: str | None = None,
                unbiased: bool | None = None) -> jax.Array:
  """gram: [n, n] symmetric -> H K H (hsic="gretton", default) or the U-centered K~ ("song").

  `unbiased=` is the deprecated form of `hsic=` (True: "song").
  """
  unbiased = resolve_hsic(hsic, unbiased, old_name="unbiased", default="gretton",
                          where="center_gram")
  n = gram.shape[0]
  eye = jnp.eye(n, dtype=bool)
  if unbiased:
    g = jnp.where(eye, 0.0, gram)
    means = jnp.sum(g, axis=0) / (n - 2)
    means = means - jnp.sum(means) / (2 * (n - 1))
    g = g - means[:, None] - means[None, :]
    return jnp.where(eye, 0.0, g)
  means = jnp.mean(gram, axis=0)
  means = means - jnp.mean(means) / 2
  return gram - means[:, None] - means[None, :]


def _debias(xty, rows_x, rows_y, sq_x, sq_y, n):
  """Feature-space U-statistic: <K~, L~> from ||Xc^T Yc||^2 and the centered row norms."""
  return (xty - n / (n - 2.0) * jnp.dot(rows_x, rows_y, precision=_HI)
          + sq_x * sq_y / ((n - 1.0) * (n - 2.0)))


def _ratio(num, self_x, self_y, degenerate):
  """num / sqrt(self_x * self_y); 0 for degenerate inputs; self terms clipped at 0."""
  den = jnp.sqrt(jnp.maximum(self_x, 0.0) * jnp.maximum(self_y, 0.0))
  ok = jnp.logical_and(den > 0, jnp.logical_not(degenerate))
  return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def _name(debiased: bool) -> str:
  return "song" if debiased else "gretton"


def _is_constant(xc: jax.Array) -> jax.Array:
  return jnp.all(xc == 0)


# ---------------------------------------------------------------------------------------------
# Single pair.

@functools.partial(jax.jit, static_argnames=("kernel", "debiased", "rbf_threshold", "form"))
def _cka_pair(x, y, *, kernel, debiased, rbf_threshold, form):
  xc, yc = center_features(x), center_features(y)
  degenerate = jnp.logical_or(_is_constant(xc), _is_constant(yc))
  if form == "features":
    n = x.shape[0]
    xty = jnp.sum(jnp.matmul(xc.T, yc, precision=_HI) ** 2)
    xx = jnp.sum(jnp.matmul(xc.T, xc, precision=_HI) ** 2)
    yy = jnp.sum(jnp.matmul(yc.T, yc, precision=_HI) ** 2)
    if debiased:
      rx, ry = jnp.sum(xc * xc, axis=1), jnp.sum(yc * yc, axis=1)
      sx, sy = jnp.sum(rx), jnp.sum(ry)
      xty = _debias(xty, rx, ry, sx, sy, n)
      xx = _debias(xx, rx, rx, sx, sx, n)
      yy = _debias(yy, ry, ry, sy, sy, n)
    return _ratio(xty, xx, yy, degenerate)
  gram = gram_linear if kernel == "linear" else functools.partial(gram_rbf, threshold=rbf_threshold)
  gx = center_gram(gram(xc), hsic=_name(debiased))
  gy = center_gram(gram(yc), hsic=_name(debiased))
  return _ratio(jnp.vdot(gx, gy), jnp.vdot(gx, gx), jnp.vdot(gy, gy), degenerate)


def _check_options(kernel: str, debiased: bool, rbf_threshold: float) -> None:
  if kernel not in ("linear", "rbf"):
    raise ValueError(f"kernel: expected 'linear' or 'rbf', got {kernel!r}")
  if not rbf_threshold > 0:
    raise ValueError(f"rbf_threshold: expected > 0, got {rbf_threshold}")


def cka(x: Any, y: Any, *, kernel: str = "linear", hsic: str | None = None,
        rbf_threshold: float = 1.0, debiased: bool | None = None) -> jax.Array:
  """Centered kernel alignment between two representations of the same n inputs.

  Args:
    x: [n, d_x] (numpy or jax).
    y: [n, d_y].
    kernel: "linear" or "rbf".
    hsic: "song", the unbiased HSIC_1 estimator (needs n >= 4), or "gretton". Default
      "gretton": the biased estimator of Kornblith et al. 2019's definition, which their
      reference code and most single-pair comparisons report. `cka_matrix` defaults to "song"
      instead (see there); both defaults are contracts (docs/design.md, "Contracts").
    rbf_threshold: RBF bandwidth as a fraction of the median distance.
    debiased: deprecated form of `hsic` (True: "song").

  Returns:
    0-d array: CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), in [0, 1] (biased) or roughly
    [-1, 1] (debiased, negative values are estimation noise around 0). 0 if x or y is constant.
    Jit-friendly: shapes select the form (feature space when n > max(d_x, d_y), linear only).
    `repsim_jax.cka` returns it as a Python float.

  References: Kornblith et al. 2019; Song et al. 2012 (see module docstring).
  """
  debiased = resolve_hsic(hsic, debiased, old_name="debiased", default="gretton", where="cka")
  _check_options(kernel, debiased, rbf_threshold)
  x, y = as_layer(x, "x"), as_layer(y, "y")
  n = check_rows([x.shape, y.shape], ["x", "y"], min_n=4 if debiased else 2,
                 why="debiased CKA" if debiased else "CKA")
  form = "features" if kernel == "linear" and n > max(x.shape[1], y.shape[1]) else "gram"
  dtype = jnp.promote_types(x.dtype, y.dtype)
  return _cka_pair(x.astype(dtype), y.astype(dtype), kernel=kernel, debiased=debiased,
                   rbf_threshold=float(rbf_threshold), form=form)


# ---------------------------------------------------------------------------------------------
# Exact matrix: each layer's centered Gram / centered features computed once.

@functools.partial(jax.jit, static_argnames=("kernel", "debiased", "rbf_threshold"))
def _centered_gram_flat(x, *, kernel, debiased, rbf_threshold):
  xc = center_features(x)
  g = gram_linear(xc) if kernel == "linear" else gram_rbf(xc, threshold=rbf_threshold)
  return center_gram(g, hsic=_name(debiased)).reshape(-1), _is_constant(xc)


@jax.jit
def _layer_features(x):
  """x: [L, n, d] (layers of one width) -> centered features, row norms, their sums, constant."""
  xc = jax.vmap(center_features)(x)
  rows = jnp.sum(xc * xc, axis=2)
  return xc, rows, jnp.sum(rows, axis=1), jnp.all(xc == 0, axis=(1, 2))


@functools.partial(jax.jit, static_argnames=("debiased",))
def _feature_hsic(fa, fb, *, debiased):
  """All pairs between two width groups: [La_w, n, d], [Lb_w, n, e] -> <K~, L~> [La_w, Lb_w]."""
  xb, rb, sb = fb[:3]

  def row(args):
    xa, ra, sa = args
    xty = jnp.sum(jnp.einsum("nd,jne->jde", xa, xb, precision=_HI) ** 2, axis=(1, 2))
    if debiased:
      xty = _debias(xty, ra, rb.T, sa, sb, xa.shape[0])
    return xty

  return jax.lax.map(row, fa[:3])


def _self_terms(groups, count, debiased):
  out = np.zeros(count, np.float64)
  for idx, f in groups.values():
    out[idx] = np.diagonal(np.asarray(_feature_hsic(f, f, debiased=debiased)))
  return jnp.asarray(out, dtype=f[0].dtype)


def _by_width(layers):
  """{d: (indices, stacked [L_d, n, d])}: one compiled kernel per width, not per layer."""
  groups: dict[int, list[int]] = {}
  for i, x in enumerate(layers):
    groups.setdefault(x.shape[1], []).append(i)
  return {d: (idx, jnp.stack([layers[i] for i in idx])) for d, idx in groups.items()}


def _exact_matrix(layers_a, layers_b, *, kernel, debiased, rbf_threshold, same):
  la = [as_layer(x, f"layers_a[{i}]") for i, x in enumerate(layers_a)]
  lb = la if same else [as_layer(x, f"layers_b[{j}]") for j, x in enumerate(layers_b)]
  n = la[0].shape[0]
  max_d = max(x.shape[1] for x in la + lb)
  if kernel == "rbf" or n <= max_d:
    # Gram form: [L, n^2] stacks are no larger than the inputs when n <= d.
    opts = dict(kernel=kernel, debiased=debiased, rbf_threshold=float(rbf_threshold))
    ga, deg_a = zip(*[_centered_gram_flat(x, **opts) for x in la])
    ga, deg_a = jnp.stack(ga), jnp.stack(deg_a)
    gb, deg_b = (ga, deg_a) if same else map(jnp.stack, zip(*[_centered_gram_flat(x, **opts)
                                                             for x in lb]))
    cross = jnp.matmul(ga, gb.T, precision=_HI)
    self_a, self_b = jnp.sum(ga * ga, axis=1), jnp.sum(gb * gb, axis=1)
  else:
    ga = {d: (idx, _layer_features(x)) for d, (idx, x) in _by_width(la).items()}
    gb = ga if same else {d: (idx, _layer_features(x)) for d, (idx, x) in _by_width(lb).items()}
    cross = np.zeros((len(la), len(lb)), np.float64)
    deg_a, deg_b = np.zeros(len(la), bool), np.zeros(len(lb), bool)
    for ia, fa in ga.values():
      deg_a[ia] = np.asarray(fa[3])
      for ib, fb in gb.values():
        deg_b[ib] = np.asarray(fb[3])
        cross[np.ix_(ia, ib)] = np.asarray(_feature_hsic(fa, fb, debiased=debiased))
    if same:
      cross = np.triu(cross) + np.triu(cross, 1).T  # exactly symmetric
    cross = jnp.asarray(cross, dtype=la[0].dtype)
    if same:
      self_a = self_b = jnp.diagonal(cross)
    else:
      self_a = _self_terms(ga, len(la), debiased)
      self_b = _self_terms(gb, len(lb), debiased)
    deg_a, deg_b = jnp.asarray(deg_a), jnp.asarray(deg_b)
  degenerate = jnp.logical_or(deg_a[:, None], deg_b[None, :])
  return np.asarray(_ratio(cross, self_a[:, None], self_b[None, :], degenerate), np.float64)


# ---------------------------------------------------------------------------------------------
# Minibatch matrix (Nguyen et al. 2020): streamed over batches, batches sharded over devices.

def _batch_grams(batch_layers, debiased):
  """Tuple of [b, d_l] -> [L, b*b] centered Grams (U-centered when debiased)."""
  return jnp.stack([center_gram(gram_linear(center_features(x)),
                                hsic=_name(debiased)).reshape(-1) for x in batch_layers])


@functools.lru_cache(maxsize=None)
def _minibatch_step(mesh: Mesh, debiased: bool, same: bool):
  """Jitted shard_map: per-device stacks of batches -> per-batch HSIC sums.

  Each device holds whole batches (rows of consecutive batches), so the b x b Grams never cross
  devices; the outputs stay per batch and are summed on the host in batch order, which makes the
  result independent of the number of devices.
  """
  def one_batch(batch):
    ga = _batch_grams(batch[0], debiased)
    gb = ga if same else _batch_grams(batch[1], debiased)
    cross = jnp.matmul(ga, gb.T, precision=_HI)
    return cross, jnp.sum(ga * ga, axis=1), jnp.sum(gb * gb, axis=1)

  def per_device(xs_a, xs_b):
    return jax.lax.map(one_batch, (xs_a, xs_b))

  spec = P(mesh_lib.ROWS)
  fn = jax.shard_map(per_device, mesh=mesh, in_specs=(spec, spec), out_specs=(spec, spec, spec))
  return jax.jit(fn)


def _host_dtype(x: Any) -> np.dtype:
  return float_dtype(getattr(x, "dtype", np.float32))


def _take_rows(x: Any, rows: np.ndarray | slice, name: str, dtype: np.dtype) -> np.ndarray:
  chunk = np.asarray(x[rows], dtype=dtype)
  if not np.all(np.isfinite(chunk)):
    raise ValueError(f"{name}: contains NaN or infinite values")
  return chunk


def _minibatch_hsic_sums(layers_a, layers_b, *, batch_size, debiased, same, rows, devices,
                         batches_per_device):
  """Float64 sums over batches of (cross [La, Lb], self_a [La], self_b [Lb]) HSIC terms.

  `rows`: the row order (an index array) or None for 0..n-1. Batches are consecutive in that
  order, the last partial batch is dropped.
  """
  n = len(rows) if rows is not None else layers_a[0].shape[0]
  num_batches = n // batch_size
  if num_batches == 0:
    raise ValueError(f"batch_size={batch_size} is larger than the number of samples n={n}")
  mesh = mesh_lib.row_mesh(list(devices))
  step_batches = mesh.size * batches_per_device
  step = _minibatch_step(mesh, bool(debiased), bool(same))
  sharding = NamedSharding(mesh, P(mesh_lib.ROWS))

  def load(first_batch):
    """Global arrays [step_batches, b, d] for batches first_batch.., zero-padded at the end.

    Each process reads only the batches of its own devices (`make_array_from_callback` asks for
    the addressable shards), so on many hosts the rows are read once in all.
    """
    count = min(step_batches, num_batches - first_batch)

    def one(x, name):
      dtype = _host_dtype(x)

      def batches(index):
        lo, hi, _ = index[0].indices(step_batches)
        out = np.zeros((hi - lo, batch_size, x.shape[1]), dtype)
        real = max(0, min(hi, count) - lo)
        if real:
          start = (first_batch + lo) * batch_size
          sel = (slice(start, start + real * batch_size) if rows is None
                 else rows[start:start + real * batch_size])
          out[:real] = _take_rows(x, sel, name, dtype).reshape(real, batch_size, x.shape[1])
        return out

      return jax.make_array_from_callback((step_batches, batch_size, x.shape[1]), sharding,
                                          batches)

    xs_a = tuple(one(x, f"layers_a[{i}]") for i, x in enumerate(layers_a))
    xs_b = xs_a if same else tuple(one(x, f"layers_b[{j}]") for j, x in enumerate(layers_b))
    return count, xs_a, xs_b

  la, lb = len(layers_a), len(layers_b)
  cross = np.zeros((la, lb), np.float64)
  self_a, self_b = np.zeros(la, np.float64), np.zeros(lb, np.float64)
  progress = Progress("minibatch CKA", num_batches, unit="batches")
  pending = None
  for first in range(0, num_batches + step_batches, step_batches):
    # Dispatch the next step before reading back the previous one: the host loads batch k+1
    # while the device computes batch k.
    launched = None
    if first < num_batches:
      count, xs_a, xs_b = load(first)
      launched = (count, step(xs_a, xs_b))
    if pending is not None:
      count, (c, sa, sb) = pending
      c, sa, sb = (mesh_lib.to_host(v).astype(np.float64)[:count] for v in (c, sa, sb))
      for k in range(count):  # fixed batch order: same bits for any device count
        cross += c[k]
        self_a += sa[k]
        self_b += sb[k]
      progress.update(count)
    pending = launched
    if first >= num_batches:
      break
  return cross, self_a, self_b


def _minibatch_matrix(layers_a, layers_b, *, batch_size, debiased, same, rows, devices,
                      batches_per_device):
  cross, self_a, self_b = _minibatch_hsic_sums(
      layers_a, layers_b, batch_size=batch_size, debiased=debiased, same=same, rows=rows,
      devices=devices, batches_per_device=batches_per_device)
  den = np.sqrt(np.maximum(self_a, 0.0)[:, None] * np.maximum(self_b, 0.0)[None, :])
  # A layer constant on every batch has zero self-HSIC: CKA defined as 0 there.
  return np.where(den > 0, cross / np.where(den > 0, den, 1.0), 0.0)


def cka_matrix(layers_a: Sequence[Any], layers_b: Sequence[Any], *, hsic: str | None = None,
               batch_size: int | None = None, kernel: str = "linear",
               rbf_threshold: float = 1.0, n_samples: int | None = None, repeats: int = 1,
               seed: int | None = None, devices: Sequence[jax.Device] | None = None,
               batches_per_device: int = 1, debiased: bool | None = None) -> np.ndarray:
  """CKA between every layer of `layers_a` and every layer of `layers_b`.

  Args:
    layers_a: sequence of La arrays `[n, d_i]` (numpy, jax, or any array-like with `.shape`,
      `.dtype` and row indexing, e.g. np.memmap, read a batch at a time in the minibatch path).
    layers_b: sequence of Lb arrays `[n, d_j]` (pass the same list object to get a symmetric
      matrix and share the work).
    hsic: "song", the unbiased HSIC_1 (Song et al. 2012), or "gretton", the biased HSIC.
      Default "song", unlike `cka`'s "gretton": the all-layer heatmaps of Raghu et al. 2021
      and minibatch CKA (Nguyen et al. 2020) use the unbiased estimator, whose sum over batches does not depend on
      the batch size, where the biased one drifts with it. Both defaults are contracts
      (docs/design.md, "Contracts").
    batch_size: None for exact CKA on all n rows; an int for minibatch CKA (Nguyen et al. 2020):
      CKA = sum_t HSIC(K_t, L_t) / sqrt(sum_t HSIC(K_t, K_t) sum_t HSIC(L_t, L_t)) over
      consecutive batches t in row order, last partial batch dropped (linear kernel only).
      Per-batch terms are float32 on device (precision "highest"); the sums over batches are
      float64 on the host, in batch order, so the result does not depend on the device count.
    kernel, rbf_threshold: as in `cka` (exact path only).
    n_samples, repeats, seed: the protocol of Raghu et al. 2021 (`RAGHU_PROTOCOL`): per repeat,
      draw `n_samples` rows without replacement (numpy Generator seeded with `seed`, one
      permutation per repeat), run minibatch CKA on them in drawn order, average the `repeats`
      CKA matrices. `seed` is required when n_samples or repeats > 1 is given.
    devices: devices for the 1-D "rows" mesh (default: every device of every process). Whole
      batches are placed on each device; each process reads the rows of its own devices' batches.
    batches_per_device: batches each device processes per step (memory: each batch needs
      (La + Lb) b^2 floats for the centered Grams).

  Returns:
    np.ndarray [La, Lb] float64. Entries for constant layers are 0 (never NaN); constant or
    near-constant layers warn once per call (`validation.warn_degenerate_pairs`).

  Memory: the exact path holds the centered features (n > d) or the [L, n^2] centered Grams
  (n <= d); the minibatch path holds one step of batches, independent of n.

    debiased: deprecated form of `hsic` (True: "song").

  References: Kornblith et al. 2019; Nguyen et al. 2020; Raghu et al. 2021.
  """
  debiased = resolve_hsic(hsic, debiased, old_name="debiased", default="song",
                          where="cka_matrix")
  _check_options(kernel, debiased, rbf_threshold)
  same = layers_b is layers_a
  layers_a = as_layer_list(layers_a, "layers_a")
  layers_b = layers_a if same else as_layer_list(layers_b, "layers_b")
  shapes = [tuple(x.shape) for x in layers_a + ([] if same else layers_b)]
  names = ([f"layers_a[{i}]" for i in range(len(layers_a))]
           + ([] if same else [f"layers_b[{j}]" for j in range(len(layers_b))]))
  min_n = 4 if debiased else 2
  n = check_rows(shapes, names, min_n=min_n, why="debiased CKA" if debiased else "CKA")
  # Once per call over the distinct layers (their CKA is 0 by convention, module docstring).
  validation.warn_degenerate_pairs(layers_a, None if same else layers_b, measure="cka")
  protocol = n_samples is not None or repeats != 1
  if batch_size is None:
    if protocol:
      raise ValueError("n_samples/repeats need batch_size (minibatch CKA)")
    return _exact_matrix(layers_a, layers_b, kernel=kernel, debiased=debiased,
                         rbf_threshold=rbf_threshold, same=same)
  if kernel != "linear":
    raise ValueError(f"kernel: minibatch CKA supports only 'linear', got {kernel!r}")
  batch_size = int(batch_size)
  if batch_size < min_n:
    raise ValueError(f"batch_size: expected >= {min_n} for "
                     f"{'debiased' if debiased else 'biased'} HSIC, got {batch_size}")
  if repeats < 1:
    raise ValueError(f"repeats: expected >= 1, got {repeats}")
  devices = list(jax.devices() if devices is None else devices)
  opts = dict(batch_size=batch_size, debiased=debiased, same=same, devices=devices,
              batches_per_device=int(batches_per_device))
  if not protocol:
    return _minibatch_matrix(layers_a, layers_b, rows=None, **opts)
  if seed is None:
    raise ValueError("seed: required with n_samples/repeats (results must be reproducible)")
  n_samples = n if n_samples is None else int(n_samples)
  if not batch_size <= n_samples <= n:
    raise ValueError(f"n_samples: expected batch_size={batch_size} <= n_samples <= n={n}, "
                     f"got {n_samples}")
  rng = np.random.default_rng(seed)
  total = np.zeros((len(layers_a), len(layers_b)), np.float64)
  for _ in range(repeats):
    rows = rng.permutation(n)[:n_samples]
    total += _minibatch_matrix(layers_a, layers_b, rows=rows, **opts)
  return total / repeats


# ---------------------------------------------------------------------------------------------
# Permutation null (image correspondence shuffled), for `calibration.permutation_test`.

@jax.jit
def _null_features(x):
  """Centred features, row norms and their sum, and the constant flag (feature form)."""
  xc = center_features(x)
  rows = jnp.sum(xc * xc, axis=1)
  return xc, rows, jnp.sum(rows), _is_constant(xc)


@functools.partial(jax.jit, static_argnames=("debiased",))
def _permuted_hsic(fa, fb, perms, *, debiased):
  """<K~, P L~ P^T> (or the biased form) for each permutation row of perms [p, n]: [p].

  Feature form (fa, fb from `_null_features`): ||X^T P Y||^2, debiased through the row norms.
  Gram form (flat centred Grams from `_centered_gram_flat`): sum of K~ * (P L~ P^T).
  """
  if len(fa) == 2:
    n = perms.shape[1]
    ga, gb = fa[0].reshape(n, n), fb[0].reshape(n, n)
    return jax.lax.map(lambda perm: jnp.sum(ga * gb[perm][:, perm]), perms)
  (xa, ra, sa, _), (xb, rb, sb, _) = fa, fb

  def one(perm):
    xty = jnp.sum(jnp.matmul(xa.T, xb[perm], precision=_HI) ** 2)
    return _debias(xty, ra, rb[perm], sa, sb, xa.shape[0]) if debiased else xty

  return jax.lax.map(one, perms)


def cka_permutation_null(layers_a: Sequence[Any], layers_b: Sequence[Any], perms, *,
                         hsic: str | None = None, debiased: bool | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
  """Linear CKA(layers_a[i], layers_b[j][perm]) for each permutation, and the observed matrix.

  Permuting the rows of one side leaves both self terms unchanged; only the cross term is
  recomputed, in the form `cka_matrix` uses: ||X^T P Y||^2 (and, debiased, Y's row norms permuted)
  when n > every d, else <K~, P L~ P^T> on the centred Grams. One permutation costs the cross
  terms of one plain `cka_matrix`.

  Args:
    layers_a, layers_b: sequences of [n, d_l] arrays.
    perms: [P, n] permutations of range(n); permutation p pairs row i of A with row perms[p, i]
      of B.
    hsic: "song" (default), HSIC_1 (Song et al. 2012) as `cka_matrix`, or "gretton", the
      biased HSIC; debiased: its deprecated form.

  Returns:
    (observed float64 [La, Lb] (the identity, through the same code), null float64 [P, La, Lb]).
  """
  debiased = resolve_hsic(hsic, debiased, old_name="debiased", default="song",
                          where="cka_permutation_null")
  la, lb, same = layer_lists(layers_a, layers_b, min_n=4 if debiased else 2,
                             why="debiased CKA" if debiased else "CKA")
  n = la[0].shape[0]
  perms = np.asarray(perms)
  if (perms.ndim != 2 or perms.shape[1] != n
      or not np.all(np.sort(perms, axis=1) == np.arange(n))):
    raise ValueError(f"perms: expected permutations of range({n}) as rows [P, {n}], got "
                     f"{perms.dtype} {perms.shape}")
  if n > max(x.shape[1] for x in la + lb):
    prep = _null_features
  else:
    def prep(x):
      return _centered_gram_flat(x, kernel="linear", debiased=debiased, rbf_threshold=1.0)
  fa = [prep(x) for x in la]
  fb = fa if same else [prep(x) for x in lb]
  identity = np.arange(n)[None]
  self_a = [_permuted_hsic(f, f, identity, debiased=debiased)[0] for f in fa]
  self_b = self_a if same else [_permuted_hsic(f, f, identity, debiased=debiased)[0] for f in fb]
  all_perms = jnp.asarray(np.concatenate([np.arange(n)[None], perms]), jnp.int32)
  out = np.zeros((len(all_perms), len(la), len(lb)))
  for i, f in enumerate(fa):
    for j, g in enumerate(fb):
      cross = _permuted_hsic(f, g, all_perms, debiased=debiased)
      out[:, i, j] = np.asarray(_ratio(cross, self_a[i], self_b[j],
                                       jnp.logical_or(f[-1], g[-1])), np.float64)
  return out[0], out[1:]
