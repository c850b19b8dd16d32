"""The README's commands, run literally as subprocesses with relative paths from a temporary
directory laid out like the repository's root, as a new user runs them (tests/commands.py). The runlocal pipelines run on a simulated
base install: the test extras (torch, tensorflow-datasets, scikit-learn, scikit-image) cannot be
imported in the subprocess. The demo's command is tested by tests/test_demo.py."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from commands import readme_command, run_command


def _third_party_info(output: str) -> list[str]:
  """Log lines of other libraries' INFO chatter (orbax, jax's backend probing, absl's prefix)."""
  return [line for line in output.splitlines()
          if "orbax" in line or "xla_bridge" in line or line[:1] == "I" and line[1:5].isdigit()]


def _xla_cache(tmp_path) -> dict[str, str]:
  return {"REPSIM_XLA_CACHE": str(tmp_path / "xla_cache")}


def test_paper_runlocal_on_a_base_install(tmp_path):
  argv = readme_command(
      "python -m experiments.mahaut_baroni --config=configs/mahaut_baroni.py:runlocal")
  proc = run_command(argv, tmp_path, base_install=True, env=_xla_cache(tmp_path))
  workdir = tmp_path / "runs" / "mb_local"
  summary = (workdir / "summary.md").read_text()
  assert "Fig. 1" in summary and "figures/fig01_imbalance_grid.png" in summary
  for model in ("vit", "dinov2", "convnext", "igpt"):  # tiny checkpoints written by our ports
    assert (workdir / "checkpoints" / model / "params").is_dir(), model
    assert (workdir / "stores" / model / "metadata.json").is_file(), model
    assert (workdir / "imbalance" / f"ii_vit__{model}.npz").is_file(), model
  # the OOD datasets need the tfds extra: skipped with the install command, not a crash
  assert 'pip install -e ".[tfds]"' in summary
  assert not (workdir / "error.log").exists()
  # a readable closing summary on stdout; no third-party INFO chatter; one duplicates line at most
  assert "mahaut_baroni: done in" in proc.stdout and "time per step: representations" in proc.stdout
  assert f"written under {workdir}" in proc.stdout and "summary.md" in proc.stdout
  assert _third_party_info(proc.stderr) == []
  assert proc.stderr.count("exact duplicate points") <= 1


def test_raghu_runlocal_on_a_base_install(tmp_path):
  argv = readme_command("python -m experiments.raghu --config=configs/raghu.py:runlocal")
  proc = run_command(argv, tmp_path, base_install=True, env=_xla_cache(tmp_path))
  workdir = tmp_path / "runs" / "raghu_local"
  summary = (workdir / "summary.md").read_text()
  assert "CKA" in summary and "figures/" in summary
  meta = json.loads((workdir / "cka_vit.json").read_text())
  assert meta["config"]["models"][0]["tiny_random"]
  assert "raghu: done in" in proc.stdout and "few-shot probes" in proc.stdout
  assert _third_party_info(proc.stderr) == []


def test_extract_runlocal_resumes_from_a_relative_workdir(tmp_path):
  argv = readme_command("python -m experiments.extract --config=configs/mahaut_baroni.py:runlocal")
  run_command(argv, tmp_path, base_install=True, env=_xla_cache(tmp_path))
  from repsim_jax.extraction.store import ActivationStore
  stores = tmp_path / "runs" / "mb_extract" / "stores"
  first = {m: ActivationStore.open(str(stores / m)).layer("block_01").copy()
           for m in ("vit", "igpt")}
  proc = run_command(argv, tmp_path, base_install=True, env=_xla_cache(tmp_path))
  assert "0 of 2 chunks to do" in proc.stderr or "chunks to do" not in proc.stderr
  for m, values in first.items():  # the rerun reused the stores unchanged
    np.testing.assert_array_equal(ActivationStore.open(str(stores / m)).layer("block_01"), values)


def test_imbalance_command_on_relative_npz_files(tmp_path):
  """The README's imbalance command on .npz files given by relative paths; its matrix equals the
  library call; a failed run leaves error.log, which the next good run removes; a second process
  compiles nothing new (persistent XLA cache) and gets identical numbers, as does a run without
  the cache."""
  import repsim_jax
  rng = np.random.default_rng(0)
  latent = rng.normal(size=(120, 4))
  vit = {f"block_{i}": np.tanh(latent @ rng.normal(size=(4, 6 + i))).astype(np.float32)
         for i in range(3)}
  dino = {f"layer_{i}": (latent @ rng.normal(size=(4, 5)) + 0.3 * i * rng.normal(size=(120, 5))
                         ).astype(np.float32) for i in range(2)}
  (tmp_path / "acts").mkdir()
  np.savez(tmp_path / "acts" / "vit.npz", **vit)
  argv = readme_command("python -m experiments.imbalance --workdir=runs/ii")
  workdir = tmp_path / "runs" / "ii"

  # acts/dinov2.npz does not exist yet: the run fails and says why in error.log
  proc = run_command(argv, tmp_path, env=_xla_cache(tmp_path), check=False)
  assert proc.returncode != 0
  assert "dinov2.npz" in (workdir / "error.log").read_text()

  np.savez(tmp_path / "acts" / "dinov2.npz", **dino)
  cache = tmp_path / "xla_cache"
  proc = run_command(argv, tmp_path, env=_xla_cache(tmp_path))
  assert not (workdir / "error.log").exists()  # only the latest run's error is kept
  with np.load(workdir / "imbalance.npz") as z:
    first = z["imbalance"]
    assert list(z["layers_a"]) == list(vit) and list(z["layers_b"]) == list(dino)
  expected = repsim_jax.information_imbalance_matrix(list(vit.values()), list(dino.values()),
                                                     metric="cosine")
  np.testing.assert_allclose(first, expected, rtol=0, atol=1e-12)
  meta = json.loads((workdir / "imbalance.json").read_text())
  assert meta["config"]["inputs_a"] == "acts/vit.npz" and meta["config"]["metric"] == "cosine"
  assert "imbalance: done in" in proc.stdout and "imbalance.{json,npz,pdf,png}" in proc.stdout

  entries = sorted(os.listdir(cache))
  assert entries, "the first process should fill the persistent compilation cache"
  run_command(argv, tmp_path, env=_xla_cache(tmp_path))
  assert sorted(os.listdir(cache)) == entries  # every program came from the cache
  with np.load(workdir / "imbalance.npz") as z:
    np.testing.assert_array_equal(z["imbalance"], first)
  run_command(argv, tmp_path, env={"REPSIM_XLA_CACHE": "off"})
  with np.load(workdir / "imbalance.npz") as z:
    np.testing.assert_array_equal(z["imbalance"], first)
