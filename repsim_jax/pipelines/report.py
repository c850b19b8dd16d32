"""One report per run: a self-contained report.html and a summary.md, from the same sections.

  report = Report("Mahaut & Baroni (2026) reproduction")
  s = report.section("Information imbalance (Figs. 1, 10)")
  s.note("N = 10000 images, k = 1, euclidean distance")
  s.row("largest II between two layers of one model", "iGPT: all ≤ 0.15", "igpt: 0.131")
  s.table(["pair", "early", "middle", "late"], rows)
  s.figure("Fig. 1: ...", lambda: plot_imbalance_grid(matrices, path, ...))
  report.write(workdir)   # {"html": <workdir>/report.html, "markdown": <workdir>/summary.md}

A section shows its notes, its headline rows (statement | paper | ours: our number next to what
the paper states), its tables, then its figures. Figures are given as callables that draw them
and return their files (PNG + PDF): they run only where the report draws (`draw=True`, process 0
of a multi-host run; `pipelines.run.Run` decides), once. report.html embeds every PNG (base64),
so the page can be mailed or opened anywhere; it also links the PNG / PDF files, which
summary.md shows by relative path.
"""
from __future__ import annotations

import base64
import dataclasses
import html
import os
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from repsim_jax.metrics.intervals import format_interval

_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; display: block;
  overflow-x: auto; max-width: 100%; } td, th { border: 1px solid #ccc;
padding: 4px 8px; text-align: left; vertical-align: top; } th { background: #f0f0f0; }
.yes { color: #060; font-weight: bold; } .no { color: #a00; font-weight: bold; }
figure { display: inline-table; margin: 0.5em; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { display: table-caption; caption-side: bottom; font-size: 0.9em; }
.note { color: #555; }
"""

HEADLINE = ("statement", "paper", "ours")


@dataclasses.dataclass
class Section:
  """One titled part of a report (see the module docstring)."""
  title: str
  draw: bool = True
  notes: list[str] = dataclasses.field(default_factory=list)
  rows: list[tuple[str, str, str]] = dataclasses.field(default_factory=list)
  tables: list[tuple[list[str], list[list[Any]]]] = dataclasses.field(default_factory=list)
  figures: list[tuple[str, list[str]]] = dataclasses.field(default_factory=list)

  def note(self, text: str) -> None:
    self.notes.append(str(text))

  def row(self, statement: str, paper: str, ours: str) -> None:
    """A headline row: what is measured, what the paper states ("—" where it states nothing),
    our number."""
    self.rows.append((str(statement), str(paper), str(ours)))

  def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    self.tables.append((list(header), [list(r) for r in rows]))

  def figure(self, caption: str, draw: Callable[[], Sequence[str]]) -> list[str]:
    """Draws the figure where the report draws (`draw()` returns its files) and shows it;
    returns the files (none where the report does not draw)."""
    if not self.draw:
      return []
    paths = [os.fspath(p) for p in draw()]
    self.figures.append((caption, paths))
    return paths


def by_model(values: Mapping[str, float], fmt: str = "{:.3f}") -> str:
  """ "vit: 0.123; convnext: 0.456" (headline cells with one number per model; "n/a" if none)."""
  return "; ".join(f"{m}: {fmt.format(v)}" for m, v in values.items()) or "n/a"


def interval_text(value: float, low: float, high: float, *, symmetric_within: float = 0.1) -> str:
  """ "0.312 ± 0.014" when the interval is symmetric about the value (its two sides differ by
  less than `symmetric_within` of the larger), else "0.0030 [0.0007, 0.0152]": a ± would hide
  the skew, and may imply a bound the interval does not have (a negative II). Decimals: those of
  `metrics.intervals.format_interval` for the shorter side, so neither bound rounds away."""
  below, above = value - low, high - value
  if not (np.isfinite(below) and np.isfinite(above)):
    return format_interval(value, np.nan)
  wide = max(below, above, 0.0)
  if abs(above - below) <= symmetric_within * wide:
    return format_interval(value, (above + below) / 2)
  narrow = min(s for s in (below, above, wide) if s > 0) if wide > 0 else np.nan
  digits = len(format_interval(value, narrow).split(" ± ")[0].partition(".")[2])
  return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def by_model_interval(values: Mapping[str, float],
                      bounds: Mapping[str, tuple[float, float]]) -> str:
  """ "vit: 0.123 ± 0.011; igpt: 0.0030 [0.0007, 0.0152]" (`interval_text` of each model's
  (low, high)); a model without an interval shows its value alone."""
  cells = [f"{m}: " + (interval_text(v, *bounds[m]) if m in bounds else format_interval(v, np.nan))
           for m, v in values.items()]
  return "; ".join(cells) or "n/a"


def prose(settings: Mapping[str, Any]) -> str:
  """Settings as words for headings and setup lines, not a dict: {"debiased": True,
  "batch_size": 16, "size": [40, 36]} -> "debiased, batch size 16, size 40 x 36" (None and False
  left out)."""
  parts = []
  for key, value in settings.items():
    name = str(key).replace("_", " ")
    if value is None or value is False:
      continue
    if value is True:
      parts.append(name)
    elif isinstance(value, Mapping):
      parts.append(f"{name} ({prose(value)})")
    elif isinstance(value, (list, tuple)):
      parts.append(f"{name} {' x '.join(map(str, value))}")
    else:
      parts.append(f"{name} {value}")
  return ", ".join(parts)


def dataset_text(described: Mapping[str, Any]) -> str:
  """A source's `describe()` as words: "48 generated images (size 40 x 36, num classes 4,
  seed 0)", "tfds images (name imagenet2012, split validation)"."""
  rest = {k: v for k, v in described.items() if k not in ("kind", "n")}
  count = f"{described['n']} " if described.get("n") else ""
  kind = str(described.get("kind", "")).replace("_", " ")
  return f"{count}{kind} images" + (f" ({prose(rest)})" if prose(rest) else "")


def percent_by_model(values: Mapping[str, float]) -> str:
  """ "vit: 12.3 %; ..." for fractions in [0, 1]."""
  return by_model({m: 100 * v for m, v in values.items()}, "{:.1f} %")


def _cell(value: Any) -> str:
  if isinstance(value, bool):
    return "yes" if value else "no"
  if isinstance(value, float):
    return f"{value:.3f}"
  return str(value)


class Report:
  """Sections in order, written as report.html and summary.md (`write`)."""

  def __init__(self, title: str, *, draw: bool = True):
    self.title, self.draw = title, draw
    self.sections: list[Section] = []

  def section(self, title: str) -> Section:
    self.sections.append(Section(title, draw=self.draw))
    return self.sections[-1]

  def figure_files(self) -> list[str]:
    return [p for s in self.sections for _, paths in s.figures for p in paths]

  def _tables(self, s: Section) -> list[tuple[list[str], list[list[Any]]]]:
    return ([(list(HEADLINE), [list(r) for r in s.rows])] if s.rows else []) + s.tables

  def markdown(self, workdir: str) -> str:
    """summary.md: figures by their paths relative to `workdir`."""
    rel = lambda p: os.path.relpath(p, workdir) if os.path.isabs(p) else p
    lines = [f"# {self.title}", ""]
    for s in self.sections:
      lines += [f"## {s.title}", ""]
      for note in s.notes:
        lines += [f"> {note}", ""]
      for header, rows in self._tables(s):
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows] + [""]
      for caption, paths in s.figures:
        png = [rel(p) for p in paths if p.endswith(".png")]
        pdf = [rel(p) for p in paths if p.endswith(".pdf")]
        if len(png) == 1:
          lines += [f"**{caption}** ([pdf]({pdf[0]}))" if pdf else f"**{caption}**", "",
                    f"![{caption}]({png[0]})", ""]
        else:  # many files (e.g. one heatmap per model pair): a list of links
          lines += [f"**{caption}**", ""] + [f"- [{os.path.basename(p)}]({p})" for p in png] + [""]
    return "\n".join(lines)

  def html(self, workdir: str) -> str:
    """report.html: every PNG embedded, with links to the PNG / PDF files beside it."""
    rel = lambda p: os.path.relpath(p, workdir) if os.path.isabs(p) else p
    esc = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(self.title)}</title>"
           f"<style>{_STYLE}</style></head><body><h1>{esc(self.title)}</h1>"]
    for s in self.sections:
      out.append(f"<h2>{esc(s.title)}</h2>")
      out += [f"<p class='note'>{esc(note)}</p>" for note in s.notes]
      for header, rows in self._tables(s):
        out.append("<table><tr>" + "".join(f"<th>{esc(str(h))}</th>" for h in header) + "</tr>")
        for r in rows:
          cells = [f'<span class="{_cell(c)}">{_cell(c)}</span>' if isinstance(c, bool)
                   else esc(_cell(c)) for c in r]
          out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        out.append("</table>")
      for caption, paths in s.figures:
        png = [p for p in paths if p.endswith(".png")]
        pdf = [p for p in paths if p.endswith(".pdf")]
        if len(png) > 1:  # one caption for the group; each figure names its file
          out.append(f"<p><b>{esc(caption)}</b></p>")
        for p in png:
          with open(os.path.join(workdir, p) if not os.path.isabs(p) else p, "rb") as f:
            data = base64.b64encode(f.read()).decode("ascii")
          twin = [q for q in pdf if os.path.splitext(q)[0] == os.path.splitext(p)[0]]
          links = f"<a href='{esc(rel(p))}'>png</a>" + "".join(
              f", <a href='{esc(rel(q))}'>pdf</a>" for q in twin)
          label = caption if len(png) == 1 else os.path.splitext(os.path.basename(p))[0]
          out.append(f"<figure><img src='data:image/png;base64,{data}' alt='{esc(label)}'>"
                     f"<figcaption>{esc(label)} ({links})</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)

  def write(self, workdir: str) -> dict[str, str]:
    """Writes `<workdir>/report.html` and `<workdir>/summary.md`; returns their paths."""
    paths = {"html": os.path.join(workdir, "report.html"),
             "markdown": os.path.join(workdir, "summary.md")}
    for kind, path in paths.items():
      text = self.html(workdir) if kind == "html" else self.markdown(workdir)
      with open(path, "w") as f:
        f.write(text)
    return paths
