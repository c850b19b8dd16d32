"""Neighbour category sharing: categories, sharing and the random baseline against plain numpy."""
from __future__ import annotations

import numpy as np
import pytest

from repsim_jax.analysis import category_sharing as cs
from repsim_jax.imaging.features import PROPERTIES


def test_property_levels_against_sorting():
  rng = np.random.default_rng(3)
  values = rng.integers(0, 20, size=50).astype(float)  # many ties
  levels = cs.property_levels(values, group_size=7)
  order = sorted(range(50), key=lambda i: (values[i], i))
  for col, ranks in enumerate([order[:7], order[21:28], order[-7:]]):
    np.testing.assert_array_equal(np.flatnonzero(levels[:, col]), sorted(ranks))
  with pytest.raises(ValueError, match="group_size"):
    cs.property_levels(values, group_size=51)


def _random_membership(rng, n, c, p=0.2):
  m = rng.random((n, c)) < p
  m[~m.any(axis=1), 0] = True
  return m


def test_category_sharing_against_loops():
  rng = np.random.default_rng(4)
  membership = _random_membership(rng, 30, 5)
  neighbours = rng.integers(0, 30, size=(12, 4))
  queries = rng.choice(30, 12, replace=False)
  got = cs.category_sharing(neighbours, membership, queries=queries)
  want = [np.mean([bool(set(np.flatnonzero(membership[q])) & set(np.flatnonzero(membership[j])))
                   for j in row]) for q, row in zip(queries, neighbours)]
  np.testing.assert_allclose(got, want)


def test_random_baseline_exact_and_monte_carlo():
  rng = np.random.default_rng(5)
  membership = _random_membership(rng, 60, 9, p=0.15)
  # plain numpy n x n definition
  share = (membership.astype(int) @ membership.T.astype(int)) > 0
  np.fill_diagonal(share, False)
  exact = share.sum() / (60 * 59)
  assert cs.random_sharing_baseline(membership) == pytest.approx(exact, rel=1e-12)
  # Monte Carlo: random 10-neighbour subsets of the other images
  draws = []
  for _ in range(3000):
    i = rng.integers(60)
    others = np.delete(np.arange(60), i)
    draws.append(cs.category_sharing(rng.choice(others, (1, 10), replace=False), membership,
                                     queries=[i])[0])
  se = np.std(draws) / np.sqrt(len(draws))
  assert abs(np.mean(draws) - exact) < 4 * se
  # disjoint categories: sum of g (g - 1) over categories / n (n - 1)
  disjoint = np.repeat(np.eye(9, dtype=bool), 100, axis=0)
  assert cs.random_sharing_baseline(disjoint) == pytest.approx(9 * 100 * 99 / (900 * 899))


def _numpy_cosine_knn(x, k):
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  sim = xn @ xn.T
  np.fill_diagonal(sim, -np.inf)
  return np.argsort(-sim, axis=1, kind="stable")[:, :k]


def test_lowlevel_neighbour_analysis_against_numpy():
  rng = np.random.default_rng(6)
  n = 90
  features = {p: rng.normal(size=n) for p in PROPERTIES}
  layers = {"a": [rng.normal(size=(n, 8)), rng.normal(size=(n, 5))],
            "b": [rng.normal(size=(n, 6))]}
  # make layer a[1] organised by edge density so sharing is far from the baseline
  layers["a"][1][:, 0] += 5 * features["edge_density"]
  out = cs.lowlevel_neighbour_analysis(layers, features, group_size=10, k=4)
  membership, names = cs.lowlevel_categories(features, group_size=10)
  assert names[0] == "edge_density:low" and membership.shape == (n, 9)
  for scope, cols in [("overall", slice(0, 9)), ("edge_density", slice(0, 3)),
                      ("colour_warmth", slice(3, 6))]:
    m = membership[:, cols]
    rows = np.flatnonzero(m.any(axis=1))
    np.testing.assert_array_equal(out[scope]["images"], rows)
    assert out[scope]["baseline"] == pytest.approx(cs.random_sharing_baseline(m[rows]))
    for model, xs in layers.items():
      want = []
      for x in xs:
        idx = _numpy_cosine_knn(x[rows], 4)
        want.append(np.mean([np.mean([(m[rows][i] & m[rows][j]).any() for j in idx[i]])
                             for i in range(len(rows))]))
      np.testing.assert_allclose(out[scope]["sharing"][model], want, atol=1e-12)
  assert out["edge_density"]["sharing"]["a"][1] > out["edge_density"]["baseline"] + 0.2


def test_plot_neighbour_sharing_writes_png_and_pdf(tmp_path):
  from repsim_jax.plotting.category_sharing import plot_neighbour_sharing
  sharing = {"vit": np.linspace(0.5, 0.2, 12), "dinov2": np.linspace(0.5, 0.45, 40)}
  panels = {p: (sharing, 0.33) for p in PROPERTIES}
  for name, pan in [("fig3", {"overall": (sharing, 0.152)}), ("fig14", panels)]:
    paths = plot_neighbour_sharing(pan, str(tmp_path / name))
    for p, magic in zip(paths, [b"\x89PNG", b"%PDF"]):
      with open(p, "rb") as f:
        assert f.read(4) == magic
