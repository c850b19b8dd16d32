"""Deterministic choice of N images by seed."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def sample_ids(ids: Sequence[str], n: int | None, *, seed: int) -> list[str]:
  """`n` distinct ids chosen uniformly by `seed`, returned in the source's order.

  The choice is the first `n` entries of one seeded permutation of the source, so samples of
  increasing n with the same seed are nested (the N = 1e4 images are among the N = 1e5), which is
  what convergence-in-N curves need. `n=None` takes every id.
  """
  total = len(ids)
  if n is None:
    return list(ids)
  if not 0 < n <= total:
    raise ValueError(f"sample_ids: n should be in [1, {total}] (the source's size), got {n}")
  order = np.random.default_rng(seed).permutation(total)[:n]
  return [ids[i] for i in np.sort(order)]
