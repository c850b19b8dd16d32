"""`pipelines.run.Run`: steps resume from their records.

In-process tests on a toy pipeline (three steps, one reading another) pin the reuse rules; the
subprocess test kills and interrupts the Mahaut & Baroni runlocal as a user or a job scheduler
would, and compares every file with an uninterrupted run's.
"""
from __future__ import annotations

import json
import os
import re
import shutil
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
  assert type(out["third"]["z"][0]) is object  # the live value, as returned
  assert not os.path.exists(tmp_path / "steps" / "third.json")


# ----------------------------------------------------------------------------- Mahaut & Baroni

STEPS = "imbalance,sample_size,neighbourhoods,lowlevel,semantic,probes,subspace"
# the inputs, not the steps' results: the tiny checkpoint, the stores and the extraction's summary
# (with its time); their own resume is tested with the extraction
KEPT_APART = ("stores", "checkpoints", "extract_vit.json", "extract_vit.npz")


def launch(workdir: str, *overrides: str, cache: str, until: str | None = None,
           send: int = signal.SIGKILL, timeout_s: float = 300) -> tuple[int, str]:
  """`experiments.mahaut_baroni` runlocal (one tiny ViT) in a subprocess; with `until`, `send`
  goes to it once a line of its output matches. Returns (exit status, output)."""
  log = f"{workdir}.{time.monotonic_ns()}.log"
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
         "JAX_PLATFORMS": "cpu", "REPSIM_XLA_CACHE": cache, "PYTHONUNBUFFERED": "1"}
  argv = [sys.executable, "-m", "experiments.mahaut_baroni",
          "--config=configs/mahaut_baroni.py:runlocal,models=vit", f"--workdir={workdir}",
          f"--config.analysis.steps={STEPS}", *overrides]
  with open(log, "w") as out:
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    start = time.monotonic()
    try:
      while process.poll() is None and time.monotonic() - start < timeout_s:
        if until and re.search(until, open(log).read(), re.MULTILINE):
          process.send_signal(send)
          until = None
        time.sleep(0.05)
      process.wait(timeout=max(1, timeout_s - (time.monotonic() - start)))
    finally:
      if process.poll() is None:
        process.kill()
  return process.returncode, open(log).read()


def result_files(workdir: str) -> dict[str, str]:
  """Path relative to `workdir` -> absolute path, of every file but the inputs and the logs."""
  out = {}
  for root, _, files in os.walk(workdir):
    for f in files:
      rel = os.path.relpath(os.path.join(root, f), workdir)
      if rel.split(os.sep)[0] not in KEPT_APART and not rel.endswith((".log", ".jsonl")):
        out[rel] = os.path.join(root, f)
  return out


def comparable(path: str) -> bytes | dict:
  """A file's bytes, but JSON without the times it records (result files' "created", step
  records') and PDF without its creation date; a step record without the hashes of its PDF and
  JSON files (which differ by those times)."""
  if path.endswith(".json"):
    meta = {k: v for k, v in json.load(open(path)).items() if k != "created"}
    if "files" in meta:  # a step record
      meta["files"] = {f: d if not f.endswith((".pdf", ".json")) else None
                       for f, d in meta["files"].items()}
    return meta
  data = open(path, "rb").read()
  return re.sub(rb"/CreationDate \([^)]*\)", b"", data) if path.endswith(".pdf") else data


def test_mahaut_baroni_resumes_after_kill_and_recomputes_only_what_changed(tmp_path):
  """kill -9 in the middle step (probes) of the runlocal, then the same command: the steps before
  it are reused, and every result file, figure and the report equal an uninterrupted run's bit
  for bit. Then a changed II setting and probe seed recompute II, sample size (it reads II's
  settings) and probes only; SIGTERM ends a run with one line and status 143."""
  cache = str(tmp_path / "xla_cache")
  reference, workdir = str(tmp_path / "reference"), str(tmp_path / "resumed")
  code, out = launch(reference, cache=cache)
  assert code == 0, out[-3000:]
  # the same tiny random checkpoint (torch's initialisation need not repeat between processes)
  shutil.copytree(os.path.join(reference, "checkpoints"), os.path.join(workdir, "checkpoints"))
  code, out = launch(workdir, cache=cache, until=r"\[7/8\] probes \.\.\.")
  assert code == -signal.SIGKILL, out[-3000:]
  assert not os.path.exists(os.path.join(workdir, "steps", "probes.json"))

  code, out = launch(workdir, cache=cache)
  assert code == 0, out[-3000:]
  before = ["imbalance", "sample_size", "neighbourhoods", "lowlevel", "semantic"]
  for i, name in enumerate(before, start=2):
    assert re.search(rf"reused \[{i}/8\] {name} \(record of 20\d\d-", out), out[-3000:]
    assert f"[{i}/8] {name} ..." not in out
  assert "[7/8] probes ..." in out and "[8/8] cross-encoder subspaces ..." in out
  want, got = result_files(reference), result_files(workdir)
  assert sorted(got) == sorted(want)
  assert {"imbalance/ii_vit__vit.npz", "probes/class_probes.npz", "report.html", "summary.md",
          "figures/fig05_roughness.png", "steps/probes.json"} <= set(want)
  for rel in want:
    assert comparable(got[rel]) == comparable(want[rel]), rel
  records = {n: json.load(open(os.path.join(workdir, "steps", f"{n}.json"))) for n in before}

  code, out = launch(workdir, "--config.analysis.imbalance.n_boot=24",
                     "--config.analysis.probes.seed=1", cache=cache)
  assert code == 0, out[-3000:]
  ran = re.findall(r"\[\d/8\] (\S+) \.\.\.", out)
  assert ran == ["representations", "imbalance", "sample_size", "probes"], ran
  assert "[2/8] imbalance recomputed: changed: settings.n_boot" in out
  assert "[3/8] sample_size recomputed: changed: settings_of.imbalance.n_boot" in out
  for name in ("neighbourhoods", "lowlevel", "semantic"):
    assert json.load(open(os.path.join(workdir, "steps", f"{name}.json"))) == records[name]
  for rel in ("neighbourhoods/neighbourhoods.npz", "imbalance/ii_vit__vit.npz"):
    assert comparable(os.path.join(workdir, rel)) == comparable(want[rel]), rel  # same numbers
  assert comparable(os.path.join(workdir, "probes/class_probes.npz")) != comparable(
      want["probes/class_probes.npz"])

  code, out = launch(workdir, "--config.analysis.lowlevel.k=2", cache=cache,
                     until=r"\[5/8\] lowlevel \.\.\.", send=signal.SIGTERM)
  assert code == 143, out[-3000:]
  assert out.rstrip().splitlines()[-1] == (
      "mahaut_baroni: interrupted by SIGTERM in step [5/8] lowlevel; rerun the same command to resume "
      "there (finished steps are reused)"), out[-3000:]
  assert "Traceback" not in out
  assert not os.path.exists(os.path.join(workdir, "steps", "lowlevel.json"))
