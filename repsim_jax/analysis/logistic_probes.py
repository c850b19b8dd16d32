"""Logistic linear probes per layer: per-class binary probes and their roughness (Mahaut & Baroni
2026, Sec. 3.2.3 and Fig. 5) and multi-class out-of-domain probes (ibid., App. C, Fig. 13).

Functions over arrays (features per layer, integer labels); reading images, running models and
writing results happen elsewhere. The closed-form few-shot probes of Raghu et al. 2021 are in
`repsim_jax.analysis.ridge_probes`.

One objective, one solver. Every probe is scikit-learn's L2 logistic regression:

- features are standardised with the mean and (population) standard deviation of the probe's
  *train* split; a feature that is constant on the train split is mapped to 0 (as scikit-learn's
  StandardScaler does);
- objective: mean cross-entropy over the train split + (l2 / 2) * ||W||^2, intercept not
  penalised: `LogisticRegression(C=1 / (l2 * n_train))` (sigmoid loss for a binary probe,
  softmax for K classes);
- solver (`_lbfgs_logistic`): L-BFGS from W = 0, b = 0 with an exact line search, a fixed number
  of steps (every vmapped probe in lock step). The logits are linear in the step size, so the
  line search needs no further matrix product: it evaluates the derivative of the convex
  objective along the direction at `line_search_steps` and takes the secant root in the first
  interval where it changes sign (`_secant_step`).

The solver runs on the features (multi-class probes: n >> d, thousands of images) or, for the
binary probes (M ~ 100 rows, d = 192-1536 features), in kernel form on the Gram matrix of the
probe's standardised rows (`_kernel_logistic`): the optimum lies in the train rows' span
(representer theorem), and L-BFGS in the metric of the primal weights takes the same steps as on
the features at [T, T] instead of [T, d] cost per step.

Every setting (l2, iterations, memory_size, line_search_steps) is a keyword argument of the
public functions; its default is in the signature and documented in the docstring (the binary
and the multi-class probes differ in l2, steps and memory, and say why). Convergence of the
defaults against scikit-learn at tol 1e-10 and the solver comparison: benchmarks/bench_probes.py.

All probes of one analysis run in one jit-compiled program: the (layer, class) probe grid is
vmapped, in chunks of `probe_batch_size` probes via `jax.lax.map`, so that 1000 classes x 40
layers never materialise all gathered probe matrices at once.

References:
  Mahaut, M. & Baroni, M. (2026). Similarity of Processing Steps in Vision Model Representations.
  Nocedal, J. & Wright, S. (2006). Numerical Optimization, 2nd ed., Algorithm 7.4 (L-BFGS).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.metrics import validation

ArrayLike = np.ndarray | jax.Array

# The step sizes (relative to the L-BFGS direction) at which the line search evaluates the
# derivative of the objective: the default `line_search_steps` of every probe.
LINE_SEARCH_STEPS = (0.125, 0.25, 0.5, 1.0, 2.0)
_PRECISION = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------------------------
# The one solver.


def _standardise(x: jax.Array, train: jax.Array) -> jax.Array:
  """x: [n, d]; train: [n] float 0/1. Whitens each feature with the train split's mean / std."""
  n_train = jnp.maximum(jnp.sum(train), 1.0)
  mean = jnp.sum(x * train[:, None], axis=0) / n_train
  var = jnp.sum(jnp.square(x - mean) * train[:, None], axis=0) / n_train
  # Constant (or zero-padded) features: scale 1, so they become exactly 0 and get no gradient.
  scale = jnp.where(var > 0, jnp.sqrt(var), 1.0)
  return (x - mean) / scale


def _secant_step(steps: jax.Array, dphi: jax.Array, slope: jax.Array) -> jax.Array:
  """Line-search step from the derivative of a convex phi at increasing `steps` [S].

  dphi [S] = phi'(steps), slope = phi'(0). The minimiser lies in the first interval where
  phi' changes sign (0 to steps[0] included); the step is the secant root of phi' there. If
  phi' < 0 at every step the largest is taken; if slope >= 0 (no descent) the step is 0.
  """
  knots = jnp.concatenate([jnp.zeros((1,), steps.dtype), steps])
  values = jnp.concatenate([slope[None], dphi])
  hi = jnp.argmax(values[1:] >= 0) + 1  # first knot with phi' >= 0 (1 if none: masked below)
  t_lo, t_hi, d_lo, d_hi = knots[hi - 1], knots[hi], values[hi - 1], values[hi]
  secant = t_lo - d_lo * (t_hi - t_lo) / jnp.maximum(d_hi - d_lo, 1e-30)
  t = jnp.where(jnp.any(dphi >= 0), secant, steps[-1])
  return jnp.where(slope < 0, t, 0.0)


def _lbfgs_logistic(targets: jax.Array, train: jax.Array, *, size: int, num_outputs: int,
                    logits: Callable[[jax.Array, jax.Array], jax.Array],
                    data_gradient: Callable[[jax.Array], jax.Array],
                    metric: Callable[[jax.Array], jax.Array] | None, l2: float, iterations: int,
                    memory_size: int, line_search_steps: Sequence[float]
                    ) -> tuple[jax.Array, jax.Array]:
  """L2 logistic regression by L-BFGS with an exact line search; returns (v, objective).

  The parameters v [P, K] (P = `size`, K = `num_outputs`) hold the weights in rows :P-1 and the
  intercept in row P-1. The model is given by three linear maps:
    logits(v, Mv) -> f [n, K], the logits of the n rows (targets, train: [n]);
    data_gradient(r) -> [P, K], M^-1 times the gradient of sum_i r_i . f_i (r: [n, K]);
    metric(v) -> M v, the metric L-BFGS runs in (None: the identity).
  Objective: J(v) = sum_i train_i loss(f_i, y_i) / n_train + (l2 / 2) (v . Mv - b . b), loss the
  sigmoid (K = 1, targets in {0, 1}) or softmax (K > 1, targets in [0, K)) cross-entropy, b the
  intercept row. On features x [n, d]: f = x w + b, M = I. In kernel form (`_kernel_logistic`):
  v = (a, b), f = K a + b, M = diag(K, 1), so that v . Mv - b . b = ||w||^2 for w = X^T a and
  the iterates are those of L-BFGS on w.

  Per step: the two-loop recursion (inner products in the metric, against stored M-images
  M s, M y), the direction's logit change (one `logits`), the line search on the convex
  phi(t) = J(v + t d), whose derivative needs only the logits f + t df, and the new gradient (one
  `data_gradient`, and one `metric` in kernel form). A pair with non-positive curvature is not
  stored.
  """
  dtype = train.dtype
  n_train = jnp.maximum(jnp.sum(train), 1.0)
  weight = (train / n_train)[:, None]
  if num_outputs == 1:
    y = targets.astype(dtype)[:, None]
    probabilities = jax.nn.sigmoid
    loss = lambda f: jax.nn.softplus(f) - y * f
  else:
    y = jax.nn.one_hot(targets, num_outputs, dtype=dtype)
    probabilities = lambda f: jax.nn.softmax(f, axis=-1)
    loss = lambda f: (jax.nn.logsumexp(f, axis=-1, keepdims=True)
                      - jnp.sum(y * f, axis=-1, keepdims=True))
  apply_metric = metric or (lambda v: v)
  steps = jnp.asarray(line_search_steps, dtype)
  is_weight = (jnp.arange(size) < size - 1).astype(dtype)[:, None]
  dot = lambda a, b: jnp.sum(a * b)
  penalty_form = lambda a, ma, b: dot(a, ma) - dot(a[-1], b[-1])  # a . Mb without intercepts

  def gradient(v, f):  # in the metric M
    return data_gradient((probabilities(f) - y) * weight) + l2 * is_weight * v

  def step(carry, k):
    v, mv, f, g, mg, s_hist, ms_hist, y_hist, my_hist, rho, gamma = carry
    # Two-loop recursion, newest pair first; the history is a ring buffer (slot k % memory).
    slots = [(k - 1 - i) % memory_size for i in range(memory_size)]
    q, alphas = g, []
    for slot in slots:
      alphas.append(rho[slot] * dot(ms_hist[slot], q))
      q = q - alphas[-1] * y_hist[slot]
    r = gamma * q
    for slot, alpha in zip(reversed(slots), reversed(alphas)):
      r = r + (alpha - rho[slot] * dot(my_hist[slot], r)) * s_hist[slot]
    d = -r
    md = apply_metric(d)
    df = logits(d, md)
    slope = dot(d, mg)
    # phi'(t) = sum_i weight_i (p(f_i + t df_i) - y_i) . df_i + l2 (v.Md + t d.Md) (no intercepts)
    q1, q2 = penalty_form(v, md, d), penalty_form(d, md, d)
    dphi = jnp.stack([dot(weight * (probabilities(f + t * df) - y), df) for t in steps])
    t = _secant_step(steps, dphi + l2 * (q1 + steps * q2), slope)
    s, ms = t * d, t * md
    v, mv, f = v + s, mv + ms, f + t * df
    g_new = gradient(v, f)
    mg_new = apply_metric(g_new)
    y_pair, my_pair = g_new - g, mg_new - mg
    curvature = dot(ms, y_pair)  # <s, y> in the metric
    good = curvature > 1e-12 * jnp.maximum(dot(ms, s), 1e-30)
    slot = k % memory_size
    keep = lambda hist, new: hist.at[slot].set(jnp.where(good, new, 0.0))
    s_hist, ms_hist = keep(s_hist, s), keep(ms_hist, ms)
    y_hist, my_hist = keep(y_hist, y_pair), keep(my_hist, my_pair)
    rho = rho.at[slot].set(jnp.where(good, 1.0 / jnp.where(good, curvature, 1.0), 0.0))
    gamma = jnp.where(good, curvature / jnp.maximum(dot(my_pair, y_pair), 1e-30), gamma)
    return (v, mv, f, g_new, mg_new, s_hist, ms_hist, y_hist, my_hist, rho, gamma), None

  v0 = jnp.zeros((size, num_outputs), dtype)
  # f0 = 0, computed from `weight` so that XLA does not constant-fold the first softmax ([n, K])
  f0 = jnp.broadcast_to(0.0 * weight, (targets.shape[0], num_outputs))
  g0 = gradient(v0, f0)
  mg0 = apply_metric(g0)
  hist = jnp.zeros((memory_size, size, num_outputs), dtype)
  gamma0 = jax.lax.rsqrt(jnp.maximum(dot(g0, mg0), 1e-30))  # first step: unit metric norm
  carry = (v0, v0, f0, g0, mg0, hist, hist, hist, hist, jnp.zeros((memory_size,), dtype), gamma0)
  carry, _ = jax.lax.scan(step, carry, jnp.arange(iterations))
  v, mv, f = carry[:3]
  objective = jnp.sum(weight * loss(f)) + 0.5 * l2 * penalty_form(v, mv, v)
  return v, objective


def _primal_logistic(x: jax.Array, targets: jax.Array, train: jax.Array, *, num_outputs: int,
                     l2: float, iterations: int, memory_size: int,
                     line_search_steps: Sequence[float]) -> tuple[jax.Array, jax.Array]:
  """A logistic probe on the features x [n, d] (standardised); returns (logits [n, K], objective).

  targets: [n] int; train: [n] float 0/1 (other rows only receive logits). num_outputs: 1 for a
  binary (sigmoid) probe, K for a K-way softmax probe.
  """
  d = x.shape[-1]
  logits = lambda v, _: jnp.matmul(x, v[:d], precision=_PRECISION) + v[d]
  data_gradient = lambda r: jnp.concatenate(
      [jnp.matmul(x.T, r, precision=_PRECISION), jnp.sum(r, 0, keepdims=True)])
  v, objective = _lbfgs_logistic(targets, train, size=d + 1, num_outputs=num_outputs,
                                 logits=logits, data_gradient=data_gradient, metric=None, l2=l2,
                                 iterations=iterations, memory_size=memory_size,
                                 line_search_steps=line_search_steps)
  return logits(v, v), objective


def _is_stacked(layers) -> bool:
  return isinstance(layers, (np.ndarray, jax.Array)) and np.ndim(layers) == 3


def _check_layer(a, n: int, name: str):
  if np.ndim(a) != 2 or np.shape(a)[0] != n:
    raise ValueError(f"{name} must have shape [n={n}, d]; got {np.shape(a)}")
  return a


def _check_layers(layers, n: int, name: str = "layers"):
  if _is_stacked(layers):
    if np.shape(layers)[1] != n:
      raise ValueError(f"{name} must have shape [L, n={n}, d]; got {np.shape(layers)}")
    return layers  # one [L, n, d] array: kept as is (no per-layer copies)
  out = [_check_layer(a, n, f"{name}[{i}]") for i, a in enumerate(layers)]
  if not out:
    raise ValueError(f"{name} is empty; expected a sequence of [n, d] arrays")
  return out


# --------------------------------------------------------------------------------------------
# Per-class balanced binary probes (Mahaut & Baroni 2026, Sec. 3.2.3).


@dataclasses.dataclass(frozen=True)
class BinaryProbeSplits:
  """Rows of every per-class probe, padded to a common length M = 2 * max class count.

  index: [C, M] int, rows into the feature arrays, ordered train rows, test rows, padding
    (padding rows point at 0);
  target: [C, M] int, 1 for the class's images (positives), 0 for sampled negatives;
  train, test: [C, M] bool masks (padding rows are in neither).
  """
  index: np.ndarray
  target: np.ndarray
  train: np.ndarray
  test: np.ndarray
  classes: np.ndarray  # [C] the label value of each probe


def balanced_binary_splits(labels: ArrayLike, *, seed: int = 0,
                           test_fraction: float = 0.1) -> BinaryProbeSplits:
  """Positives, seeded negatives and a seeded stratified train/test split for every class.

  For class c with n_c images: positives are all its images, negatives n_c images drawn without
  replacement from the other classes; the test split holds round(test_fraction * n_c) (at least
  1) positives and as many negatives, the rest is the train split (balanced test => chance 50%).
  With ImageNet's 50 validation images per class: 90 train and 10 test images per probe.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels must have shape [n]; got {labels.shape}")
  if not 0 < test_fraction < 1:
    raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
  classes, counts = np.unique(labels, return_counts=True)
  if len(classes) < 2:
    raise ValueError("labels must hold at least 2 classes for binary probes")
  if np.any(counts < 2):
    raise ValueError(f"every class needs >= 2 images; class {classes[np.argmin(counts)]} has "
                     f"{counts.min()}")
  n = len(labels)
  if np.any(counts > n - counts):
    raise ValueError("a class has more images than all other classes together; cannot balance")
  rng = np.random.default_rng(seed)
  m = 2 * int(counts.max())
  shape = (len(classes), m)
  index = np.zeros(shape, np.int32)
  target = np.zeros(shape, np.int32)
  train = np.zeros(shape, bool)
  test = np.zeros(shape, bool)
  order = np.argsort(labels, kind="stable")
  starts = np.concatenate([[0], np.cumsum(counts)])
  for c in range(len(classes)):
    n_c = int(counts[c])
    pos = order[starts[c]:starts[c + 1]]
    # Negatives: draw among the n - n_c other images (rank r -> r-th image outside class c).
    r = rng.choice(n - n_c, size=n_c, replace=False)
    others = np.concatenate([order[:starts[c]], order[starts[c + 1]:]])
    neg = others[r]
    n_test = max(1, int(round(test_fraction * n_c)))
    pos, neg = rng.permutation(pos), rng.permutation(neg)
    # Row order: train rows, then test rows, then padding (`_binary_probe` relies on it).
    idx = np.concatenate([pos[n_test:], neg[n_test:], pos[:n_test], neg[:n_test]])
    y = np.concatenate([np.ones(n_c - n_test), np.zeros(n_c - n_test), np.ones(n_test),
                        np.zeros(n_test)])
    n_train = 2 * (n_c - n_test)
    index[c, :2 * n_c] = idx
    target[c, :2 * n_c] = y
    train[c, :n_train] = True
    test[c, n_train:2 * n_c] = True
  return BinaryProbeSplits(index, target, train, test, classes)



def _standardised_gram(x: jax.Array, train: jax.Array, *, num_train: int) -> jax.Array:
  """Inner products of a probe's standardised rows with its first `num_train` rows.

  x: [M, d] raw rows ordered train, test, padding; train: [M] float 0/1 with every train row
  among the first `num_train` (T) rows. Returns K [M, T], K_ij = <s(x_i), s(x_j)> with
  s(x) = (x - mean) / std, mean and population std over the train rows (as `_standardise`). A
  feature constant on the train split gets weight 0 here (StandardScaler gives it scale 1): its
  train values standardise to 0 either way, so its probe weight is 0 and test logits are equal.

  Cost: the products dominate the probe (2 M T d flops). The train block is symmetric, so with
  the rows split at h = T // 2 into A = rows[:h] and R = rows[h:], K = [[A A^T, (R A^T)^T],
  [R A^T, R R[:T-h]^T]] computes the upper-right block by transposition: M T - h (T - h) fewer
  row pairs (~30% fewer flops at M = 100, T = 90).
  """
  n_train = jnp.maximum(jnp.sum(train), 1.0)
  mean = jnp.matmul(train, x, precision=_PRECISION) / n_train
  centred = x - mean
  var = jnp.matmul(train, jnp.square(centred), precision=_PRECISION) / n_train
  xs = centred * jnp.where(var > 0, jax.lax.rsqrt(jnp.where(var > 0, var, 1.0)), 0.0)
  h = num_train // 2
  a, rest = xs[:h], xs[h:]
  aa = jnp.matmul(a, a.T, precision=_PRECISION)
  ra = jnp.matmul(rest, a.T, precision=_PRECISION)
  rr = jnp.matmul(rest, rest[:num_train - h].T, precision=_PRECISION)
  return jnp.concatenate([jnp.concatenate([aa, ra[:num_train - h].T], 1),
                          jnp.concatenate([ra, rr], 1)], 0)


def _kernel_logistic(gram: jax.Array, target: jax.Array, train: jax.Array, *, l2: float,
                     iterations: int, memory_size: int,
                     line_search_steps: Sequence[float] = LINE_SEARCH_STEPS
                     ) -> tuple[jax.Array, jax.Array]:
  """A binary L2 logistic probe trained in kernel form; returns (logits [M], objective).

  gram: [M, T] inner products of the probe's standardised rows with its first T rows, which
  hold every train row (`_standardised_gram`); target: [M] in {0, 1}; train: [M] float 0/1
  (other rows only receive logits, f = K a + b, computed once at the end).

  The probe w = sum_i a_i x_i over the train rows (representer theorem: the optimum lies in
  their span, the penalty only grows outside it), so logits f = K a + b and the objective is
      J(a, b) = mean_train softplus(f) - y f + (l2 / 2) a^T K a,
  exactly the objective on the features at w = X^T a. `_lbfgs_logistic` runs on v = (a, b) in
  the metric diag(K, 1), i.e. the inner products of the primal w: its iterates are those of
  L-BFGS on the features from w = 0 whatever d is, at two [T, T] matrix-vector products per step
  (the direction's logit change and the new gradient's K-image). The gradient in that metric is
  (r + l2 a, sum r) for residuals r, so the rows outside the train split keep a_i = 0.
  """
  m = gram.shape[1]  # T: the solver only sees the first T rows
  metric_matrix = jnp.zeros((m + 1, m + 1), gram.dtype).at[:m, :m].set(gram[:m]).at[m, m].set(1.0)
  metric = lambda v: jnp.matmul(metric_matrix, v, precision=_PRECISION)
  v, objective = _lbfgs_logistic(
      target[:m], train[:m], size=m + 1, num_outputs=1, logits=lambda v, mv: mv[:m] + v[m],
      data_gradient=lambda r: jnp.concatenate([r, jnp.sum(r, 0, keepdims=True)]), metric=metric,
      l2=l2, iterations=iterations, memory_size=memory_size, line_search_steps=line_search_steps)
  return jnp.matmul(gram, v[:m, 0], precision=_PRECISION) + v[m, 0], objective


def _binary_probe_gram(features: jax.Array, layer: jax.Array, index: jax.Array,
                       train: jax.Array, *, num_train: int) -> jax.Array:
  """features [L, N, d], layer scalar, index/train [M] -> the probe's Gram K [M, T]."""
  x = features[layer, index]  # gathers [M, d] directly (never [N, d] per probe under vmap)
  return _standardised_gram(x, train.astype(features.dtype), num_train=num_train)


def _binary_probe_fit(gram: jax.Array, target: jax.Array, train: jax.Array, test: jax.Array, *,
                      iterations: int, l2: float, memory_size: int,
                      line_search_steps: Sequence[float] = LINE_SEARCH_STEPS) -> jax.Array:
  """Gram [M, T], target/train/test [M] -> the probe's test accuracy."""
  train_f, test_f = train.astype(gram.dtype), test.astype(gram.dtype)
  logits, _ = _kernel_logistic(gram, target, train_f, l2=l2, iterations=iterations,
                               memory_size=memory_size, line_search_steps=line_search_steps)
  correct = (logits > 0) == (target == 1)
  return jnp.sum(correct * test_f) / jnp.maximum(jnp.sum(test_f), 1.0)


def _binary_probe(features: jax.Array, layer: jax.Array, index: jax.Array, target: jax.Array,
                  train: jax.Array, test: jax.Array, *, num_train: int, iterations: int,
                  l2: float, memory_size: int,
                  line_search_steps: Sequence[float] = LINE_SEARCH_STEPS) -> jax.Array:
  """One probe: features [L, N, d], layer scalar, index/target/train/test [M] -> accuracy.

  Rows must be ordered train, test, padding (as `balanced_binary_splits` makes them), with
  every train row among the first `num_train` (static: the largest train split).
  """
  gram = _binary_probe_gram(features, layer, index, train, num_train=num_train)
  return _binary_probe_fit(gram, target, train, test, iterations=iterations, l2=l2,
                           memory_size=memory_size, line_search_steps=line_search_steps)


@functools.partial(jax.jit, static_argnames=("num_train", "iterations", "l2", "memory_size",
                                             "line_search_steps", "probe_batch_size"))
def _binary_probe_grid(features, index, target, train, test, *, num_train, iterations, l2,
                       memory_size, line_search_steps, probe_batch_size):
  """features [L, N, d] (one width); index etc. [C, M] -> accuracy [L, C], one program.

  Chunks of `probe_batch_size` probes (a `lax.map`), each vmapped: gathered rows, Gram matrices
  and solvers of the chunk's probes together.
  """
  num_layers, num_classes = features.shape[0], index.shape[0]
  num_probes = num_layers * num_classes
  batch, padded = _chunking(num_probes, probe_batch_size)
  probe_id = jnp.arange(padded) % num_probes  # padding repeats probe 0; its results are dropped
  layer, cls = probe_id // num_classes, probe_id % num_classes
  probe = jax.vmap(functools.partial(
      _binary_probe, features, num_train=num_train, iterations=iterations, l2=l2,
      memory_size=memory_size, line_search_steps=line_search_steps))
  acc = jax.lax.map(lambda lc: probe(lc[0], index[lc[1]], target[lc[1]], train[lc[1]],
                                     test[lc[1]]),
                    (layer.reshape(-1, batch), cls.reshape(-1, batch)))
  return acc.reshape(-1)[:num_probes].reshape(num_layers, num_classes)


def _chunking(n: int, batch_size: int) -> tuple[int, int]:
  """(chunk, padded length): n rounded up to a multiple of the chunk, so that `lax.map` has no
  remainder chunk (a remainder would be a second copy of the body and double compile time)."""
  batch = max(1, min(batch_size, n))
  return batch, -(-n // batch) * batch


def class_probe_accuracy(layers: Sequence[ArrayLike] | ArrayLike, labels: ArrayLike, *,
                         seed: int = 0, test_fraction: float = 0.1,
                         l2: float = 1e-2, iterations: int = 12, memory_size: int = 5,
                         line_search_steps: Sequence[float] = LINE_SEARCH_STEPS,
                         probe_batch_size: int = 32,
                         splits: BinaryProbeSplits | None = None) -> np.ndarray:
  """Test accuracy of a balanced binary linear probe for every class at every layer.

  Args:
    layers: L arrays [N, d_l] (widths may differ), or one array [L, N, d].
    labels: [N] integer class labels (C distinct values).
    seed: seeds the negatives and the train/test split (`balanced_binary_splits`).
    test_fraction: held-out fraction per class (paper: 10%).
    l2: penalty (l2 / 2) ||w||^2 on the mean train loss (scikit-learn C = 1 / (l2 * n_train)).
    iterations, memory_size: L-BFGS steps and history; 12 steps end within ~4e-7 of the optimal
      objective on 90-image probes (benchmarks/bench_probes.py).
    line_search_steps: where the line search evaluates the objective's derivative (relative to
      the L-BFGS direction).
    probe_batch_size: probes vmapped together inside the program (memory ~ batch * M * d for
      the gathered rows); a few thousand on a GPU.
    splits: precomputed splits (overrides seed / test_fraction).

  Returns:
    accuracy [L, C] in [0, 1], classes in `np.unique(labels)` order.

  Layers of different widths: the layers are grouped by width and each group is one stacked
  [L_g, N, d_g] array, vmapped over its (layer, class) probes; nothing is padded, so every probe
  sees exactly its layer's features (padding to the max width with zero columns would give the
  same result, since zero columns standardise to 0 and get no gradient, but costs memory and
  FLOPs for the narrow layers). One jit compilation per distinct width.
  """
  labels = np.asarray(labels)
  layers = _check_layers(layers, len(labels))
  if splits is None:
    splits = balanced_binary_splits(labels, seed=seed, test_fraction=test_fraction)
  rank = np.where(splits.train, 0, np.where(splits.test, 1, 2))
  if np.any(np.diff(rank, axis=1) < 0):
    raise ValueError("splits rows must be ordered train, test, padding per class "
                     "(as balanced_binary_splits makes them)")
  num_train = int(splits.train.sum(1).max())  # static: every train row is among the first
  groups: dict[int, list[int]] = {}
  for i in range(len(layers)):
    groups.setdefault(int(np.shape(layers)[-1] if _is_stacked(layers) else np.shape(layers[i])[1]),
                      []).append(i)
  acc = np.zeros((len(layers), len(splits.classes)), np.float32)
  args = [jnp.asarray(a) for a in (splits.index, splits.target, splits.train, splits.test)]
  for _, members in groups.items():
    if _is_stacked(layers):  # a single width: the array is the stack
      stacked = jnp.asarray(layers)
    else:
      stacked = jnp.stack([jnp.asarray(layers[i], jnp.float32) for i in members])
    acc[members] = np.asarray(_binary_probe_grid(
        stacked.astype(jnp.float32), *args, num_train=num_train, iterations=iterations, l2=l2,
        memory_size=memory_size, line_search_steps=tuple(float(t) for t in line_search_steps),
        probe_batch_size=probe_batch_size))
  return acc


def roughness(accuracy: ArrayLike, *, axis: int = 0) -> np.ndarray:
  """Roughness of accuracy-vs-layer curves: std of adjacent-layer differences.

  accuracy: [..., L, ...] with the layer axis at `axis` (e.g. [L, C] from
  `class_probe_accuracy`) -> [...] with that axis removed. Population std (ddof=0) of
  a[l+1] - a[l], l = 0..L-2 (Mahaut & Baroni 2026, Fig. 5 caption). Needs L >= 2.
  """
  accuracy = np.asarray(accuracy, np.float64)
  if accuracy.shape[axis] < 2:
    raise ValueError(f"accuracy needs >= 2 layers along axis {axis}; got {accuracy.shape}")
  return np.std(np.diff(accuracy, axis=axis), axis=axis)


def roughness_summary(accuracy: ArrayLike) -> dict[str, float]:
  """Per-model summary of per-class roughness; accuracy [L, C] -> mean/median/std/max."""
  r = roughness(accuracy, axis=0)
  return dict(mean=float(r.mean()), median=float(np.median(r)), std=float(r.std()),
              max=float(r.max()), num_classes=int(r.size))


# --------------------------------------------------------------------------------------------
# Multi-class out-of-domain probes (Mahaut & Baroni 2026, App. C).


def train_test_split_mask(n: int, *, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
  """Seeded random split of n rows: bool [n], True for train (round(test_fraction*n) test)."""
  if not 0 < test_fraction < 1:
    raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
  n_test = max(1, int(round(test_fraction * n)))
  train = np.ones(n, bool)
  train[np.random.default_rng(seed).permutation(n)[:n_test]] = False
  return train


def _multiclass_probe(x, targets, train, *, num_classes, iterations, l2, memory_size,
                      line_search_steps):
  train_f = train.astype(x.dtype)
  x = _standardise(x, train_f)
  logits, _ = _primal_logistic(x, targets, train_f, num_outputs=num_classes, l2=l2,
                               iterations=iterations, memory_size=memory_size,
                               line_search_steps=line_search_steps)
  test = 1.0 - train_f
  return jnp.sum((jnp.argmax(logits, -1) == targets) * test) / jnp.maximum(jnp.sum(test), 1.0)


@functools.partial(jax.jit, static_argnames=("num_classes", "iterations", "l2", "memory_size",
                                             "line_search_steps", "layer_batch_size"))
def _multiclass_probe_layers(features, targets, train, *, num_classes, iterations, l2,
                             memory_size, line_search_steps, layer_batch_size):
  probe = functools.partial(_multiclass_probe, targets=targets, train=train,
                            num_classes=num_classes, iterations=iterations, l2=l2,
                            memory_size=memory_size, line_search_steps=line_search_steps)
  num_layers = features.shape[0]
  batch, padded = _chunking(num_layers, layer_batch_size)
  layer = jnp.arange(padded) % num_layers
  return jax.lax.map(lambda l: probe(features[l]), layer, batch_size=batch)[:num_layers]


# Working memory of one multi-class probe, in float32 elements per feature entry (n x d): the
# standardised copy and the solver's [n, K] logits and residuals (a few x K / d).
_MULTICLASS_ELEMENTS_PER_ENTRY = 4


def multiclass_probe_accuracy(layers: Sequence[ArrayLike] | ArrayLike, labels: ArrayLike, *,
                              seed: int = 0, test_fraction: float = 0.2,
                              l2: float = 1e-3, iterations: int = 30, memory_size: int = 10,
                              line_search_steps: Sequence[float] = LINE_SEARCH_STEPS,
                              layer_batch_size: int = 64,
                              memory_budget_bytes: int = 1 << 30,
                              train_mask: ArrayLike | None = None) -> np.ndarray:
  """Test accuracy of a K-way softmax linear probe at every layer (out-of-domain datasets).

  Args:
    layers: L arrays [n, d_l] (e.g. CIFAR-100 / Food-101 / STL-10 test images), or [L, n, d],
      or a lazy sequence that reads a layer when indexed (e.g. `StoreLayers`; its `widths`
      attribute, when present, spares reading a layer to learn its width).
    labels: [n] integer labels in [0, K).
    seed, test_fraction: seeded random train/test split (`train_test_split_mask`), used
      unless `train_mask` ([n] bool, True = train) is given.
    l2: penalty (l2 / 2) ||W||^2 on the mean train cross-entropy (scikit-learn
      C = 1 / (l2 * n_train)); weaker than the binary probes' 1e-2 because there are ~100x more
      training images.
    iterations, memory_size, line_search_steps: the solver's (module docstring), shared by all
      layers.
    layer_batch_size: at most this many layers vmapped together.
    memory_budget_bytes: bounds the layers fitted at once: each takes about
      4 * n * d_l float32 of working memory, so at n = 1e4 and d = 1536 a 1 GiB budget fits 4.

  Returns:
    accuracy [L] in [0, 1].

  Consecutive layers of the same width are fitted together, a group of at most
  min(layer_batch_size, budget / (4 n d)) layers per call (the last group of a width repeats its
  last layer to keep one compiled program per width), so only that group's layers are read and
  held at a time, and no layer is padded to another's width.
  """
  labels = np.asarray(labels)
  n = len(labels)
  num_classes = int(labels.max()) + 1
  if labels.min() < 0:
    raise ValueError("labels must be integers in [0, K)")
  if train_mask is None:
    train_mask = train_test_split_mask(n, test_fraction=test_fraction, seed=seed)
  train_mask = np.asarray(train_mask, bool)
  if train_mask.shape != labels.shape or train_mask.all() or not train_mask.any():
    raise ValueError("train_mask must be a [n] bool array with both train and test rows")
  lazy = validation.is_lazy(layers)
  if not lazy:  # arrays in memory: every shape checked before any fit
    layers = _check_layers(layers, n)
  elif len(layers) == 0:
    raise ValueError("layers is empty; expected a sequence of [n, d] arrays")
  if _is_stacked(layers):
    widths = [int(np.shape(layers)[2])] * int(np.shape(layers)[0])
  else:
    widths = getattr(layers, "widths", None)
    widths = [int(w) for w in (widths if widths is not None else
                               (np.shape(layers[i])[1] for i in range(len(layers))))]

  def read(i: int) -> jax.Array:
    a = _check_layer(layers[i], n, f"layers[{i}]") if lazy else layers[i]  # lazy: checked on read
    return jnp.asarray(a, jnp.float32)

  targets, train = jnp.asarray(labels, jnp.int32), jnp.asarray(train_mask)
  accuracy = np.empty(len(widths))
  for width, run in itertools.groupby(range(len(widths)), key=widths.__getitem__):
    run = list(run)  # consecutive layers with one width
    per_call = max(1, min(layer_batch_size, len(run),
                          memory_budget_bytes // (4 * _MULTICLASS_ELEMENTS_PER_ENTRY * n
                                                  * max(width, 1))))
    for first in range(0, len(run), per_call):
      group = run[first:first + per_call]
      padded = group + [group[-1]] * (per_call - len(group))
      stacked = jnp.stack([read(i) for i in padded])
      accuracy[group] = np.asarray(_multiclass_probe_layers(
          stacked, targets, train, num_classes=num_classes, iterations=iterations, l2=l2,
          memory_size=memory_size, line_search_steps=tuple(float(t) for t in line_search_steps),
          layer_batch_size=per_call))[:len(group)]
      del stacked
  return accuracy
