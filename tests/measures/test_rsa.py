"""RSA against rsatoolbox 0.3.2 (comparators) and scipy's pdist (RDMs), in float64.

Ties: "tied" data repeat rows (exact ties in every RDM) and, for the euclidean RDMs, have
integer features (equal distances are exactly equal in float arithmetic there; for correlation
and cosine, values equal in exact arithmetic can differ in the last bit in any float
implementation, ours and scipy's alike, so those ties come from repeated rows only). The
comparators alone are also checked on integer-valued RDM vectors, where nearly every entry is
tied.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy.spatial.distance import pdist

from repsim_jax.measures import measure, measures as listing, similarity_matrix
from repsim_jax.measures import rsa

rc = pytest.importorskip("rsatoolbox.rdm.compare")
RSATOOLBOX = {"pearson": "corr", "tau_a": "tau-a", "tau_b": "tau-b", "rho_a": "rho-a"}
PDIST = {"euclidean": "euclidean", "squared_euclidean": "sqeuclidean",
         "correlation": "correlation", "cosine": "cosine"}
TOL = 1e-5
N = 30


def data(metric, ties, seed=0):
  rng = np.random.default_rng(seed)
  if ties and metric in ("euclidean", "squared_euclidean"):
    x = rng.integers(0, 4, (N, 6)).astype(float)
    y = rng.integers(0, 4, (N, 5)).astype(float)
  else:
    x = rng.normal(size=(N, 7)) + 2.0
    y = x[:, :5] ** 2 + 0.7 * rng.normal(size=(N, 5))
  if ties:
    x[::5], y[::4] = x[1::5], y[1::4]
  return x, y


def reference(va, vb, comp):
  return rc.compare(va[None], vb[None], method=RSATOOLBOX.get(comp, comp))[0, 0]


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("metric", rsa.RDMS)
def test_every_comparator_matches_rsatoolbox(metric, ties):
  x, y = data(metric, ties)
  va, vb = pdist(x, PDIST[metric]), pdist(y, PDIST[metric])
  if metric in ("correlation", "cosine"):  # our documented convention for repeated rows
    va[np.abs(va) < 1e-13], vb[np.abs(vb) < 1e-13] = 0.0, 0.0
  np.testing.assert_allclose(np.asarray(rsa.rdm(x, metric=metric)), va, rtol=1e-10, atol=1e-12)
  if ties:
    assert len(np.unique(va)) < len(va) and len(np.unique(vb)) < len(vb)
  for comp in rsa.COMPARATORS:
    want = reference(va, vb, comp)
    got = measure(f"rsa-rdm={metric}-compare={comp}-score")(x, y)
    np.testing.assert_allclose(got, want, rtol=TOL, atol=1e-9, err_msg=comp)


def test_comparators_on_heavily_tied_rdm_vectors():
  rng = np.random.default_rng(1)
  n = 25
  va = rng.integers(0, 5, n * (n - 1) // 2).astype(float)
  vb = va + rng.integers(0, 3, va.shape)
  for comp in rsa.COMPARATORS:
    np.testing.assert_allclose(rsa.compare(va, vb, method=comp), reference(va, vb, comp),
                               rtol=TOL, atol=1e-9, err_msg=comp)


@pytest.mark.parametrize("compare", ["pearson", "cosine", "cosine_cov", "corr_cov", "tau_b"])
def test_streamed_matrix_over_many_row_blocks(monkeypatch, compare):
  """Blocks of 7 rows (n = 30 padded to 35) give the same matrix as the reference per pair."""
  monkeypatch.setattr(rsa, "_BLOCK_ENTRIES", 7 * N)
  rng = np.random.default_rng(2)
  layers_a = [rng.normal(size=(N, d)) for d in (4, 9)]
  layers_b = [layers_a[0] @ rng.normal(size=(4, 3)) + rng.normal(size=(N, 3)),
              rng.normal(size=(N, 6))]
  got = similarity_matrix(layers_a, layers_b,
                                   measure=f"rsa-rdm=euclidean-compare={compare}-score")
  want = np.array([[reference(pdist(a), pdist(b), compare) for b in layers_b] for a in layers_a])
  np.testing.assert_allclose(got, want, rtol=TOL, atol=1e-9)
  pairwise = [[rsa.pair(rsa.prepare(a, metric="euclidean", compare=compare),
                        rsa.prepare(b, metric="euclidean", compare=compare),
                        metric="euclidean", compare=compare) for b in layers_b] for a in layers_a]
  np.testing.assert_allclose(np.array(pairwise, float), want, rtol=TOL, atol=1e-9)


@pytest.mark.parametrize("compare", ["pearson", "corr_cov"])
def test_float32_streamed_over_many_blocks_matches_float64(monkeypatch, compare):
  """n = 1500 in 8-row blocks (188 blocks, 1.1e6 entries): the compensated float32 sums stay
  within 1e-5 of float64 (corr_cov is the most cancellation-prone: a small difference of
  large sums)."""
  monkeypatch.setattr(rsa, "_BLOCK_ENTRIES", 8 * 1500)
  rng = np.random.default_rng(6)
  x = rng.normal(size=(1500, 16)) + 3.0
  y = np.tanh(x[:, :8]) + rng.normal(size=(1500, 8))
  want = rsa.rsa_matrix([x], [y], metric="euclidean", compare=compare)[0, 0]
  with jax.enable_x64(False):
    got = rsa.rsa_matrix([x.astype(np.float32)], [y.astype(np.float32)], metric="euclidean",
                         compare=compare)[0, 0]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_rsatoolbox_interop_round_trip():
  calc = pytest.importorskip("rsatoolbox.rdm.calc")
  from rsatoolbox.data import Dataset
  x, y = data("correlation", False)
  ours = np.stack([np.asarray(rsa.rdm(x, metric="correlation")),
                   np.asarray(rsa.rdm(y, metric="correlation"))])
  theirs = calc.calc_rdm(Dataset(x), method="correlation")
  np.testing.assert_allclose(ours[0], rsa.from_rsatoolbox(theirs)[0], rtol=1e-10)
  obj = rsa.to_rsatoolbox(ours, metric="correlation")
  assert obj.n_rdm == 2 and obj.n_cond == N and obj.dissimilarity_measure == "correlation"
  np.testing.assert_array_equal(rsa.from_rsatoolbox(obj), ours)
  # rsatoolbox's own comparison of our RDMs equals our comparator.
  np.testing.assert_allclose(rc.compare(obj[0], obj[1], method="spearman")[0, 0],
                             measure("rsa")(x, y), rtol=TOL)
  # rsatoolbox's 'euclidean' RDM is our squared euclidean divided by the width.
  sq = calc.calc_rdm(Dataset(x), method="euclidean")
  np.testing.assert_allclose(rsa.from_rsatoolbox(sq)[0] * x.shape[1],
                             np.asarray(rsa.rdm(x, metric="squared_euclidean")), rtol=1e-10)


def test_sampled_pairs_estimator_error():
  """The documented estimator: 20k sampled pairs of n = 300 stimuli (44,850 pairs) against the
  exact value; the measured errors (printed, -s) are a few 1e-3, bounded here at 0.03."""
  rng = np.random.default_rng(3)
  x = rng.normal(size=(300, 8))
  y = np.tanh(x[:, :4]) + 0.5 * rng.normal(size=(300, 4))
  for compare in ("spearman", "tau_b"):
    exact = measure(f"rsa-rdm=euclidean-compare={compare}-score")(x, y)
    errors = [rsa.rsa_sampled_pairs(x, y, metric="euclidean", compare=compare, n_pairs=20_000,
                                    seed=s) - exact for s in range(2)]
    print(f"{compare}: exact {exact:.5f}, sampled errors {np.round(errors, 5)}")
    assert 0.05 < abs(exact) and max(map(abs, errors)) < 0.03


def test_registry_names_declared_invariances_and_bad_input(invariance_maps):
  names = [m["name"] for m in listing() if m["name"].startswith("rsa-")]
  assert len(names) == len(rsa.RDMS) * len(rsa.COMPARATORS)
  x, y = data("correlation", False)
  x = x[:, :5]
  maps = invariance_maps(5)
  for metric in rsa.RDMS:
    m = measure(f"rsa-rdm={metric}-compare=pearson-score")
    assert m.kind == "similarity" and m(x, x) == pytest.approx(1.0, abs=1e-9)
    base = m(x, y)
    for inv in m.properties.invariances:
      np.testing.assert_allclose(m(maps[inv](x), y), base, rtol=1e-7, err_msg=f"{m.name} {inv}")
  with pytest.raises(ValueError, match="compare"):
    rsa.prepare(x, compare="kendall")


# ------------------------------------------------------------------------------- Gram form

STREAMED_GRAM = [(metric, comp) for metric in rsa.GRAM_RDMS for comp in rsa.STREAMED]


def hard_case(case, n, widths=(64, 40), seed=7):
  """Two representations [n, d] that stress the Gram form (tests below):
  offset    a large common offset (1e3 per feature): squared euclidean sums would cancel, and
            correlation / cosine rows are nearly parallel (dissimilarities ~1e-6)
  relu      ReLU features sharing a profile: row correlations 0.93 +- 0.02 (d = 64)
  ties      duplicate rows, two zero rows and a constant row (dissimilarity 1 by convention
            for correlation / cosine; the constant row for correlation)
  """
  rng = np.random.default_rng(seed)
  out = []
  for d in widths:
    if case == "offset":
      x = rng.normal(size=(n, d)) + 1e3 * rng.uniform(1, 2, size=d)
    elif case == "relu":
      x = np.maximum(rng.normal(size=d) + 0.2 * rng.normal(size=(n, d)), 0.0)
    else:
      x = rng.normal(size=(n, d))
      x[::5] = x[1::5]
      x[2], x[9], x[4] = 0.0, 0.0, 1.5
    out.append(x)
  return out


def rsatoolbox_value(x, y, metric, comp):
  """rsatoolbox's comparator on scipy's RDMs, in float64, with our zero-row convention (the
  0/0 scipy gives a zero or constant row is dissimilarity 1)."""
  def vec(z):
    v = pdist(np.asarray(z, np.float64), PDIST[metric])
    return np.where(np.isnan(v), 1.0, v)
  with np.errstate(invalid="ignore", divide="ignore"):
    return reference(vec(x), vec(y), comp)


@pytest.mark.parametrize("case", ["offset", "relu", "ties"])
def test_gram_form_matches_rsatoolbox_and_the_block_path(case):
  """Every Gram-form measure (squared euclidean, correlation, cosine RDMs x the streamed
  comparators) on the hard cases, n = 37 (no block or chunk size divides it), unequal widths
  above n:
  equal to rsatoolbox within 1e-7 in float64 (the issue's bound is 1e-5; the nearly parallel
  rows of 'offset' have cosine / correlation dissimilarities ~1e-6, which scipy's 1 - cos
  itself only resolves to ~1e-9 relative), and to the block path it replaces."""
  x, y = hard_case(case, 37)
  if case == "relu":
    corr = 1 - pdist(x, "correlation")
    assert 0.9 < corr.mean() < 0.95 and corr.std() < 0.03  # the regime it is meant to test
  for metric, comp in STREAMED_GRAM:
    want = rsatoolbox_value(x, y, metric, comp)
    got = measure(f"rsa-rdm={metric}-compare={comp}-score")(x, y)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-12, err_msg=f"{metric} {comp}")
    blocks = rsa.pair(*(rsa.prepare(v, metric=metric, compare=comp, path="blocks")
                        for v in (x, y)), metric=metric, compare=comp)
    np.testing.assert_allclose(got, float(blocks), rtol=1e-7, err_msg=f"{metric} {comp}")


def test_gram_form_of_a_representation_without_variation():
  """Identical rows: the RDM is 0, every comparator 0 (undefined; our convention), as on the
  block path, not the ratio of two rounding errors."""
  x = np.tile(np.random.default_rng(0).normal(size=(1, 5)) + 100.0, (20, 1))
  y = np.random.default_rng(1).normal(size=(20, 3))
  for metric, comp in STREAMED_GRAM:  # (an all-zero RDM has no cosine either)
    assert measure(f"rsa-rdm={metric}-compare={comp}-score")(x, y) == 0.0, (metric, comp)


@pytest.mark.parametrize("case, n, widths", [
    ("offset", 400, (64, 48)), ("relu", 400, (64, 48)), ("ties", 400, (64, 48)),
    ("relu", 60, (256, 200)),  # n < d: W's cancellation (module docstring)
])
def test_gram_form_in_float32_on_the_hard_cases(case, n, widths):
  """float32 features, Gram form, against rsatoolbox in float64 on the same (float32-rounded)
  features: within 1e-5 relative or 1e-6 absolute (values near 0). Printed (-s): the largest
  absolute errors of the Gram form and of the block path, on the same values."""
  x, y = (v.astype(np.float32) for v in hard_case(case, n, widths))
  errors = {"gram": 0.0, "blocks": 0.0}
  for metric, comp in STREAMED_GRAM:
    want = rsatoolbox_value(x, y, metric, comp)
    with jax.enable_x64(False):
      for path in errors:
        got = float(rsa.pair(*(rsa.prepare(v, metric=metric, compare=comp, path=path)
                               for v in (x, y)), metric=metric, compare=comp))
        errors[path] = max(errors[path], abs(got - want))
        if path == "gram":
          np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{metric} {comp}")
  print(f"{case} n={n} d={widths}: largest absolute error gram {errors['gram']:.1e}, "
        f"blocks {errors['blocks']:.1e}")


def test_gram_form_through_bootstrap_and_the_matrix():
  """Bootstrap replicates repeat rows (exact ties, zero dissimilarities): the generic path on
  the Gram form equals rsatoolbox on the resampled rows; the matrix of A with itself is
  mirrored and equals its pairs."""
  from repsim_jax.measures import bootstrap_replicates
  from repsim_jax.metrics import intervals
  a, b = hard_case("ties", 30, widths=(6, 3)), hard_case("relu", 30, widths=(4, 7))
  name = "rsa-rdm=correlation-compare=corr_cov-score"
  weights = intervals.bootstrap_weights(30, 2, seed=4)
  got = bootstrap_replicates(a, b, weights=weights, measure=name)
  for r, w in enumerate(weights):
    rows = np.repeat(np.arange(30), w)
    want = [[rsatoolbox_value(x[rows], y[rows], "correlation", "corr_cov") for y in b]
            for x in a]
    np.testing.assert_allclose(got[r], want, rtol=1e-9)
  m = measure("rsa-rdm=squared_euclidean-compare=pearson-score")
  both = similarity_matrix(a + b, measure=m.name)
  np.testing.assert_allclose(both, [[m(x, y) for y in a + b] for x in a + b], rtol=1e-12)
