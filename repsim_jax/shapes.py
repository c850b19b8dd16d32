"""Small helpers for array shapes that the models and the analyses share (numpy only)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def pair(value: int | Sequence[int], name: str = "value") -> tuple[int, int]:
  """(h, w) from one positive int or a pair of them (image, patch, grid and window sizes); the
  error names the argument."""
  if isinstance(value, (int, np.integer)):
    value = (int(value), int(value))
  value = tuple(int(v) for v in value)
  if len(value) != 2 or min(value) < 1:
    raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {value}")
  return value
