r"""Model x dataset -> per-layer representations on disk (one resumable ActivationStore per model).

  python -m experiments.extract --config=configs/mahaut_baroni.py:runlocal --workdir=/tmp/mb

Rerun the same command after an interruption to continue; see the config docstrings for the
paper runs.
"""
from absl import app, flags
from ml_collections import config_flags

from repsim_jax.extract import run
from repsim_jax import results

config_flags.DEFINE_config_file("config", None, "Extraction config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Output directory (stores, metrics.jsonl, results).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  with results.error_log(flags.FLAGS.workdir):
    run(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
  app.run(main)
