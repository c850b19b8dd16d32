"""`pipelines.run.Run`: steps resume from their records.

In-process tests on a toy pipeline (three steps, one reading another) pin the reuse rules; the
subprocess test kills and interrupts the Mahaut & Baroni runlocal as a user or a job scheduler
would, and compares every file with an uninterrupted run's.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import ml_collections
import numpy as np
import pytest

from locations import ROOT

TOY = {
    "__init__.py": "CALLS = []\n",
    "first.py": """
        import numpy as np
        from toy_steps import CALLS
        VERSION = 1

        def step(data, settings, run):
          CALLS.append("first")
          x = np.asarray(data, np.float32) * settings.scale
          run.save("first", {"x": x}, subdir="first")
          s = run.section("First")
          s.row("sum of x", "—", f"{x.sum():.3f}")
          s.table(["cell", "flag"], [[np.float32(1.5), True], [0.1 + 0.2, False]])
          return {"x": x, ("total", 1): float(x.sum())}
    """,
    "second.py": """
        import os
        import signal
        from toy_steps import CALLS
        READS = ("first",)

        def step(data, settings, run):
          CALLS.append("second")
          if settings.signal:
            os.kill(os.getpid(), getattr(signal, settings.signal))
          run.section("Second").note(f"offset {settings.offset}")
          return {"y": run.results["first"]["x"] + settings.offset}
    """,
    "third.py": """
        from toy_steps import CALLS

        def step(data, settings, run):
          CALLS.append("third")
          return {"z": [settings.offset, (1, "a")]}
    """,
}


@pytest.fixture
def toy(tmp_path, monkeypatch):
  package = tmp_path / "toy_steps"
  package.mkdir()
  for name, text in TOY.items():
    (package / name).write_text(textwrap.dedent(text))
  monkeypatch.syspath_prepend(str(tmp_path))
  for name in [m for m in sys.modules if m.startswith("toy_steps")]:
    monkeypatch.delitem(sys.modules, name)
  import toy_steps
  return toy_steps


def toy_config(**changes) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict({
      "seed": 0, "resume": True, "recompute": "",
      "analysis": {"steps": ("first", "second", "third"), "first": {"scale": 2.0},
                   "second": {"offset": 1.0, "signal": ""}, "third": {"offset": 5}}})
  for key, value in changes.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def run_toy(toy, workdir, config):
  """The toy pipeline; returns (results, CALLS of this run, report markdown, Run)."""
  from repsim_jax.pipelines.run import Run
  del toy.CALLS[:]
  run = Run("toy", workdir, config=config)
  out = run.run_steps("toy_steps", config.analysis.steps, np.arange(4),
                      settings=lambda name: config.analysis[name])
  run.finish()
  return out, list(toy.CALLS), run.report.markdown(run.workdir), run


def test_a_rerun_reuses_every_step_with_its_value_and_report_section(toy, tmp_path, caplog):
  workdir = str(tmp_path / "run")
  first, calls, report, _ = run_toy(toy, workdir, toy_config())
  assert calls == ["first", "second", "third"]
  np.testing.assert_array_equal(first["second"]["y"], np.arange(4, dtype=np.float32) * 2 + 1)
  record = json.load(open(os.path.join(workdir, "steps", "first.json")))
  assert record["key"]["settings"] == {"scale": 2.0} and record["key"]["version"] == 1
  assert set(record["files"]) == {"first/first.npz", "first/first.json", "steps/first.npz"}
  from repsim_jax.results import fingerprint_json
  second = json.load(open(os.path.join(workdir, "steps", "second.json")))
  assert second["key"]["reads"] == {"first": fingerprint_json(record)}

  with caplog.at_level("INFO"):
    again, calls, report_again, run = run_toy(toy, workdir, toy_config())
  assert calls == []  # nothing recomputed
  assert re.search(r"reused first \(record of \d{4}-\d\d-\d\dT", caplog.text)
  assert report_again == report and "| sum of x | — | 12.000 |" in report
  assert run.step_records[0]["reused"] == record["created"]
  for name in ("first", "second", "third"):
    assert list(again[name]) == list(first[name])
  assert again["first"][("total", 1)] == 12.0 and again["third"]["z"] == [5, (1, "a")]
  assert again["first"]["x"].dtype == np.float32
  assert os.path.join(run.workdir, "first", "first.npz") in run.files


def test_a_changed_setting_recomputes_its_step_and_the_steps_reading_it(toy, tmp_path,
                                                                        monkeypatch):
  workdir = str(tmp_path / "run")
  run_toy(toy, workdir, toy_config())
  out, calls, _, _ = run_toy(toy, workdir, toy_config(**{"analysis.first.scale": 3.0}))
  assert calls == ["first", "second"]  # second READS first; third reads neither
  np.testing.assert_array_equal(out["second"]["y"], np.arange(4) * 3 + 1)
  assert run_toy(toy, workdir, toy_config(**{"analysis.first.scale": 3.0}))[1] == []
  assert run_toy(toy, workdir, toy_config(**{"analysis.first.scale": 3.0,
                                             "analysis.third.offset": 6}))[1] == ["third"]
  # a developer's VERSION bump is a change of the step
  monkeypatch.setattr(toy.first, "VERSION", 2)
  assert run_toy(toy, workdir, toy_config(**{"analysis.first.scale": 3.0,
                                             "analysis.third.offset": 6}))[1] == [
      "first", "second"]
  # a config field outside `analysis` may change any step's inputs
  assert run_toy(toy, workdir, toy_config(**{"analysis.first.scale": 3.0,
                                             "analysis.third.offset": 6, "seed": 1}))[1] == [
      "first", "second", "third"]


def test_recompute_resume_false_and_changed_files_force_steps(toy, tmp_path):
  workdir = str(tmp_path / "run")
  run_toy(toy, workdir, toy_config())
  assert run_toy(toy, workdir, toy_config(recompute="third"))[1] == ["third"]
  assert run_toy(toy, workdir, toy_config(recompute="first"))[1] == ["first", "second"]
  assert run_toy(toy, workdir, toy_config(resume=False))[1] == ["first", "second", "third"]
  with open(os.path.join(workdir, "first", "first.npz"), "ab") as f:
    f.write(b"\0")  # a result file changed after its record: not taken as done
  assert run_toy(toy, workdir, toy_config())[1] == ["first", "second"]
  os.remove(os.path.join(workdir, "steps", "third.npz"))
  assert run_toy(toy, workdir, toy_config())[1] == ["third"]
  with pytest.raises(ValueError, match=r"config.recompute names \['fourth'\]"):
    run_toy(toy, workdir, toy_config(recompute="third,fourth"))


@pytest.mark.parametrize("name, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_step_ends_the_run_and_a_rerun_resumes_there(toy, tmp_path, capsys,
                                                                    name, code):
  from repsim_jax.pipelines.run import RunInterrupted
  workdir = str(tmp_path / "run")
  with pytest.raises(RunInterrupted) as e:
    run_toy(toy, workdir, toy_config(**{"analysis.second.signal": name}))
  assert e.value.code == code
  line = (f"toy: interrupted by {name} in step second; rerun the same command to resume there "
          "(finished steps are reused)")
  assert capsys.readouterr().err.strip().splitlines() == [line] == [e.value.message]
  assert sorted(os.listdir(os.path.join(workdir, "steps"))) == ["first.json", "first.npz"]
  assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the Run's handler is gone
  out, calls, _, _ = run_toy(toy, workdir, toy_config())
  assert calls == ["second", "third"]
  np.testing.assert_array_equal(out["second"]["y"], np.arange(4) * 2 + 1)


def test_a_value_that_cannot_be_stored_leaves_its_step_without_a_record(toy, tmp_path):
  from repsim_jax.pipelines.run import Run
  run = Run("toy", str(tmp_path), config=toy_config())
  out = run.run_steps("toy_steps", ["third"], None,
                      settings=lambda name: ml_collections.ConfigDict({"offset": object()}))
  assert isinstance(out["third"]["z"][0], object)
  assert not os.path.exists(tmp_path / "steps" / "third.json")
