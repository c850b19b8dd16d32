r"""Every figure of Raghu et al. 2021 ("Do Vision Transformers See Like CNNs?") for one config.

  python -m experiments.raghu --config=configs/raghu.py:runlocal --workdir=/tmp/raghu_figs
  python -m experiments.raghu --config=configs/raghu.py --workdir=runs/raghu_figures \
      --config.dataset.data_dir=/data/tfds

Writes <workdir>/summary.md (every figure with headline numbers), <workdir>/figures/*.{png,pdf}
and one <name>.{npz,json} per result (config, versions, input fingerprints). A failed run writes
<workdir>/error.log. The analyses live in `repsim_jax.analysis.raghu.run`.
"""
from __future__ import annotations

import os

from absl import app, flags, logging
from ml_collections import config_flags

from repsim_jax import results
from repsim_jax.analysis import raghu

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "..", "configs", "raghu.py"),
    "Experiment configuration.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results are written.", required=True)


def main(argv):
  del argv
  with results.error_log(_WORKDIR.value):
    result = raghu.run(_CONFIG.value, _WORKDIR.value)
  logging.info("wrote %d files", len(result["files"]))
  print(f"summary: {result['summary']}")


if __name__ == "__main__":
  app.run(main)
