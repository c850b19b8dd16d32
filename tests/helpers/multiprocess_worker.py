"""What each process of the multi-process tests runs; the tests run the same functions in one
process for the reference (`test_multiprocess.py`).

  python tests/helpers/multiprocess_worker.py kernels OUT_DIR  # every sharded kernel -> OUT_DIR/p<i>.npz
  python tests/helpers/multiprocess_worker.py extract STORE N  # extract into STORE, stop after N chunks
  python tests/helpers/multiprocess_worker.py measures OUT_DIR  # every registered measure -> p<i>.npz

Started by `multiprocess_harness.run_processes`, which sets the jax.distributed environment.
"""
from __future__ import annotations

import functools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

N = 70  # not a multiple of 4 devices: padded row blocks; two blocks per device with block_size=16


def kernel_inputs() -> dict[str, np.ndarray]:
  """Small inputs with exact distance ties (integer lattices), duplicates and near-ties."""
  rng = np.random.default_rng(12)
  lattice = rng.integers(1, 4, size=(N, 4)).astype(np.float32)  # many exact ties
  smooth = (lattice @ rng.normal(size=(4, 9)) + 0.3 * rng.normal(size=(N, 9))).astype(np.float32)
  noise = rng.normal(size=(N, 6)).astype(np.float32)
  near = (rng.normal(size=(N, 3)) * 50).astype(np.float64)
  # point 0's two nearest neighbours differ by 1e-9: a float32 tie that the float64 re-ranking
  # resolves (the host-side refinement must agree on every process)
  near[0], near[1], near[2] = [1000.0, 0, 0], [1000.0 + 1 + 1e-9, 0, 0], [1000.0, 1.0, 0]
  return {"lattice": lattice, "smooth": smooth, "noise": noise, "near": near}


def kernel_results() -> dict[str, np.ndarray]:
  """Every multi-process path of the library on `kernel_inputs`: name -> array."""
  import jax
  from repsim_jax import sharding
  from repsim_jax.analysis import neighbourhoods
  from repsim_jax.metrics import imbalance, imbalance_stats, kernel_alignment, neighbours
  x = kernel_inputs()
  layers = [x["lattice"], x["smooth"], x["noise"]]
  out = {}
  # each schedule with each ties mode and each metric once (integer ranks: bit-identical)
  for fused, ties, metric in ((True, "min", "euclidean"), (True, "average", "cosine"),
                              (False, "min", "cosine"), (False, "average", "euclidean")):
    name = f"ii_ranks/{'fused' if fused else 'two_phase'}/{ties}/{metric}"
    out[name] = imbalance.imbalance_ranks(layers, layers[1:], k=3, ties=ties, metric=metric,
                                          fused=fused, block_size=16, check_duplicates=False)
  out["ii_matrix"] = imbalance.information_imbalance_matrix(layers, k=2, check_duplicates=False)
  out["ii_matrix/auto_schedule"] = imbalance.information_imbalance_matrix(
      [x["near"], x["noise"]], k=1, memory_budget_bytes=1 << 16)
  out["ii_pair"] = np.array(imbalance.information_imbalance_pair(x["near"], x["smooth"],
                                                                 metric="cosine"))
  out["ii_float64"] = imbalance.information_imbalance_matrix([x["near"], x["noise"]],
                                                             dtype=np.float64)
  # N = 35 and 70 only, the shapes compiled above
  subsets = imbalance_stats.imbalance_subsets(layers, subset_size=35, seed=3, k=1,
                                              check_duplicates=False)
  out.update({f"subsets/{k}": v for k, v in subsets.items()})
  curve = imbalance_stats.smoothness_curve(layers, sizes=(35, 70), n_seeds=2, seed=4,
                                           check_duplicates=False)
  out.update({f"smoothness_curve/{k}": v for k, v in curve.items()})
  for metric in ("euclidean", "cosine"):
    d, i = neighbours.knn(x["near"], 4, metric=metric)
    out[f"knn/{metric}/distances"], out[f"knn/{metric}/indices"] = d, i
  d, i = neighbours.knn(x["smooth"], 3, queries=np.array([5, 0, 69]), exclude_self=False)
  out["knn/queries/distances"], out["knn/queries/indices"] = d, i
  hoods = neighbourhoods.neighbourhoods({"a": layers, "b": layers[::-1]}, np.array([0, 7]), k=4)
  out["neighbourhoods/indices"] = hoods["indices"]
  out["neighbourhoods/distances"] = hoods["distances"]
  # Exact CKA runs on each process's first device (not sharded): checked small, for the
  # multi-process setup around it. The paper driver's test covers the per-class probes, the
  # low-level features and their neighbour analysis (also unsharded, apart from their kNN).
  cka_matrix = kernel_alignment.cka_matrix
  # decisions every process shares (the II schedule from free memory): values above 2^31
  out["agree_min"] = np.array(sharding.agree_min((5 << 33) + 3 * jax.process_index()))
  out["cka/exact"] = cka_matrix(layers[1:], layers[1:], debiased=True)
  for debiased in (False, True):
    out[f"cka/minibatch/{debiased}"] = cka_matrix(layers, layers[:2], debiased=debiased,
                                                  batch_size=8)
  out["cka/protocol"] = cka_matrix(layers, layers, batch_size=8, n_samples=48, repeats=2, seed=5)
  return out


def measure_names(scope: str) -> list[str]:
  """The registered measures a check covers: "all", or "kinds": one measure per module that
  implements a pair kernel (the module of its `pair`), i.e. one of each preparation and pair
  computation the engine spreads over processes; the CI-sized scope. Any other scope is a
  comma-separated list of name prefixes (a focused run by hand: "rsa-")."""
  import repsim_jax
  from repsim_jax.measures import protocol
  repsim_jax.measures()  # loads every module listed in MODULES
  names = protocol.names()
  if scope == "all":
    return names
  if scope != "kinds":
    return [n for n in names if n.startswith(tuple(scope.split(",")))]
  first = {}
  for name in names:
    first.setdefault(pair_module(protocol.get(name)), name)
  return sorted(first.values())


def pair_module(m) -> str:
  """The module that implements measure `m`'s pair computation (through functools.partial)."""
  pair = m.pair
  while isinstance(pair, functools.partial):
    pair = pair.func
  return pair.__module__


def measure_results(scope: str = "kinds") -> dict[str, np.ndarray]:
  """`similarity_matrix` of the registered measures of `measure_names(scope)` (the registry, so
  measures added later are covered): its default path (a fast kernel where it has one) and the
  generic path, whose layer pairs are spread over processes and devices, on A x B and on A with
  itself."""
  import repsim_jax
  x = kernel_inputs()
  # one width per side (each width pair compiles a measure's pair kernel once)
  layers_a, layers_b = [x["smooth"][:, :6], x["noise"]], [x["lattice"], x["smooth"][:, 5:]]
  out = {}
  for name in measure_names(scope):
    for generic in (False, True):
      path = "generic" if generic else "default"
      out[f"{name}/{path}"] = repsim_jax.similarity_matrix(layers_a, layers_b, measure=name,
                                                           generic=generic)
    out[f"{name}/generic/self"] = repsim_jax.similarity_matrix(layers_a, measure=name,
                                                               generic=True)
  return out


TINY_VIT = dict(depth=2)
EXTRACT = dict(batch_size=4, device_batch=1, num_threads=2)
N_IMAGES, CHUNK_ROWS = 40, 8  # 5 chunks: hosts own uneven ranges


def extraction_inputs():
  """(model, source, preprocess) of the extraction checks."""
  from repsim_jax.data.generated import GeneratedSource
  from repsim_jax.data.pipeline import resize_normalize
  from tiny_models import TinyViT, numpy_init
  return (numpy_init(TinyViT, **TINY_VIT), GeneratedSource(N_IMAGES, size=(16, 16)),
          resize_normalize(size=(16, 16)))


class _Stop(Exception):
  pass


def extract_into(path: str, stop_after: int | None = None):
  """Extracts the tiny ViT into the store at `path`; with `stop_after`, this process stops (as if
  killed) once it has written that many chunks. Returns the store."""
  from repsim_jax import sharding
  from repsim_jax.extraction.extract import extract
  from repsim_jax.extraction.store import ActivationStore
  model, source, preprocess = extraction_inputs()
  store = sharding.writer_first(lambda: ActivationStore.open_or_create(
      path, config={"model": "tiny"}, ids=source.ids, chunk_rows=CHUNK_ROWS), f"store {path}")
  written = []

  def count(k):
    written.append(k)
    if stop_after is not None and len(written) >= stop_after:
      raise _Stop
  try:
    extract(model, source, preprocess, store, on_chunk_written=count, **EXTRACT)
  except _Stop:
    pass
  return store


def main(argv):
  from repsim_jax import sharding
  assert sharding.maybe_initialize_distributed(), "expected a multi-process run"
  import jax
  print(f"process {jax.process_index()} of {jax.process_count()}: {jax.local_device_count()} of "
        f"{jax.device_count()} devices", flush=True)
  case = argv[1]
  if case == "kernels":
    results = kernel_results()
    np.savez(os.path.join(argv[2], f"p{jax.process_index()}.npz"), **results)
    extract_into(argv[3], stop_after=1)
  elif case == "measures":  # argv[3]: the scope of `measure_names`
    np.savez(os.path.join(argv[2], f"p{jax.process_index()}.npz"), **measure_results(argv[3]))
  elif case == "extract":
    extract_into(argv[2], stop_after=int(argv[3]) if len(argv) > 3 else None)
  else:
    raise ValueError(f"unknown case {case!r}")
  print(f"process {jax.process_index()}: done", flush=True)


if __name__ == "__main__":
  main(sys.argv)
