"""Running the README's commands literally, as a new user would (not a test file).

`readme_command(prefix)` finds the command in README.md that starts with `prefix` (joining `\`
continuations, dropping a trailing `# comment` and a leading `pip install ... &&`), so a test runs
exactly what the README tells people to type. `run_command` starts it as a subprocess in `cwd`
(a temporary directory: every relative path in the command resolves there), with a bounded
wait, and returns the completed process; on failure the assertion shows its whole output.

The README's commands run from the repository's root, where `experiments/` and `configs/` are
(`pip install -e .` installs only `repsim_jax`). `run_command` makes `cwd` look like that root
(links to the project's `experiments/` and `configs/`) and puts only `repsim_jax` on the path,
so a command that needed `experiments` or `configs` installed would fail here as it would for
a user.

`base_install=True` hides the test extras (torch, tensorflow-datasets, scikit-learn,
scikit-image) from the subprocess through a `sitecustomize` that maps them to None in
sys.modules, so `import torch` fails there exactly as after a plain `pip install -e .`.
"""
from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

from locations import ROOT

README = ROOT / "README.md"
TEST_EXTRAS = ("torch", "tensorflow_datasets", "sklearn", "skimage")


def readme_commands() -> list[str]:
  """Every shell command line in README.md's bash blocks, continuations joined."""
  commands, block, pending = [], False, ""
  for line in README.read_text().splitlines():
    if line.strip().startswith("```"):
      block = line.strip() == "```bash" if not block else False
      continue
    if not block:
      continue
    line = pending + line.strip()
    if line.endswith("\\"):
      pending = line[:-1] + " "
      continue
    pending = ""
    if line and not line.startswith("#"):
      commands.append(line)
  return commands


def readme_command(prefix: str) -> list[str]:
  """argv of the README command whose last `&&` part starts with `prefix`."""
  found = []
  for line in readme_commands():
    command = re.sub(r"\s+#.*$", "", line.split("&&")[-1].strip())
    if command.startswith(prefix):
      found.append(command)
  assert len(found) == 1, f"README.md should have exactly one command starting with {prefix!r}, " \
                          f"found {found}"
  argv = shlex.split(found[0])
  assert argv[0] == "python", argv
  return [sys.executable] + argv[1:]


def run_command(argv: list[str], cwd, *, timeout: float = 600, base_install: bool = False,
                env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
  """Runs `argv` in `cwd` as a user would from the repository root after `pip install -e .`:
  `cwd` holds (links to) the project's top-level `experiments/` and `configs/`; PYTHONPATH
  holds only `repsim_jax` (the installed package)."""
  cwd = pathlib.Path(cwd)
  installed = cwd / ".installed"
  for link, target in ((cwd / "experiments", ROOT / "experiments"),
                       (cwd / "configs", ROOT / "configs"),
                       (installed / "repsim_jax", ROOT / "repsim_jax")):
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
      link.symlink_to(target, target_is_directory=True)
  paths = [str(installed)]
  if base_install:
    hide = cwd / ".hide_test_extras"
    hide.mkdir(exist_ok=True)
    (hide / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in TEST_EXTRAS))
    paths.insert(0, str(hide))
  full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "JAX_PLATFORMS": "cpu",
              "PYTHONUNBUFFERED": "1", **(env or {})}
  full_env.pop("XLA_FLAGS", None)
  proc = subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True,
                        timeout=timeout)
  if check:
    assert proc.returncode == 0, (
        f"`{' '.join(argv)}` in {cwd} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
        f"\n--- stderr\n{proc.stderr[-8000:]}")
  return proc
