r"""The embedded default: a generated shapes-and-colours world through the whole pipeline.

  python -m experiments.demo --workdir=runs/demo
  python -m experiments.demo --workdir=/tmp/demo_quick --config.quick

Offline, no pretrained weights; prints where the HTML report is. See configs/demo.py.
"""
from absl import app, flags, logging
from ml_collections import config_flags

from configs import demo as demo_config
from repsim_jax import results
from repsim_jax.analysis.demo import run

config_flags.DEFINE_config_dict("config", demo_config.get_config(),
                                "Demo settings (configs/demo.py); e.g. --config.quick.")
flags.DEFINE_string("workdir", "runs/demo", "Output directory (checkpoints, stores, report.html).")


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:  # progress goes to stdout; keep library INFO logs out
    logging.set_verbosity(logging.WARNING)
  with results.error_log(flags.FLAGS.workdir):
    run(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
  app.run(main)
