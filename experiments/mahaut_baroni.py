r"""Mahaut & Baroni (2026) end to end: extraction (or reuse of complete stores), every analysis and
figure, and <workdir>/report.html + summary.md with our headline numbers next to the paper's.

  python -m experiments.mahaut_baroni --config=configs/mahaut_baroni.py:runlocal \
      --workdir=runs/mb_local
  python -m experiments.mahaut_baroni --config=configs/mahaut_baroni.py --workdir=runs/mb \
      --config.dataset.root=/data/imagenet21k/val

See configs/mahaut_baroni.py for the variants and `config.analysis` for the steps and settings;
the pipeline is `repsim_jax.pipelines.mahaut_baroni.run`.
"""

from experiments import common
from repsim_jax.pipelines.mahaut_baroni import run

_CONFIG = common.define_config(help_string="configs/mahaut_baroni.py[:variant]")
_WORKDIR = common.define_workdir()


def main(argv):
  del argv
  common.run(run, _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  common.main(main)
