"""What every command-line entry point (experiments/*.py) does around its pipeline.

    cli.main(run, config, workdir)

  * readable output: our progress lines in a short format; INFO chatter of other libraries
    (orbax, jax's backend probing, ...) is off unless `--verbosity` is given; a warning is one line;
  * a persistent XLA compilation cache (`enable_compilation_cache`), so a second process does not
    pay XLA's compile time again;
  * the workdir made absolute once (`repsim_jax.paths.absolute`);
  * `<workdir>/error.log` holds the traceback of the latest run if it failed, and nothing else.

Flags stay in experiments/; this module takes plain values.
"""
from __future__ import annotations

import contextlib
import logging as py_logging
import os
import traceback
import warnings
from typing import Any, Callable

from absl import flags, logging

from repsim_jax.paths import absolute

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


def error_log_path(workdir: str) -> str:
  """`<workdir>/error.log` (process 0), `error.process<i>.log` (process i of a multi-host run)."""
  import jax
  i = jax.process_index()
  return os.path.join(workdir, "error.log" if i == 0 else f"error.process{i}.log")


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


def main(run: Callable[[Any, str], Any], config: Any, workdir: str, *,
         xla_cache: str | None = None) -> Any:
  """Runs `run(config, absolute workdir)` the way every entry point does (see module docstring)."""
  verbose = "verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present
  configure_output(verbose=verbose)
  enable_compilation_cache(compilation_cache_dir(xla_cache))
  workdir = absolute(workdir)
  with error_log(workdir):
    return run(config, workdir)
