"""One colour per model in every figure of a report.

A report's figures share one `Palette` (`pipelines.run.Run.colours`, built from the config's
models): each model gets a colour of a qualitative palette in the order the report names its
models, so that "orange" is the same model in every figure, instead of matplotlib's default cycle
restarting per figure (where orange was whichever series came second).

- Series that are variants of one model ("vit CLS token", "vit mean of all tokens", "vit tokens
  (mlp)") are named after it: they share its colour and differ by line style and marker
  (`Palette.styles`).
- Ordered series within one model (its early / middle / late layers, its blocks, its layers
  against another model) are shades of its colour, light (first) to dark (last)
  (`Palette.shades`).
- What is not a model (a random baseline, the measures of the subspace figure) is drawn in greys
  (`NEUTRAL`), a colour no model gets.

A figure function called without a palette colours its own series in order, as before.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from matplotlib.colors import to_hex, to_rgb

# tab10 without its grey, which `NEUTRAL` keeps for what is not a model
QUALITATIVE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#bcbd22", "#17becf")
NEUTRAL = ("#222222", "#6e6e6e", "#a8a8a8")
# (line style, marker) of the first, second, ... series of one model within a figure
VARIANTS = (("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1, 1, 1)), "v"),
            ((0, (1, 3)), "P"))
MARKERS = tuple(marker for _, marker in VARIANTS)  # of ordered series drawn in shades


class Palette:
  """Colours of the models of one report (see the module docstring).

  palette = Palette(["vit", "resnet"])
  palette.colour("vit")                  # "#1f77b4"
  palette.colour("vit CLS token (mlp)")  # "#1f77b4": a series named after its model
  palette.styles(["vit tokens", "vit CLS token", "resnet GAP"])   # keyword arguments of plot
  palette.shades("vit", 3)               # early / middle / late: light to dark
  """

  def __init__(self, models: Iterable[str] = ()):
    self.models = tuple(dict.fromkeys(str(m) for m in models))

  def __repr__(self) -> str:
    return f"Palette({list(self.models)!r})"

  def model_of(self, series: str) -> str | None:
    """The model a series is named after: the series itself, or the longest model name it
    starts with followed by a space, colon or bracket ("vit_l tokens" -> "vit_l", not "vit");
    None for a series of no known model."""
    series = str(series)
    if series in self.models:
      return series
    owners = [m for m in self.models
              if series.startswith(m) and series[len(m):len(m) + 1] in (" ", ":", "(")]
    return max(owners, key=len) if owners else None

  def covering(self, series: Iterable[str]) -> "Palette":
    """This palette, with every series of no known model appended as a model of its own (after
    the report's models, so that it takes no model's colour)."""
    extra = [s for s in series if self.model_of(s) is None]
    return Palette(self.models + tuple(extra)) if extra else self

  def colour(self, series: str) -> str:
    """The colour of the series' model (KeyError for a series of no known model: use
    `covering` first)."""
    model = self.model_of(series)
    if model is None:
      raise KeyError(f"series {series!r} is named after none of the models {list(self.models)}")
    return QUALITATIVE[self.models.index(model) % len(QUALITATIVE)]

  def styles(self, series: Sequence[str]) -> dict[str, dict]:
    """{series: {"color", "linestyle", "marker"}} for one figure: its model's colour, and the
    i-th series of one model in `series` gets the i-th (line style, marker) of `VARIANTS`."""
    palette = self.covering(series)
    count: dict[str, int] = {}
    out = {}
    for s in series:
      model = palette.model_of(s)
      i = count.get(model, 0)
      count[model] = i + 1
      linestyle, marker = VARIANTS[i % len(VARIANTS)]
      out[s] = dict(color=palette.colour(s), linestyle=linestyle, marker=marker)
    return out

  def shades(self, model: str, n: int) -> list[str]:
    """n shades of the model's colour in order, light to dark: mixed with white (up to 45 %)
    for the first, with black (up to 40 %) for the last; one series: the colour itself."""
    base = np.array(to_rgb(self.covering([model]).colour(model)))
    if n == 1:
      return [to_hex(base)]
    out = []
    for t in np.linspace(-0.45, 0.4, n):  # < 0: towards white, > 0: towards black
      rgb = base + (-t) * (1 - base) if t < 0 else base * (1 - t)
      out.append(to_hex(np.clip(rgb, 0, 1)))
    return out


def series_styles(series: Sequence[str], palette: Palette | None = None) -> dict[str, dict]:
  """`Palette.styles` of the report's palette, or (none given) of the series in order."""
  return (palette or Palette()).styles(list(series))
