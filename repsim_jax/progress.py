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
    self._start = self._last = time.perf_counter()

  def update(self, n: int = 1, **scalars: Any) -> None:
    self.done += n
    now = time.perf_counter()
    if self.enabled and (now - self._last >= self.every_s or self.done >= self.total):
      self._last = now
      self._emit(now, scalars)

  def _emit(self, now: float, scalars: dict[str, Any]) -> None:
    elapsed = now - self._start
    rate = self.done / elapsed if elapsed > 0 else float("inf")
    eta = (self.total - self.done) / rate if rate > 0 else float("inf")
    pct = 100.0 * self.done / max(self.total, 1)
    extra = "".join(f", {k}={v}" for k, v in scalars.items())
    self._log(f"{self.name}: {self.done}/{self.total} {self.unit} ({pct:.0f}%), "
              f"{rate:.2f} {self.unit}/s, elapsed {elapsed:.1f}s, ETA {eta:.1f}s{extra}")
    if self.metrics_path:
      with open(self.metrics_path, "a") as f:
        f.write(json.dumps({"name": self.name, "done": self.done, "total": self.total,
                            "rate": rate, "elapsed_s": elapsed, "eta_s": eta, **scalars}) + "\n")
