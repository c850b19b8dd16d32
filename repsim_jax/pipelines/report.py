"""One self-contained HTML page per run: sections with notes, tables and figures (PNG, PDF link).

  report = HtmlReport("Shapes world", workdir)
  s = report.section("Information imbalance")
  s.note("N = 2000 held-out images")
  s.table(["statement", "ours"], rows)
  s.figure("II matrix", ["figures/ii.png", "figures/ii.pdf"])
  path = report.write("report.html")

Figure paths are stored relative to the workdir, so the folder can be moved or served as is.
"""
from __future__ import annotations

import dataclasses
import html
import os
from typing import Any, Sequence

_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc;
padding: 4px 8px; text-align: left; vertical-align: top; } th { background: #f0f0f0; }
.yes { color: #060; font-weight: bold; } .no { color: #a00; font-weight: bold; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; } figcaption { font-size: 0.9em; }
.note { color: #555; }
"""


@dataclasses.dataclass
class Section:
  title: str
  items: list[tuple[str, Any]] = dataclasses.field(default_factory=list)

  def note(self, text: str) -> None:
    self.items.append(("note", text))

  def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    self.items.append(("table", (list(header), [list(r) for r in rows])))

  def figure(self, caption: str, paths: Sequence[str]) -> None:
    self.items.append(("figure", (caption, list(paths))))


def _cell(value: Any) -> str:
  if isinstance(value, bool):
    return f'<span class="{"yes" if value else "no"}">{"yes" if value else "no"}</span>'
  if isinstance(value, float):
    return f"{value:.3f}"
  return html.escape(str(value))


class HtmlReport:
  """Collects sections and writes one HTML page into `workdir`."""

  def __init__(self, title: str, workdir: str):
    self.title, self.workdir = title, workdir
    self.sections: list[Section] = []

  def section(self, title: str) -> Section:
    self.sections.append(Section(title))
    return self.sections[-1]

  def _rel(self, path: str) -> str:
    return os.path.relpath(path, self.workdir) if os.path.isabs(path) else path

  def render(self) -> str:
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
           f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>"]
    for s in self.sections:
      out.append(f"<h2>{html.escape(s.title)}</h2>")
      for kind, item in s.items:
        if kind == "note":
          out.append(f"<p class='note'>{html.escape(item)}</p>")
        elif kind == "table":
          header, rows = item
          out.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
                     + "</tr>")
          out += ["<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in r) + "</tr>" for r in rows]
          out.append("</table>")
        else:
          caption, paths = item
          png = [self._rel(p) for p in paths if p.endswith(".png")]
          pdf = [self._rel(p) for p in paths if p.endswith(".pdf")]
          link = f" (<a href='{html.escape(pdf[0])}'>pdf</a>)" if pdf else ""
          out += [f"<figure><img src='{html.escape(p)}' alt='{html.escape(caption)}'>"
                  f"<figcaption>{html.escape(caption)}{link}</figcaption></figure>" for p in png]
    out.append("</body></html>")
    return "\n".join(out)

  def write(self, name: str = "report.html") -> str:
    path = os.path.join(self.workdir, name)
    with open(path, "w") as f:
      f.write(self.render())
    return path
