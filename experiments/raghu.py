r"""Every figure of Raghu et al. 2021 ("Do Vision Transformers See Like CNNs?") for one config.

  python -m experiments.raghu --config=configs/raghu.py:runlocal --workdir=runs/raghu_local
  python -m experiments.raghu --config=configs/raghu.py --workdir=runs/raghu_figures \
      --config.dataset.data_dir=/data/tfds

Writes <workdir>/report.html and summary.md (every figure, our numbers next to the paper's),
<workdir>/figures/*.{png,pdf} and one <name>.{npz,json} per result (config, versions, input
fingerprints). A failed run writes <workdir>/error.log. The pipeline is
`repsim_jax.pipelines.raghu.run`.
"""
from __future__ import annotations

import os


from experiments import common
from repsim_jax.pipelines import raghu

_CONFIG = common.define_config(
    os.path.join(os.path.dirname(__file__), "..", "configs", "raghu.py"),
    "configs/raghu.py[:variant]")
_WORKDIR = common.define_workdir()


def main(argv):
  del argv
  common.run(raghu.run, _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  common.main(main)
