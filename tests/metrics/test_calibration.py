"""Permutation-calibrated scores against a brute-force loop: permute B's rows with the same seeds,
recompute the plain matrices, count; and the new kernels on 8 devices against 1."""
import textwrap

import numpy as np
import pytest

import repsim_jax
from repsim_jax.metrics import calibration, cka_weighted, imbalance_null, knn_alignment
from repsim_jax.metrics import imbalance_weighted, intervals


def _models(seed, n=80):
  """Two 'models' sharing a latent: related layers, and one layer of B unrelated to A."""
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, 4))
  a = [(z @ rng.normal(size=(4, d)) + s * rng.normal(size=(n, d))).astype(np.float32)
       for d, s in ((5, 0.3), (8, 1.0))]
  b = [(z[:, :2] @ rng.normal(size=(2, d)) + s * rng.normal(size=(n, d))).astype(np.float32)
       for d, s in ((3, 0.2), (4, 0.5))]
  return a, [b[0], rng.normal(size=(n, 6)).astype(np.float32), b[1]]  # B[1]: unrelated


def brute_force(measure, a, b, n_perm, seed, **kwargs):
  """The null as a plain loop: np.random.default_rng(seed).permutation per draw, B's rows
  permuted, the plain matrix recomputed; add-one p-values by counting."""
  fns = {
      "imbalance": lambda x, y: repsim_jax.information_imbalance_matrix(x, y, **kwargs),
      "cka": lambda x, y: repsim_jax.cka_matrix(x, y, **kwargs),
      "mutual_knn": lambda x, y: knn_alignment.mutual_knn_matrix(x, y, **kwargs),
      "cknna": lambda x, y: knn_alignment.cknna_matrix(x, y, **kwargs),
  }
  fn = fns[measure]
  observed = fn(a, b)
  rng = np.random.default_rng(seed)
  null = []
  for _ in range(n_perm):
    perm = rng.permutation(len(a[0]))
    null.append(fn(a, [y[perm] for y in b]))
  null = np.array(null)
  sign = -1 if measure == "imbalance" else 1
  s, z = sign * observed, sign * null
  p = np.array([[(1 + sum(z[q, i, j] >= s[i, j] for q in range(n_perm))) / (1 + n_perm)
                 for j in range(s.shape[1])] for i in range(s.shape[0])])
  best = z.reshape(n_perm, -1).max(axis=1)
  p_max = np.array([[(1 + sum(best[q] >= s[i, j] for q in range(n_perm))) / (1 + n_perm)
                     for j in range(s.shape[1])] for i in range(s.shape[0])])
  return observed, null, p, p_max, sign * best


CASES = [
    ("imbalance", dict(k=1)),
    ("imbalance", dict(k=3, ties="average", metric="cosine")),
    ("cka", dict(debiased=True)),
    ("cka", dict(debiased=False)),
    ("mutual_knn", dict(k=5)),
    ("cknna", dict(k=5)),
]


@pytest.mark.parametrize("measure, kwargs", CASES)
def test_p_values_equal_a_brute_force_permutation_loop(measure, kwargs):
  a, b = _models(0)
  out = repsim_jax.permutation_test(a, b, measure=measure, n_perm=30, seed=5, **kwargs)
  observed, null, p, p_max, extreme = brute_force(measure, a, b, 30, 5, **kwargs)
  exact = measure in ("imbalance", "mutual_knn")  # integer counts: the same bits
  tol = dict(rtol=0, atol=0) if exact else dict(rtol=0, atol=1e-6)
  np.testing.assert_allclose(out["observed"], observed, **tol)
  np.testing.assert_allclose(out["null"], null, **tol)
  np.testing.assert_array_equal(out["p_value"], p)
  np.testing.assert_array_equal(out["p_value_max"], p_max)
  np.testing.assert_allclose(out["null_extreme"], extreme, **tol)
  assert out["p_value"].min() == 1 / 31  # the related pairs beat every permutation
  assert out["p_value"].max() > 0.1  # the weakly related ones do not
  assert np.all(out["p_value_max"] >= out["p_value"])  # the max's null is harder to beat


def test_calibrate_formulas():
  observed = np.array([[0.9, 0.3], [0.5, 0.1]])
  null = np.stack([np.full((2, 2), v) for v in (0.0, 0.2, 0.4, 0.6)])
  null[1, 1, 1] = 0.95  # one permutation reaches 0.95 somewhere
  out = calibration.calibrate(observed, null, alpha=0.25)
  np.testing.assert_allclose(out["p_value"], [[1 / 5, 3 / 5], [2 / 5, 4 / 5]])
  np.testing.assert_allclose(out["null_extreme"], [0.0, 0.95, 0.4, 0.6])
  np.testing.assert_allclose(out["p_value_max"], [[2 / 5, 4 / 5], [3 / 5, 4 / 5]])
  # Gröger et al.'s critical value: the ceil(0.75 * 5) = 4th smallest of {observed, null}
  # (it was np.quantile(null, 0.75), the null alone, before the protocol).
  crit = np.array([[0.6, 0.4], [0.5, 0.6]])
  np.testing.assert_allclose(out["critical"], crit)
  np.testing.assert_allclose(out["calibrated"],
                             np.clip((observed - crit) / (1 - crit), 0, 1))
  assert out["critical_max"] == 0.9  # 4th smallest of {0.9 observed max, 0, 0.95, 0.4, 0.6}
  np.testing.assert_allclose(out["calibrated_max"], [[0, 0], [0, 0]])
  assert out["calibrated_extreme"] == 0.0
  assert out["p_extreme"] == 2 / 5
  # Information imbalance: lower is more similar, the perfect value is 0.
  ii = calibration.calibrate(1 - observed, 1 - null, lower_is_similar=True, alpha=0.25)
  np.testing.assert_allclose(ii["p_value"], out["p_value"])
  np.testing.assert_allclose(ii["critical"], 1 - crit)
  np.testing.assert_allclose(ii["calibrated"], np.clip(1 - (1 - observed) / (1 - crit), 0, 1))
  np.testing.assert_allclose(ii["null_extreme"], 1 - out["null_extreme"])
  with pytest.raises(ValueError, match=r"null: expected \[P, 2, 2\]"):
    calibration.calibrate(observed, null[:, 0])


def test_permutations_and_bad_input():
  rng = np.random.default_rng(3)
  np.testing.assert_array_equal(calibration.permutations(10, 2, 3),
                                [rng.permutation(10), rng.permutation(10)])
  a, b = _models(1, n=20)
  with pytest.raises(ValueError, match=r"perms: expected permutations of range\(20\)"):
    imbalance_null.imbalance_permutation_null(a, b, np.zeros((2, 20), int))
  with pytest.raises(ValueError, match="measure must be one of"):
    repsim_jax.permutation_test(a, b, measure="cca")


_DEVICE_SCRIPT = textwrap.dedent("""
    import json, jax
    from test_calibration import _models
    import repsim_jax
    from repsim_jax.metrics import calibration, cka_weighted, imbalance_null, imbalance_weighted
    from repsim_jax.metrics import intervals
    assert jax.device_count() == 8, jax.devices()
    a, b = _models(2, n=101)
    perms = calibration.permutations(101, 6, 0)
    w = intervals.bootstrap_weights(101, 5, 0)
    print(json.dumps({
        "acevedo": repsim_jax.information_imbalance_matrix(a, b, convention="acevedo",
                                                          block_size=8).tolist(),
        "null": imbalance_null.imbalance_permutation_null(a, b, perms, k=2,
                                                          block_size=8)[1].tolist(),
        "weighted": imbalance_weighted.weighted_imbalance(a, b, w, k=2, block_size=8).tolist(),
        "cka": cka_weighted.weighted_cka(a, b, w, block_size=8).tolist(),
    }))
""")


def test_eight_devices_equal_one_device(on_eight_devices):
  eight = on_eight_devices(_DEVICE_SCRIPT)
  a, b = _models(2, n=101)
  perms = calibration.permutations(101, 6, 0)
  w = intervals.bootstrap_weights(101, 5, 0)
  # Integer rank sums: bit-identical. CKA sums floats over device-dependent blocks: rounding.
  np.testing.assert_array_equal(
      eight["acevedo"], repsim_jax.information_imbalance_matrix(a, b, convention="acevedo"))
  np.testing.assert_array_equal(
      eight["null"], imbalance_null.imbalance_permutation_null(a, b, perms, k=2)[1])
  np.testing.assert_array_equal(eight["weighted"],
                                imbalance_weighted.weighted_imbalance(a, b, w, k=2))
  np.testing.assert_allclose(eight["cka"], cka_weighted.weighted_cka(a, b, w), atol=1e-6)


def test_nan_null_few_permutations_and_degenerate_layers_are_loud():
  import warnings
  observed = np.array([0.5, 0.2])
  null = np.random.default_rng(0).random((12, 2))
  null[3, 1] = np.nan
  with pytest.raises(ValueError, match=r"null: 1 NaN or infinite values, in permutations \[3\] "
                                       r"of 12"):
    calibration.calibrate(observed, null)
  with pytest.raises(ValueError, match=r"observed: 1 NaN"):
    calibration.calibrate(np.array([np.nan, 0.2]), np.zeros((12, 2)))
  a, b = _models(3, n=40)
  for n_perm in (1, 9):
    with pytest.raises(ValueError, match=rf"n_perm={n_perm}: expected an integer >= 10 \(the "
                                         r"smallest p-value of P permutations is 1 / \(P \+ 1\)\)"):
      repsim_jax.permutation_test(a, b, n_perm=n_perm)
  dup = [x.copy() for x in a]
  dup[0][5] = dup[0][6]
  flat = np.ones((40, 3), np.float32)
  for measure in ("imbalance", "cka", "mutual_knn"):
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      repsim_jax.permutation_test(dup, b + [flat], measure=measure, n_perm=10)
    said = [str(w.message) for w in caught]
    duplicates = [m for m in said if m.startswith("exact duplicate points")]
    constant = [m for m in said if m.startswith("constant or near-constant layers")]
    if measure == "cka":  # repeated rows are ordinary samples for CKA
      assert duplicates == []
    else:
      # the constant layer's 40 rows are all duplicates too: one warning lists both layers
      assert duplicates == ["exact duplicate points: 2-40 of 40 in 2 of 6 layers (layers_a[0]: 2, "
                            "layers_b[3]: 40); their distances tie (see the ties option)"], said
    assert len(constant) == 1 and "layers_b[3] (constant)" in constant[0], said
