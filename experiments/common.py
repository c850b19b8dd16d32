"""Flags every entry point shares, and the one way each of them runs its pipeline.

  _CONFIG = common.define_config("configs/x.py", "configs/x.py[:variant]")
  _WORKDIR = common.define_workdir()
  def main(argv): common.run(pipeline.run, _CONFIG.value, _WORKDIR.value)
  if __name__ == "__main__": common.main(main)

  XLA cache: --xla_cache=DIR (or $REPSIM_XLA_CACHE; "off" disables), default
  ~/.cache/repsim_jax/xla: a second run of the same command skips XLA's compile time.

Config files are paths (`--config=configs/raghu.py:runlocal`): relative to the current
directory, or, when no such file exists there, relative to this project (the installed `configs`
package), so the README's commands work from any directory.

A mistake on the command line (an unknown flag or config key, a config variant or file that does
not exist, a value of the wrong type) is printed as one paragraph, `error: ...` with close matches
where there are some, and the command exits with status 1 before doing anything; errors while
the pipeline runs go through `repsim_jax.pipelines.cli.main`.
"""
from __future__ import annotations

import os
import re
import sys

from absl import app, flags
from ml_collections import config_dict, config_flags
from ml_collections.config_flags import config_flags as _config_flags_impl

from repsim_jax import names
from repsim_jax.pipelines import checks, cli

_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DEFAULT_CONFIG: dict[str, str | None] = {"config": None}  # applied when --config is not given

XLA_CACHE = flags.DEFINE_string(
    "xla_cache", None, "persistent XLA compilation cache directory; 'off' disables it (default: "
    f"${cli.XLA_CACHE_ENV}, else {cli.DEFAULT_XLA_CACHE})")


def config_overrides(argv: list[str], name: str = "config") -> list[tuple[str, str]]:
  """The `--config.a.b=value` arguments of `argv`: [(path "a.b", the argument as given)]."""
  out = []
  for arg in argv:
    match = re.match(rf"^--?(?:no)?{name}\.([^=]+)", arg)
    if match:
      out.append((match.group(1), arg))
  return out


def _shown(path: str) -> str:
  """A config file as a person typed it: relative to the project when it is one of its files."""
  path = os.path.abspath(path)
  return os.path.relpath(path, _PROJECT) if path.startswith(_PROJECT + os.sep) else path


class OverrideError(ValueError):
  """A `--config.key=value` argument that names no key of the config (the message names it)."""


def check_overrides(config, overrides: list[tuple[str, str]], source: str) -> None:
  """Every overridden key exists in `config`; else a ValueError naming the argument, with the
  keys close to it."""
  for path, arg in overrides:
    node, where = config, "config"
    for part in path.split("."):
      key, _, indices = part.partition("[")  # models[0].name
      if not isinstance(node, (config_dict.ConfigDict, dict)):
        break  # a value: ml_collections reports what it cannot set
      if key not in node:
        keys = list(node.keys())
        hint = names.did_you_mean(key, keys)
        raise OverrideError(f"{arg}: {source} has no key {key!r} in {where}"
                            + (f";{hint}" if hint else "")
                            + f" (keys there: {', '.join(sorted(keys))})")
      node, where = node[key], f"{where}.{key}"
      for index in re.findall(r"(\d+)\]", indices):
        if not isinstance(node, (list, tuple)) or int(index) >= len(node):
          raise OverrideError(f"{arg}: {where} has no entry [{index}] "
                              f"({len(node) if isinstance(node, (list, tuple)) else 'not a list'})")
        node, where = node[int(index)], f"{where}[{index}]"


class _ProjectConfigParser(_config_flags_impl.ConfigFileFlagParser):
  """Reads `configs/x.py[:arg]` from the current directory, else from the project; an error in
  the file (an unknown variant) or an unknown override key is one line, not a traceback."""

  def parse(self, path):
    if not isinstance(path, str):
      return super().parse(path)
    file, sep, arg = path.partition(":")
    if not os.path.exists(file) and os.path.exists(os.path.join(_PROJECT, file)):
      path = os.path.join(_PROJECT, file) + sep + arg
    elif not os.path.isfile(file):
      configs = sorted(f for f in os.listdir(os.path.join(_PROJECT, "configs"))
                       if f.endswith(".py") and not f.startswith("_")
                       and f not in ("common.py", "encoders.py"))
      raise ValueError(f"config file {file!r} not found (looked in {os.getcwd()} and in "
                       f"{_PROJECT});{names.did_you_mean(os.path.basename(file), configs)} "
                       f"the project's configs: {', '.join('configs/' + c for c in configs)}")
    try:
      config = super().parse(path)
    except (TypeError, ValueError) as e:  # ml_collections adds the traceback to the message
      cause = e.__context__ if e.__context__ is not None else e
      raise ValueError(checks.message(cause)) from None
    check_overrides(config, config_overrides(sys.argv, self.name), _shown(path.partition(":")[0]))
    return config


def define_config(default: str | None = None, help_string: str = "config file[:variant]"):
  """`--config`: an ml_collections config file (big_vision style `path:variant,key=value`).

  The default is applied when flags are parsed (`parse_flags`), not here: ml_collections would
  read it, and any `--config.key` override, while the entry point's module is still importing,
  where a mistake could only end in a traceback."""
  _DEFAULT_CONFIG["config"] = default
  holder = config_flags.DEFINE_config_file(
      "config", None, help_string + (f" (default: {_shown(default)})"
                                     if default else ""), lock_config=True)
  flags.FLAGS["config"].parser = _ProjectConfigParser(name="config", lock_config=True)
  flags.FLAGS["config"].default_as_str = None  # the help string names the default
  return holder


def define_workdir(default: str | None = None):
  return flags.DEFINE_string("workdir", default, "output directory (relative paths are fine)",
                             required=default is None)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing with the default config applied and every mistake as one paragraph."""
  argv = list(argv)
  default = _DEFAULT_CONFIG["config"]
  if default and not any(re.match(r"^--?config(=|$)", a) for a in argv[1:]):
    argv.insert(1, f"--config={os.path.normpath(default)}")
  for name in flags.FLAGS:  # --helpshort lists the flags of the command (absl: its main module)
    module = flags.FLAGS.find_module_defining_flag(name)
    if module and module.startswith(("experiments", os.path.dirname(__file__))):
      flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
  try:
    return flags.FLAGS(argv)
  # ml_collections raises plain exceptions for an override it cannot apply (a malformed path)
  except (flags.Error, ValueError, LookupError, AttributeError, TypeError) as e:
    cause = e.__context__ if isinstance(e.__context__, OverrideError) else e
    print(f"error: {checks.message(cause)}\n  (--helpshort lists this command's flags)",
          file=sys.stderr, flush=True)
    sys.exit(1)


def main(entry_point) -> None:
  """`app.run(entry_point)` with `parse_flags`."""
  app.run(entry_point, flags_parser=parse_flags)


def run(pipeline, config, workdir: str):
  """`pipeline(config, workdir)` with readable output, the XLA cache, an absolute workdir and
  error.log (`repsim_jax.pipelines.cli.main`)."""
  return cli.main(pipeline, config, workdir, xla_cache=XLA_CACHE.value)
