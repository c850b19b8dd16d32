"""Helpers for `get_config(arg)`: big_vision-style "key=value,key=value" variant strings."""
from __future__ import annotations

import ast


def parse_arg(arg: str | None, **defaults):
  """Parses "runlocal,n=2000,models=vit_l+dinov2_g" into a dict over `defaults`.

  A bare word sets a boolean to True; values are Python literals when they parse, else strings.
  Unknown keys are an error that lists the known ones.
  """
  out = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    key = key.strip()
    if key not in out:
      raise ValueError(f"unknown config argument {key!r}; known: {', '.join(sorted(out))}")
    if not _:
      out[key] = True
      continue
    try:
      out[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      out[key] = value
  return out
