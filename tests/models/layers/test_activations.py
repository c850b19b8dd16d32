"""layers.activations against their closed forms and torch."""
from __future__ import annotations

import jax
import numpy as np
import pytest

from repsim_jax.models import layers

torch = pytest.importorskip("torch")


def test_gelu_exact_is_torchs():
  """activation("gelu") = x/2 (1 + erf(x/sqrt 2)) (closed form in float64) and torch's GELU."""
  import math
  x = np.linspace(-12, 12, 20001).astype(np.float32)
  got = np.asarray(jax.jit(layers.activation("gelu"))(x))
  exact = np.array([v / 2 * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
  assert np.abs(got - exact).max() <= 4 * np.finfo(np.float32).eps * np.abs(exact).max()
  theirs = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
  assert np.abs(got - theirs).max() <= 2 * np.finfo(np.float32).eps * np.abs(theirs).max()
