"""Flags every entry point shares, and the one way each of them runs its pipeline.

  XLA cache: --xla_cache=DIR (or $REPSIM_XLA_CACHE; "off" disables), default
  ~/.cache/repsim_jax/xla: a second run of the same command skips XLA's compile time.

Config files are paths (`--config=configs/raghu.py:runlocal`): relative to the current
directory, or, when no such file exists there, relative to this project (the installed `configs`
package), so the README's commands work from any directory.
"""
from __future__ import annotations

import os

from absl import flags
from ml_collections import config_flags
from ml_collections.config_flags import config_flags as _config_flags_impl

from repsim_jax.pipelines import cli

_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

XLA_CACHE = flags.DEFINE_string(
    "xla_cache", None, "persistent XLA compilation cache directory; 'off' disables it (default: "
    f"${cli.XLA_CACHE_ENV}, else {cli.DEFAULT_XLA_CACHE})")


class _ProjectConfigParser(_config_flags_impl.ConfigFileFlagParser):
  """Reads `configs/x.py[:arg]` from the current directory, else from the project."""

  def parse(self, path):
    if isinstance(path, str):
      file, sep, arg = path.partition(":")
      if not os.path.exists(file) and os.path.exists(os.path.join(_PROJECT, file)):
        path = os.path.join(_PROJECT, file) + sep + arg
    return super().parse(path)


def define_config(default: str | None = None, help_string: str = "config file[:variant]"):
  """`--config`: an ml_collections config file (big_vision style `path:variant,key=value`)."""
  holder = config_flags.DEFINE_config_file("config", default, help_string, lock_config=True)
  flags.FLAGS["config"].parser = _ProjectConfigParser(name="config", lock_config=True)
  return holder


def define_workdir(default: str | None = None):
  return flags.DEFINE_string("workdir", default, "output directory (relative paths are fine)",
                             required=default is None)


def run(pipeline, config, workdir: str):
  """`pipeline(config, workdir)` with readable output, the XLA cache, an absolute workdir and
  error.log (`repsim_jax.pipelines.cli.main`)."""
  return cli.main(pipeline, config, workdir, xla_cache=XLA_CACHE.value)
