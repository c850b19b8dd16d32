"""Where the project's pieces are, for tests in any folder (and the subprocesses they start)."""
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the project: repsim_jax, configs, experiments
HELPERS = ROOT / "tests" / "helpers"
FIXTURES = ROOT / "tests" / "fixtures"
REFERENCE = ROOT / "tests" / "reference"
