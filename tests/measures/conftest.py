"""The measures are compared with their references in float64 (x64 on for every test here; a
test that checks the float32 path switches it off inside)."""
import jax
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def x64():
  with jax.enable_x64(True):
    yield


def transforms(d: int, seed: int = 5) -> dict:
  """One map per invariance name (protocol.INVARIANCES) on [n, d] arrays, for checking that a
  measure's declared invariances hold."""
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(d, d)))
  a = rng.normal(size=(d, d))
  perm = rng.permutation(d)
  return {"orthogonal": lambda v: v @ q, "isotropic_scaling": lambda v: 2.5 * v,
          "translation": lambda v: v + 4.0, "permutation": lambda v: v[:, perm],
          "invertible_linear": lambda v: v @ a, "affine": lambda v: 0.5 * v @ q + 1.0}


@pytest.fixture
def invariance_maps():
  return transforms
