"""ReSi's and platonic-rep's neighbourhood measures transcribed to numpy from their code, on
neighbour lists [n, k] (nearest first) and dense distance matrices [n, n]: the tests compute the
lists with a stable argsort (ties to the lower index), benchmarks/bench_neighbourhood_measures.py
with the references' own routes (sklearn, torch).

  ReSi: github.com/mklabunde/resi repsim/measures/nearest_neighbor.py
  platonic-rep: github.com/minyoungg/platonic-rep metrics.py (LCS divided by k, as ours)
"""
from __future__ import annotations

import numpy as np


def np_jaccard(na, nb):
  return np.mean([len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(na, nb)])


def np_rank_similarity(na, nb):
  scores = []
  for a, b in zip(na, nb):
    joint = list(set(a) & set(b))
    if not joint:
      scores.append(0.0)
      continue
    norm = sum(1 / m for m in range(1, len(joint) + 1))
    s = 0.0
    for j in joint:
      ra, rb = np.argwhere(a == j)[0][0] + 1, np.argwhere(b == j)[0][0] + 1
      s += 2 / ((1 + abs(ra - rb)) * (ra + rb))
    scores.append(s / norm)
  return np.mean(scores)


def np_second_order_cosine(da, db, na, nb):
  out = []
  for i, (a, b) in enumerate(zip(na, nb)):
    u = list(set(a) | set(b))
    va, vb = da[i, u], db[i, u]
    out.append(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))
  return np.mean(out)


def np_cycle(na, nb):
  n = len(na)
  return np.mean((na[nb] == np.arange(n)[:, None, None]).reshape(n, -1).max(1))


def lcs_length(x, y):
  dp = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
  for i in range(1, len(x) + 1):
    for j in range(1, len(y) + 1):
      dp[i][j] = dp[i - 1][j - 1] + 1 if x[i - 1] == y[j - 1] else max(dp[i - 1][j], dp[i][j - 1])
  return dp[-1][-1]


def levenshtein(x, y):
  prev = list(range(len(y) + 1))
  for i in range(1, len(x) + 1):
    cur = [i] + [0] * len(y)
    for j in range(1, len(y) + 1):
      cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] != y[j - 1]))
    prev = cur
  return prev[-1]


def score(name: str, na, nb, da=None, db=None) -> float:
  """The measure `name` (a registered neighbourhood measure's name) from the lists of both
  representations (and their distance matrices, for second-order cosine)."""
  k = na.shape[1]
  if name.startswith("jaccard"):
    return np_jaccard(na, nb)
  if name.startswith("rank"):
    return np_rank_similarity(na, nb)
  if name.startswith("second"):
    return np_second_order_cosine(da, db, na, nb)
  if name.startswith("cycle"):
    return np_cycle(na, nb)
  if name.startswith("lcs"):
    return np.mean([lcs_length(a, b) for a, b in zip(na, nb)]) / k
  return 1 - np.mean([levenshtein(a, b) for a, b in zip(na, nb)]) / k
