"""The closed-form few-shot probe against a numpy least-squares reference, and its token / ResNet
representations."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repsim_jax.analysis import ridge_probes as probes


def _ridge_lstsq(x, y, x_test, num_classes, l2_reg, std_eps=1e-5, bias=100.0):
  """numpy reference: whiten, append the bias column, solve [X; sqrt(l2) I] W = [Y; 0]."""
  mean, std = x.mean(0), x.std(0) + std_eps
  xw = np.c_[(x - mean) / std, np.full(len(x), bias)]
  xt = np.c_[(x_test - mean) / std, np.full(len(x_test), bias)]
  targets = 2.0 * np.eye(num_classes)[y] - 1.0
  a = np.r_[xw, np.sqrt(l2_reg) * np.eye(xw.shape[1])]
  b = np.r_[targets, np.zeros((xw.shape[1], num_classes))]
  w = np.linalg.lstsq(a, b, rcond=None)[0]
  return w, xt @ w


@pytest.mark.parametrize("n_per_class,d", [(5, 40), (30, 12)])  # dual (n < d) and primal form
def test_ridge_probe_matches_lstsq(n_per_class, d):
  rng = np.random.default_rng(4)
  k = 4
  y = np.repeat(np.arange(k), n_per_class)
  x = rng.normal(size=(len(y), d)) + 0.5 * rng.normal(size=(k, d))[y]
  x_test = rng.normal(size=(50, d)) + 0.5 * rng.normal(size=(k, d))[np.arange(50) % k]
  w_ref, scores_ref = _ridge_lstsq(x, y, x_test, k, l2_reg=0.5)
  with jax.enable_x64(True):  # float64 to compare the closed form itself at 1e-5
    w, _, _ = jax.jit(functools.partial(probes.ridge_probe_weights, num_classes=k,
                                        l2_reg=0.5))(x, y)
    acc = jax.jit(functools.partial(probes.ridge_probe_accuracy, num_classes=k, l2_reg=0.5))(
        x, y, x_test, np.arange(50) % k)
  np.testing.assert_allclose(np.asarray(w), w_ref, rtol=1e-5, atol=1e-7)
  assert float(acc) == pytest.approx(np.mean(scores_ref.argmax(1) == np.arange(50) % k))
  # float32 (the default): same scores to float32 rounding.
  w32, _, _ = jax.jit(functools.partial(probes.ridge_probe_weights, num_classes=k,
                                        l2_reg=0.5))(x.astype(np.float32), y)
  np.testing.assert_allclose(np.asarray(w32), w_ref, rtol=2e-3, atol=2e-3)


def test_token_representations_and_few_shot_per_layer():
  rng = np.random.default_rng(5)
  k, n_train, n_test, t, d = 3, 12, 30, 5, 8
  y_tr, y_te = np.arange(n_train) % k, np.arange(n_test) % k
  tok_tr = [rng.normal(size=(n_train, t, d)) for _ in range(2)]
  tok_te = [rng.normal(size=(n_test, t, d)) for _ in range(2)]
  tok_tr[1][:, 2] += 4 * np.eye(d)[y_tr]  # token 2 of layer 1 carries the label
  tok_te[1][:, 2] += 4 * np.eye(d)[y_te]
  tr0 = jnp.asarray(tok_tr[0])
  np.testing.assert_allclose(probes.token_representation(tr0, mode="cls"), tok_tr[0][:, 0])
  np.testing.assert_allclose(probes.token_representation(tr0, mode="mean"),
                             tok_tr[0].mean(1), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(probes.token_representation(tr0, mode="mean_patch"),
                             tok_tr[0][:, 1:].mean(1), rtol=1e-5, atol=1e-6)
  per_token = probes.few_shot_accuracy(tok_tr, y_tr, tok_te, y_te, mode="tokens", l2_reg=0.1)
  assert per_token.shape == (2, t)
  for layer in range(2):
    for tok in range(t):
      _, scores = _ridge_lstsq(tok_tr[layer][:, tok], y_tr, tok_te[layer][:, tok], k, 0.1)
      assert per_token[layer, tok] == pytest.approx(np.mean(scores.argmax(1) == y_te))
  assert per_token[1, 2] > 0.9
  for mode, agg in [("cls", lambda a: a[:, 0]), ("mean", lambda a: a.mean(1)),
                    ("mean_patch", lambda a: a[:, 1:].mean(1))]:
    acc = probes.few_shot_accuracy(tok_tr, y_tr, tok_te, y_te, mode=mode, l2_reg=0.1)
    for layer in range(2):
      _, scores = _ridge_lstsq(agg(tok_tr[layer]), y_tr, agg(tok_te[layer]), k, 0.1)
      assert acc[layer] == pytest.approx(np.mean(scores.argmax(1) == y_te))
  with pytest.raises(ValueError, match="mode"):
    probes.token_representation(tr0, mode="gap")


def test_resnet_block_tokens_patching():
  rng = np.random.default_rng(6)
  fmap = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
  # ResNet-50 at 224 px: stage widths / sizes -> patch sides (target 2048 channels, 7x7 out).
  assert [probes.resnet_patch_size(h, c, out_size=7, target_channels=2048)
          for h, c in [(56, 256), (28, 512), (14, 1024), (7, 2048)]] == [2, 2, 1, 1]
  tokens = np.asarray(probes.resnet_block_tokens(fmap, out_hw=(2, 2), target_channels=12))
  assert tokens.shape == (2, 4, 12)  # p = 2: 3 * 4 = 12 channels, 4x4 -> pooled 2x2
  ref = np.zeros((2, 2, 2, 12))
  for i in range(2):
    for j in range(2):
      win = fmap[:, 4 * i:4 * i + 4, 4 * j:4 * j + 4]  # one output cell = 2x2 patches of 2x2
      patches = [win[:, a:a + 2, b:b + 2].reshape(2, 12) for a in (0, 2) for b in (0, 2)]
      ref[:, i, j] = np.mean(patches, axis=0)
  np.testing.assert_allclose(tokens, ref.reshape(2, 4, 12), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="pooled"):
    probes.resnet_block_tokens(fmap, out_hw=(3, 3), target_channels=12, patch_size=2)


def test_few_shot_indices_seeded():
  labels = np.repeat(np.arange(4), 7)
  a = probes.few_shot_indices(labels, shots=3, seed=0)
  assert len(a) == 12 and np.all(np.bincount(labels[a]) == 3)
  np.testing.assert_array_equal(a, probes.few_shot_indices(labels, shots=3, seed=0))
  with pytest.raises(ValueError, match="shots"):
    probes.few_shot_indices(labels, shots=8)
