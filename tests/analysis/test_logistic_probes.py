"""Probes against scikit-learn / numpy references: per-class binary logistic probes, roughness,
multi-class probes, the closed-form few-shot probe and its token / ResNet representations."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from repsim_jax.analysis import probes

L2 = probes.LOGISTIC_PROBE_HPARAMS["l2"]


def _class_features(rng, labels, d, signal):
  """Gaussian clusters per class: accuracy set by `signal` (between chance and 100%)."""
  centers = rng.normal(size=(labels.max() + 1, d))
  return (signal * centers[labels] + rng.normal(size=(len(labels), d))).astype(np.float32)


@pytest.fixture(scope="module")
def binary_case():
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(8), 30)
  rng.shuffle(labels)
  # Two widths (grouped separately) and d > n_train for one of them, like real layers.
  layers = [_class_features(rng, labels, 24, 0.3), _class_features(rng, labels, 80, 0.15),
            _class_features(rng, labels, 80, 0.3)]
  splits = probes.balanced_binary_splits(labels, seed=3)
  acc = probes.class_probe_accuracy(layers, labels, splits=splits, probe_batch_size=8)
  return layers, labels, splits, acc


def test_splits_balanced_and_seeded():
  labels = np.repeat(np.arange(5), [20, 20, 30, 20, 10])
  s = probes.balanced_binary_splits(labels, seed=1)
  s2 = probes.balanced_binary_splits(labels, seed=1)
  np.testing.assert_array_equal(s.index, s2.index)
  for c, n_c in enumerate([20, 20, 30, 20, 10]):
    valid = s.train[c] | s.test[c]
    assert valid.sum() == 2 * n_c and not (s.train[c] & s.test[c]).any()
    rows = s.index[c][valid]
    assert len(np.unique(rows)) == 2 * n_c
    pos = s.target[c][valid] == 1
    assert (labels[rows[pos]] == c).all() and (labels[rows[~pos]] != c).all()
    assert pos.sum() == n_c
    n_test = max(1, round(0.1 * n_c))
    assert (s.test[c] & (s.target[c] == 1)).sum() == n_test
    assert (s.test[c] & (s.target[c] == 0)).sum() == n_test


def test_binary_probes_match_sklearn(binary_case):
  layers, labels, splits, acc = binary_case
  ref = np.zeros_like(acc)
  for l, x in enumerate(layers):
    for c in range(len(splits.classes)):
      rows, tr, te = splits.index[c], splits.train[c], splits.test[c]
      y = splits.target[c]
      scaler = StandardScaler().fit(x[rows[tr]])
      clf = LogisticRegression(C=1.0 / (L2 * tr.sum()), tol=1e-8, max_iter=5000)
      clf.fit(scaler.transform(x[rows[tr]]), y[tr])
      ref[l, c] = clf.score(scaler.transform(x[rows[te]]), y[te])
  assert acc.shape == (3, 8)
  assert 0.55 < acc.mean() < 0.98  # neither chance nor saturated: the comparison has teeth
  # Within 1 point per layer (mean over classes); and almost every probe identical.
  np.testing.assert_array_less(np.abs(acc.mean(1) - ref.mean(1)), 0.01 + 1e-6)
  assert np.mean(np.isclose(acc, ref, atol=1e-6)) >= 0.95


def test_vmapped_program_equals_per_probe_runs(binary_case):
  layers, _, splits, acc = binary_case
  hp = probes.LOGISTIC_PROBE_HPARAMS
  single = jax.jit(functools.partial(probes._binary_probe, iterations=hp["binary_iterations"],
                                     num_train=int(splits.train.sum(1).max()),
                                     l2=hp["l2"], memory_size=hp["binary_memory_size"]))
  for l, c in [(1, 0), (2, 5), (1, 7)]:
    a = single(jnp.asarray(layers[l])[None], 0, *(jnp.asarray(v[c]) for v in (
        splits.index, splits.target, splits.train, splits.test)))
    assert float(a) == pytest.approx(acc[l, c], abs=1e-6)


def test_kernel_solver_reaches_sklearn_optimum():
  """The binary trainer (kernel-form L-BFGS on the standardised Gram) reaches scikit-learn's
  optimum of the same objective: wide (d > M) and narrow layers, a near-chance probe, and a
  probe whose first T rows are not all train rows (a smaller class than the largest)."""
  rng = np.random.default_rng(8)
  hp = probes.LOGISTIC_PROBE_HPARAMS
  m, num_train = 62, 54
  solve = jax.jit(functools.partial(probes._kernel_logistic, l2=L2,
                                    iterations=hp["binary_iterations"],
                                    memory_size=hp["binary_memory_size"]))
  for d, signal, n_tr in [(200, 0.15, 54), (20, 0.4, 54), (200, 0.0, 54), (120, 0.2, 48)]:
    y = (np.arange(m) % 2).astype(np.int32)
    x = (rng.normal(size=(m, d)) * np.exp(rng.normal(size=d)) + 3.0 * rng.normal(size=d)
         + signal * np.sqrt(d) * rng.normal(size=d) * y[:, None]).astype(np.float32)
    train = np.arange(m) < n_tr  # rows n_tr..m-1: test rows (and, after T, non-train rows)
    gram = probes._standardised_gram(jnp.asarray(x), jnp.asarray(train, jnp.float32),
                                     num_train=num_train)
    logits, objective = solve(gram, jnp.asarray(y), jnp.asarray(train, jnp.float32))
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(C=1.0 / (L2 * n_tr), tol=1e-10, max_iter=10000)
    clf.fit(scaler.transform(x[train]), y[train])
    ref = clf.decision_function(scaler.transform(x))
    ref_objective = (np.mean(np.logaddexp(0, ref[train]) - y[train] * ref[train])
                     + 0.5 * L2 * np.sum(clf.coef_ ** 2))
    assert float(objective) == pytest.approx(ref_objective, rel=1e-4, abs=1e-6), (d, signal)
    np.testing.assert_allclose(np.asarray(logits), ref, atol=0.02 * np.abs(ref).max())


def test_roughness_matches_numpy():
  rng = np.random.default_rng(1)
  acc = rng.random((12, 7))
  expected = np.array([np.std([acc[l + 1, c] - acc[l, c] for l in range(11)])
                       for c in range(7)])
  np.testing.assert_allclose(probes.roughness(acc), expected, rtol=1e-12)
  np.testing.assert_allclose(probes.roughness(acc.T, axis=1), expected, rtol=1e-12)
  assert probes.roughness(np.linspace(0, 1, 9)[:, None])[0] == pytest.approx(0, abs=1e-12)
  s = probes.roughness_summary(acc)
  assert s["mean"] == pytest.approx(expected.mean()) and s["num_classes"] == 7
  with pytest.raises(ValueError, match="2 layers"):
    probes.roughness(np.ones((1, 3)))


def test_multiclass_probe_matches_sklearn():
  rng = np.random.default_rng(2)
  labels = rng.integers(0, 6, size=900)
  # Different widths: zero-padded to the max inside the program.
  layers = [_class_features(rng, labels, 16, 0.25), _class_features(rng, labels, 40, 0.2),
            _class_features(rng, labels, 40, 0.35)]
  l2 = 1e-3
  train = probes.train_test_split_mask(len(labels), test_fraction=0.3, seed=0)
  acc = probes.multiclass_probe_accuracy(layers, labels, train_mask=train, l2=l2,
                                         iterations=60)
  for l, x in enumerate(layers):
    scaler = StandardScaler().fit(x[train])
    clf = LogisticRegression(C=1.0 / (l2 * train.sum()), tol=1e-8, max_iter=5000)
    clf.fit(scaler.transform(x[train]), labels[train])
    ref = clf.score(scaler.transform(x[~train]), labels[~train])
    assert 0.3 < ref < 0.97
    assert abs(acc[l] - ref) <= 0.01 + 1e-6, (l, acc[l], ref)


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


def test_figures_written(tmp_path):
  from repsim_jax.plotting import probes as plots
  rng = np.random.default_rng(7)
  acc = {"iGPT": rng.random((6, 10)), "ConvNeXt": rng.random((9, 10))}
  rough = {m: probes.roughness(a) for m, a in acc.items()}
  paths = plots.plot_roughness(rough, tmp_path / "fig5", examples=[
      dict(model="iGPT", label="bloodhound", accuracy=acc["iGPT"][:, 0]),
      dict(model="ConvNeXt", label="pizza", accuracy=acc["ConvNeXt"][:, 3])])
  paths += plots.plot_ood_probes({ds: {m: a[:, 0] for m, a in acc.items()}
                                  for ds in ("CIFAR-100", "Food-101", "STL-10")},
                                 tmp_path / "fig13")
  paths += plots.plot_few_shot({"tokens": {"ViT CLS": acc["iGPT"][:, 1]},
                                "aggregation": {"ViT GAP": acc["ConvNeXt"][:, 2]}},
                               tmp_path / "sub" / "few_shot", shots=10)
  assert len(paths) == 6
  for p in paths:
    assert p.endswith((".png", ".pdf")) and (tmp_path / p).stat().st_size > 1000


def test_stacked_input_and_bad_splits(binary_case):
  layers, labels, splits, acc = binary_case
  stacked = np.stack(layers[1:])  # one [L, N, d] array, widths equal
  np.testing.assert_array_equal(
      probes.class_probe_accuracy(stacked, labels, splits=splits, probe_batch_size=8), acc[1:])
  shuffled = probes.BinaryProbeSplits(splits.index[:, ::-1], splits.target[:, ::-1],
                                      splits.train[:, ::-1], splits.test[:, ::-1], splits.classes)
  with pytest.raises(ValueError, match="ordered train, test, padding"):
    probes.class_probe_accuracy(layers, labels, splits=shuffled)
  with pytest.raises(ValueError, match=r"layers\[0\] must have shape"):
    probes.class_probe_accuracy([layers[0][:5]], labels)
