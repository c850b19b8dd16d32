"""Neighbourhood measures against numpy transcriptions of ReSi's and platonic-rep's code.

The transcriptions follow the references' loops (sets, argwhere, the LCS / Levenshtein dynamic
programmes) on a dense float64 distance matrix, with the conventions the module documents: self
excluded by index, ties to the lower index (a stable argsort). Tie data: rows of +-1 on four of
eight coordinates, so every row has norm 2 and every cosine is an exact multiple of 1/4 (many
equal distances, exact duplicates included, and no rounding to make the two sides disagree).
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from repsim_jax.measures import measure, similarity_matrix
from repsim_jax.measures import neighbourhood
import knn_measure_reference
from resi_data import related, tied

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOL = 1e-5
NAMES = ["jaccard-k=10-metric=cosine-score", "rank-similarity-k=10-metric=cosine-score",
         "second-order-cosine-k=10-metric=cosine-score", "cycle-knn-k=10-metric=cosine-score",
         "lcs-knn-k=10-metric=cosine-score", "edit-distance-knn-k=10-metric=cosine-score"]


# --- numpy transcriptions ------------------------------------------------------------------------

def np_distances(x, metric):
  x = np.asarray(x, np.float64)
  if metric == "euclidean":
    return np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1), 0))
  u = x / np.linalg.norm(x, axis=1, keepdims=True)
  return 1 - u @ u.T


def np_knn(x, k, metric="cosine"):
  d = np_distances(x, metric)
  np.fill_diagonal(d, np.inf)
  return np.argsort(d, axis=1, kind="stable")[:, :k]


def reference(name, x, y, k=10, metric="cosine"):
  na, nb = np_knn(x, k, metric), np_knn(y, k, metric)
  return knn_measure_reference.score(name, na, nb, np_distances(x, metric),
                                     np_distances(y, metric))


# --- tests ---------------------------------------------------------------------------------------

def test_tie_data_has_ties():
  x, y = tied()
  for rep in (x, y):
    d = np_distances(rep, "cosine")
    np.fill_diagonal(d, np.inf)
    kth = np.sort(d, axis=1)[:, 9:11]
    assert np.mean(kth[:, 0] == kth[:, 1]) > 0.5  # the k-th neighbour is tied on most rows
    assert np.allclose(np.linalg.norm(rep, axis=1), 2)


@pytest.mark.parametrize("data", ["related", "tied"])
@pytest.mark.parametrize("name", NAMES)
def test_matches_transcription(name, data):
  x, y = related() if data == "related" else tied()
  m = measure(name)
  got, want = m(x, y), reference(name, x, y)
  assert 0.01 < want < 1  # neither trivial nor perfect
  np.testing.assert_allclose(got, want, rtol=TOL)


@pytest.mark.parametrize("name", ["jaccard-k=10-metric=cosine-score",
                                  "second-order-cosine-k=10-metric=cosine-score"])
def test_options_k_and_euclidean(name):
  x, y = related(seed=3)
  got = measure(name)(x, y, k=5, metric="euclidean")
  np.testing.assert_allclose(got, reference(name, x, y, k=5, metric="euclidean"), rtol=TOL)


def test_identical_and_asymmetric_cycle():
  x, y = related(seed=4)
  for name in NAMES:
    assert measure(name)(x, x) == pytest.approx(1.0, abs=1e-6)
  cyc = measure("cycle-knn-k=10-metric=cosine-score")
  assert not cyc.properties.symmetric
  np.testing.assert_allclose(cyc(y, x), reference(NAMES[3], y, x), rtol=TOL)


def test_similarity_matrix_and_permutation_null():
  x, y = related(seed=5)
  layers = [x, y, x[:, :6]]
  perms = np.stack([np.random.default_rng(s).permutation(len(x)) for s in range(3)])
  for name in ("rank-similarity-k=10-metric=cosine-score", "cycle-knn-k=10-metric=cosine-score"):
    m = measure(name)
    mat = similarity_matrix(layers, measure=name)
    want = [[reference(name, a, b) for b in layers] for a in layers]
    np.testing.assert_allclose(mat, want, rtol=TOL)
    observed, null = m.permutation_null(layers, layers, perms, **m.options)
    np.testing.assert_allclose(observed, mat, rtol=TOL)
    generic = [[[m(a, b[p]) for b in layers] for a in layers] for p in perms]
    np.testing.assert_allclose(null, generic, rtol=TOL)
    assert null.mean() < observed.mean() - 0.1  # shuffling the images destroys the agreement


_SCRIPT = """
import json, sys
import jax
import numpy as np
sys.path.insert(0, {tests!r})
from resi_data import related, tied
import jax
from repsim_jax.measures import measure
assert jax.device_count() == 4
out = [[measure(n)(*data()) for n in {names!r}] for data in (related, tied)]
print(json.dumps(out))
"""


def test_four_devices_identical_to_one():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu",
             # as this process: tests/measures/conftest.py turns x64 on for every test here
             JAX_ENABLE_X64=str(int(jax.config.jax_enable_x64)),
             PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
  script = _SCRIPT.format(tests=str(ROOT / "tests/measures"), names=NAMES)
  proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                        timeout=300, check=True)
  four = json.loads(proc.stdout.strip().splitlines()[-1])
  one = [[measure(n)(*data()) for n in NAMES] for data in (related, tied)]
  assert four == one


def test_errors():
  a = np.zeros((20, 10), np.int32)
  with pytest.raises(ValueError, match="same"):
    neighbourhood.jaccard(a, a[:, :5])
  with pytest.raises(ValueError, match="unknown option"):
    measure(NAMES[0])(*related(), kk=3)
