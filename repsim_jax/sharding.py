"""Mesh helpers: a 1-D "rows" mesh over every device, multi-host aware.

Kernels shard query rows over the mesh and replicate the reference points; `jax.distributed` is
the multi-host engine (initialised only when asked), there is no home-made scheduler.

Multi-process rules every caller relies on:
  * every process runs the same program on the same inputs and takes the same decisions: a value
    that may differ between hosts (free device memory, a file's state) is agreed on first
    (`agree_min`, `broadcast_from_writer`), since different block sizes or schedules on different
    hosts would deadlock the collectives;
  * only the writer (process 0, `is_writer`) writes results; files that every process then opens
    (a store's metadata, a tiny checkpoint) are made by `writer_first`;
  * device queries (memory) go to addressable devices only (`local_memory_stats`).
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import re
import sys
import traceback
from typing import Any, Callable, Iterator, TypeVar

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

ROWS = "rows"
_T = TypeVar("_T")


def _env_int(name: str) -> int | None:
  value = os.environ.get(name)
  if value in (None, ""):
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"environment variable {name}={value!r}: expected an integer") from None


def maybe_initialize_distributed(enabled: bool | None = None) -> bool:
  """Joins the processes of a multi-host run with `jax.distributed.initialize()` when asked.

  Asked by `enabled=True` (configs: `--config.distributed=True`) or, when `enabled` is None, by
  REPSIM_DISTRIBUTED=1. On TPU pods, SLURM and Open MPI the coordinator, process count and id
  are discovered by jax; elsewhere set JAX_COORDINATOR_ADDRESS (host:port of process 0),
  JAX_NUM_PROCESSES and JAX_PROCESS_ID (jax itself reads only the first). Must run before
  anything touches a jax device. Returns whether this is a multi-process run.

  Timeouts (seconds, environment): REPSIM_HEARTBEAT_TIMEOUT_S (default 100, jax's): a process
  that stops answering is declared dead after this long and the others stop with an error;
  REPSIM_SHUTDOWN_TIMEOUT_S (default 300, jax's): how long a finished process waits at exit for
  the others to finish (process 0 writes figures after the others are done).

  On CPU, cross-process collectives need jax's Gloo implementation (the default since jax 0.5;
  set here when a user's configuration left it unset).

  In a multi-process run an uncaught exception ends this process at once (`os._exit(1)` after
  printing the traceback), instead of Python's normal exit, where jax's shutdown barrier would
  wait REPSIM_SHUTDOWN_TIMEOUT_S for the other processes while they wait in a collective for
  this one. The others then fail within seconds (their collective loses its peer) or, at the
  latest, after the heartbeat timeout.
  """
  if enabled is None:
    enabled = os.environ.get("REPSIM_DISTRIBUTED", "0") == "1"
  if not enabled:
    return False
  if not jax.distributed.is_initialized():
    if jax.config.jax_cpu_collectives_implementation is None:
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    timeouts = {}
    for key, env in (("heartbeat_timeout_seconds", "REPSIM_HEARTBEAT_TIMEOUT_S"),
                     ("shutdown_timeout_seconds", "REPSIM_SHUTDOWN_TIMEOUT_S")):
      if (value := _env_int(env)) is not None:
        timeouts[key] = value
    jax.distributed.initialize(num_processes=_env_int("JAX_NUM_PROCESSES"),
                               process_id=_env_int("JAX_PROCESS_ID"), **timeouts)
  if jax.process_count() > 1 and sys.excepthook is not _exit_at_once:
    global _previous_excepthook
    _previous_excepthook = sys.excepthook
    sys.excepthook = _exit_at_once
  return jax.process_count() > 1


_previous_excepthook = sys.excepthook

# process index -> a sentence saying where that process's log is (set by `pipelines.cli`, which
# knows the workdir); None: "see its console output"
peer_log_hint: Callable[[int], str] | None = None


def stopped_processes(status: str) -> list[int]:
  """The process indices named by a failure report of jax's distributed service: the tasks that
  stopped sending heartbeats, or the Gloo peer whose rendezvous key never came
  (`cpu:gloo/<...>/<rank>`); [] when none is named."""
  match = re.search(r"stopped sending heartbeats\):\s*([\d\s,]+)", status)
  if match:
    return sorted({int(i) for i in re.findall(r"\d+", match.group(1))})
  match = re.search(r"timed out with key: cpu:gloo/[^\s]*/(\d+)\b", status)
  return [int(match.group(1))] if match else []


def describe_peer_failure(status: str) -> str:
  """One paragraph for a survivor: which process stopped, where its log is, what to do."""
  me, count = jax.process_index(), jax.process_count()
  stopped = [i for i in stopped_processes(status) if i != me]
  if not stopped and count == 2:  # "Connection closed by peer": the peer is the other process
    stopped = [1 - me]
  if stopped:
    who = ", ".join(f"process {i}" for i in stopped)
    logs = " ".join(peer_log_hint(i) if peer_log_hint else f"Process {i}'s log is its console "
                    "output." for i in stopped)
    what = (f"{who} of {count} stopped (killed, out of memory, or failed) and no longer answers. "
            f"{logs}")
  else:
    what = (f"a collective with the other processes failed, most likely because one of them "
            f"stopped; see the other processes' output ({status.splitlines()[0][:200]}).")
  return (f"error: process {me} of {count} stops because {what} Fix that process's problem and "
          "run the command again on every process; finished work (complete stores, chunks) is "
          "reused.")


def _exit_at_once(kind, value, tb) -> None:
  """sys.excepthook of multi-process runs: print the traceback, then leave without waiting at
  jax's shutdown barrier (see `maybe_initialize_distributed`)."""
  try:
    print(f"process {jax.process_index()} of {jax.process_count()} failed; exiting at once so "
          "that the other processes stop too", file=sys.stderr)
    _previous_excepthook(kind, value, tb)
  except Exception:  # never let a broken hook keep the process alive
    traceback.print_exception(kind, value, tb)
  finally:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


_PROCESS_LOCAL = contextvars.ContextVar("repsim_jax_process_local", default=False)


@contextlib.contextmanager
def process_local() -> Iterator[None]:
  """Inside: this process works alone. Default meshes (`row_mesh()`) hold its own devices, and
  the writer's broadcasts, barriers and agreements are its own values, as on one process.

  For work that one process does while the others do other work (the measure engine gives each
  process its own layer pairs): a kernel's default mesh over every process's devices, or a
  broadcast, would be a collective the other processes never join.
  """
  token = _PROCESS_LOCAL.set(True)
  try:
    yield
  finally:
    _PROCESS_LOCAL.reset(token)


def across_processes() -> bool:
  """True where collectives span several processes: a multi-process run, outside
  `process_local`."""
  return jax.process_count() > 1 and not _PROCESS_LOCAL.get()


def is_writer() -> bool:
  """True on the one process that writes results, logs progress and draws figures (process 0).

  Every process computes the same numbers; writing them once keeps a shared filesystem free of
  double writes and works the same when hosts have separate disks.
  """
  return jax.process_index() == 0


def sync(name: str) -> None:
  """A barrier across every process (no-op in a single process); `name` must match everywhere."""
  if across_processes():
    multihost_utils.sync_global_devices(name)


def writer_first(make: Callable[[], _T], name: str) -> _T:
  """`make()` on the writer first, then, after a barrier, on every other process.

  For steps that create files all processes then use (a store's metadata and layer arrays, a
  tiny checkpoint): the writer creates them, the others find them complete and only open them.
  """
  if not across_processes():
    return make()
  out = make() if is_writer() else None
  sync(f"writer_first: {name}")
  return out if is_writer() else make()


def broadcast_from_writer(value: Any) -> Any:
  """The writer's `value` (a pytree of numpy arrays, dtypes kept) on every process."""
  if not across_processes():
    return value
  with jax.enable_x64(True):  # 64-bit values travel whole (jax would narrow them to 32)
    out = multihost_utils.broadcast_one_to_all(value)
  return jax.tree.map(lambda new, old: np.asarray(new, np.asarray(old).dtype), out, value)


def broadcast_bytes_from_writer(data: bytes | None) -> bytes:
  """The writer's `data` on every process (the others pass None): e.g. a file only the writer's
  disk holds. Travels as int32 words (its length first), as `broadcast_from_writer` sends them."""
  if not across_processes():
    return data
  size = int(broadcast_from_writer(np.asarray(len(data) if is_writer() else 0, np.int64)))
  words = -(-size // 4)
  if is_writer():
    buffer = np.frombuffer(data + bytes(4 * words - size), np.int32)
  else:
    buffer = np.zeros(words, np.int32)
  return broadcast_from_writer(buffer).tobytes()[:size]


def agree_min(value: int) -> int:
  """The smallest `value` over all processes (for decisions every process must share)."""
  if not across_processes():
    return int(value)
  # int64 end to end: without x64, jax would gather int32 and wrap values above 2^31 (byte
  # counts), so every process would agree on a wrong number.
  with jax.enable_x64(True):
    return int(np.min(multihost_utils.process_allgather(np.asarray(value, np.int64))))


def local_memory_stats(mesh: Mesh) -> dict[str, int]:
  """memory_stats() of this process's first device in `mesh` ({} when none or not reported).

  Devices of other processes cannot be queried (jax raises on them).
  """
  local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
  return (local[0].memory_stats() or {}) if local else {}


def row_mesh(devices: list[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh named "rows" over `devices` (default: every device of every process; this
  process's devices inside `process_local`)."""
  if devices is None:
    devices = jax.devices() if across_processes() else jax.local_devices()
  return Mesh(np.asarray(devices), (ROWS,))


def replicate(x: np.ndarray, mesh: Mesh) -> jax.Array:
  """A global array holding the full `x` on every device (works on multi-host meshes too)."""
  sharding = NamedSharding(mesh, P())
  if isinstance(x, jax.Array) and x.sharding == sharding:
    return x
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def shard_rows(x: np.ndarray, mesh: Mesh) -> jax.Array:
  """A global array whose leading axis is split over the "rows" axis; len(x) % mesh.size == 0."""
  x = np.asarray(x)
  return jax.make_array_from_callback(x.shape, NamedSharding(mesh, P(ROWS)), lambda i: x[i])


def to_host(x: jax.Array) -> np.ndarray:
  """The full value of a (possibly multi-host) global array as numpy, on every process."""
  if not x.is_fully_addressable:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(x)
