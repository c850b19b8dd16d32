"""What every command does when something goes wrong (`repsim_jax.pipelines.cli`,
`experiments/common.py`): a user error is one paragraph, `error: ...` naming the input and what to
do, with no traceback on the console (it is in <workdir>/error.log); an internal error keeps its
traceback. Each bad input runs the real command as a subprocess, as a user would."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from commands import run_command
from repsim_jax import names
from repsim_jax.pipelines import checks, cli


def _fails_with_one_paragraph(argv, cwd, *, env=None):
  """Runs `python -m <argv>` in `cwd`; it must fail with `error: ...` and no traceback. Returns
  (the error paragraph, the whole output)."""
  proc = run_command([sys.executable, "-m", *argv], cwd, check=False,
                     env={"REPSIM_XLA_CACHE": "off", **(env or {})}, timeout=300)
  output = proc.stdout + proc.stderr
  assert proc.returncode == 1, output
  assert "Traceback" not in output, output
  lines = proc.stderr.splitlines()
  first = next(i for i, line in enumerate(lines) if line.startswith("error: "))
  paragraph = lines[first:]
  # one paragraph: the message, then one indented line saying where the traceback is
  assert len(paragraph) == 2 and paragraph[1].startswith("  ("), proc.stderr
  return paragraph[0], output


@pytest.fixture(scope="module")
def layer_files(tmp_path_factory):
  d = tmp_path_factory.mktemp("layers")
  rng = np.random.default_rng(0)
  np.savez(d / "acts.npz", early=rng.normal(size=(30, 4)), late=rng.normal(size=(30, 3)))
  np.savez(d / "uneven.npz", early=rng.normal(size=(30, 4)), late=rng.normal(size=(20, 3)))
  return d


def test_missing_input_file_names_the_config_key(layer_files, tmp_path):
  line, _ = _fails_with_one_paragraph(
      ["experiments.imbalance", f"--workdir={tmp_path / 'w'}", "--config.inputs_a=acts/vit.npz"],
      layer_files)
  assert line.startswith("error: config.inputs_a='acts/vit.npz' does not exist"), line
  assert str(layer_files) in line  # where relative paths are read from


def test_mismatched_row_counts_name_file_and_layer(layer_files, tmp_path):
  line, _ = _fails_with_one_paragraph(
      ["experiments.imbalance", f"--workdir={tmp_path / 'w'}", "--config.inputs_a=uneven.npz"],
      layer_files)
  assert line.startswith("error: layers differ in their number of rows: uneven.npz layer 'early' "
                         "has 30, uneven.npz layer 'late' has 20"), line
  assert (tmp_path / "w" / "error.log").read_text().startswith("Traceback")
  line, _ = _fails_with_one_paragraph(
      ["experiments.imbalance", f"--workdir={tmp_path / 'w'}", "--config.inputs_a=acts.npz",
       "--config.inputs_b=uneven.npz", "--config.layers_b=late"], layer_files)
  assert "acts.npz layer 'early' has 30, uneven.npz layer 'late' has 20" in line, line


def test_misspelled_config_key_offers_the_close_match(tmp_path):
  line, _ = _fails_with_one_paragraph(
      ["experiments.imbalance", f"--workdir={tmp_path}", "--config.metrc=cosine"], tmp_path)
  assert line.startswith("error: --config.metrc=cosine: configs/imbalance.py has no key 'metrc' "
                         "in config; did you mean 'metric'?"), line
  line, _ = _fails_with_one_paragraph(
      ["experiments.extract", "--config=configs/mahaut_baroni.py:runlocal", f"--workdir={tmp_path}",
       "--config.models[0].pooling_=cls"], tmp_path)
  assert "has no key 'pooling_' in config.models[0]; did you mean 'pooling'?" in line, line


def test_bad_workdir_is_named_as_the_workdir(tmp_path):
  (tmp_path / "a_file").write_text("")
  line, _ = _fails_with_one_paragraph(
      ["experiments.imbalance", "--config=configs/imbalance.py:runlocal",
       f"--workdir={tmp_path / 'a_file'}"], tmp_path)
  assert line.startswith(f"error: --workdir={tmp_path / 'a_file'} is a file, not a directory"), line
  # read-only: a directory without write permission, or (as root, who may write anywhere) one
  # that cannot be created under /proc
  readonly = tmp_path / "readonly"
  readonly.mkdir(mode=0o555)
  workdir = readonly if os.geteuid() != 0 else "/proc/repsim_jax_workdir"
  line, _ = _fails_with_one_paragraph(
      ["experiments.imbalance", "--config=configs/imbalance.py:runlocal", f"--workdir={workdir}"],
      tmp_path)
  assert line.startswith(f"error: --workdir={workdir} cannot be created or written to"), line


def test_unknown_names_fail_before_any_work(tmp_path):
  """An unknown step fails before extraction (no store, no checkpoint written), with the close
  match; so do an unknown config variant, model and dataset kind."""
  workdir = tmp_path / "mb"
  line, output = _fails_with_one_paragraph(
      ["experiments.mahaut_baroni", "--config=configs/mahaut_baroni.py:runlocal",
       f"--workdir={workdir}", "--config.analysis.steps=imbalance,probs"], tmp_path)
  assert line.startswith("error: unknown step 'probs': did you mean 'probes'?"), line
  assert "config.analysis.steps=imbalance,probs" in line
  assert not (workdir / "stores").exists() and not (workdir / "checkpoints").exists()
  assert "representations" not in output
  line, _ = _fails_with_one_paragraph(
      ["experiments.mahaut_baroni", "--config=configs/mahaut_baroni.py:runlocl",
       f"--workdir={workdir}"], tmp_path)
  assert "unknown config variant 'runlocl'; did you mean 'runlocal'?" in line, line
  line, _ = _fails_with_one_paragraph(
      ["experiments.raghu", "--config=configs/raghu.py:runlocal", f"--workdir={workdir}",
       "--config.dataset.kind=generatd", "--config.models[0].model_type=vitt"], tmp_path)
  assert line.startswith("error: unknown model type 'vitt' in config.models[0]"), line


def test_user_and_internal_errors_are_told_apart():
  def ours():
    from repsim_jax.extraction.layer_files import load_layers
    load_layers("/nonexistent/layers.npz")

  with pytest.raises(FileNotFoundError) as e:
    ours()
  assert cli.is_user_error(e.value)
  assert cli.is_user_error(checks.UserError("x"))
  with pytest.raises(ValueError) as e:
    np.zeros(3).reshape(2, 2)  # raised by numpy, not by a `raise` of ours: internal
  assert not cli.is_user_error(e.value)
  with pytest.raises(KeyError) as e:
    checks.message({}["missing"])  # a lookup in our code, not a `raise`: internal
  assert not cli.is_user_error(e.value)
  assert checks.message(KeyError("no layer 'x'\n\navailable: a")) == "no layer 'x' available: a"


def test_internal_error_keeps_its_traceback(tmp_path):
  script = tmp_path / "internal.py"
  script.write_text(
      "from repsim_jax.pipelines import cli\n"
      "def run(config, workdir):\n"
      "  return [][1]\n"
      f"cli.main(run, {{}}, {str(tmp_path / 'w')!r}, xla_cache='off')\n")
  proc = run_command([sys.executable, str(script)], tmp_path, check=False)
  assert proc.returncode == 1 and "Traceback" in proc.stderr and "IndexError" in proc.stderr
  assert "IndexError" in (tmp_path / "w" / "error.log").read_text()


def test_unknown_name_message():
  message = names.unknown("step", "probs", ["probes", "imbalance"], where="config.analysis.steps")
  assert message == ("unknown step 'probs' in config.analysis.steps: did you mean 'probes'? "
                     "known steps: 'imbalance', 'probes'")
  assert names.did_you_mean("zzz", ["probes"]) == ""


def test_the_dead_process_is_read_from_jax_messages():
  """The messages jax gives a survivor (seen under real processes, tests/test_multiprocess.py)."""
  from repsim_jax import sharding
  gloo = ("UNKNOWN: Gloo context initialization failed: DEADLINE_EXCEEDED: GetKeyValue() timed "
          "out with key: cpu:gloo/0,2048/1 and duration: 29.99999995s")
  heartbeats = ("UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):\n"
                "1\n3\nThe tasks have crashed.")
  assert sharding.stopped_processes(gloo) == [1]
  assert sharding.stopped_processes(heartbeats) == [1, 3]
  assert sharding.stopped_processes("Gloo AllGather failed: Connection closed by peer") == []
