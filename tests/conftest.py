"""Shared pytest setup. Tests run on one CPU device; sharding tests start a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (it must be set before jax is imported)."""
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never download


def pytest_addoption(parser):
  parser.addoption("--runslow", action="store_true", default=False,
                   help="also run tests marked slow (full-size models, large N)")


def pytest_configure(config):
  config.addinivalue_line("markers", "slow: opt-in, run with --runslow")


def pytest_collection_modifyitems(config, items):
  if config.getoption("--runslow"):
    return
  skip = pytest.mark.skip(reason="slow; run with --runslow")
  for item in items:
    if "slow" in item.keywords:
      item.add_marker(skip)
