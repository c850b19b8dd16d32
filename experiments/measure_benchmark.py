r"""Which similarity measure to trust: every registered measure on the shapes world's models.

  python -m experiments.measure_benchmark --workdir=runs/measure_benchmark
  python -m experiments.measure_benchmark --config=configs/measure_benchmark.py:runlocal \
      --workdir=runs/measure_benchmark_local

Offline, no pretrained weights; prints the ranking table and where the HTML report is. --config
defaults to configs/measure_benchmark.py. See `repsim_jax.pipelines.measure_benchmark`.
"""
import os

from experiments import common
from repsim_jax.pipelines.measure_benchmark import run

_CONFIG = common.define_config(
    os.path.join(os.path.dirname(__file__), "..", "configs", "measure_benchmark.py"),
    "configs/measure_benchmark.py[:variant]; e.g. --config=configs/measure_benchmark.py:runlocal")
_WORKDIR = common.define_workdir("runs/measure_benchmark")


def main(argv):
  del argv
  common.run(run, _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  common.main(main)
