"""Starts P real processes joined by `jax.distributed` on 127.0.0.1, for multi-process tests.

  results = run_processes([sys.executable, "-m", "experiments.imbalance", ...],
                          num_processes=2, devices_per_process=2, timeout_s=120)

Every process gets, before jax is imported:
  XLA_FLAGS=--xla_force_host_platform_device_count=D  (D fake CPU devices),
  JAX_PLATFORMS=cpu, REPSIM_DISTRIBUTED=1, JAX_COORDINATOR_ADDRESS=127.0.0.1:<free port>,
  JAX_NUM_PROCESSES=P, JAX_PROCESS_ID=i, and PYTHONPATH starting with the repository root;
so `repsim_jax.sharding.maybe_initialize_distributed()` (which every driver calls) joins them.

Every wait is bounded: the whole group by `timeout_s`; once one process fails, the others get
`grace_s` to stop by themselves before they are killed. A failure raises `MultiProcessError`
showing every process's exit status and output. `expect_failure=True` returns the results instead
(tests of how a run ends when one process dies); `kill` SIGKILLs a process once a line of its
output matches a pattern (a host that dies mid-run; `kill_signal=signal.SIGTERM`: a job's time
limit).
"""
from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Callable, Sequence

from locations import ROOT as _ROOT

ROOT = str(_ROOT)


@dataclasses.dataclass
class ProcessResult:
  index: int
  returncode: int | None  # None: still running when the harness killed it
  output: str             # stdout and stderr, interleaved
  seconds: float          # from the start of the group to this process's exit
  killed_by_harness: bool


class MultiProcessError(AssertionError):
  """A process of the group failed, or the group ran past its timeout."""


def free_port() -> int:
  """A TCP port on 127.0.0.1 that nothing listens on right now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def process_env(index: int, num_processes: int, devices_per_process: int, port: int,
                extra: dict[str, str] | None = None) -> dict[str, str]:
  """The environment of process `index` (see the module docstring)."""
  env = dict(os.environ)
  env.update({
      "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process}",
      "JAX_PLATFORMS": "cpu",
      "REPSIM_DISTRIBUTED": "1",
      "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
      "JAX_NUM_PROCESSES": str(num_processes),
      "JAX_PROCESS_ID": str(index),
      "PYTHONPATH": os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
      "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
      "HF_HUB_OFFLINE": "1",
      "PYTHONUNBUFFERED": "1",
  })
  env.update(extra or {})
  return env


def format_results(results: Sequence[ProcessResult], tail: int = 6000) -> str:
  parts = []
  for r in results:
    status = ("killed by the harness" if r.killed_by_harness
              else f"exit status {r.returncode}")
    out = r.output if len(r.output) <= tail else "...\n" + r.output[-tail:]
    parts.append(f"----- process {r.index}: {status} after {r.seconds:.1f}s -----\n{out}")
  return "\n".join(parts)


def run_processes(argv: Sequence[str] | Callable[[int], Sequence[str]], *, num_processes: int = 2,
                  devices_per_process: int = 2, timeout_s: float = 300, grace_s: float = 60,
                  env: dict[str, str] | None = None, cwd: str = ROOT,
                  kill: tuple[int, str] | None = None, kill_signal: int = signal.SIGKILL,
                  expect_failure: bool = False) -> list[ProcessResult]:
  """Runs `argv` (or `argv(i)`) as P processes of one jax.distributed group; see the module doc.

  Args:
    argv: the command of every process, or a function of the process index giving it.
    num_processes / devices_per_process: P processes with D fake CPU devices each.
    timeout_s: bound on the whole group; past it every process is killed and the test fails.
    grace_s: after the first process fails, how long the others may take to stop by themselves.
    env: extra environment variables for every process.
    kill: (process index, regex): SIGKILL that process once a line of its output matches.
    kill_signal: the signal `kill` sends instead of SIGKILL.
    expect_failure: return the results instead of raising when a process fails.

  Returns:
    one `ProcessResult` per process, in index order.
  """
  port = free_port()
  procs, logs = [], []
  start = time.monotonic()
  with tempfile.TemporaryDirectory(prefix="multiprocess-") as tmp:
    for i in range(num_processes):
      log = open(os.path.join(tmp, f"process{i}.log"), "w+")
      command = list(argv(i) if callable(argv) else argv)
      procs.append(subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                    env=process_env(i, num_processes, devices_per_process, port,
                                                    env), start_new_session=True))
      logs.append(log)
    ended = [None] * num_processes  # seconds at exit
    harness_killed = [False] * num_processes
    first_failure = None
    killed_on_match = timed_out = False
    try:
      while any(p.poll() is None for p in procs):
        now = time.monotonic() - start
        for i, p in enumerate(procs):
          if ended[i] is None and p.poll() is not None:
            ended[i] = now
            if p.returncode != 0 and first_failure is None:
              first_failure = now
        if kill is not None and not killed_on_match:
          index, pattern = kill
          with open(logs[index].name) as f:
            if re.search(pattern, f.read(), re.MULTILINE):
              os.killpg(procs[index].pid, kill_signal)
              killed_on_match = True
        if now > timeout_s or (first_failure is not None and now > first_failure + grace_s):
          timed_out = first_failure is None
          for i, p in enumerate(procs):
            if p.poll() is None:
              os.killpg(p.pid, signal.SIGKILL)
              harness_killed[i] = True
          for p in procs:
            p.wait(timeout=30)
          break
        time.sleep(0.1)
    finally:
      for p in procs:  # whatever happened above (a KeyboardInterrupt too), leave nothing behind
        if p.poll() is None:
          os.killpg(p.pid, signal.SIGKILL)
          p.wait(timeout=30)
    now = time.monotonic() - start
    results = []
    for i, (p, log) in enumerate(zip(procs, logs)):
      log.seek(0)
      results.append(ProcessResult(i, None if harness_killed[i] else p.returncode, log.read(),
                                   ended[i] if ended[i] is not None else now, harness_killed[i]))
      log.close()
  failed = any(r.returncode != 0 for r in results)
  if failed and not expect_failure:
    why = f"ran past its {timeout_s:.0f}s timeout" if timed_out else "had a failing process"
    raise MultiProcessError(f"{num_processes} processes x {devices_per_process} devices {why}:\n"
                            + format_results(results))
  return results


def python_argv(module_or_script: str, *args: str, record_writes: str | None = None) -> list[str]:
  """`python -m module args` (a dotted name) or `python script args` (a path).

  With `record_writes` (a path), the program runs under this file's write recorder: every file
  the process opens for writing or renames into place through Python is listed in
  `<record_writes>` at exit (see `written_files`); C++ writers (TensorStore) are not seen.
  """
  target = [module_or_script] if module_or_script.endswith(".py") else ["-m", module_or_script]
  if record_writes is not None:
    return [sys.executable, os.path.abspath(__file__), "--record-writes", record_writes,
            *target, *args]
  return [sys.executable, *target, *args]


def written_files(record: str) -> list[str]:
  """The absolute paths a process recorded by `python_argv(..., record_writes=record)` wrote."""
  with open(record) as f:
    return [line for line in f.read().splitlines() if line]


def _run_recording_writes(argv: list[str]) -> None:
  """`multiprocess_harness.py --record-writes FILE (-m module | script) args...`: runs the
  program with an audit hook that lists the files it writes."""
  import atexit
  import runpy
  record, target = argv[1], argv[2:]
  written: list[str] = []

  def hook(event, args):
    if event == "open":
      path, mode, flags = args
      writing = (any(c in mode for c in "wax+") if isinstance(mode, str)
                 else bool(flags & (os.O_WRONLY | os.O_RDWR)))
      if writing and isinstance(path, (str, bytes, os.PathLike)):
        written.append(os.path.abspath(os.fsdecode(path)))
    elif event in ("os.rename", "os.replace"):
      written.append(os.path.abspath(os.fsdecode(args[1])))

  def save():
    with open(record, "w") as f:
      f.write("\n".join(written[:]) + "\n")

  atexit.register(save)
  sys.addaudithook(hook)
  if target[0] == "-m":
    sys.argv = [target[1], *target[2:]]
    runpy.run_module(target[1], run_name="__main__", alter_sys=True)
  else:
    sys.argv = target
    runpy.run_path(target[0], run_name="__main__")


if __name__ == "__main__":
  if len(sys.argv) > 3 and sys.argv[1] == "--record-writes":
    _run_recording_writes(sys.argv[1:])
  else:
    raise SystemExit(f"usage: {sys.argv[0]} --record-writes FILE (-m module | script) args...")
