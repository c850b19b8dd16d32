r"""Information imbalance between all layers of two sets of representations.

  python -m experiments.imbalance --workdir=runs/imbalance [--config=configs/imbalance.py:...]

Writes <workdir>/imbalance.{npz,json} (matrix, layer names, config, versions, input
fingerprints) and imbalance.{png,pdf}. A failed run writes only <workdir>/error.log.
"""
from __future__ import annotations

import os

from absl import app, flags, logging
from ml_collections import config_flags

from repsim_jax import imbalance_driver, results

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "..", "configs", "imbalance.py"),
    "Experiment configuration.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results are written.", required=True)


def main(argv):
  del argv
  with results.error_log(_WORKDIR.value):
    result = imbalance_driver.run(_CONFIG.value, _WORKDIR.value)
  logging.info("wrote %s", ", ".join(result["files"]))
  print(f"information imbalance matrix: {result['files'][0]}")


if __name__ == "__main__":
  app.run(main)
