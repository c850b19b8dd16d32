"""Information imbalance, or any registered measure, between every layer of two sets of
representations (configs/imbalance.py).

`run(config, workdir)`: the layers (the built-in synthetic example, or the user's .npz / .npy /
store), an optional row subsample and preprocessing, then for each measure of `config.measures`
(default "imbalance"; any name or alias of `repsim_jax.measures()`) its [La, Lb] matrix (or its
mean ± s.e.m. over disjoint subsets), optionally its bootstrap interval (`n_boot`) and its
permutation calibration (`n_perm`), all in `<name>.npz` + `.json`, one heatmap per measure and
the report. Everything but II's own settings (k, metric, ties, dtype, block size) comes from the
measure protocol, so a newly registered measure is available here with no change.
"""
from __future__ import annotations

import glob
import os
import re

import numpy as np
from absl import logging

from repsim_jax import results, sharding
from repsim_jax.data import synthetic_layers
from repsim_jax.extraction.layer_files import load_layers
from repsim_jax.measures import bootstrap, measure, similarity_matrix, subsets
from repsim_jax.metrics import calibration, distances, imbalance, imbalance_stats, validation
from repsim_jax.pipelines import checks
from repsim_jax.pipelines.report import interval_text
from repsim_jax.pipelines.run import Run

_II = "information_imbalance-convention=dadapy-distance"


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


def _measure_list(config) -> list[str]:
  raw = config.get("measures", "imbalance")
  names = [m.strip() for m in (raw.split(",") if isinstance(raw, str) else raw) if m.strip()]
  if not names:
    raise ValueError("config.measures: expected at least one measure name")
  for name in names:
    measure(name)  # an unknown name fails here, with close matches, before any work
  return names


def _key(name: str) -> str:
  """The measure's name as the user wrote it, file- and npz-safe ("cka", "nbs_score")."""
  return "imbalance" if name in ("imbalance", _II) else re.sub(r"[^A-Za-z0-9]+", "_", name)


def best_predicted(matrix: np.ndarray, *, same_layers: bool,
                   higher_is_similar: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """For each row layer of A: the column of B it predicts best (lowest Δ; for a similarity,
  `higher_is_similar`, the highest value) and the row's mean. When A and B are the same layers, a
  layer against itself (Δ = 2/N, the minimum; a similarity's maximum) is left out: it is no
  finding."""
  m = np.array(matrix, np.float64)
  if same_layers:
    np.fill_diagonal(m, np.nan)
  if m.shape[1] == (1 if same_layers else 0):
    return np.zeros(len(m), int), np.full(len(m), np.nan)
  best = np.nanargmax(m, axis=1) if higher_is_similar else np.nanargmin(m, axis=1)
  return best, np.nanmean(m, axis=1)


def tied_with_best(matrix: np.ndarray, best: np.ndarray, *, same_layers: bool) -> np.ndarray:
  """[rows] how many other columns of each row equal its best column's value (`best_predicted`;
  the diagonal left out when `same_layers`): a "best" among equals is the first of them, no
  finding (a layer whose every neighbourhood is the same predicts every layer of B equally)."""
  m = np.array(matrix, np.float64)
  if same_layers:
    np.fill_diagonal(m, np.nan)
  at_best = m[np.arange(len(m)), best][:, None]
  return np.maximum(np.sum(np.isclose(m, at_best, rtol=1e-9, atol=0.0), axis=1) - 1, 0)


def _warn_degenerate(measures, inputs, same: bool, metric: str) -> None:
  """The warnings about exact duplicate points and constant layers, once for the command and
  named by file and layer (`validation.warn_degenerate_layers`): the kernels would name a layer
  by its index in their lists (layers_a[13]) and say it again in every resampling call, so the
  measure steps run with theirs off (`validation.degenerate_warnings_off`). Duplicates matter to
  the rank and neighbour measures (not CKA); what a constant layer means depends on the
  measure."""
  layers, names = [], []
  for src, layer_names, group in inputs[:1] if same else inputs:
    layers += list(group)
    names += [f"{os.path.basename(src)} {n}" for n in layer_names]
  keys = list(dict.fromkeys(validation.constant_meaning_key(m.name) for m in measures))
  duplicates = any(key != "cka" for key in keys)
  for i, key in enumerate(keys):
    validation.warn_degenerate_layers(layers, names, measure=key, duplicates=duplicates and i == 0,
                                      metric=metric if key == "imbalance" else "euclidean",
                                      stacklevel=3)


def run(config, workdir: str) -> dict:
  """Computes the matrices described by `config`; writes results and heatmaps to `workdir`."""
  sharding.maybe_initialize_distributed(config.distributed or None)
  _check(config)
  names = _measure_list(config)
  only_ii = names == ["imbalance"]
  context = Run("imbalance", workdir, config=config,
                title="Information imbalance" if only_ii else "Layer similarity")
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
  ii_options = dict(k=config.k, metric=config.metric, ties=config.ties,
                    block_size=config.block_size or None,
                    memory_budget_bytes=int(config.memory_budget_mb) << 20,
                    dtype=np.dtype(config.dtype))
  context.log("%d x %d layers, N=%d, k=%d, %s", len(layers_a), len(layers_b),
              len(layers_a[0]), config.k, config.metric)
  same = layers_b is layers_a
  _warn_degenerate([measure(name) for name in names],
                   [(src_a, names_a, layers_a), (src_b, names_b, layers_b)], same, config.metric)
  arrays, matrices, outputs = {}, {}, {}
  for name in names:
    m = measure(name)
    key = _key(name)
    options = ii_options if m.name == _II else {}
    step = "information imbalance" if key == "imbalance" else name
    with context.step(step), validation.degenerate_warnings_off():  # given by `_warn_degenerate`
      matrices[key], extra = _measure_step(config, layers_a, layers_b, m, key, options)
    arrays.update(extra)
    outputs[key] = m
  arrays.update(layers_a=np.array(names_a), layers_b=np.array(names_b))
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
                                extra={"source_a": src_a, "source_b": src_b,
                                       "measures": {k: m.name for k, m in outputs.items()}}))
  title = f"{os.path.basename(src_a)} → {os.path.basename(src_b)}"
  for key, m in outputs.items():
    files += _report(context, config, key, m, matrices[key], arrays, names_a, names_b,
                     len(layers_a[0]), title, workdir, same=same)
  headline = f"{len(names_a)} x {len(names_b)} matrix" + "".join(
      f", mean {'Δ' if key == 'imbalance' else key} {matrices[key].mean():.3f}"
      for key in outputs)
  context.finish(headline=headline)
  return {**matrices, "layers_a": names_a, "layers_b": names_b, "files": files}


def _measure_step(config, layers_a, layers_b, m, key, options):
  """(matrix [La, Lb], arrays to save) for one measure: the plain or subset-mean matrix, its
  bootstrap interval (config.n_boot) and its permutation calibration (config.n_perm)."""
  arrays = {}
  if config.subset_size:
    if m.name == _II:
      stats = imbalance_stats.imbalance_subsets(
          layers_a, layers_b, subset_size=config.subset_size, repeats=config.repeats or None,
          seed=config.seed, check_duplicates=False, **options)
    else:
      stats = subsets(layers_a, layers_b, measure=m, subset_size=config.subset_size,
                            repeats=config.repeats or None, seed=config.seed)
    matrix = stats["mean"]
    prefix = "" if key == "imbalance" else f"{key}_"
    arrays.update({f"{prefix}sem": stats["sem"], f"{prefix}values": stats["values"],
                   f"{prefix}subsets": stats["subsets"]})
  elif m.name == _II:
    matrix = imbalance.information_imbalance_matrix(layers_a, layers_b, progress=logging.info,
                                                    check_duplicates=False, **options)
  else:
    matrix = similarity_matrix(layers_a, layers_b, measure=m)
  arrays[key] = matrix
  if config.get("n_boot", 0):
    boot = bootstrap(layers_a, layers_b, measure=m, n_boot=config.n_boot,
                           seed=config.seed, **options)
    arrays.update({f"{key}_low": boot["low"], f"{key}_high": boot["high"],
                   f"{key}_half_width": boot["half_width"]})
  if config.get("n_perm", 0):
    test = calibration.permutation_test(layers_a, layers_b, measure=m.name,
                                        n_perm=config.n_perm, seed=config.seed,
                                        alpha=config.alpha, **options)
    arrays.update({f"{key}_{field}": test[field] for field in (
        "p_value", "critical", "calibrated", "p_value_max", "calibrated_max")})
    arrays[f"{key}_q_value"] = test["fdr"]["q_value"]
    for how, agg in test["aggregates"].items():
      arrays.update({f"{key}_{how}_{field}": agg[field]
                     for field in ("observed", "p_value", "critical", "calibrated")})
  return matrix, arrays


def _report(context, config, key, m, matrix, arrays, names_a, names_b, n, title, workdir, *,
            same: bool):
  """The measure's report section (table, calibration lines) and heatmap; its figure files.

  `same`: B is A (inputs_a alone), so a layer against itself is left out of the best-predicted
  column (it is no finding)."""
  ii = key == "imbalance"
  label = "Δ(A → B)" if ii else key
  section = context.section(f"Information imbalance {title}" if ii else f"{m.name} {title}")
  if ii:
    section.note(f"{len(names_a)} x {len(names_b)} layers, N={n}, k={config.k}, "
                 f"{config.metric} distance, ties={config.ties}"
                 + (f"; mean over disjoint subsets of {config.subset_size}: the value at "
                    f"N = subset_size = {config.subset_size}, not at the full N (II drifts "
                    f"with N)" if config.subset_size else "") + ". Δ(A → B): 0 when A's neighbourhoods "
                 "are B's, about 1 when unrelated.")
  else:
    section.note(f"{len(names_a)} x {len(names_b)} layers, N={n}; {m.name} ({m.kind}: "
                 f"{'larger' if m.higher_is_similar else 'smaller'} = more similar, "
                 f"{m.perfect:g} for identical representations; {m.reference})"
                 + (f"; mean over disjoint subsets of {config.subset_size}: the value at "
                    f"N = subset_size = {config.subset_size}, not at the full N"
                    if config.subset_size else "") + ".")
  if ii and config.k >= n // 2:
    warning = (f"k={config.k} is at least half of N={n}: Δ approaches 1 for every pair of "
               "layers, whatever their relation; use a small k (1 to 10)")
    logging.warning(warning)
    section.note("Warning: " + warning + ".")
  best, other = best_predicted(matrix, same_layers=same, higher_is_similar=m.higher_is_similar)
  ties = tied_with_best(matrix, best, same_layers=same)
  low, high = arrays.get(f"{key}_low"), arrays.get(f"{key}_high")
  value = (lambda i, j: float(matrix[i, j])) if low is None else (
      lambda i, j: interval_text(float(matrix[i, j]), float(low[i, j]), float(high[i, j])))
  best_col = (("best-predicted " if ii else "most similar ") + ("other " if same else "")
              + "layer of B")
  section.table(["layer of A", best_col, f"its {label}",
                 f"mean {'Δ' if ii else key} over " + ("the other layers" if same else "B")],
                [[a, names_b[j] + (f" (tied with {t} other{'s' if t > 1 else ''})" if t else ""),
                  value(i, j), float(o)]
                 for i, (a, j, o, t) in enumerate(zip(names_a, best, other, ties))])
  if f"{key}_p_value" in arrays:
    lines = [f"{how}: {float(arrays[f'{key}_{how}_observed']):.3f}, p = "
             f"{float(arrays[f'{key}_{how}_p_value']):.3g}, calibrated "
             f"{float(arrays[f'{key}_{how}_calibrated']):.2f}"
             for how in calibration.AGGREGATES]
    section.note(f"Permutation calibration ({config.n_perm} row permutations, alpha = "
                 f"{config.alpha}; Gröger et al. 2026), aggregates over the grid: "
                 + "; ".join(lines) + f". Pairs significant after Benjamini-Hochberg: "
                 f"{int(np.sum(arrays[f'{key}_q_value'] <= config.alpha))} of {matrix.size}.")
  if not config.plot:
    return []
  from repsim_jax.plotting.heatmap import data_range, layer_heatmap, scale_text
  base = config.name if ii else f"{config.name}_{key}"
  vmin, vmax = data_range(matrix)  # its own range, stated: a fixed 0-1 paints small II one colour
  return section.figure(f"{label}, {title}; {scale_text(vmin, vmax)} (the matrix's range)",
                        lambda: layer_heatmap(
      matrix, row_labels=names_a, col_labels=names_b, path=os.path.join(workdir, base),
      title=f"{'Information imbalance' if ii else m.name} {title}",
      ylabel="predicting layer (A)" if ii else "layer of A",
      xlabel="predicted layer (B)" if ii else "layer of B", cbar_label=label,
      vmin=vmin, vmax=vmax))
