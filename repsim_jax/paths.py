"""Paths as users give them (relative to the current directory, `~`) made absolute, once.

Every path a user passes enters the library through a few doors (a driver's workdir, a checkpoint
directory, an ActivationStore, a data source, the layer files of the imbalance command); each door
calls `absolute`, so orbax, TensorStore and every file writer behind it see absolute paths only
(orbax silently misreads relative ones).
"""
from __future__ import annotations

import os


def absolute(path: str | os.PathLike) -> str:
  """`path` with `~` expanded, made absolute against the current directory, normalised."""
  return os.path.abspath(os.path.expanduser(os.fspath(path)))
