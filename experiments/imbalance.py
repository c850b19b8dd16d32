r"""Information imbalance between all layers of two sets of representations.

  python -m experiments.imbalance --workdir=runs/imbalance [--config=configs/imbalance.py:...]

Writes <workdir>/imbalance.{npz,json} (matrix, layer names, config, versions, input
fingerprints) and imbalance.{png,pdf}. A failed run writes only <workdir>/error.log.
"""
from __future__ import annotations

import os


from experiments import common
from repsim_jax.pipelines import imbalance

_CONFIG = common.define_config(
    os.path.join(os.path.dirname(__file__), "..", "configs", "imbalance.py"),
    "configs/imbalance.py[:variant]")
_WORKDIR = common.define_workdir()


def main(argv):
  del argv
  common.run(imbalance.run, _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  common.main(main)
