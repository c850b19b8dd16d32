"""Closed-form few-shot linear probes per layer and token (Raghu et al. 2021, App. A; Figs. 11,
13, D.4, F.1-F.3): ridge regression onto one-vs-all targets, the token aggregations of Fig. 11 and
the patching step that turns a ResNet block's feature map into tokens.

Functions over arrays (tokens or features per layer, integer labels); reading images and running
models happen elsewhere.

References:
  Raghu, M. et al. (2021). Do Vision Transformers See Like Convolutional Neural Networks? NeurIPS.
  Dosovitskiy, A. et al. (2021). An Image is Worth 16x16 Words. ICLR (closed-form few-shot probe).
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

ArrayLike = np.ndarray | jax.Array

# Closed-form few-shot probe (Dosovitskiy et al. 2021 / big_vision convention).
FEW_SHOT_HPARAMS = dict(
    l2_reg=1.0,           # ridge penalty on the sum of squared errors.
    std_eps=1e-5,         # added to the train std before whitening.
    bias_constant=100.0,  # constant feature appended for the bias (large => nearly unpenalised).
)
_PRECISION = jax.lax.Precision.HIGHEST


def ridge_probe_weights(x_train: ArrayLike, y_train: ArrayLike, *, num_classes: int,
                        l2_reg: float = FEW_SHOT_HPARAMS["l2_reg"],
                        std_eps: float = FEW_SHOT_HPARAMS["std_eps"],
                        bias_constant: float = FEW_SHOT_HPARAMS["bias_constant"]):
  """Regularised least squares onto {-1, 1} one-vs-all targets, in closed form.

  x_train: [n, d]; y_train: [n] int in [0, K). Features are whitened with the train mean and
  std (+ std_eps), a constant column `bias_constant` is appended (a large constant makes the
  bias nearly unpenalised), and
      W = argmin ||X W - Y||^2 + l2_reg ||W||^2,   Y = 2 * onehot(y) - 1,
  solved as (X^T X + l2_reg I)^{-1} X^T Y when n > d + 1, else as X^T (X X^T + l2_reg I)^{-1} Y
  (the same W, cheaper for few shots). Returns (W [d + 1, K], mean [d], std [d]).
  """
  x = jnp.asarray(x_train)
  x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
  mean = jnp.mean(x, axis=0)
  std = jnp.std(x, axis=0) + std_eps
  xw = _whiten_with_bias(x, mean, std, bias_constant)
  y = 2.0 * jax.nn.one_hot(jnp.asarray(y_train), num_classes, dtype=x.dtype) - 1.0
  n, d1 = xw.shape
  if n > d1:
    gram = jnp.matmul(xw.T, xw, precision=_PRECISION) + l2_reg * jnp.eye(d1, dtype=x.dtype)
    w = jnp.linalg.solve(gram, jnp.matmul(xw.T, y, precision=_PRECISION))
  else:
    gram = jnp.matmul(xw, xw.T, precision=_PRECISION) + l2_reg * jnp.eye(n, dtype=x.dtype)
    w = jnp.matmul(xw.T, jnp.linalg.solve(gram, y), precision=_PRECISION)
  return w, mean, std


def _whiten_with_bias(x, mean, std, bias_constant):
  xw = (x - mean) / std
  return jnp.concatenate([xw, jnp.full(xw.shape[:-1] + (1,), bias_constant, xw.dtype)], -1)


def ridge_probe_accuracy(x_train: ArrayLike, y_train: ArrayLike, x_test: ArrayLike,
                         y_test: ArrayLike, *, num_classes: int,
                         l2_reg: float = FEW_SHOT_HPARAMS["l2_reg"],
                         std_eps: float = FEW_SHOT_HPARAMS["std_eps"],
                         bias_constant: float = FEW_SHOT_HPARAMS["bias_constant"]) -> jax.Array:
  """Accuracy on (x_test [m, d], y_test [m]) of `ridge_probe_weights` fitted on the train set
  (prediction = argmax of the K one-vs-all scores). jit/vmap friendly; returns a scalar."""
  w, mean, std = ridge_probe_weights(x_train, y_train, num_classes=num_classes, l2_reg=l2_reg,
                                     std_eps=std_eps, bias_constant=bias_constant)
  scores = jnp.matmul(_whiten_with_bias(jnp.asarray(x_test, w.dtype), mean, std, bias_constant),
                      w, precision=_PRECISION)
  return jnp.mean(jnp.argmax(scores, -1) == jnp.asarray(y_test))


def few_shot_indices(labels: ArrayLike, *, shots: int, seed: int = 0) -> np.ndarray:
  """Seeded `shots` examples per class (sorted indices) for the few-shot train set."""
  labels = np.asarray(labels)
  rng = np.random.default_rng(seed)
  out = []
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    if len(idx) < shots:
      raise ValueError(f"class {c} has {len(idx)} examples; {shots} shots requested")
    out.append(rng.choice(idx, size=shots, replace=False))
  return np.sort(np.concatenate(out))


TOKEN_MODES = ("cls", "mean", "mean_patch", "tokens")


def token_representation(tokens: ArrayLike, *, mode: str) -> jax.Array:
  """Aggregates token activations [n, T, D] for a probe (Raghu et al. 2021, Fig. 11).

  mode: "cls" -> token 0 [n, D]; "mean" -> mean of all T tokens [n, D]; "mean_patch" -> mean of
  tokens 1..T-1 (GAP without the first/CLS token) [n, D]; "tokens" -> every token separately
  [T, n, D] (one probe per token).
  """
  tokens = jnp.asarray(tokens)
  if tokens.ndim != 3:
    raise ValueError(f"tokens must have shape [n, T, D]; got {tokens.shape}")
  if mode == "cls":
    return tokens[:, 0]
  if mode == "mean":
    return tokens.mean(axis=1)
  if mode == "mean_patch":
    if tokens.shape[1] < 2:
      raise ValueError("mode='mean_patch' needs >= 2 tokens")
    return tokens[:, 1:].mean(axis=1)
  if mode == "tokens":
    return jnp.swapaxes(tokens, 0, 1)
  raise ValueError(f"mode must be one of {TOKEN_MODES}; got {mode!r}")


def resnet_patch_size(height: int, channels: int, *, out_size: int, target_channels: int) -> int:
  """Patch side p for `resnet_block_tokens`: the largest p with channels * p^2 <= target_channels
  such that p divides height and out_size divides height / p (1 if none)."""
  best = 1
  for p in range(1, height + 1):
    if channels * p * p > target_channels:
      break
    if height % p == 0 and (height // p) % out_size == 0:
      best = p
  return best


def resnet_block_tokens(fmap: ArrayLike, *, out_hw: tuple[int, int], target_channels: int,
                        patch_size: int | None = None) -> jax.Array:
  """A ResNet block's feature map as tokens, with Raghu et al.'s patching step (App. A).

  fmap: [n, H, W, C] (NHWC). Raghu et al.: earlier blocks have fewer channels and larger maps,
  so "before pooling we split the feature map into patches and flattened each patch, so as to
  arrive at the channel count close to the channel count in the final block", then pool "to
  the same spatial size as in the last stage". Our reading, step by step:
    1. p = patch_size or `resnet_patch_size` (largest p with C * p^2 <= target_channels, p | H,
       out_h | H/p); for ResNet-50 at 224 px this gives p = 2 for stages 1-2 (256 -> 1024,
       512 -> 2048 channels) and p = 1 for stages 3-4;
    2. space-to-depth: non-overlapping p x p patches, each flattened to p*p*C features in
       (dy, dx, c) order -> [n, H/p, W/p, p*p*C] (the order is a feature permutation, which
       does not change a standardised ridge probe);
    3. average-pool with window (H/p)/out_h x (W/p)/out_w to [n, out_h, out_w, p*p*C];
    4. tokens = the out_h * out_w spatial positions (row-major): [n, out_h * out_w, p*p*C].
  Aggregate with `token_representation(..., mode="mean")` for the GAP probe.
  """
  fmap = jnp.asarray(fmap)
  if fmap.ndim != 4:
    raise ValueError(f"fmap must have shape [n, H, W, C]; got {fmap.shape}")
  n, h, w, c = fmap.shape
  oh, ow = out_hw
  p = patch_size or resnet_patch_size(h, c, out_size=oh, target_channels=target_channels)
  if h % p or w % p or (h // p) % oh or (w // p) % ow:
    raise ValueError(f"feature map {h}x{w} with patch {p} cannot be pooled to {oh}x{ow}")
  x = fmap.reshape(n, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
  x = x.reshape(n, h // p, w // p, p * p * c)
  kh, kw = (h // p) // oh, (w // p) // ow
  x = x.reshape(n, oh, kh, ow, kw, p * p * c).mean(axis=(2, 4))
  return x.reshape(n, oh * ow, p * p * c)


@functools.partial(jax.jit, static_argnames=("num_classes", "mode", "l2_reg", "std_eps",
                                             "bias_constant"))
def _few_shot_stacked(train_tokens, y_train, test_tokens, y_test, *, num_classes, mode, l2_reg,
                      std_eps, bias_constant):
  """train_tokens [L, n, T, D], test_tokens [L, m, T, D] -> [L] or [L, T] (mode='tokens')."""
  probe = functools.partial(ridge_probe_accuracy, y_train=y_train, y_test=y_test,
                            num_classes=num_classes, l2_reg=l2_reg, std_eps=std_eps,
                            bias_constant=bias_constant)

  def layer(tr, te):
    tr, te = token_representation(tr, mode=mode), token_representation(te, mode=mode)
    if mode == "tokens":
      return jax.vmap(lambda a, b: probe(a, x_test=b))(tr, te)
    return probe(tr, x_test=te)

  return jax.vmap(layer)(train_tokens, test_tokens)


def few_shot_accuracy(train_layers: Sequence[ArrayLike], y_train: ArrayLike,
                      test_layers: Sequence[ArrayLike], y_test: ArrayLike, *, mode: str = "cls",
                      num_classes: int | None = None,
                      l2_reg: float = FEW_SHOT_HPARAMS["l2_reg"],
                      std_eps: float = FEW_SHOT_HPARAMS["std_eps"],
                      bias_constant: float = FEW_SHOT_HPARAMS["bias_constant"]) -> np.ndarray:
  """Closed-form few-shot probe accuracy per layer (Raghu et al. 2021, Figs. 11, 13).

  Args:
    train_layers, test_layers: per layer, tokens [n, T, D] / [m, T, D] (ViT blocks; ResNet blocks
      after `resnet_block_tokens`), or features [n, D] (treated as one token; use mode="cls").
      Layers of equal shape are vmapped together in one jit program (one compile per shape).
    y_train [n], y_test [m]: integer labels (few-shot train set: `few_shot_indices`).
    mode: token aggregation, see `token_representation`.
  Returns:
    accuracy [L], or [L, T] for mode="tokens" (Fig. 11 left averages over tokens, without the
    CLS token for CLS models: `acc[:, 1:].mean(-1)`).
  """
  if len(train_layers) != len(test_layers) or not train_layers:
    raise ValueError("train_layers and test_layers must be non-empty and of equal length")
  y_train, y_test = np.asarray(y_train), np.asarray(y_test)
  num_classes = num_classes or int(max(y_train.max(), y_test.max())) + 1
  as_tokens = lambda a: a[:, None, :] if np.ndim(a) == 2 else a
  train_layers = [as_tokens(a) for a in train_layers]
  test_layers = [as_tokens(a) for a in test_layers]
  groups: dict[tuple, list[int]] = {}
  for i, (a, b) in enumerate(zip(train_layers, test_layers)):
    if np.shape(a)[0] != len(y_train) or np.shape(b)[0] != len(y_test):
      raise ValueError(f"layer {i}: {np.shape(a)} / {np.shape(b)} do not match labels "
                       f"[{len(y_train)}] / [{len(y_test)}]")
    groups.setdefault((np.shape(a)[1:], np.shape(b)[1:]), []).append(i)
  results: list = [None] * len(train_layers)
  for members in groups.values():
    acc = _few_shot_stacked(jnp.stack([jnp.asarray(train_layers[i]) for i in members]),
                            jnp.asarray(y_train), jnp.stack([jnp.asarray(test_layers[i])
                                                             for i in members]),
                            jnp.asarray(y_test), num_classes=num_classes, mode=mode,
                            l2_reg=l2_reg, std_eps=std_eps, bias_constant=bias_constant)
    for j, i in enumerate(members):
      results[i] = np.asarray(acc[j])
  return np.stack(results)
