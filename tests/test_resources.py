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
