"""What every command-line entry point (experiments/*.py) does around its pipeline.

    cli.main(run, config, workdir)

  * readable output: our progress lines in a short format; INFO chatter of other libraries
    (orbax, jax's backend probing, ...) is off unless `--verbosity` is given; a warning is one line;
  * a persistent XLA compilation cache (`enable_compilation_cache`), so a second process does not
    pay XLA's compile time again;
  * the workdir made absolute once (`repsim_jax.paths.absolute`);
  * the workdir checked before any work (`checks.workdir`: not a file, writable);
  * `<workdir>/error.log` holds the traceback of the latest run if it failed, and nothing else;
  * a user error (`is_user_error`: `checks.UserError`, or a ValueError, LookupError, OSError or
    ImportError raised by a `raise` statement of our own code, whose message names the input and
    what was expected) prints one paragraph, `error: <message>` and where the traceback is, and
    exits with status 1; `--verbosity=1` prints the traceback too. Any other exception is an
    internal error and prints its traceback as usual.

Flags stay in experiments/; this module takes plain values.
"""
from __future__ import annotations

import contextlib
import linecache
import logging as py_logging
import os
import sys
import traceback
import warnings
from typing import Any, Callable

from absl import flags, logging

from repsim_jax.paths import absolute
from repsim_jax.pipelines import checks
from repsim_jax.pipelines.checks import UserError

DEFAULT_XLA_CACHE = "~/.cache/repsim_jax/xla"
XLA_CACHE_ENV = "REPSIM_XLA_CACHE"  # a directory, or "off"
_OUR_CODE = tuple(os.sep + p + os.sep for p in ("repsim_jax", "experiments", "configs"))


class _OursOrWarnings(py_logging.Filter):
  """Keeps every record at WARNING and above, and INFO records logged by our own code."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return record.levelno >= py_logging.WARNING or any(p in record.pathname for p in _OUR_CODE)


class _ShortFormatter(py_logging.Formatter):
  def format(self, record: py_logging.LogRecord) -> str:
    level = "" if record.levelno < py_logging.WARNING else f"{record.levelname} "
    return f"{self.formatTime(record, '%H:%M:%S')} {level}{record.getMessage()}"


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
  return f"{category.__name__}: {message} ({os.path.basename(filename)}:{lineno})"


def configure_output(*, verbose: bool = False) -> None:
  """Short log lines on stderr; other libraries' INFO records dropped unless `verbose`."""
  handler = logging.get_absl_handler().python_handler
  if not verbose:
    handler.setFormatter(_ShortFormatter())
    if not any(isinstance(f, _OursOrWarnings) for f in handler.filters):
      handler.addFilter(_OursOrWarnings())
  warnings.formatwarning = _one_line_warning
  py_logging.captureWarnings(True)
  for name in ("transformers", "huggingface_hub"):  # their own handlers print INFO banners
    py_logging.getLogger(name).setLevel(py_logging.WARNING if not verbose else py_logging.INFO)
  if not verbose:  # "PyTorch was not found. Models won't be available": we only read configs
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' "Loading weights"


def compilation_cache_dir(value: str | None = None) -> str | None:
  """The cache directory: `value`, else $REPSIM_XLA_CACHE, else ~/.cache/repsim_jax/xla;
  None when switched off ("off", "none", "0" or "")."""
  if value is None:
    value = os.environ.get(XLA_CACHE_ENV, DEFAULT_XLA_CACHE)
  if value.strip().lower() in ("", "off", "none", "0", "false"):
    return None
  return absolute(value)


def enable_compilation_cache(directory: str | None) -> None:
  """XLA's persistent compilation cache in `directory` (None: leave it off).

  Every jit-compiled program is stored (small ones too: a command compiles many), keyed by XLA on
  the program, the compile options, the device kind and the jax/jaxlib versions, so a cached
  executable is the one a fresh compile would produce and results do not change.
  """
  if directory is None:
    return
  import jax
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def error_log_path(workdir: str, process: int | None = None) -> str:
  """`<workdir>/error.log` (process 0), `error.process<i>.log` (process i of a multi-host run);
  this process's unless `process` is given."""
  if process is None:
    import jax
    process = jax.process_index()
  return os.path.join(workdir, "error.log" if process == 0 else f"error.process{process}.log")


def peer_log_hint(workdir: str) -> Callable[[int], str]:
  """For `sharding.peer_log_hint`: where process i's log is, as a sentence."""
  def hint(process: int) -> str:
    path = error_log_path(workdir, process)
    if os.path.exists(path):
      return f"Its traceback is in {path}."
    return (f"It wrote no {os.path.basename(path)} in {workdir} (a killed process writes "
            "nothing): see its console output.")
  return hint


def _is_peer_failure(exc: BaseException) -> bool:
  """A multi-process run's collective that failed because a peer stopped (jax's runtime error
  from Gloo or the coordination service)."""
  import jax
  if not (jax.distributed.is_initialized() and jax.process_count() > 1):
    return False
  text = str(exc)
  return type(exc).__name__ in ("JaxRuntimeError", "XlaRuntimeError") and any(
      s in text for s in ("DEADLINE_EXCEEDED", "UNAVAILABLE", "gloo", "Gloo", "heartbeat"))


@contextlib.contextmanager
def error_log(workdir: str):
  """The traceback of a failing block goes to `error_log_path(workdir)` and is re-raised.

  A stale log from an earlier run is removed first, so the file always describes the latest run.
  """
  path = error_log_path(workdir)
  with contextlib.suppress(FileNotFoundError):
    os.remove(path)
  try:
    yield
  except Exception:
    os.makedirs(workdir, exist_ok=True)
    with open(path, "w") as f:
      f.write(traceback.format_exc())
    raise


def _raised_by_our_code(exc: BaseException) -> bool:
  """Whether `exc` comes from a `raise` statement in repsim_jax/, experiments/ or configs/."""
  tb = exc.__traceback__
  if tb is None:
    return False
  while tb.tb_next is not None:
    tb = tb.tb_next
  code = tb.tb_frame.f_code
  if not any(p in code.co_filename for p in _OUR_CODE):
    return False
  # the statement that raised: its first line (a message may continue on the next lines)
  positions = list(code.co_positions())
  index = tb.tb_lasti // 2
  first_line = positions[index][0] if index < len(positions) and positions[index][0] else \
      tb.tb_lineno
  return linecache.getline(code.co_filename, first_line).lstrip().startswith("raise")


def is_user_error(exc: BaseException) -> bool:
  """A problem with what the person gave, whose message says what to do (see module docstring)."""
  if isinstance(exc, UserError):
    return True
  from repsim_jax.extraction.store import IncompleteStoreError
  kinds = (ValueError, LookupError, OSError, ImportError, IncompleteStoreError)
  return isinstance(exc, kinds) and _raised_by_our_code(exc)


def print_user_error(exc: BaseException, *, log_path: str | None, verbose: bool) -> None:
  """`error: <message>` and where its traceback is (stderr); the traceback too when `verbose`."""
  if verbose:
    traceback.print_exception(exc, file=sys.stderr)
  where = (f"the traceback is in {log_path}" if log_path else "no traceback was written")
  print(f"error: {checks.message(exc)}\n  ({where}; --verbosity=1 prints it here)",
        file=sys.stderr, flush=True)


def exit_failed(status: int = 1, *, announce: bool = True) -> None:
  """Ends the command with `status`; in a multi-process run at once (`os._exit`), since Python's
  normal exit would wait at jax's shutdown barrier for processes that wait for this one."""
  import jax
  sys.stdout.flush()
  sys.stderr.flush()
  if jax.distributed.is_initialized() and jax.process_count() > 1:
    if announce:
      print(f"process {jax.process_index()} of {jax.process_count()} failed; exiting at once "
            "so that the other processes stop too", file=sys.stderr, flush=True)
    os._exit(status)
  sys.exit(status)


def main(run: Callable[[Any, str], Any], config: Any, workdir: str, *,
         xla_cache: str | None = None) -> Any:
  """Runs `run(config, absolute workdir)` the way every entry point does (see module docstring)."""
  from repsim_jax import sharding
  verbose = "verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present
  configure_output(verbose=verbose)
  enable_compilation_cache(compilation_cache_dir(xla_cache))
  # before anything touches a device (error_log asks for the process index): a multi-host run
  # (--config.distributed=True or REPSIM_DISTRIBUTED=1) joins its processes first
  sharding.maybe_initialize_distributed(config.get("distributed") or None)
  workdir = absolute(workdir)
  sharding.peer_log_hint = peer_log_hint(workdir)
  log_path = None
  try:
    checks.workdir(workdir)
    log_path = error_log_path(workdir)
    with error_log(workdir):
      return run(config, workdir)
  except Exception as e:  # pylint: disable=broad-except
    if _is_peer_failure(e):
      if verbose:
        traceback.print_exception(e, file=sys.stderr)
      print(sharding.describe_peer_failure(str(e)) + f"\n  (this process's traceback is in "
            f"{log_path}; --verbosity=1 prints it here)", file=sys.stderr, flush=True)
      exit_failed(1, announce=False)
    if not is_user_error(e):
      raise
    print_user_error(e, log_path=log_path, verbose=verbose)
    exit_failed(1)
