"""Progress lines (repsim_jax.progress): the ETA comes from the rate after the first update, so a
first unit of work that includes compiling does not make it hours; None scalars (no device memory
on CPU) are left out, and chunks read "chunks done/total"."""
from __future__ import annotations

import json

from repsim_jax import progress as progress_lib


def test_eta_from_the_rate_after_the_first_update(tmp_path, monkeypatch):
  clock = iter([0.0, 100.0, 110.0, 120.0])  # start; a first batch that compiles; two fast ones
  monkeypatch.setattr(progress_lib.time, "perf_counter", lambda: next(clock))
  lines = []
  p = progress_lib.Progress("extract", 40, unit="images", every_s=0, enabled=True,
                            log=lines.append, metrics_path=str(tmp_path / "metrics.jsonl"))
  p.update(10, chunks_written=0, chunks_total=2, device_memory_mb=None)
  p.update(10, chunks_written=1, chunks_total=2)
  p.update(20, chunks_written=2, chunks_total=2)
  # first line: no rate after the first update yet, so no ETA (it would say 300 s)
  assert lines[0] == "extract: 10/40 images (25%), 0.10 images/s, elapsed 100.0s, chunks 0/2"
  # 10 images in the 10 s since the first update: 20 left take 20 s
  assert lines[1] == ("extract: 20/40 images (50%), 0.18 images/s, elapsed 110.0s, ETA 20.0s, "
                      "chunks 1/2")
  assert lines[2].endswith("elapsed 120.0s, chunks 2/2")  # done: no ETA
  records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
  assert [r["eta_s"] for r in records] == [None, 20.0, 0.0]
  assert records[0]["chunks_total"] == 2 and records[0]["device_memory_mb"] is None
