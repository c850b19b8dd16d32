"""Logistic probes against scikit-learn / numpy references: per-class binary probes, roughness,
multi-class probes."""
from __future__ import annotations

import collections.abc
import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from repsim_jax.analysis import logistic_probes as probes

# The binary probes' defaults (keyword arguments of class_probe_accuracy).
BINARY = {k: p.default for k, p in inspect.signature(probes.class_probe_accuracy).parameters.items()}
L2 = BINARY["l2"]


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
  single = jax.jit(functools.partial(probes._binary_probe, iterations=BINARY["iterations"],
                                     num_train=int(splits.train.sum(1).max()),
                                     l2=BINARY["l2"], memory_size=BINARY["memory_size"]))
  for l, c in [(1, 0), (2, 5), (1, 7)]:
    a = single(jnp.asarray(layers[l])[None], 0, *(jnp.asarray(v[c]) for v in (
        splits.index, splits.target, splits.train, splits.test)))
    assert float(a) == pytest.approx(acc[l, c], abs=1e-6)


def test_kernel_solver_reaches_sklearn_optimum():
  """The binary trainer (kernel-form L-BFGS on the standardised Gram) reaches scikit-learn's
  optimum of the same objective: wide (d > M) and narrow layers, a near-chance probe, and a
  probe whose first T rows are not all train rows (a smaller class than the largest)."""
  rng = np.random.default_rng(8)
  m, num_train = 62, 54
  solve = jax.jit(functools.partial(probes._kernel_logistic, l2=L2,
                                    iterations=BINARY["iterations"],
                                    memory_size=BINARY["memory_size"]))
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


def test_feature_form_reaches_sklearn_optimum():
  """The same solver on the features (the multi-class probes' form) reaches scikit-learn's
  optimum: softmax over 4 classes and a binary sigmoid probe, with rows outside the train split."""
  rng = np.random.default_rng(9)
  n, d, l2 = 300, 12, 1e-3
  for k in (4, 2):
    y = rng.integers(0, k, n)
    x = (rng.normal(size=(n, d)) + 0.8 * rng.normal(size=(k, d))[y]).astype(np.float32)
    train = np.arange(n) < 240
    scaler = StandardScaler().fit(x[train])
    xs = scaler.transform(x).astype(np.float32)
    outputs = k if k > 2 else 1
    logits, objective = jax.jit(functools.partial(
        probes._primal_logistic, num_outputs=outputs, l2=l2, iterations=60, memory_size=10,
        line_search_steps=probes.LINE_SEARCH_STEPS))(jnp.asarray(xs), jnp.asarray(y),
                                                     jnp.asarray(train, jnp.float32))
    clf = LogisticRegression(C=1.0 / (l2 * train.sum()), tol=1e-10, max_iter=10000)
    clf.fit(xs[train], y[train])
    ref = clf.decision_function(xs)
    if k == 2:
      ref_loss = np.logaddexp(0, ref) - y * ref
      got = np.asarray(logits)[:, 0]
    else:  # softmax logits are defined up to a constant per row
      ref_loss = np.logaddexp.reduce(ref, axis=1) - ref[np.arange(n), y]
      ref, got = ref - ref.mean(1, keepdims=True), np.asarray(logits)
      got = got - got.mean(1, keepdims=True)
    ref_objective = np.mean(ref_loss[train]) + 0.5 * l2 * np.sum(clf.coef_ ** 2)
    assert float(objective) == pytest.approx(ref_objective, rel=1e-4, abs=1e-6), k
    np.testing.assert_allclose(got, ref, atol=0.02 * np.abs(ref).max())


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
  # Different widths: fitted in groups of equal width.
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
  # One layer per call (a 1-byte budget), and a lazy sequence read layer by layer: the same
  # probes (up to one test image: the vmapped and the single fits may round differently).
  reads = []

  class Lazy(collections.abc.Sequence):
    widths = [16, 40, 40]

    def __len__(self):
      return len(layers)

    def __getitem__(self, i):
      reads.append(i)
      return layers[i]

  one_test = 1.0 / (~train).sum()
  for got in (probes.multiclass_probe_accuracy(layers, labels, train_mask=train, l2=l2,
                                               iterations=60, memory_budget_bytes=1),
              probes.multiclass_probe_accuracy(Lazy(), labels, train_mask=train, l2=l2,
                                               iterations=60)):
    np.testing.assert_allclose(got, acc, atol=one_test + 1e-9)
  assert sorted(reads) == [0, 1, 2]  # each layer read once, widths from the sequence


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
