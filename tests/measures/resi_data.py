"""Test data shared by the measure tests: related representations without ties, and tie data.

Tie data: rows of +-1 on four of eight coordinates, so every row has norm 2, every cosine is an
exact multiple of 1/4 and every squared distance an integer: many equal distances, exact
duplicate rows, and no rounding that could make a reference and the library disagree on order.
"""
from __future__ import annotations

import numpy as np


def related(n=150, seed=0):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, 5))
  x = z @ rng.normal(size=(5, 12)) + 0.5 * rng.normal(size=(n, 12))
  y = np.tanh(z @ rng.normal(size=(5, 9))) + 0.5 * rng.normal(size=(n, 9))
  return x.astype(np.float32), y.astype(np.float32)


def tied(n=60, seed=1):
  """x: rows of +-1 on four of eight coordinates; y: x with one sign flipped in half the rows and
  a fresh row in a fifth of them (still +-1 on four coordinates)."""
  rng = np.random.default_rng(seed)

  def draw():
    row = np.zeros(8, np.float32)
    row[rng.choice(8, 4, replace=False)] = rng.choice([-1.0, 1.0], 4)
    return row
  x = np.stack([draw() for _ in range(n)])
  y = x.copy()
  for row in y:
    if rng.random() < 0.5:
      row[rng.choice(np.flatnonzero(row))] *= -1
    if rng.random() < 0.2:
      row[:] = draw()
  return x, y
