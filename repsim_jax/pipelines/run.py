"""The context every pipeline runs in: workdir, process-0 writes, steps, results, report.

    run = Run("mahaut_baroni", workdir, config=config, title="Mahaut & Baroni (2026) reproduction")
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

Resuming (`run_steps`). A step that completes leaves a record, `<workdir>/steps/<step>.json`,
written last and atomically (`pipelines.records`): its key (name, settings, the config outside
`analysis`, the run's input fingerprints, the package version and the step module's `VERSION`,
and the records of the steps it `READS`), the time it was made, and every file the step wrote
with its size and sha256. Beside it, `steps/<step>.npz` holds what the step returned and its
report sections (`results.tree_to_bytes`). A rerun reuses a step whose record has the same key
and whose files are unchanged: it loads the returned value and the sections instead of running
the step, and logs "reused <step> (record of <time>)". A step module may declare

  VERSION = 2                 # bump when the step's numbers change for the same settings
  READS = ("block_stats",)    # earlier steps whose results it reads (`run.results`)
  READS_SETTINGS = ("imbalance",)  # other steps' settings it reads (`run.config.analysis`)

so a changed setting recomputes its step and every step that reads it (a recomputed step's new
record changes their keys), nothing else. `config.recompute="a,b"` forces steps (and so their
readers), `config.resume=False` every step. Process 0 decides and broadcasts its decision and
the stored values, so every process takes the same one; only process 0 writes.

The report is made of the stored sections, for computed and reused steps alike, so a resumed
run's report.html and summary.md equal an uninterrupted run's. Step times are never in the
report (they go to the closing summary and metrics.jsonl, where a reused step says "reused").

Interruption: Ctrl-C or SIGTERM (a job's time limit) during a step ends the run with one line
naming the step and saying that rerunning the same command resumes there (`RunInterrupted`,
exit status 128 + the signal's number). The interrupted step has no record, so it runs again.
"""
from __future__ import annotations

import collections
import contextlib
import importlib
import json
import os
import pkgutil
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax
import numpy as np
from absl import logging

from repsim_jax import names, resources
from repsim_jax import results as results_lib
from repsim_jax import sharding
from repsim_jax.paths import absolute
from repsim_jax.pipelines import records
from repsim_jax.pipelines.report import Report, Section
from repsim_jax.plotting.colours import Palette
from repsim_jax.progress import Progress
from repsim_jax.sharding import is_writer  # the one place that decides who writes

FIGURES = "figures"


class RunInterrupted(SystemExit):
  """Ends a run stopped by Ctrl-C or SIGTERM: exit status 128 + the signal number; `message` is
  the one line printed (which step, and that rerunning the same command resumes there)."""

  def __init__(self, code: int, message: str):
    super().__init__(code)
    self.message = message


class _Terminated(KeyboardInterrupt):
  """SIGTERM, raised in the main thread where Ctrl-C raises KeyboardInterrupt."""


_terminated = False  # a SIGTERM arrived whose exception may have been swallowed (below)


def _raise_terminated(signum, frame) -> None:
  global _terminated
  _terminated = True
  raise _Terminated()


def _check_terminated() -> None:
  """Raises the SIGTERM again when its handler's exception was lost: Python runs a signal
  handler between any two bytecodes, also inside a gc callback or a __del__, where it prints
  "Exception ignored" and carries on. Checked before a step's record is written, so such a step
  is never taken as done."""
  global _terminated
  if _terminated:
    _terminated = False
    raise _Terminated()


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


def _model_names(config: Any) -> list[str]:
  """The names of `config.models` (entries with a "name"), in order; none without models."""
  models = config.get("models") if hasattr(config, "get") else None
  return [str(m["name"]) for m in models or () if hasattr(m, "get") and m.get("name")]


class Run:
  """One invocation of a pipeline.

  Attributes:
    name: the pipeline's name, prefixed to its log lines.
    workdir: the absolute output directory (created).
    config: the run's config, saved with every result.
    inputs: fingerprints every result of the run records (e.g. the checkpoints').
    report: the run's `Report` (its figures are drawn on process 0 only).
    colours: the report's `plotting.colours.Palette`: one colour per model of `config.models`,
      in their order, for every figure that draws a series per model (`palette=`).
    results: step name -> what the step returned, for the steps after it.
    fingerprints: what the steps read besides the config (stores, ...), in the step records'
      keys only (a pipeline fills it on process 0 before `run_steps`).
    steps: [(step name, seconds)] in the order they ran (reused steps left out).
    step_records: one dict per step: {"step", "seconds", "peak_rss_bytes"} (the process's
      peak resident memory during the step, `repsim_jax.resources`), plus "reused" (the record's
      time) for a reused step; also appended to `<workdir>/metrics.jsonl`.
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
    self.colours = Palette(_model_names(config))
    self.results: dict[str, Any] = {}
    self.steps: list[tuple[str, float]] = []
    self.step_records: list[dict[str, Any]] = []
    self._saved: list[str] = []
    self._report_files: list[str] = []
    self._count = 0
    self._start = time.perf_counter()
    self._wall_start = time.time()
    # fingerprints of what the steps read besides the config (stores, checkpoints): in the step
    # records' keys, not in every result file as `inputs` are
    self.fingerprints: dict[str, str] = {}
    self._record_digests: dict[str, str] = {}  # step -> digest of its record
    self._no_record: str | None = None
    self._previous_sigterm = None
    if threading.current_thread() is threading.main_thread():
      previous = signal.getsignal(signal.SIGTERM)
      if previous in (signal.SIG_DFL, None, _raise_terminated):  # ours: a failed run's
        signal.signal(signal.SIGTERM, _raise_terminated)
        self._previous_sigterm = signal.SIG_DFL
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
    by `find_step(package, name)` and timed, or reuses it from its record (module docstring);
    returns (and keeps in `results`) what they return. `names` as `step_names` reads them."""
    try:
      return self._run_steps(package, step_names(names), representations, settings)
    except BaseException:
      self._restore_signals()  # the run ends here (`finish` restores them otherwise)
      raise

  def _run_steps(self, package: str, names: list[str], representations: Any,
                 settings: Callable[[str], Any]) -> dict[str, Any]:
    steps = [(name, find_step(package, name)) for name in names]  # unknown names fail first
    forced = self._forced(names)
    for name, step in steps:
      module = importlib.import_module(step.__module__)
      title = getattr(module, "TITLE", name)
      label = self._numbered(title)
      with self._interruptible(label):
        key = records.step_key(name, module, settings, config=self.config,
                               inputs={**self.inputs, **self.fingerprints},
                               upstream=self._record_digests)
        reused, value = self._reuse(name, title, label, key, forced)
        if reused:
          self.results[name] = value
          continue
        sections, saved = len(self.report.sections), len(self._saved)
        self._no_record = None
        with self._timed(title, label):
          value = step(representations, settings(name), self)
          _check_terminated()
          self.results[name] = self._record(name, title, key, value, sections, saved)
    return {name: self.results[name] for name in names}

  def no_record(self, why: str) -> None:
    """Leaves the running step without a record, so that the next run runs it again: for a
    step whose result depends on something its settings do not name (a dataset that is not
    prepared yet, skipped with its preparation command)."""
    self._no_record = why

  def _forced(self, names: Sequence[str]) -> dict[str, str]:
    """{step: why} of the steps that `config.resume` / `config.recompute` force to run."""
    get = self.config.get if hasattr(self.config, "get") else lambda key, default=None: default
    if not get("resume", True):
      return dict.fromkeys(names, "forced (config.resume=False)")
    recompute = get("recompute", "") or ""
    forced = step_names([recompute] if isinstance(recompute, str) else list(recompute))
    unknown = sorted(set(forced) - set(names))
    if unknown:
      raise ValueError(f"config.recompute names {unknown}, which are not steps of this run; "
                       f"steps: {', '.join(names)}")
    return dict.fromkeys(forced, "forced (config.recompute)")

  def _reuse(self, name: str, title: str, label: str, key: dict[str, Any],
             forced: Mapping[str, str]) -> tuple[bool, Any]:
    """(True, the step's stored value; its sections added to the report) when process 0 finds
    a matching record (`records.matching_record`), else (False, None): the step runs. Every
    process takes process 0's decision, and gets the record and value from it."""
    record, why = None, forced.get(name)
    if self.is_writer and not why:
      record, why = records.matching_record(self.workdir, name, key)
    if not sharding.broadcast_from_writer(np.asarray(record is not None, np.int32)):
      if self.is_writer:
        if why != "no record":
          self.log("%s recomputed: %s", label, why)
        with contextlib.suppress(FileNotFoundError):  # until the step completes, it has none
          os.remove(records.paths(self.workdir, name)[0])
      return False, None
    stored = None
    if self.is_writer:
      with open(os.path.join(self.workdir, record["returned"]), "rb") as f:
        stored = f.read()
    record = json.loads(sharding.broadcast_bytes_from_writer(
        json.dumps(record).encode() if self.is_writer else None))
    stored = results_lib.tree_from_bytes(sharding.broadcast_bytes_from_writer(stored))
    self.report.sections += [records.section_from_plain(s, self.workdir, draw=self.report.draw)
                             for s in stored["sections"]]
    self._saved += [os.path.join(self.workdir, p) for p in record["saved"]]
    self._record_digests[name] = records.digest(record)
    self.log("reused %s (record of %s)", label, record["created"])
    self._step_done({"step": title, "seconds": 0.0, "peak_rss_bytes": resources.peak_rss_bytes(),
                     "reused": record["created"]})
    return True, stored["returned"]

  def _record(self, name: str, title: str, key: dict[str, Any], value: Any, sections: int,
              saved: int) -> Any:
    """Stores what a step returned and its report sections (from index `sections`), then its
    record (`records.write_record`, process 0); returns the value as a reuse would load it, so
    that later steps and the report see the same thing either way. A value
    `results.tree_to_bytes` cannot store, or `no_record`, leaves the step without a record."""
    new = [records.plain_section(s, self.workdir) for s in self.report.sections[sections:]]
    try:
      payload = results_lib.tree_to_bytes({"returned": value, "sections": new})
    except TypeError as e:
      self._no_record = str(e)
      payload = None
    if self._no_record is not None:
      logging.warning("%s: step %s has no record (it runs again next time): %s", self.name, name,
                      self._no_record)
      return value
    stored = results_lib.tree_from_bytes(payload)
    self.report.sections[sections:] = [
        records.section_from_plain(s, self.workdir, draw=self.report.draw)
        for s in stored["sections"]]
    if self.is_writer:
      record = records.write_record(
          self.workdir, name, title, key, payload, saved=self._saved[saved:],
          figures=[p for s in self.report.sections[sections:] for _, ps in s.figures for p in ps])
      self._record_digests[name] = records.digest(record)
    return stored["returned"]

  # ------------------------------------------------------------------------- interruption

  @contextlib.contextmanager
  def _interruptible(self, label: str) -> Iterator[None]:
    """Turns Ctrl-C / SIGTERM inside the block into `RunInterrupted` with its one line."""
    try:
      yield
    except KeyboardInterrupt as e:
      global _terminated
      _terminated = False  # handled here
      signum = signal.SIGTERM if isinstance(e, _Terminated) else signal.SIGINT
      resume = ("rerun the same command to resume there (finished steps are reused)"
                if self.config is None or self.config.get("resume", True) else
                "rerun it with --config.resume=true to resume there (finished steps are reused)")
      message = (f"{self.name}: interrupted by {signal.Signals(signum).name} in step {label}; "
                 + resume)
      print(message, file=sys.stderr, flush=True)
      self._restore_signals()
      if jax.process_count() > 1:  # leave without waiting for the others at jax's shutdown
        sys.stdout.flush()
        os._exit(128 + signum)
      raise RunInterrupted(128 + signum, message) from None

  def _restore_signals(self) -> None:
    if self._previous_sigterm is not None and threading.current_thread() is threading.main_thread():
      signal.signal(signal.SIGTERM, self._previous_sigterm)
      self._previous_sigterm = None

  def log(self, message: str, *args) -> None:
    logging.info(f"{self.name}: {message}", *args)

  def _numbered(self, name: str) -> str:
    self._count += 1
    return f"[{self._count}/{self.total_steps}] {name}" if self.total_steps else name

  @contextlib.contextmanager
  def step(self, name: str) -> Iterator[None]:
    """Times the block as step `name` and measures its peak resident memory (logged at its
    start and end; once it completes, recorded in `step_records` and metrics.jsonl). Ctrl-C or
    SIGTERM inside it ends the run with one line naming the step (`RunInterrupted`)."""
    label = self._numbered(name)
    with self._interruptible(label), self._timed(name, label):
      yield

  @contextlib.contextmanager
  def _timed(self, name: str, label: str) -> Iterator[None]:
    self.log("%s ...", label)
    resources.reset_peak_rss()
    start = time.perf_counter()
    yield  # a failing step writes nothing here: its error goes to error.log (pipelines.cli)
    seconds = time.perf_counter() - start
    peak = resources.peak_rss_bytes()
    self.steps.append((name, seconds))
    record = {"step": name, "seconds": round(seconds, 3), "peak_rss_bytes": peak}
    self._step_done(record)
    self.log("%s done in %.1f s (peak memory %s)", label, seconds, resources.format_bytes(peak))

  def _step_done(self, record: dict[str, Any]) -> None:
    """Keeps a step's {"step", "seconds", "peak_rss_bytes"[, "reused"]} in `step_records` and
    appends it to metrics.jsonl (process 0)."""
    self.step_records.append(record)
    if self.is_writer:
      with open(os.path.join(self.workdir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"name": f"{self.name}/step", **record}) + "\n")

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
    self._restore_signals()
    # the others leave with the writer, instead of waiting for it at jax's shutdown barrier
    sharding.sync(f"{self.name}: done {self.workdir}")
    total = time.perf_counter() - self._start
    lines = [f"{self.name}: done in {total:.1f} s" + (f"; {headline}" if headline else "")]
    if self.step_records:
      lines.append("  time per step: " + ", ".join(
          f"{r['step']} " + ("reused" if r.get("reused") else f"{r['seconds']:.1f} s")
          for r in self.step_records))
      lines.append("  peak memory per step: " + ", ".join(
          f"{r['step']} {resources.format_bytes(r['peak_rss_bytes'])}"
          for r in self.step_records if not r.get("reused")))
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

