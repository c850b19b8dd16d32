r"""Deprecated name of `experiments.mahaut_baroni` (kept for one release): same flags, same run.

  python -m experiments.paper ...   ->   python -m experiments.mahaut_baroni ...
"""
from absl import logging

from experiments import common, mahaut_baroni


def main(argv):
  logging.warning("experiments.paper is now experiments.mahaut_baroni (same flags); this name "
                  "goes away in the next release")
  mahaut_baroni.main(argv)


if __name__ == "__main__":
  common.main(main)
