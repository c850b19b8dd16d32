"""Optional dependencies, imported where they are needed with an error that says how to get them.

The base install (`pip install -e .`) runs every pipeline on our JAX ports. torch is needed only to
read `pytorch_model.bin` checkpoints and to compare a port with its transformers torch model
(`experiments.compare_torch`, the parity tests); it is the `torch` extra, pinned to a CPU build.
"""
from __future__ import annotations

TORCH_INSTALL = 'pip install -e ".[torch]"   (torch==2.13.0, CPU; for CUDA torch see BUILD.md)'


def import_torch(purpose: str):
  """`import torch`, or an ImportError naming `purpose` and the install command."""
  try:
    import torch
  except ImportError:
    raise ImportError(f"{purpose} needs torch, which the base install leaves out; install it "
                      f"with:\n  {TORCH_INSTALL}") from None
  return torch
