"""Real multi-process runs: processes joined by `jax.distributed` on 127.0.0.1
(`multiprocess_harness.py`) give what one process gives, write each file once, and stop together
when one of them dies.

Each launch pays a jax import and its compilations, so the checks are grouped into few launches
with small inputs: one launch for every sharded kernel (and the first half of an extraction), one
to resume the extraction with another process count, one per driver, two for failures.
"""
from __future__ import annotations

import collections
import json
import os
import shutil
import sys
import warnings

import numpy as np
import pytest

import multiprocess_harness
import multiprocess_worker as worker
from locations import HELPERS
from multiprocess_harness import python_argv, run_processes, written_files

WORKER = str(HELPERS / "multiprocess_worker.py")
P, D = 2, 2  # processes x devices each


def assert_same(got: dict, want: dict, where: str) -> None:
  """Integer arrays bit-identical, float arrays within 1e-6 (absolute)."""
  assert sorted(got) == sorted(want), f"{where}: {set(got) ^ set(want)}"
  for name, w in want.items():
    g = np.asarray(got[name])
    w = np.asarray(w)
    assert g.shape == w.shape and g.dtype == w.dtype, (where, name, g.shape, w.shape, g.dtype)
    if w.dtype.kind in "iub":
      np.testing.assert_array_equal(g, w, err_msg=f"{where}: {name}")
    elif w.dtype.kind == "f":
      np.testing.assert_allclose(g, w, rtol=0, atol=1e-6, err_msg=f"{where}: {name}")
    else:
      np.testing.assert_array_equal(g, w, err_msg=f"{where}: {name}")


def npz_results(workdir: str) -> dict[str, dict[str, np.ndarray]]:
  """Every result npz under `workdir`: path relative to it -> arrays."""
  out = {}
  for root, _, files in os.walk(workdir):
    for f in files:
      if f.endswith(".npz"):
        path = os.path.join(root, f)
        with np.load(path) as z:
          out[os.path.relpath(path, workdir)] = {k: z[k] for k in z.files}
  return out


def assert_each_file_written_once(records: list[str], *roots: str) -> dict[int, list[str]]:
  """No file under the `roots` is written by two processes; returns process -> files it wrote."""
  roots = tuple(os.path.realpath(r) + os.sep for r in roots)
  by_process = {i: sorted({os.path.realpath(p) for p in written_files(r)
                           if os.path.realpath(p).startswith(roots)})
                for i, r in enumerate(records)}
  writers = collections.defaultdict(set)
  for i, paths in by_process.items():
    for p in paths:
      writers[p].add(i)
  twice = {p: sorted(w) for p, w in writers.items() if len(w) > 1}
  assert not twice, f"files written by more than one process: {twice}"
  return by_process


# ----------------------------------------------------------------------------- the harness


def test_harness_bounds_every_wait_and_shows_every_output():
  """A group past its timeout, and a group whose survivor outlives the grace period after a
  failure, are killed; the error names each process's status and shows its output."""
  sleeper = [sys.executable, "-c", "import os, time; print('process', os.environ['JAX_PROCESS_ID'],"
             " 'of', os.environ['JAX_NUM_PROCESSES'], flush=True); time.sleep(600)"]
  with pytest.raises(multiprocess_harness.MultiProcessError, match="past its 3s timeout") as e:
    run_processes(sleeper, num_processes=2, timeout_s=3)
  assert "process 0 of 2" in str(e.value) and "process 1 of 2" in str(e.value)
  fails = [sys.executable, "-c", "import sys; print('bad input'); sys.exit(3)"]
  results = run_processes(lambda i: fails if i == 1 else sleeper, num_processes=2, timeout_s=60,
                          grace_s=1, expect_failure=True)
  assert results[1].returncode == 3 and "bad input" in results[1].output
  assert results[0].killed_by_harness and results[0].seconds < 30
  with pytest.raises(multiprocess_harness.MultiProcessError, match="exit status 3"):
    run_processes(lambda i: fails if i == 1 else sleeper, num_processes=2, grace_s=1)


# ----------------------------------------------------------------------------- kernels


@pytest.fixture(scope="module")
def kernels_launch(tmp_path_factory):
  """One launch of P x D: every kernel result (p<i>.npz), then each process writes the first chunk
  of its share of a store and stops."""
  out = tmp_path_factory.mktemp("kernels")
  store = str(out / "store")
  results = run_processes(python_argv(WORKER, "kernels", str(out), store), num_processes=P,
                          devices_per_process=D, timeout_s=540)
  return out, store, results


def test_every_sharded_kernel_equals_one_process(kernels_launch):
  """II (fused and two-phase, both ties modes, euclidean and cosine, with float32 re-ranking and
  its float64 fallbacks), the Appendix-B statistics, kNN, neighbourhoods, CKA exact and
  minibatch, probes: every process holds the single-process result."""
  out, _, results = kernels_launch
  assert all(f"process {i} of {P}: {D} of {P * D} devices" in r.output for i, r in
             enumerate(results))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    want = worker.kernel_results()  # this pytest process: one process, one device
  for i in range(P):
    with np.load(out / f"p{i}.npz") as z:
      assert_same({k: z[k] for k in z.files}, want, f"process {i}")


def test_extraction_shares_chunks_between_hosts_and_resumes_with_another_count(kernels_launch,
                                                                                 tmp_path):
  """Hosts write disjoint chunk ranges of one store; a run stopped after one chunk per host
  resumes with 3 processes x 1 device and gives the single-process store, bit for bit."""
  from repsim_jax.data.pipeline import host_chunks
  from repsim_jax.extraction.store import ActivationStore, IncompleteStoreError
  _, store_path, _ = kernels_launch
  num_chunks = worker.N_IMAGES // worker.CHUNK_ROWS
  first = [host_chunks(num_chunks, process_index=i, process_count=P)[0] for i in range(P)]
  partial = ActivationStore.open(store_path, require_complete=False)
  assert sorted(set(range(num_chunks)) - set(partial.missing_chunks())) == first
  with pytest.raises(IncompleteStoreError):
    ActivationStore.open(store_path)

  run_processes(python_argv(WORKER, "extract", store_path), num_processes=3,
                devices_per_process=1, timeout_s=300)
  store = ActivationStore.open(store_path)
  assert json.load(open(os.path.join(store_path, "metadata.json")))["complete"]
  reference = worker.extract_into(str(tmp_path / "one_process"))
  assert store.layer_names == reference.layer_names
  for name in reference.layer_names:
    np.testing.assert_array_equal(store.layer(name), reference.layer(name), err_msg=name)


@pytest.mark.parametrize("scope", [
    "kinds",
    # every registered measure: 84 of them, each compiled on every device of every process,
    # ran past 9 minutes under 2 x 2 on 2 cores; opt-in
    pytest.param("all", marks=pytest.mark.slow)])
def test_similarity_matrix_of_every_measure_equals_one_process(tmp_path, scope):
  """`similarity_matrix` for the registered measures (`worker.measure_names(scope)`), fast and
  generic paths: P x D processes and devices give, on every process, the matrix one process
  gives."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    want = worker.measure_results(scope)  # this pytest process: one process, one device
  names = {key.split("/")[0] for key in want}
  assert names == set(worker.measure_names(scope))
  if scope == "all":
    import repsim_jax
    assert names == {r["name"] for r in repsim_jax.measures()}  # every registered measure
  else:  # one measure of every module with a pair kernel
    from repsim_jax.measures import protocol
    assert ({worker.pair_module(protocol.get(n)) for n in names}
            == {worker.pair_module(protocol.get(n)) for n in protocol.names()})
  run_processes(python_argv(WORKER, "measures", str(tmp_path), scope), num_processes=P,
                devices_per_process=D, timeout_s=1500 if scope == "all" else 540)
  for i in range(P):
    with np.load(tmp_path / f"p{i}.npz") as z:
      assert_same({k: z[k] for k in z.files}, want, f"process {i}")


# ----------------------------------------------------------------------------- drivers


def test_paper_runlocal_driver(tmp_path):
  """`experiments.mahaut_baroni` runlocal (extraction, II, low-level features, per-class probes)
  under P x D: the results of one process, every file written once, by process 0 except each
  host's own store chunks."""
  from configs import mahaut_baroni
  from repsim_jax.pipelines import mahaut_baroni as paper
  workdir = str(tmp_path / "multi")
  # tfds mock data exists only in-process (no OOD probes); the kernels' test covers the
  # Appendix-B statistics and the neighbourhoods
  off = ("ood", "sample_size", "neighbourhoods")
  steps = [s for s in mahaut_baroni.STEPS if s not in off]
  overrides = [f"--config.analysis.steps={','.join(steps)}"]
  records = [str(tmp_path / f"writes{i}.txt") for i in range(P)]
  xla_cache = str(tmp_path / "xla_cache")
  results = run_processes(lambda i: python_argv(
      "experiments.mahaut_baroni", "--config=configs/mahaut_baroni.py:runlocal,models=vit",
      f"--workdir={workdir}", "--config.distributed=True", *overrides, record_writes=records[i]),
      num_processes=P, devices_per_process=D, timeout_s=540, env={"REPSIM_XLA_CACHE": xla_cache})
  assert "mahaut_baroni: done in" in results[0].output
  assert "mahaut_baroni: done in" not in results[1].output
  config = mahaut_baroni.get_config("runlocal,models=vit")
  config.analysis.steps = tuple(steps)
  reference = str(tmp_path / "one")
  # the same tiny checkpoint (no torch needed here)
  shutil.copytree(os.path.join(workdir, "checkpoints"), os.path.join(reference, "checkpoints"))
  paper.run(config, reference)

  got, want = npz_results(workdir), npz_results(reference)
  assert sorted(got) == sorted(want) and "imbalance/ii_vit__vit.npz" in want
  for name in want:
    assert_same(got[name], want[name], name)
  files = assert_each_file_written_once(records, workdir, xla_cache)
  others = [f for i in range(1, P) for f in files[i]]
  assert others and all(f"{os.sep}chunks{os.sep}" in f for f in others), others
  assert os.path.join(os.path.realpath(workdir), "summary.md") in files[0]


def test_imbalance_cli(tmp_path):
  """`experiments.imbalance` runlocal under P x D equals one process; only process 0 writes."""
  from configs import imbalance as imbalance_config
  from repsim_jax.pipelines import imbalance as imbalance_pipeline
  workdir = str(tmp_path / "multi")
  records = [str(tmp_path / f"writes{i}.txt") for i in range(P)]
  results = run_processes(lambda i: python_argv(
      "experiments.imbalance", "--config=configs/imbalance.py:runlocal", f"--workdir={workdir}",
      "--config.ties=average", record_writes=records[i]),
      num_processes=P, devices_per_process=D, timeout_s=300,
      env={"REPSIM_XLA_CACHE": str(tmp_path / "xla_cache")})
  # every process computes; process 0 prints the closing summary of what it wrote
  # the schedule every process agreed on (from the smallest free memory): fused, one pass per
  # distinct layer, as on one process
  for i, r in enumerate(results):
    passes = [line for line in r.output.splitlines() if "layer passes" in line]
    assert any("information imbalance: 4.0/4 layer passes (fused)" in line for line in passes), (
        i, passes or r.output[-3000:])
  assert "imbalance.{json,npz,pdf,png}" in results[0].output
  assert "imbalance: done in" not in results[1].output
  config = imbalance_config.get_config("runlocal")
  config.ties, config.plot = "average", False
  reference = str(tmp_path / "one")
  imbalance_pipeline.run(config, reference)
  assert_same(npz_results(workdir)["imbalance.npz"], npz_results(reference)["imbalance.npz"],
              "imbalance.npz")
  files = assert_each_file_written_once(records, workdir)
  assert not any(files[i] for i in range(1, P)), files
  assert {os.path.basename(f) for f in files[0]} >= {"imbalance.npz", "imbalance.json",
                                                     "imbalance.png"}


# ----------------------------------------------------------------------------- failures

# The survivors must stop by themselves within this bound after a process dies: they fail in
# their next collective (its peer is gone) or, at the latest, once the coordinator misses the
# dead process's heartbeats (REPSIM_HEARTBEAT_TIMEOUT_S, set low here).
HEARTBEAT_S = 10
STOP_WITHIN_S = 60
# longer than Gloo's 30 s rendezvous timeout, so that the survivor's collective fails first and
# it names the dead process itself (a missed heartbeat ends it in jax's own C++ fatal error)
NAMED_HEARTBEAT_S = 90


def _assert_all_stop_with_an_error(results, dead: int):
  died = results[dead].seconds
  for r in results:
    assert not r.killed_by_harness, multiprocess_harness.format_results(results)
    assert r.returncode != 0, multiprocess_harness.format_results(results)
    assert r.seconds - died < STOP_WITHIN_S, multiprocess_harness.format_results(results)


def test_a_killed_process_stops_the_others(tmp_path):
  """Process 1 of the imbalance CLI is SIGKILLed as the computation starts (a host that dies).
  Process 0's first collective cannot meet it (Gloo's rendezvous gives up after 30 s, before the
  heartbeat timeout, which would end process 0 in jax's own fatal error): process 0 says that
  process 1 stopped and where its log would be, in one paragraph, and exits with status 1."""
  results = run_processes(
      python_argv("experiments.imbalance", "--config=configs/imbalance.py:runlocal",
                  f"--workdir={tmp_path}"),
      num_processes=P, devices_per_process=1, timeout_s=240, grace_s=STOP_WITHIN_S + 30,
      env={"REPSIM_HEARTBEAT_TIMEOUT_S": str(NAMED_HEARTBEAT_S), "REPSIM_XLA_CACHE": "off"},
      kill=(1, r"\d+ x \d+ layers, N="),
      expect_failure=True)
  assert results[1].returncode == -9
  _assert_all_stop_with_an_error(results, dead=1)
  assert not os.path.exists(tmp_path / "imbalance.npz")
  out = results[0].output
  assert results[0].returncode == 1 and "Traceback" not in out, out
  assert (f"error: process 0 of {P} stops because process 1 of {P} stopped (killed, out of "
          f"memory, or failed) and no longer answers. It wrote no error.process1.log in "
          f"{tmp_path} (a killed process writes nothing)") in out, out
  assert "Gloo" in (tmp_path / "error.log").read_text()


def test_an_exception_in_one_process_stops_the_others(tmp_path):
  """Process 1 of the imbalance CLI fails on a missing input file; process 0 has its input and
  would otherwise wait for process 1 in the first collective."""
  np.savez(tmp_path / "layers.npz", a=np.random.default_rng(0).normal(size=(64, 3)),
           b=np.random.default_rng(1).normal(size=(64, 5)))
  inputs = [tmp_path / "layers.npz", tmp_path / "no.npz"]
  results = run_processes(
      lambda i: python_argv("experiments.imbalance", f"--workdir={tmp_path / 'out'}",
                            f"--config.inputs_a={inputs[min(i, 1)]}"),
      num_processes=P, devices_per_process=1, timeout_s=240, grace_s=STOP_WITHIN_S + 30,
      env={"REPSIM_HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_S), "REPSIM_XLA_CACHE": "off"},
      expect_failure=True)
  assert "no.npz" in results[1].output and results[1].returncode == 1
  assert f"process 1 of {P} failed; exiting at once" in results[1].output
  _assert_all_stop_with_an_error(results, dead=1)
  # the failing process's error is one paragraph; its traceback is in its own error log
  assert "Traceback" not in results[1].output
  assert "error: config.inputs_a=" in results[1].output
  assert (tmp_path / "out" / "error.process1.log").read_text().startswith("Traceback")


def test_paper_runlocal_resumes_after_sigterm(tmp_path):
  """SIGTERM to process 0 of `experiments.mahaut_baroni` runlocal under P x D in its middle step
  ends it with one line and status 143, and the others stop too; the same command then reuses
  the step before it on every process (process 0 decides and sends the stored value), writes on
  process 0 only, and gives the results of one uninterrupted process."""
  import signal
  from configs import mahaut_baroni
  from repsim_jax.pipelines import mahaut_baroni as paper
  workdir = str(tmp_path / "multi")
  steps = "imbalance,lowlevel,probes"
  env = {"REPSIM_XLA_CACHE": str(tmp_path / "xla_cache"),
         "REPSIM_HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_S)}

  def argv(records):
    return lambda i: python_argv(
        "experiments.mahaut_baroni", "--config=configs/mahaut_baroni.py:runlocal,models=vit",
        f"--workdir={workdir}", "--config.distributed=True", f"--config.analysis.steps={steps}",
        record_writes=records[i])

  first = [str(tmp_path / f"first{i}.txt") for i in range(P)]
  results = run_processes(argv(first), num_processes=P, devices_per_process=D, timeout_s=540,
                          grace_s=STOP_WITHIN_S + 30, env=env,
                          kill=(0, r"\[3/4\] lowlevel \.\.\."), kill_signal=signal.SIGTERM,
                          expect_failure=True)
  report = multiprocess_harness.format_results(results)
  assert results[0].returncode == 143, report
  assert ("mahaut_baroni: interrupted by SIGTERM in step [3/4] lowlevel; rerun the same command to "
          "resume there (finished steps are reused)") in results[0].output.splitlines(), report
  assert results[1].returncode != 0, report
  assert os.path.exists(os.path.join(workdir, "steps", "imbalance.json"))
  assert not os.path.exists(os.path.join(workdir, "steps", "lowlevel.json"))

  again = [str(tmp_path / f"again{i}.txt") for i in range(P)]
  results = run_processes(argv(again), num_processes=P, devices_per_process=D, timeout_s=540,
                          env=env)
  for r in results:
    assert "reused [2/4] imbalance (record of" in r.output, r.output[-3000:]
    assert "[2/4] imbalance ..." not in r.output and "[3/4] lowlevel ..." in r.output
  files = assert_each_file_written_once(again, workdir)
  assert not any(files[i] for i in range(1, P)), files
  assert os.path.join(os.path.realpath(workdir), "steps", "probes.json") in files[0]

  config = mahaut_baroni.get_config("runlocal,models=vit")
  config.analysis.steps = tuple(steps.split(","))
  reference = str(tmp_path / "one")
  shutil.copytree(os.path.join(workdir, "checkpoints"), os.path.join(reference, "checkpoints"))
  paper.run(config, reference)
  got, want = npz_results(workdir), npz_results(reference)
  assert sorted(got) == sorted(want) and "steps/imbalance.npz" in want
  for name in want:
    assert_same(got[name], want[name], name)
