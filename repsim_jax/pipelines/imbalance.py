"""Information imbalance between every layer of two sets of representations (configs/imbalance.py).

`run(config, workdir)`: the layers (the built-in synthetic example, or the user's .npz / .npy /
store), an optional row subsample and preprocessing, the II matrix (or its mean ± s.e.m. over
disjoint subsets), `<name>.npz` + `.json`, a heatmap and the report.
"""
from __future__ import annotations

import glob
import os

import numpy as np
from absl import logging

from repsim_jax import results, sharding
from repsim_jax.data import synthetic_layers
from repsim_jax.extraction.layer_files import load_layers
from repsim_jax.metrics import distances, imbalance, imbalance_stats, validation
from repsim_jax.pipelines import checks
from repsim_jax.pipelines.run import Run


def _inputs(config):
  if not config.inputs_a:
    s = config.synthetic
    layers = synthetic_layers.information_loss_layers(
        s.n, n_layers=s.n_layers, latent_dim=s.latent_dim, drop=s.drop, width=s.width,
        noise=s.noise, seed=config.seed)
    names = [f"layer_{i:02d}" for i in range(len(layers))]
    return ("synthetic", names, layers), ("synthetic", names, layers)
  a = (config.inputs_a, *_load(config, "a"))
  if not config.inputs_b:
    return a, a
  return a, (config.inputs_b, *_load(config, "b"))


def _load(config, side: str):
  """`load_layers` of config.inputs_<side>; a missing file or layer names its config key."""
  spec, names = config[f"inputs_{side}"], config[f"layers_{side}"]
  try:
    return load_layers(spec, names=names)
  except FileNotFoundError as e:
    raise checks.UserError(f"config.inputs_{side}={spec!r}: {checks.message(e)}; relative paths "
                           f"are read from {os.getcwd()}") from e
  except KeyError as e:
    raise checks.UserError(f"config.layers_{side}={names!r}: {checks.message(e)}; give names from "
                           "that list, comma-separated") from e


def _check(config) -> None:
  """The config's names, before any work."""
  checks.choice(config.metric, distances.METRICS, where="config.metric")
  checks.choice(config.ties, imbalance.TIES, where="config.ties")
  checks.choice(config.dtype, ("float32", "float64"), where="config.dtype")
  for side in "ab":
    spec = config[f"inputs_{side}"]
    if spec and not glob.has_magic(spec) and not os.path.exists(spec):
      raise checks.UserError(f"config.inputs_{side}={spec!r} does not exist (relative paths are "
                             f"read from {os.getcwd()}): give an .npz file, a folder of .npy "
                             "files, a glob of .npy files or a store directory")


def _check_rows(*inputs) -> None:
  """Every layer of every input has the same number of rows (one per image, in one order)."""
  rows = {(os.path.basename(src), name): len(x) for src, names, layers in inputs
          for name, x in zip(names, layers)}
  if len(set(rows.values())) > 1:
    first = next(iter(rows.values()))
    odd = [f"{src} layer {name!r} has {n}" for (src, name), n in rows.items() if n != first]
    (src, name), _ = next(iter(rows.items()))
    raise checks.UserError(
        f"layers differ in their number of rows: {src} layer {name!r} has {first}, "
        + ", ".join(odd[:5]) + (", ..." if len(odd) > 5 else "")
        + "; every layer needs one row per image, the same images in the same order")


def _prepare(source, names, layers, config, rows):
  p = config.preprocess
  out = []
  for name, x in zip(names, layers):
    x = validation.as_representation(x if rows is None else x[rows], f"{source} layer {name!r}")
    if p.clip_quantiles or p.center or p.l2_normalize:
      x = distances.preprocess(x, clip_quantiles=tuple(p.clip_quantiles) or None,
                               center=p.center, l2_normalize=p.l2_normalize)
    out.append(x)
  return out


def best_predicted(matrix: np.ndarray, *, same_layers: bool) -> tuple[np.ndarray, np.ndarray]:
  """For each row layer of A: the column of B it predicts best (lowest Δ) and the row's mean Δ.
  When A and B are the same layers, a layer against itself (Δ = 2/N, the minimum) is left out:
  it is no finding."""
  m = np.array(matrix, np.float64)
  if same_layers:
    np.fill_diagonal(m, np.nan)
  if m.shape[1] == (1 if same_layers else 0):
    return np.zeros(len(m), int), np.full(len(m), np.nan)
  return np.nanargmin(m, axis=1), np.nanmean(m, axis=1)


def run(config, workdir: str) -> dict:
  """Computes the II matrix described by `config`; writes results and a heatmap to `workdir`."""
  sharding.maybe_initialize_distributed(config.distributed or None)
  _check(config)
  context = Run("imbalance", workdir, config=config, title="Information imbalance")
  workdir = context.workdir
  with context.step("inputs"):
    (src_a, names_a, raw_a), (src_b, names_b, raw_b) = _inputs(config)
    _check_rows((src_a, names_a, raw_a), (src_b, names_b, raw_b))
    n = len(raw_a[0])
    rows = None
    if config.n:
      if config.n > n:
        raise ValueError(f"config.n={config.n} exceeds the {n} rows of {src_a}")
      rows = np.sort(np.random.default_rng(config.seed).choice(n, config.n, replace=False))
    layers_a = _prepare(src_a, names_a, raw_a, config, rows)
    layers_b = layers_a if raw_b is raw_a else _prepare(src_b, names_b, raw_b, config, rows)
  kwargs = dict(k=config.k, metric=config.metric, ties=config.ties,
                block_size=config.block_size or None,
                memory_budget_bytes=int(config.memory_budget_mb) << 20,
                dtype=np.dtype(config.dtype))
  context.log("%d x %d layers, N=%d, k=%d, %s", len(layers_a), len(layers_b),
              len(layers_a[0]), config.k, config.metric)
  arrays = {}
  with context.step("information imbalance"):
    if config.subset_size:
      stats = imbalance_stats.imbalance_subsets(
          layers_a, layers_b, subset_size=config.subset_size, repeats=config.repeats or None,
          seed=config.seed, **kwargs)
      matrix = stats["mean"]
      arrays.update(sem=stats["sem"], values=stats["values"], subsets=stats["subsets"])
    else:  # duplicates named by file and layer, not by their index in the kernel's lists
      same = layers_b is layers_a
      imbalance.warn_duplicates(
          layers_a + ([] if same else layers_b),
          [f"{os.path.basename(src_a)} {n}" for n in names_a]
          + ([] if same else [f"{os.path.basename(src_b)} {n}" for n in names_b]))
      matrix = imbalance.information_imbalance_matrix(layers_a, layers_b, progress=logging.info,
                                                      check_duplicates=False, **kwargs)
  arrays.update(imbalance=matrix, layers_a=np.array(names_a), layers_b=np.array(names_b))
  if rows is not None:
    arrays["rows"] = rows
  files = []
  if context.is_writer:
    with context.step("write"):
      fingerprints = {f"a/{nm}": results.fingerprint(x) for nm, x in zip(names_a, layers_a)}
      if layers_b is not layers_a:
        fingerprints.update({f"b/{nm}": results.fingerprint(x)
                             for nm, x in zip(names_b, layers_b)})
      files.append(context.save(config.name, arrays, inputs=fingerprints,
                                extra={"source_a": src_a, "source_b": src_b}))
  title = f"{os.path.basename(src_a)} → {os.path.basename(src_b)}"
  section = context.section(f"Information imbalance {title}")
  section.note(f"{len(names_a)} x {len(names_b)} layers, N={len(layers_a[0])}, k={config.k}, "
               f"{config.metric} distance, ties={config.ties}"
               + (f"; mean over disjoint subsets of {config.subset_size}" if config.subset_size
                  else "") + ". Δ(A → B): 0 when A's neighbourhoods are B's, about 1 when "
               "unrelated.")
  same = layers_b is layers_a
  if config.k >= len(layers_a[0]) // 2:
    warning = (f"k={config.k} is at least half of N={len(layers_a[0])}: Δ approaches 1 for every "
               "pair of layers, whatever their relation; use a small k (1 to 10)")
    logging.warning(warning)
    section.note("Warning: " + warning + ".")
  best, other = best_predicted(matrix, same_layers=same)
  section.table(["layer of A", "best-predicted " + ("other " if same else "") + "layer of B",
                 "its Δ(A → B)", "mean Δ over " + ("the other layers" if same else "B")],
                [[a, names_b[j], float(row[j]), float(o)]
                 for a, row, j, o in zip(names_a, matrix, best, other)])
  if config.plot:
    from repsim_jax.plotting.heatmap import data_range, layer_heatmap, scale_text
    low, high = data_range(matrix)
    files += section.figure(f"Δ(A → B), {title}; {scale_text(low, high)} (the matrix's range)",
                            lambda: layer_heatmap(
        matrix, row_labels=names_a, col_labels=names_b,
        path=os.path.join(workdir, config.name), title=f"Information imbalance {title}",
        ylabel="predicting layer (A)", xlabel="predicted layer (B)", cbar_label="Δ(A → B)",
        vmin=low, vmax=high))
  context.finish(headline=f"{len(names_a)} x {len(names_b)} matrix, mean Δ {matrix.mean():.3f}")
  return {"imbalance": matrix, "layers_a": names_a, "layers_b": names_b, "files": files}
