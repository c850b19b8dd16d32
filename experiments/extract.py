r"""Model x dataset -> per-layer representations on disk (one resumable ActivationStore per model).

  python -m experiments.extract --config=configs/mahaut_baroni.py:runlocal --workdir=runs/mb_local

Rerun the same command after an interruption to continue; see the config docstrings for the
paper runs.
"""

from experiments import common
from repsim_jax.pipelines.extract import run

_CONFIG = common.define_config(help_string="extraction config (configs/mahaut_baroni.py, "
                               "configs/raghu.py)")
_WORKDIR = common.define_workdir()


def main(argv):
  del argv
  common.run(run, _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  common.main(main)
