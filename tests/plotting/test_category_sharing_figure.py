"""The neighbour-sharing figure stays legible at page width: five panels wrap into rows of two
instead of one strip whose legends and axes shrink below reading size."""
from __future__ import annotations

import numpy as np
from matplotlib import image

from repsim_jax.plotting.category_sharing import plot_neighbour_sharing


def test_five_panels_wrap_two_a_row(tmp_path):
  rng = np.random.default_rng(0)
  sharing = {"vit": rng.uniform(size=5), "igpt": rng.uniform(size=7)}
  panels = {name: (sharing, 0.125) for name in ("hue", "warmth", "texture", "clutter", "all")}
  png = [p for p in plot_neighbour_sharing(panels, str(tmp_path / "f"), k=10) if p.endswith("png")]
  height, width = image.imread(png[0]).shape[:2]
  # three rows of two 4-inch panels: taller than wide (the strip was 21 x 3.4 inches)
  assert width / height < 1.0, (width, height)
  one = plot_neighbour_sharing({"hue": (sharing, 0.125)}, str(tmp_path / "g"), k=10)
  height, width = image.imread([p for p in one if p.endswith("png")][0]).shape[:2]
  assert 1.0 < width / height < 1.6, (width, height)
