"""The warnings a call raises, as text, for tests that check their words and their count."""
import warnings


def warnings_said(fn):
  """fn()'s result and the messages of every warning it raised (none filtered out)."""
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out = fn()
  return out, [str(w.message) for w in caught]
