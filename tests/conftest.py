"""Shared pytest setup. Tests run on one CPU device; sharding tests start a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (it must be set before jax is imported)."""
import json
import os
import subprocess
import sys

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


@pytest.fixture
def on_eight_devices(request):
  """run(script) executes Python source in a subprocess with 8 fake CPU devices (XLA_FLAGS set
  before jax is imported, the calling test's folder and tests/helpers importable) and returns its
  last stdout line as JSON."""
  helpers = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")

  def run(script):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               PYTHONPATH=os.pathsep.join([str(request.path.parent), helpers,
                                           os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])
  return run
