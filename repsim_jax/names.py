"""Messages for a name that is not known (a config key, a step, a model type, a dataset kind).

  raise ValueError(unknown("step", "probs", known_steps, where="config.analysis.steps"))
  -> "unknown step 'probs' in config.analysis.steps: did you mean 'probes'? Known: ..."

Close matches come from difflib (the ratio of matching characters, cutoff 0.6), the same rule
Python uses for its own "Did you mean" hints.
"""
from __future__ import annotations

import difflib
from typing import Iterable


def close_matches(name: str, known: Iterable[str], n: int = 3) -> list[str]:
  """Up to `n` entries of `known` close to `name`, closest first."""
  return difflib.get_close_matches(str(name), [str(k) for k in known], n=n, cutoff=0.6)


def did_you_mean(name: str, known: Iterable[str]) -> str:
  """" did you mean 'x'?" (or "'x' or 'y'?") when `known` has close matches, else ""."""
  matches = close_matches(name, known)
  if not matches:
    return ""
  return " did you mean " + " or ".join(repr(m) for m in matches) + "?"


def unknown(what: str, name: str, known: Iterable[str], *, where: str = "") -> str:
  """The message for an unknown `what` called `name`: where it was given, close matches, and
  every known name."""
  known = sorted({str(k) for k in known})
  hint = did_you_mean(name, known)
  return (f"unknown {what} {name!r}" + (f" in {where}" if where else "") + ":"
          + (hint if hint else "") + f" known {what}s: {', '.join(map(repr, known)) or 'none'}")
