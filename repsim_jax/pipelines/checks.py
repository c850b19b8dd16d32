"""Checks of a config's names and of the workdir, run before a pipeline does any work.

A misspelled step, model type, backend or dataset kind would otherwise fail only when it is
reached (an unknown step after minutes of extraction). Each check raises `UserError` with a
message that names the config key, offers close matches (`repsim_jax.names`) and lists what is
known; `pipelines.cli` prints it as one paragraph.

  checks.workdir(workdir)
  checks.steps("repsim_jax.pipelines.raghu", config.analysis.steps)
  checks.models(config.models)
  checks.dataset(config.dataset)
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Collection, Mapping, Sequence

from repsim_jax import names as names_lib

BACKENDS = ("jax", "torch")


class UserError(ValueError):
  """A problem with what a person gave (an input, the config, the workdir, a name), with a
  message that says what was wrong, which input, and what to do: printed without a traceback."""


def message(exc: BaseException) -> str:
  """The message of `exc` as one paragraph (a KeyError's without the quotes str() adds)."""
  text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
  lines = [line.strip() for line in str(text).splitlines() if line.strip()]
  return " ".join(lines) or type(exc).__name__


def workdir(path: str) -> str:
  """Creates `path` (absolute) if needed and checks that files can be written in it."""
  if os.path.exists(path) and not os.path.isdir(path):
    raise UserError(f"--workdir={path} is a file, not a directory: give the path of a directory "
                    "(it is created when missing), or move the file away")
  parent = path
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise UserError(f"--workdir={path} cannot be created: {parent} is a file, not a directory; "
                    "give a workdir outside it")
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):  # the permissions that matter: can we write here
      pass
  except OSError as e:
    raise UserError(f"--workdir={path} cannot be created or written to ({e.strerror}): choose "
                    "a directory you can write to, or change its permissions") from e
  return path


def steps(package: str, step_names: Sequence[str], *, where: str = "config.analysis.steps"
          ) -> list[str]:
  """Every step of `step_names` (as `run.step_names` reads them) exists in `package`."""
  from repsim_jax.pipelines import run
  names = run.step_names(step_names)
  for name in names:
    try:
      run.find_step(package, name)
    except ValueError as e:
      raise UserError(f"{e} ({where}={','.join(names)}); fix the name or leave the step out") \
          from None
  return names


def models(entries: Sequence[Mapping[str, Any]], *, where: str = "config.models",
           only: Collection[str] | None = None) -> None:
  """Each model entry's backend, model type (tiny random checkpoints) and checkpoint exist.

  only: the names of the entries to check (None: all), e.g. the models whose stores must be
  extracted: a complete store is read without its model.
  """
  from repsim_jax.models import loading, registry
  for i, entry in enumerate(entries):
    if only is not None and entry.get("name") not in only:
      continue
    label = f"{where}[{i}] ({entry.get('name')!r})"
    backend = entry.get("backend") or "jax"
    if backend not in BACKENDS:
      raise UserError(names_lib.unknown("backend", backend, BACKENDS, where=label))
    if entry.get("tiny_random"):
      model_type = entry.get("model_type")
      if backend == "jax" and model_type not in registry.FAMILIES:
        raise UserError(names_lib.unknown("model type", model_type, registry.FAMILIES,
                                          where=label) + ". Use backend='torch' for a model "
                        "type we have not ported")
      continue
    if not entry.get("checkpoint"):
      raise UserError(f"{label} has no checkpoint: give a hub id or a checkpoint directory "
                      "(--config=...:models=... picks catalogue entries)")
    try:
      loading.resolve_checkpoint(entry["checkpoint"])
    except FileNotFoundError as e:
      raise UserError(f"{label}: {e}") from None


def dataset(config: Mapping[str, Any], *, where: str = "config.dataset") -> None:
  """The dataset kind is known, and the files it reads from exist."""
  from repsim_jax import data
  kind = config.get("kind")
  if kind not in data.KINDS:
    raise UserError(names_lib.unknown("dataset kind", kind, data.KINDS, where=f"{where}.kind"))
  for key in data.PATH_KEYS.get(kind, ()):
    value = config.get(key)
    if value and not os.path.exists(os.path.expanduser(str(value))):
      raise UserError(f"{where}.{key}={value!r} does not exist: give the path of the "
                      f"{kind} {key} (--{where}.{key}=...)")


def choice(value: Any, known: Sequence[str], *, where: str) -> None:
  """`value` is one of `known` (a config setting with a fixed set of values)."""
  if value not in known:
    raise UserError(names_lib.unknown("value", value, known, where=where))
