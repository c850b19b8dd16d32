"""The context every driver runs in: absolute workdir, process-0 writes, timed steps, closing summary.

    run = Run("paper", workdir)
    with run.step("imbalance"):
      ...
    run.finish()   # logs what was written where and the time per step

Only process 0 writes on multi-host runs (`run.is_writer`); every process runs every step.
"""
from __future__ import annotations

import collections
import contextlib
import os
import time
from typing import Iterator

import jax
from absl import logging

from repsim_jax.paths import absolute


def is_writer() -> bool:
  """Whether this process writes results (process 0 of a multi-host run)."""
  return jax.process_index() == 0


def _size(nbytes: int) -> str:
  for unit in ("B", "KB", "MB", "GB"):
    if nbytes < 1024 or unit == "GB":
      return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
    nbytes /= 1024
  return ""


class Run:
  """One invocation of a driver.

  Attributes:
    name: the driver's name, prefixed to its log lines.
    workdir: the absolute output directory (created).
    steps: [(step name, seconds)] in the order they ran.
  """

  def __init__(self, name: str, workdir: str | os.PathLike, *, total_steps: int | None = None):
    self.name = name
    self.workdir = absolute(workdir)
    self.total_steps = total_steps  # numbers the step log lines "[i/n]" when given
    self.steps: list[tuple[str, float]] = []
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

  def log(self, message: str, *args) -> None:
    logging.info(f"{self.name}: {message}", *args)

  def _numbered(self, name: str) -> str:
    self._count += 1
    return f"[{self._count}/{self.total_steps}] {name}" if self.total_steps else name

  @contextlib.contextmanager
  def step(self, name: str) -> Iterator[None]:
    """Times the block as step `name` (logged at its start and end)."""
    label = self._numbered(name)
    self.log("%s ...", label)
    start = time.perf_counter()
    try:
      yield
    finally:
      seconds = time.perf_counter() - start
      self.steps.append((name, seconds))
      self.log("%s done in %.1f s", label, seconds)

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

  def finish(self, *, headline: str | None = None) -> str:
    """The closing summary (what was written where, seconds per step), printed by process 0."""
    total = time.perf_counter() - self._start
    lines = [f"{self.name}: done in {total:.1f} s" + (f"; {headline}" if headline else "")]
    if self.steps:
      lines.append("  time per step: " + ", ".join(f"{n} {s:.1f} s" for n, s in self.steps))
    written = self.written()
    if written:
      lines.append(f"  written under {self.workdir}:")
      width = max(len(k) for k in written)
      for entry, (count, nbytes) in written.items():
        what = "1 file" if count == 1 else f"{count} files"
        lines.append(f"    {entry:<{width}}  {what}, {_size(nbytes)}")
    text = "\n".join(lines)
    if self.is_writer:
      print(text, flush=True)
    return text
