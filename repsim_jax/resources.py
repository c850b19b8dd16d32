"""Peak resident memory of this process, per step: what a run needs of the host's RAM.

On Linux the kernel keeps the high-water mark of the resident set (VmHWM in /proc/self/status)
and resets it on request (writing "5" to /proc/self/clear_refs), so each step of a run can report
its own peak. Elsewhere `peak_rss_bytes` falls back to getrusage's peak for the whole process and
`reset_peak_rss` says it could not reset.
"""
from __future__ import annotations

import functools
import os
import sys


def proc_field(path: str, field: str) -> str | None:
  """The value of the first "<field>: <value>" line of a /proc file (the name may be padded, as
  in /proc/cpuinfo's "flags\t\t: ..."), stripped; None where the file or the line is missing."""
  try:
    with open(path) as f:
      for line in f:
        name, colon, value = line.partition(":")
        if colon and name.strip() == field:
          return value.strip()
  except OSError:
    pass
  return None


@functools.lru_cache(maxsize=1)
def host_cpu_flags() -> frozenset[str]:
  """The host CPU's feature flags (Linux /proc/cpuinfo); empty elsewhere."""
  return frozenset((proc_field("/proc/cpuinfo", "flags") or "").split())


def _proc_kib(path: str, field: str) -> int | None:
  """A "<field>: <n> kB" line of a /proc file, in bytes; None where it cannot be read."""
  value = proc_field(path, field)
  return None if value is None else int(value.split()[0]) * 1024


def peak_rss_bytes() -> int:
  """The process's peak resident set size in bytes since start (or since `reset_peak_rss`)."""
  peak = _proc_kib("/proc/self/status", "VmHWM")
  if peak is not None:
    return peak
  import resource
  peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return int(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux


def rss_bytes() -> int:
  """The current resident set size in bytes (0 where /proc is not available)."""
  return _proc_kib("/proc/self/status", "VmRSS") or 0


def available_memory_bytes() -> int | None:
  """Memory the host can still give without swapping (MemAvailable), or None where unknown."""
  return _proc_kib("/proc/meminfo", "MemAvailable")


def reset_peak_rss() -> bool:
  """Resets the peak to the current resident set; False where the OS does not allow it (then
  `peak_rss_bytes` keeps the process-wide peak)."""
  try:
    fd = os.open("/proc/self/clear_refs", os.O_WRONLY)
  except OSError:
    return False
  try:
    os.write(fd, b"5")
    return True
  except OSError:
    return False
  finally:
    os.close(fd)


def format_bytes(nbytes: float) -> str:
  """1536 -> '1.5 KB'; 3.2e9 -> '3.0 GB' (binary units)."""
  for unit in ("B", "KB", "MB", "GB"):
    if nbytes < 1024 or unit == "GB":
      return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
    nbytes /= 1024
  return ""
