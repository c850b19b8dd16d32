"""The questions the shapes world was built for, as checks on the demo's results."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


def adjacent_vs_distant(matrix: np.ndarray) -> tuple[float, float]:
  """Mean II between adjacent layers (|i - j| = 1) and between distant ones (|i - j| >= L / 2),
  both directions, of one model's [L, L] self-II matrix."""
  m = np.asarray(matrix)
  gap = np.abs(np.subtract.outer(np.arange(len(m)), np.arange(len(m))))
  return float(m[gap == 1].mean()), float(m[gap >= max(2, len(m) // 2)].mean())


def findings(results: dict[str, Any], classifiers: list[str], next_pixel: list[str],
             cfg) -> list[dict[str, Any]]:
  """The world's questions as checks: [{"statement", "measured", "holds"}], from `results`
  holding "shape_probe", "colour_sharing" ({model: per layer}) and "imbalance" ({(A, B): [L, L]}).

  "First" is layer 0, the embedding / stem output that enters the first block (what the pixels
  give after one linear map), "last" the last block. (In the tiny ViT, global attention makes
  shape readable already after block 1; the per-layer tables in the report show every layer.)
  """
  out = []
  for m in classifiers:
    acc = results["shape_probe"][m]
    out.append({"statement": f"{m}: shape-probe accuracy rises from the first layer to the last "
                             f"block by more than {cfg.min_probe_gain:.0%}",
                "measured": f"{acc[0]:.1%} → {acc[-1]:.1%}",
                "holds": float(acc[-1] - acc[0]) > cfg.min_probe_gain})
  for m in classifiers:
    share = results["colour_sharing"][m]
    out.append({"statement": f"{m}: neighbours sharing the image's colour fall from the first "
                             f"layer to the last block by more than {cfg.min_colour_drop:.0%}",
                "measured": f"{share[0]:.1%} → {share[-1]:.1%}",
                "holds": float(share[0] - share[-1]) > cfg.min_colour_drop})
  for m in next_pixel:
    share = results["colour_sharing"][m]
    out.append({"statement": f"{m} (next pixel): colour-sharing neighbours stay high (the last "
                             f"block keeps {cfg.min_colour_kept_next_pixel:.0%} of the first "
                             f"layer's share, and above {cfg.min_colour_next_pixel:.0%})",
                "measured": f"{share[0]:.1%} → {share[-1]:.1%}",
                "holds": (float(share[-1]) >= cfg.min_colour_kept_next_pixel * float(share[0])
                          and float(share[-1]) > cfg.min_colour_next_pixel)})
  for m in classifiers + next_pixel:
    adjacent, distant = adjacent_vs_distant(results["imbalance"][(m, m)])
    out.append({"statement": f"{m}: adjacent-layer II is below {cfg.max_adjacent_ratio:.0%} of "
                             f"distant-layer II",
                "measured": f"{adjacent:.3f} vs {distant:.3f}",
                "holds": adjacent < cfg.max_adjacent_ratio * distant})
  return out


def table_per_layer(values: dict[str, np.ndarray], fmt: Callable[[float], str], *,
                    what: str = "model") -> tuple[list[str], list[list[str]]]:
  """A row x layer table whose first header cell `what` says what the cells count; layer 0 is
  the embedding / stem output, the last the last block."""
  depth = max(len(v) for v in values.values())
  header = [what] + [f"layer {i}" for i in range(depth)]
  rows = [[m] + [fmt(x) for x in v] + [""] * (depth - len(v)) for m, v in values.items()]
  return header, rows
