r"""The embedded default: a generated shapes-and-colours world through the whole pipeline.

  python -m experiments.demo --workdir=runs/demo
  python -m experiments.demo --config=configs/demo.py:runlocal --workdir=runs/demo_local

Offline, no pretrained weights; prints where the HTML report is. --config defaults to
configs/demo.py. See `repsim_jax.pipelines.demo`.
"""
import os

from absl import logging

from configs import demo as demo_config
from experiments import common
from repsim_jax.pipelines.demo import run

_CONFIG = common.define_config(
    os.path.join(os.path.dirname(__file__), "..", "configs", "demo.py"),
    "configs/demo.py[:variant]; e.g. --config=configs/demo.py:runlocal")
_WORKDIR = common.define_workdir("runs/demo")


def main(argv):
  del argv
  config = _CONFIG.value
  if config.quick:  # the name of one release ago
    logging.warning("--config.quick is now --config=configs/demo.py:runlocal; running that")
    config = demo_config.runlocal(config)
  common.run(run, config, _WORKDIR.value)


if __name__ == "__main__":
  common.main(main)
