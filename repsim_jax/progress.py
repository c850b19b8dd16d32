"""Progress lines with rate and ETA for long loops (blocks, batches, layers)."""
from __future__ import annotations

import json
import time
from typing import Any, Callable

from absl import logging

from repsim_jax import sharding


class Progress:
  """Counts units of work and logs `name: done/total (pct) rate/s, ETA` at most every `every_s`.

  Optionally appends each line as JSON to `metrics_path` (a JSON-lines file in the workdir).
  `enabled` defaults to `sharding.is_writer()`: on multi-host runs process 0 logs and writes.
  """

  def __init__(self, name: str, total: int, *, unit: str = "blocks", every_s: float = 10.0,
               metrics_path: str | None = None, enabled: bool | None = None,
               log: Callable[[str], Any] = logging.info):
    if enabled is None:
      enabled = sharding.is_writer()
    self.name, self.total, self.unit = name, int(total), unit
    self.every_s, self.metrics_path, self.enabled, self._log = every_s, metrics_path, enabled, log
    self.done = 0
    self._first: tuple[float, int] | None = None  # (time, done) at the first update
    self._start = self._last = time.perf_counter()

  def update(self, n: int = 1, **scalars: Any) -> None:
    self.done += n
    now = time.perf_counter()
    if self._first is None:
      self._first = (now, self.done)
    if self.enabled and (now - self._last >= self.every_s or self.done >= self.total):
      self._last = now
      self._emit(now, scalars)

  def _emit(self, now: float, scalars: dict[str, Any]) -> None:
    elapsed = now - self._start
    rate = self.done / elapsed if elapsed > 0 else float("inf")
    pct = 100.0 * self.done / max(self.total, 1)
    shown = dict(scalars)
    if "chunks_written" in shown and "chunks_total" in shown:  # "chunks 2/3"
      shown["chunks"] = f"{shown.pop('chunks_written')}/{shown.pop('chunks_total')}"
    extra = "".join(f", {k.replace('_', ' ')} {v}" for k, v in shown.items() if v is not None)
    # the ETA comes from the rate after the first update: the first unit of work often includes
    # a one-time compilation, which would inflate it (a first ETA of hours for a minute's work)
    eta = None  # unknown until a second update
    if self.done >= self.total:
      eta = 0.0
    elif self._first is not None and self.done > self._first[1] and now > self._first[0]:
      eta = (self.total - self.done) * (now - self._first[0]) / (self.done - self._first[1])
    when = f", ETA {eta:.1f}s" if eta else ""
    self._log(f"{self.name}: {self.done}/{self.total} {self.unit} ({pct:.0f}%), "
              f"{rate:.2f} {self.unit}/s, elapsed {elapsed:.1f}s{when}{extra}")
    if self.metrics_path:
      with open(self.metrics_path, "a") as f:
        f.write(json.dumps({"name": self.name, "done": self.done, "total": self.total,
                            "rate": rate, "elapsed_s": elapsed, "eta_s": eta, **scalars}) + "\n")
