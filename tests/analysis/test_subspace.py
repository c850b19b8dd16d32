"""Cross-encoder subspace analysis against numpy's SVD, the Procrustes and CKA kernels, and a
brute-force permutation loop; its figure."""
import os

import numpy as np
import pytest

import repsim_jax
from repsim_jax.analysis import subspace
from repsim_jax.metrics.procrustes import procrustes
from repsim_jax.plotting.subspace import plot_subspace_similarity


def _encoders(n=120, seed=0):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, 5)) * [3, 2, 1.5, 1, 0.5]
  return {"vit": z @ rng.normal(size=(5, 30)) + 0.3 * rng.normal(size=(n, 30)),
          "convnext": np.tanh(z @ rng.normal(size=(5, 20))) + 0.3 * rng.normal(size=(n, 20)),
          "noise": rng.normal(size=(n, 12))}


def test_principal_components_against_numpy_svd():
  x = _encoders()["vit"]
  pcs = subspace.principal_components(x, k=4)
  xc = x - x.mean(0)
  _, s, vt = np.linalg.svd(xc, full_matrices=False)
  signs = np.sign(np.sum(pcs["components"] * vt[:4], axis=1))
  np.testing.assert_allclose(pcs["components"], vt[:4] * signs[:, None], atol=1e-10)
  np.testing.assert_allclose(pcs["scores"], xc @ (vt[:4] * signs[:, None]).T, atol=1e-9)
  np.testing.assert_allclose(pcs["explained"], s[:4] ** 2 / np.sum(s ** 2), rtol=1e-10)
  with pytest.raises(ValueError, match=r"k=31: expected 1 <= k <= min\(N - 1, d\) = 30"):
    subspace.principal_components(x, k=31)


def test_scores_and_p_values_equal_a_brute_force_loop():
  reps = _encoders()
  out = repsim_jax.cross_encoder_subspace(reps, k=3, n_perm=25, seed=4)
  names = list(reps)
  scores = [subspace.principal_components(reps[m], 3)["scores"].astype(np.float32)
            for m in names]
  rng = np.random.default_rng(4)
  perms = [[rng.permutation(120) for _ in names] for _ in range(25)]
  measures = {"procrustes": lambda x, y: 1 - float(procrustes(x, y)) / 2,
              "cka": lambda x, y: repsim_jax.cka(x, y)}
  for key, fn in measures.items():
    obs = np.array([fn(scores[i], scores[j]) for i, j in out["pairs"]])
    null = np.array([[fn(scores[i][p[i]], scores[j][p[j]]) for i, j in out["pairs"]]
                     for p in perms])
    np.testing.assert_allclose(out[key][out["pairs"][:, 0], out["pairs"][:, 1]], obs, atol=2e-6)
    np.testing.assert_allclose(out[f"{key}_null"], null, atol=2e-6)
    p = (1 + np.sum(null >= obs, axis=0)) / 26
    np.testing.assert_array_equal(out[f"{key}_pairs"]["p_value"], p)
    median_null = np.median(null, axis=1)
    np.testing.assert_allclose(out[f"{key}_median"], np.median(obs), atol=2e-6)
    assert out[f"{key}_median_test"]["p_value"] == (
        1 + np.sum(median_null >= np.median(obs))) / 26
    # vit and convnext share a subspace; noise shares nothing with either.
    assert p[0] == 1 / 26 and p[1:].min() > 0.05
  np.testing.assert_allclose(np.diagonal(out["cka"]), 1.0)
  assert out["explained"].shape == (3, 3)


def test_figure(tmp_path):
  out = repsim_jax.cross_encoder_subspace(_encoders(n=60), k=2, n_perm=10, seed=0)
  paths = plot_subspace_similarity(out, str(tmp_path / "fig" / "subspace"))
  assert [os.path.basename(p) for p in paths] == ["subspace.png", "subspace.pdf"]
  assert all(os.path.getsize(p) > 1000 for p in paths)
  with pytest.raises(ValueError, match="at least 2 models"):
    repsim_jax.cross_encoder_subspace({"vit": _encoders()["vit"]})


def test_constant_model_and_few_permutations_are_loud():
  reps = _encoders(n=60)
  with pytest.raises(ValueError, match=r"n_perm=5: expected an integer >= 10"):
    repsim_jax.cross_encoder_subspace(reps, k=2, n_perm=5)
  reps["flat"] = np.full((60, 8), 2.5)
  with pytest.warns(UserWarning, match=r"constant or near-constant layers .*representations\['flat'\] "
                                       r"\(constant\); its principal components are arbitrary"):
    out = repsim_jax.cross_encoder_subspace(reps, k=2, n_perm=10)
  assert out["cka"][3, 0] == 0 and out["procrustes"][3, 0] == 0  # what the warning explains
