r"""Mahaut & Baroni (2026) end to end: extraction (or reuse of complete stores), every analysis and
figure, and <workdir>/summary.md with our headline numbers next to the paper's.

  python -m experiments.paper --config=configs/mahaut_baroni.py:runlocal --workdir=/tmp/mb_paper
  python -m experiments.paper --config=configs/mahaut_baroni.py --workdir=runs/mb \
      --config.dataset.root=/data/imagenet21k/val

See configs/mahaut_baroni.py for the variants and `config.analysis` for the settings.
"""
from absl import app, flags
from ml_collections import config_flags

from repsim_jax.analysis.paper import run
from repsim_jax import results

config_flags.DEFINE_config_file("config", None, "Config file (configs/mahaut_baroni.py).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Output directory (stores, results, figures, summary.md).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  with results.error_log(flags.FLAGS.workdir):
    result = run(flags.FLAGS.config, flags.FLAGS.workdir)
  if result.get("summary"):  # process 0 writes it
    print(f"summary: {result['summary']}")


if __name__ == "__main__":
  app.run(main)
