"""The questions the shapes world was built for, as checks on the demo's results."""
from __future__ import annotations

import statistics
from typing import Any, Callable

import numpy as np


CONFIDENCE = 0.95
_Z = statistics.NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)


def accuracy_gain_interval(first: float, last: float, n_test: int) -> tuple[float, float]:
  """95 % interval of last - first, two accuracies on `n_test` test images each (normal
  approximation of the binomial; the two are treated as independent, which is conservative for
  the positively correlated errors of two layers' probes on the same images)."""
  se = np.sqrt((first * (1 - first) + last * (1 - last)) / n_test)
  gain = last - first
  return float(gain - _Z * se), float(gain + _Z * se)


def mean_interval(values: np.ndarray) -> tuple[float, float]:
  """95 % interval of the mean of per-image values (normal approximation, n in the hundreds)."""
  values = np.asarray(values, np.float64)
  half = _Z * values.std(ddof=1) / np.sqrt(len(values))
  return float(values.mean() - half), float(values.mean() + half)


def points(low: float, high: float) -> str:
  """An interval of a difference of fractions in percentage points: "[52.1, 67.9] points"."""
  return f"[{100 * low:.1f}, {100 * high:.1f}] points"


def adjacent_vs_distant(matrix: np.ndarray) -> tuple[float, float]:
  """Mean II between adjacent layers (|i - j| = 1) and between distant ones (|i - j| >= L / 2),
  both directions, of one model's [L, L] self-II matrix."""
  m = np.asarray(matrix)
  gap = np.abs(np.subtract.outer(np.arange(len(m)), np.arange(len(m))))
  return float(m[gap == 1].mean()), float(m[gap >= max(2, len(m) // 2)].mean())


def findings(results: dict[str, Any], classifiers: list[str], next_pixel: list[str], cfg, *,
             n_images: int,
             adjacency_interval: Callable[[str], tuple[float, float]]) -> list[dict[str, Any]]:
  """The world's questions as checks: [{"statement", "measured", "holds"}], from `results`
  holding "shape_probe", "colour_sharing" ({model: per layer}), "colour_sharing_per_image"
  ({model: [L, N]}) and "imbalance" ({(A, B): [L, L]}).

  A finding holds only when its effect clears its margin with the whole 95 % interval, not just
  its point estimate: the probe gain (binomial, `accuracy_gain_interval`, on the probes' test
  images), the colour-sharing changes (per-image differences, `mean_interval`), and adjacent -
  ratio x distant II (an image bootstrap, `adjacency_interval(model)`: (low, high), computed
  only where the point estimate holds).

  "First" is layer 0, the embedding / stem output that enters the first block (what the pixels
  give after one linear map), "last" the last block. (In the tiny ViT, global attention makes
  shape readable already after block 1; the per-layer tables in the report show every layer.)
  """
  n_test = max(1, int(round(cfg.probe_test_fraction * n_images)))
  out = []
  for m in classifiers:
    acc = results["shape_probe"][m]
    low, high = accuracy_gain_interval(float(acc[0]), float(acc[-1]), n_test)
    out.append({"statement": f"{m}: shape-probe accuracy rises from the first layer to the last "
                             f"block by more than {cfg.min_probe_gain:.0%}",
                "measured": f"{acc[0]:.1%} → {acc[-1]:.1%}, gain {points(low, high)}",
                "holds": low > cfg.min_probe_gain})
  per_image = results["colour_sharing_per_image"]
  for m in classifiers:
    share = results["colour_sharing"][m]
    low, high = mean_interval(per_image[m][0] - per_image[m][-1])
    out.append({"statement": f"{m}: neighbours sharing the image's colour fall from the first "
                             f"layer to the last block by more than {cfg.min_colour_drop:.0%}",
                "measured": f"{share[0]:.1%} → {share[-1]:.1%}, drop {points(low, high)}",
                "holds": low > cfg.min_colour_drop})
  for m in next_pixel:
    share = results["colour_sharing"][m]
    kept = mean_interval(per_image[m][-1] - cfg.min_colour_kept_next_pixel * per_image[m][0])
    last = mean_interval(per_image[m][-1])
    out.append({"statement": f"{m} (next pixel): colour-sharing neighbours stay high (the last "
                             f"block keeps {cfg.min_colour_kept_next_pixel:.0%} of the first "
                             f"layer's share, and above {cfg.min_colour_next_pixel:.0%})",
                "measured": f"{share[0]:.1%} → {share[-1]:.1%}, last block "
                            f"{points(*last)}",
                "holds": kept[0] >= 0 and last[0] > cfg.min_colour_next_pixel})
  for m in classifiers + next_pixel:
    adjacent, distant = adjacent_vs_distant(results["imbalance"][(m, m)])
    ratio = cfg.max_adjacent_ratio
    holds, measured = False, f"{adjacent:.3f} vs {distant:.3f}"
    if adjacent < ratio * distant:  # the interval only where the point estimate holds
      low, high = adjacency_interval(m)
      holds = high < 0
      measured += (f"; adjacent - {ratio:g} x distant: {adjacent - ratio * distant:.4f} "
                   f"[{low:.4f}, {high:.4f}]")
    out.append({"statement": f"{m}: adjacent-layer II is below {ratio:.0%} of distant-layer II",
                "measured": measured, "holds": holds})
  return out


def table_per_layer(values: dict[str, np.ndarray], fmt: Callable[[float], str], *,
                    what: str = "model") -> tuple[list[str], list[list[str]]]:
  """A row x layer table whose first header cell `what` says what the cells count; layer 0 is
  the embedding / stem output, the last the last block."""
  depth = max(len(v) for v in values.values())
  header = [what] + [f"layer {i}" for i in range(depth)]
  rows = [[m] + [fmt(x) for x in v] + [""] * (depth - len(v)) for m, v in values.items()]
  return header, rows
