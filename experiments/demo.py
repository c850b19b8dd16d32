r"""The embedded default: a generated shapes-and-colours world through the whole pipeline.

  python -m experiments.demo --workdir=runs/demo
  python -m experiments.demo --workdir=runs/demo_quick --config.quick

Offline, no pretrained weights; prints where the HTML report is. See configs/demo.py.
"""
from absl import app, flags
from ml_collections import config_flags

from configs import demo as demo_config
from experiments import common
from repsim_jax.analysis.demo import run

_CONFIG = config_flags.DEFINE_config_dict("config", demo_config.get_config(),
                                          "Demo settings (configs/demo.py); e.g. --config.quick.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/demo",
                               "output directory (checkpoints, stores, report.html)")


def main(argv):
  del argv
  common.run(run, _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
