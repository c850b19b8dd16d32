"""The measures are compared with their references in float64 (x64 on for every test here; a
test that checks the float32 path switches it off inside)."""
import jax
import pytest


@pytest.fixture(autouse=True)
def x64():
  with jax.enable_x64(True):
    yield
