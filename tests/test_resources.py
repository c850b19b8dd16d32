"""repsim_jax.resources: the per-step peak memory that pipelines report, against the size of an
array allocated in between (Linux: VmHWM, reset through /proc/self/clear_refs)."""
import os

import numpy as np
import pytest

from repsim_jax import resources


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="Linux only")
def test_peak_follows_an_allocation_and_resets():
  size = 256 << 20
  assert resources.reset_peak_rss()
  before = resources.peak_rss_bytes()
  block = np.ones(size // 8)  # touched: resident
  grown = resources.peak_rss_bytes()
  assert grown - before >= 0.9 * size
  assert resources.rss_bytes() >= 0.9 * size
  del block
  assert resources.reset_peak_rss()
  assert resources.peak_rss_bytes() <= grown - 0.9 * size + (16 << 20)  # the block left the peak
  assert resources.available_memory_bytes() > 0
  assert resources.format_bytes(1536) == "1.5 KB" and resources.format_bytes(3 << 30) == "3.0 GB"


def test_proc_field_reads_padded_names_and_kib(tmp_path):
  """proc_field: the first "<name>: <value>" line, the name matched whole even when padded (as
  /proc/cpuinfo pads it with tabs); memory figures in bytes from their "kB" lines."""
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\nflags_extra\t: x\n"
                     "processor\t: 1\nflags\t\t: other\n")
  assert resources.proc_field(str(cpuinfo), "flags") == "fpu avx2 avx512f"
  assert resources.proc_field(str(cpuinfo), "flag") is None
  assert resources.proc_field(str(tmp_path / "missing"), "flags") is None
  meminfo = tmp_path / "meminfo"
  meminfo.write_text("MemTotal:       24000000 kB\nMemAvailable:   12345 kB\n")
  assert resources._proc_kib(str(meminfo), "MemAvailable") == 12345 * 1024
