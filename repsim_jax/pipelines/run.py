"""The context every pipeline runs in: workdir, process-0 writes, steps, results, report.

    run = Run("paper", workdir, config=config, title="Mahaut & Baroni (2026) reproduction")
    with run.step("representations"):
      reps = ...
    run.run_steps("repsim_jax.pipelines.mahaut_baroni", config.analysis.steps, reps,
                  settings=lambda name: config.analysis[name])
    run.finish()   # writes report.html + summary.md, then logs what was written where

A step is a function `step(representations, settings, run) -> dict` in a module of the pipeline's
package named like the step (the module is the registry: adding an analysis is one module and one
config line). Inside it, `run.save` writes a result (npz + JSON with the run's config and inputs),
`run.figure_path` names a figure file, `run.progress` logs progress (and appends to metrics.jsonl),
and `run.section(title)` adds a report section whose figures are drawn on process 0 only.

Only process 0 writes on multi-host runs (`run.is_writer`); every process runs every step.
"""
from __future__ import annotations

import collections
import contextlib
import importlib
import json
import os
import pkgutil
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

from absl import logging

from repsim_jax import names, resources
from repsim_jax import results as results_lib
from repsim_jax import sharding
from repsim_jax.paths import absolute
from repsim_jax.pipelines.report import Report, Section
from repsim_jax.progress import Progress
from repsim_jax.sharding import is_writer  # the one place that decides who writes

FIGURES = "figures"


def step_names(names: Sequence[str]) -> list[str]:
  """A config's step list; an entry may hold several, comma-separated (from the command line:
  `--config.analysis.steps=imbalance,probes`)."""
  return [n.strip() for name in names for n in name.split(",") if n.strip()]


def find_step(package: str, name: str) -> Callable[[Any, Any, "Run"], dict]:
  """The step `name` of a pipeline: `step` in the module `<package>.<name>`."""
  try:
    module = importlib.import_module(f"{package}.{name}")
  except ModuleNotFoundError as e:
    if e.name != f"{package}.{name}":
      raise
    module = None
  if module is None or not callable(getattr(module, "step", None)):
    known = [m.name for m in pkgutil.iter_modules(importlib.import_module(package).__path__)
             if callable(getattr(importlib.import_module(f"{package}.{m.name}"), "step", None))]
    raise ValueError(names.unknown("step", name, known))
  return module.step


class Run:
  """One invocation of a pipeline.

  Attributes:
    name: the pipeline's name, prefixed to its log lines.
    workdir: the absolute output directory (created).
    config: the run's config, saved with every result.
    inputs: fingerprints every result of the run records (e.g. the checkpoints').
    report: the run's `Report` (its figures are drawn on process 0 only).
    results: step name -> what the step returned, for the steps after it.
    steps: [(step name, seconds)] in the order they ran.
    step_records: one dict per step run: {"step", "seconds", "peak_rss_bytes"} (the process's
      peak resident memory during the step, `repsim_jax.resources`), also appended to
      `<workdir>/metrics.jsonl`.
  """

  def __init__(self, name: str, workdir: str | os.PathLike, *, config: Any = None,
               title: str | None = None, inputs: Mapping[str, str] | None = None,
               total_steps: int | None = None):
    self.name = name
    self.workdir = absolute(workdir)
    self.config = config
    self.inputs = dict(inputs or {})
    self.total_steps = total_steps  # numbers the step log lines "[i/n]" when given
    self.report = Report(title or name, draw=self.is_writer)
    self.results: dict[str, Any] = {}
    self.steps: list[tuple[str, float]] = []
    self.step_records: list[dict[str, Any]] = []
    self._saved: list[str] = []
    self._report_files: list[str] = []
    self._count = 0
    self._start = time.perf_counter()
    self._wall_start = time.time()
    os.makedirs(self.workdir, exist_ok=True)

  @property
  def is_writer(self) -> bool:
    return is_writer()

  def path(self, *parts: str) -> str:
    """An absolute path under the workdir; its folder is created."""
    path = os.path.join(self.workdir, *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path

  def figure_path(self, name: str) -> str:
    """`<workdir>/figures/<name>`: where a figure function writes `<name>.png` and `.pdf`."""
    return os.path.join(self.workdir, FIGURES, name)

  def save(self, name: str, arrays: Mapping[str, Any], *, subdir: str = "",
           inputs: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None) -> str:
    """`results.save_result` under `<workdir>/<subdir>` with the run's config and its inputs
    (plus `inputs`); process 0 writes. Returns the npz path."""
    path = results_lib.save_result(os.path.join(self.workdir, subdir), name, arrays,
                                   config=self.config, inputs={**self.inputs, **(inputs or {})},
                                   extra=extra)
    self._saved.append(path)
    return path

  def progress(self, name: str, total: int, *, unit: str = "images",
               every_s: float = 10.0) -> Progress:
    """Progress lines with rate and ETA (process 0), also appended to `<workdir>/metrics.jsonl`."""
    return Progress(name, total, unit=unit, every_s=every_s,
                    metrics_path=os.path.join(self.workdir, "metrics.jsonl"))

  def section(self, title: str) -> Section:
    """A new section of the run's report (report.html and summary.md)."""
    return self.report.section(title)

  @property
  def files(self) -> list[str]:
    """Results, figures and report files written by this run (on process 0)."""
    return self._saved + self.report.figure_files() + self._report_files

  def run_steps(self, package: str, names: Sequence[str], representations: Any,
                settings: Callable[[str], Any]) -> dict[str, Any]:
    """Runs the steps `names` in order, each `step(representations, settings(name), self)` found
    by `find_step(package, name)` and timed; returns (and keeps in `results`) what they return.
    `names` as `step_names` reads them."""
    names = step_names(names)
    steps = [(name, find_step(package, name)) for name in names]  # unknown names fail first
    for name, step in steps:
      label = getattr(importlib.import_module(step.__module__), "TITLE", name)
      with self.step(label):
        self.results[name] = step(representations, settings(name), self)
    return {name: self.results[name] for name in names}

  def log(self, message: str, *args) -> None:
    logging.info(f"{self.name}: {message}", *args)

  def _numbered(self, name: str) -> str:
    self._count += 1
    return f"[{self._count}/{self.total_steps}] {name}" if self.total_steps else name

  @contextlib.contextmanager
  def step(self, name: str) -> Iterator[None]:
    """Times the block as step `name` and measures its peak resident memory (logged at its
    start and end; once it completes, recorded in `step_records` and metrics.jsonl)."""
    label = self._numbered(name)
    self.log("%s ...", label)
    resources.reset_peak_rss()
    start = time.perf_counter()
    yield  # a failing step writes nothing here: its error goes to error.log (pipelines.cli)
    seconds = time.perf_counter() - start
    peak = resources.peak_rss_bytes()
    self.steps.append((name, seconds))
    record = {"step": name, "seconds": round(seconds, 3), "peak_rss_bytes": peak}
    self.step_records.append(record)
    if self.is_writer:
      with open(os.path.join(self.workdir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"name": f"{self.name}/step", **record}) + "\n")
    self.log("%s done in %.1f s (peak memory %s)", label, seconds, resources.format_bytes(peak))

  def skip(self, name: str, why: str) -> None:
    """Logs that step `name` does not run, and why."""
    self.log("%s skipped: %s", self._numbered(name), why)

  def written(self) -> dict[str, tuple[int, int]]:
    """Files under the workdir modified since the run started, grouped for the summary:
    {"figures/": (count, bytes), "stores/ (vit, igpt)": ..., "summary.md": (1, bytes),
    "extract_vit.{json,npz}": (2, bytes), ...}."""
    groups: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    subfolders: dict[str, set[str]] = collections.defaultdict(set)
    stems: dict[str, set[str]] = collections.defaultdict(set)
    for root, _, files in os.walk(self.workdir):
      for f in files:
        path = os.path.join(root, f)
        try:
          st = os.stat(path)
        except OSError:
          continue
        if st.st_mtime + 1 < self._wall_start:
          continue
        parts = os.path.relpath(path, self.workdir).split(os.sep)
        if len(parts) > 1:
          key = parts[0] + "/"
          if len(parts) > 2:
            subfolders[key].add(parts[1])
        else:
          stem, ext = os.path.splitext(parts[0])
          key = stem
          stems[stem].add(ext)
        groups[key][0] += 1
        groups[key][1] += st.st_size
    out = {}
    for key, (count, nbytes) in sorted(groups.items()):
      if key in subfolders:
        names = sorted(subfolders[key])
        key = f"{key} ({', '.join(names[:6])}{', ...' if len(names) > 6 else ''})"
      elif key in stems:
        exts = sorted(stems[key])
        key = key + (exts[0] if len(exts) == 1 else ".{" + ",".join(e[1:] for e in exts) + "}")
      out[key] = (count, nbytes)
    return out

  @property
  def report_paths(self) -> dict[str, str]:
    """{"html": <workdir>/report.html, "markdown": <workdir>/summary.md}, which `finish` writes."""
    return {"html": os.path.join(self.workdir, "report.html"),
            "markdown": os.path.join(self.workdir, "summary.md")}

  def write_report(self) -> dict[str, str]:
    """Writes report.html and summary.md now (process 0; `finish` does it); returns their paths."""
    if self.is_writer:
      self._report_files = list(self.report.write(self.workdir).values())
    return self.report_paths

  def finish(self, *, headline: str | None = None) -> str:
    """Writes the report, waits for every process, and returns the closing summary (what was
    written where, seconds per step), which process 0 prints."""
    self.write_report()
    # the others leave with the writer, instead of waiting for it at jax's shutdown barrier
    sharding.sync(f"{self.name}: done {self.workdir}")
    total = time.perf_counter() - self._start
    lines = [f"{self.name}: done in {total:.1f} s" + (f"; {headline}" if headline else "")]
    if self.steps:
      lines.append("  time per step: " + ", ".join(
          f"{r['step']} {r['seconds']:.1f} s" for r in self.step_records))
      lines.append("  peak memory per step: " + ", ".join(
          f"{r['step']} {resources.format_bytes(r['peak_rss_bytes'])}"
          for r in self.step_records))
    written = self.written()
    if written:
      lines.append(f"  written under {self.workdir}:")
      width = max(len(k) for k in written)
      for entry, (count, nbytes) in written.items():
        what = "1 file" if count == 1 else f"{count} files"
        lines.append(f"    {entry:<{width}}  {what}, {resources.format_bytes(nbytes)}")
    text = "\n".join(lines)
    if self.is_writer:
      print(text, flush=True)
    return text
