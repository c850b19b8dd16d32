"""ManyNames semantic coherence against plain-numpy Jaccard and neighbour computations."""
from __future__ import annotations

import ast
import csv

import numpy as np
import pytest

from locations import FIXTURES
from repsim_jax.analysis import semantic

SLICE = str(FIXTURES / "manynames" / "manynames-zh-slice.tsv")


def _read_slice():
  """Minimal reader of the real TSV: label set = keys of `responses`; also the `domain` column."""
  with open(SLICE, newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f, delimiter="\t"))
  return [set(ast.literal_eval(r["responses"])) for r in rows], [r["domain"] for r in rows]


def _numpy_knn(x, queries, k):
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  sim = xn[queries] @ xn.T
  sim[np.arange(len(queries)), queries] = -np.inf
  return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def test_jaccard_index_and_pairwise_against_sets():
  labels, _ = _read_slice()
  rng = np.random.default_rng(0)
  left, right = rng.integers(0, len(labels), (2, 7, 3))
  got = semantic.pairwise_jaccard(semantic.as_label_sets(labels), left, right)
  want = [[len(labels[a] & labels[b]) / len(labels[a] | labels[b]) for a, b in zip(ra, rb)]
          for ra, rb in zip(left, right)]
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
  assert semantic.jaccard_index({"狗", "猫"}, {"狗"}) == 0.5
  assert semantic.jaccard_index(set(), set()) == 1.0


def test_semantic_coherence_on_manynames_slice():
  labels, domains = _read_slice()
  n = len(labels)
  rng = np.random.default_rng(1)
  names = sorted(set(domains))
  onehot = np.eye(len(names))[[names.index(d) for d in domains]]
  layers = [rng.normal(size=(n, 6)),                                # "early": unrelated to labels
            np.concatenate([3 * onehot, rng.normal(size=(n, 4))], 1)]  # "late": grouped by domain
  out = semantic.semantic_coherence(layers, {i: s for i, s in enumerate(labels)}, n_queries=12,
                                    k=5, seed=3)
  queries = np.sort(np.random.default_rng(3).choice(n, 12, replace=False))
  np.testing.assert_array_equal(out["queries"], queries)
  for l, x in enumerate(layers):
    nbrs = _numpy_knn(x, queries, 5)
    np.testing.assert_array_equal(out["neighbours"][l], nbrs)
    jac = np.array([[len(labels[q] & labels[j]) / len(labels[q] | labels[j]) for j in row]
                    for q, row in zip(queries, nbrs)])
    np.testing.assert_allclose(out["jaccard"][l], jac, atol=1e-15)
    assert out["mean"][l] == pytest.approx(jac.mean(), abs=1e-12)
    assert out["std"][l] == pytest.approx(jac.std(), abs=1e-12)
  assert out["mean"][1] > out["mean"][0]  # the domain-organised layer is semantically coherent


def test_label_set_validation():
  with pytest.raises(ValueError, match="non-empty"):
    semantic.as_label_sets([{"a"}, set()])
  with pytest.raises(ValueError, match="rows 0..n-1"):
    semantic.as_label_sets({1: {"a"}, 2: {"b"}})
  with pytest.raises(ValueError, match="n_queries"):
    semantic.sample_queries(5, 6)
  with pytest.raises(ValueError, match=r"layers\[0\]"):
    semantic.semantic_coherence([np.ones((3, 2))], [{"a"}, {"b"}], n_queries=1, k=1)


def test_plot_semantic_coherence_writes_png_and_pdf(tmp_path):
  from repsim_jax.plotting.semantic import plot_semantic_coherence
  mean = {"vit": np.linspace(0.05, 0.4, 12), "igpt": np.linspace(0.05, 0.1, 24)}
  std = {m: 0.1 * np.ones_like(v) for m, v in mean.items()}
  paths = plot_semantic_coherence(mean, std, str(tmp_path / "sub" / "fig4"))
  for p, magic in zip(paths, [b"\x89PNG", b"%PDF"]):
    with open(p, "rb") as f:
      assert f.read(4) == magic
