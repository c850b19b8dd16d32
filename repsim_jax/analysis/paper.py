"""Mahaut & Baroni (2026) end to end: every analysis and figure of the paper from one config.

`run(config, workdir)` reads top to bottom:

  1. representations: the extraction driver (`repsim_jax.extract.extract_stores`) for every model of
     `config.models` on `config.dataset`; a complete store with the same images and model id under
     `<workdir>/stores/<model>` is reused without loading the model. Layers stay in the stores
     (`StoreLayers`, `analysis.lazy_layers`): each step reads the layers and rows it uses when it
     runs (neighbourhoods: the early / middle / late layers; low-level features and probes: their
     rows, streamed in row blocks), through an LRU cache of `analysis.layer_cache_mb` MiB;
  2. information imbalance (Figs. 1, 10): all layers x all layers for every ordered pair of models
     (each with itself too), one npz + JSON per pair under `<workdir>/imbalance/`;
  3. sample size and smoothness (Figs. 11, 12, App. B);
  4. neighbourhood grids (Figs. 2, 15-17), low-level features (Figs. 3, 14), ManyNames semantic
     coherence (Fig. 4, when the dataset is ManyNames), per-class probes and roughness (Fig. 5,
     when the images have class labels), out-of-domain probes (Fig. 13, tfds datasets; skipped
     with the exact `tfds build` command when a dataset is not prepared);
  5. `<workdir>/summary.md`: every figure, our headline numbers next to the paper's statements.

Settings live in `config.analysis` (see `configs/mahaut_baroni.py`). Layers are the store's main
blocks in forward order (the input embedding / stem entry included, sublayers left out); the
representative early / middle / late layers are `repsim_jax.extract.early_middle_late` (second,
middle and penultimate block, as in the paper). Only process 0 writes on multi-host runs.

References:
  Mahaut & Baroni 2026, "Similarity of Processing Steps in Vision Model Representations".
"""
from __future__ import annotations

import collections
import collections.abc
import copy
import dataclasses
import os
from typing import Any, Callable, Sequence

import numpy as np
from absl import logging

from repsim_jax import data as data_lib
from repsim_jax import extract as extract_lib
from repsim_jax import sharding
from repsim_jax.progress import Progress
from repsim_jax.results import fingerprint, save_result, to_jsonable
from repsim_jax.store import ActivationStore, IncompleteStoreError

FIGURES = "figures"


# ----------------------------------------------------------------------------- representations


class LayerCache:
  """Least-recently-used layers up to `budget_bytes` (0 keeps nothing), shared by the models."""

  def __init__(self, budget_bytes: int = 0):
    self.budget = int(budget_bytes)
    self._items: collections.OrderedDict[Any, np.ndarray] = collections.OrderedDict()
    self.nbytes = 0

  def get(self, key, load: Callable[[], np.ndarray]) -> np.ndarray:
    if key in self._items:
      self._items.move_to_end(key)
      return self._items[key]
    value = load()
    if value.nbytes <= self.budget:
      self._items[key] = value
      self.nbytes += value.nbytes
      while self.nbytes > self.budget:
        self.nbytes -= self._items.popitem(last=False)[1].nbytes
    return value

  def __contains__(self, key) -> bool:
    return key in self._items

  def clear(self) -> None:
    self._items.clear()
    self.nbytes = 0


class StoreLayers(collections.abc.Sequence):
  """One model's main-block layers in its `ActivationStore`, read only when a step asks.

  `layers[l]` reads layer l (the valid rows, float32 [N, d]) through `cache`; `layers.rows(l,
  rows)` reads only the given rows (indices into the valid rows), streaming the layer in row
  blocks so memory holds the result and one block, never the whole layer. Nothing is kept beyond
  the cache, so a step that needs the early / middle / late layers reads those three and no more.
  """

  def __init__(self, store: ActivationStore, names: Sequence[str], valid: np.ndarray, *,
               cache: LayerCache | None = None):
    self.store, self.names = store, list(names)
    self.valid_index = np.flatnonzero(valid)  # store row of each valid row
    self.cache = cache if cache is not None else LayerCache(0)

  def __len__(self) -> int:
    return len(self.names)

  def __getitem__(self, l):
    if isinstance(l, slice):
      return [self[i] for i in range(len(self))[l]]
    l = range(len(self))[l]  # negative indices; IndexError past the end
    return self.cache.get((self.store.path, l), lambda: self._read(l))

  def _read(self, l: int) -> np.ndarray:
    values = self.store.layer(self.names[l])
    if len(self.valid_index) < len(values):  # rows of skipped images out (a copy)
      values = values[self.valid_index]
    return np.asarray(values, np.float32).reshape(len(self.valid_index), -1)

  def rows(self, l: int, rows) -> np.ndarray:
    """float32 [len(rows), d]: layer l at `rows` (indices into the valid rows, any order)."""
    rows = np.asarray(rows, np.int64)
    l = range(len(self))[l]
    n = len(self.valid_index)
    if (self.store.path, l) in self.cache or (
        len(rows) == n and np.array_equal(rows, np.arange(n))):
      return self[l][rows]
    want = self.valid_index[rows]
    order = np.argsort(want, kind="stable")
    sorted_want = want[order]
    out, done, start = None, 0, 0
    for block in self.store.iter_rows(self.names[l]):
      stop = start + len(block)
      upto = int(np.searchsorted(sorted_want, stop))
      block = np.asarray(block, np.float32).reshape(len(block), -1)
      if out is None:
        out = np.empty((len(rows), block.shape[1]), np.float32)
      sel = order[done:upto]
      out[sel] = block[want[sel] - start]
      done, start = upto, stop
      if done == len(rows):
        break
    return out


def layer_rows(layers: Sequence, rows) -> list[np.ndarray]:
  """Every layer of one model at `rows`: read row block by row block from the store when the
  layers are `StoreLayers`, sliced when they are in memory."""
  if isinstance(layers, StoreLayers):
    return [layers.rows(l, rows) for l in range(len(layers))]
  return [np.asarray(x)[rows] for x in layers]


@dataclasses.dataclass
class Representations:
  """The layers of every model on one image set (rows aligned across models).

  `layers[m]` is a sequence of arrays [N, d_l]: in memory (`load_representations(lazy=False)`)
  or `StoreLayers` read from the store on demand (the default for `run`)."""
  source: Any
  ids: list[str]                          # image id of every row
  models: list[str]
  layer_names: dict[str, list[str]]
  layers: dict[str, Sequence[np.ndarray]]  # model -> L_m arrays [N, d_l]
  representative: dict[str, list[int]]    # model -> (early, middle, late) indices into layers
  model_types: dict[str, str]

  @property
  def n(self) -> int:
    return len(self.ids)


def _is_sublayer(name: str) -> bool:
  return name.count(".") > (1 if name.startswith("stage") else 0)


def _model_id(model_config) -> str:
  return model_config.get("checkpoint") or f"tiny-random-{model_config.get('model_type')}"


def _reusable(path: str, ids: Sequence[str], dataset: dict, model_config) -> bool:
  """A complete store made from the same images, dataset and model id."""
  try:
    store = ActivationStore.open(path)
  except (FileNotFoundError, IncompleteStoreError):
    return False
  same = (store.ids == list(ids) and store.config.get("dataset") == to_jsonable(dataset)
          and store.config["model"]["id"] == _model_id(model_config))
  if not same:
    logging.info("paper: store %s differs from the config (images, dataset or model); the "
                 "extraction driver will report how", path)
  return same


def ensure_stores(config, workdir: str, *, source=None) -> tuple[Any, list[str], dict[str, str]]:
  """(source, sampled ids, model -> store path), extracting the models without a complete store.

  A store is reused when it is complete and holds the same image ids, dataset and model id (its
  checkpoint fingerprint was checked when it was written); anything else goes through
  `repsim_jax.extract.extract_stores`, which resumes partial stores and refuses mismatched ones.
  `source`: the source of `config.dataset` when the caller already opened it.
  """
  source = source if source is not None else data_lib.from_config(config.dataset)
  ids = data_lib.sample_ids(source.ids, config.get("n_images"), seed=config.seed)
  paths = {m.name: os.path.join(workdir, "stores", m.name) for m in config.models}
  dataset = source.describe()
  # The writer decides which stores to extract (a host whose view of the shared disk lagged
  # would otherwise skip an extraction the others run, and their collectives would hang).
  todo_mask = sharding.broadcast_from_writer(
      np.array([not _reusable(paths[m.name], ids, dataset, m) for m in config.models],
               np.int32))
  todo = [m for m, t in zip(config.models, todo_mask) if t]
  reused = [m.name for m in config.models if m not in todo]
  if reused:
    logging.info("paper: reusing complete stores of %s under %s", ", ".join(reused), workdir)
  if todo:
    logging.info("paper: extracting %s (%d images of %s)", ", ".join(m.name for m in todo),
                 len(ids), dataset.get("kind"))
    sub = copy.deepcopy(config)
    sub.models = todo
    extract_lib.extract_stores(sub, workdir)
  sharding.sync(f"paper: stores of {workdir}")  # every host's chunks are written before reads
  return source, ids, paths


def load_representations(source, ids: Sequence[str], paths: dict[str, str], *, lazy: bool = False,
                         cache_mb: float = 0) -> Representations:
  """Every model's main-block layers, keeping the rows valid in all models (skipped images out).

  lazy=False reads every layer into memory now; lazy=True gives `StoreLayers` that read a layer
  when a step asks for it, through one `LayerCache` of `cache_mb` MiB shared by the models (the
  same numbers, memory bounded by what one step needs: ~60 GB for 1e5 images x 1536 dims x 100
  layers would otherwise be resident).
  """
  stores = {m: ActivationStore.open(p) for m, p in paths.items()}
  valid = np.logical_and.reduce([s.valid_rows() for s in stores.values()])
  cache = LayerCache(int(cache_mb * 2**20))
  layer_names, layers, representative, types = {}, {}, {}, {}
  for m, store in stores.items():
    names = [n for n in store.layer_names if not _is_sublayer(n)]
    layer_names[m] = names
    layers[m] = StoreLayers(store, names, valid, cache=cache)
    if not lazy:
      layers[m] = list(layers[m])
    chosen = extract_lib.early_middle_late(names)
    representative[m] = [names.index(chosen[r]) for r in ("early", "middle", "late")]
    types[m] = store.config["model"].get("model_type") or ""
  kept = [i for i, v in zip(ids, valid) if v]
  if len(kept) < len(ids):
    logging.info("paper: %d skipped images left out of every analysis", len(ids) - len(kept))
  return Representations(source, kept, list(stores), layer_names, layers, representative, types)


def _load(config, source, ids, paths) -> Representations:
  a = config.analysis
  return load_representations(source, ids, paths, lazy=a.get("lazy_layers", True),
                              cache_mb=a.get("layer_cache_mb", 0))


# ----------------------------------------------------------------------------- summary


class Summary:
  """Collects figures, headline rows (statement | paper | ours) and notes; writes summary.md.

  Figures are passed as callables that draw and return their paths, run on process 0 only."""

  def __init__(self, workdir: str, title: str):
    self.workdir, self.title = workdir, title
    self.sections: list[dict[str, Any]] = []

  def section(self, title: str) -> dict[str, Any]:
    self.sections.append({"title": title, "figures": [], "rows": [], "notes": [], "tables": []})
    return self.sections[-1]

  def figure(self, section, caption: str, draw: Callable[[], Sequence[str]]) -> None:
    if sharding.is_writer():
      section["figures"].append((caption, [os.path.relpath(p, self.workdir) for p in draw()]))

  def write(self) -> str | None:
    if not sharding.is_writer():
      return None
    lines = [f"# {self.title}", ""]
    for s in self.sections:
      lines += [f"## {s['title']}", ""]
      for note in s["notes"]:
        lines += [f"> {note}", ""]
      if s["rows"]:
        lines += ["| statement | paper | ours |", "| --- | --- | --- |"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in s["rows"]] + [""]
      for header, rows in s["tables"]:
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows] + [""]
      for caption, paths in s["figures"]:
        png = [p for p in paths if p.endswith(".png")]
        pdf = [p for p in paths if p.endswith(".pdf")]
        if len(png) == 1:
          lines += [f"**{caption}** ([pdf]({pdf[0]}))" if pdf else f"**{caption}**", "",
                    f"![{caption}]({png[0]})", ""]
        else:  # many files (Fig. 10): a list of links
          lines += [f"**{caption}**", ""] + [f"- [{os.path.basename(p)}]({p})" for p in png] + [""]
    path = os.path.join(self.workdir, "summary.md")
    with open(path, "w") as f:
      f.write("\n".join(lines))
    return path


def _fmt(values: dict[str, float], fmt: str = "{:.3f}") -> str:
  return "; ".join(f"{m}: {fmt.format(v)}" for m, v in values.items()) or "n/a"


def _pct(values: dict[str, float]) -> str:
  return _fmt({m: 100 * v for m, v in values.items()}, "{:.1f} %")


def figure_path(workdir: str, name: str) -> str:
  return os.path.join(workdir, FIGURES, name)


# ----------------------------------------------------------------------------- II (Figs. 1, 10)


def _imbalance_kwargs(cfg) -> dict[str, Any]:
  return dict(k=cfg.k, metric=cfg.metric, ties=cfg.ties,
              memory_budget_bytes=int(cfg.memory_budget_mb) << 20)


def imbalance_step(reps: Representations, cfg, config, workdir: str, summary: Summary) -> dict:
  """II between every layer of every model and every layer of every model (incl. itself).

  By default one `imbalance_between_models` call (one engine call on the union of all layers,
  each pair a block of it). With `cfg.by_model_pair` the step makes one call per ordered pair
  instead: only two models' layers are in memory at a time (the engine takes arrays, not lazy
  layers), for M times the neighbour passes.
  """
  from repsim_jax.metrics.imbalance import imbalance_between_models, information_imbalance_matrix
  from repsim_jax.metrics.imbalance_stats import smoothness
  from repsim_jax.plotting.imbalance import plot_imbalance_grid, plot_imbalance_heatmaps
  rows = np.arange(reps.n)
  if cfg.n and cfg.n < reps.n:
    rows = np.sort(np.random.default_rng(cfg.seed).choice(reps.n, cfg.n, replace=False))
  kwargs = dict(progress=logging.info, **_imbalance_kwargs(cfg))
  logging.info("paper: II over %d models, %d layers in all, N=%d, k=%d, %s%s", len(reps.models),
               sum(len(reps.layers[m]) for m in reps.models), len(rows), cfg.k, cfg.metric,
               ", one model pair at a time" if cfg.get("by_model_pair") else "")
  fingerprints = lambda m, layers: dict(zip(reps.layer_names[m], map(fingerprint, layers))) if (
      sharding.is_writer()) else {}
  prints, matrices = {}, {}
  if cfg.get("by_model_pair"):
    for a in reps.models:
      layers_a = layer_rows(reps.layers[a], rows)
      prints[a] = fingerprints(a, layers_a)
      for b in reps.models:
        layers_b = layers_a if b == a else layer_rows(reps.layers[b], rows)
        matrices[(a, b)] = information_imbalance_matrix(layers_a, layers_b, **kwargs)
        del layers_b
  else:
    selected = {m: layer_rows(reps.layers[m], rows) for m in reps.models}
    prints = {m: fingerprints(m, selected[m]) for m in reps.models}
    matrices = imbalance_between_models(selected, **kwargs)
  for (a, b), block in matrices.items():
    save_result(os.path.join(workdir, "imbalance"), f"ii_{a}__{b}",
                {"imbalance": block, "layers_a": np.array(reps.layer_names[a]),
                 "layers_b": np.array(reps.layer_names[b]), "rows": rows,
                 "representative_a": np.array(reps.representative[a])},
                config=config,
                inputs={**{f"a/{n}": v for n, v in prints[a].items()},
                        **{f"b/{n}": v for n, v in prints[b].items()}},
                extra={"a": a, "b": b, "n": len(rows), "k": cfg.k, "metric": cfg.metric,
                       "direction": f"{a} → {b}"})
  section = summary.section("Information imbalance across layers and models (Figs. 1, 10)")
  summary.figure(section, "Fig. 1: early / middle / late layer of A vs every layer of B",
                 lambda: plot_imbalance_grid(matrices, figure_path(workdir, "fig01_imbalance_grid"),
                                             models=reps.models, representative=reps.representative,
                                             layer_names=reps.layer_names))
  if cfg.heatmaps:
    summary.figure(section, "Fig. 10: all layers x all layers, one heatmap per ordered pair",
                   lambda: plot_imbalance_heatmaps(matrices, figure_path(workdir, "fig10"),
                                                   layer_names=reps.layer_names))
  self_max = {m: float(matrices[(m, m)].max()) for m in reps.models}
  smooth = {m: float(smoothness(matrices[(m, m)][reps.representative[m]], axis=-1).mean())
            for m in reps.models}
  section["rows"] += [
      ("largest II between any two layers of one model", "iGPT: all ≤ 0.15", _fmt(self_max)),
      ("std of adjacent-layer II differences (own layers, mean of early/middle/late curves)",
       "ConvNeXt ≥ 0.1; others < 0.05", _fmt(smooth)),
  ]
  # distance rule: where in B the early / middle / late layer of A is best predicted (lowest II)
  table = []
  for a in reps.models:
    for b in reps.models:
      depth = np.arange(matrices[(a, b)].shape[1]) / max(matrices[(a, b)].shape[1] - 1, 1)
      best = [f"{depth[int(np.argmin(matrices[(a, b)][l]))]:.2f}" for l in reps.representative[a]]
      table.append([f"{a} → {b}", *best])
  section["tables"].append((["pair", "early: best relative depth of B", "middle", "late"], table))
  section["notes"].append(f"N = {len(rows)} images, k = {cfg.k}, {cfg.metric} distance. Paper: "
                          "layers at similar relative depths predict each other best (distance "
                          "rule), except that any layer predicts all iGPT layers about equally.")
  return {"matrices": matrices, "self_max": self_max, "smoothness": smooth}


# ----------------------------------------------------------------------------- Figs. 11, 12


def sample_size_step(reps: Representations, cfg, ii_cfg, config, workdir: str,
                     summary: Summary) -> dict:
  """Per model, II of its early / middle / late layer to all its layers on `n_subsamples` random
  subsamples of each size: Fig. 11 plots the std over subsamples (mean over layer pairs), Fig. 12
  the smoothness (std of adjacent-layer differences, mean over the three curves), mean ± std over
  the subsamples (the paper's seeds)."""
  from repsim_jax.metrics.imbalance_stats import sample_size_curve, smoothness
  from repsim_jax.plotting.imbalance import plot_sample_size_std, plot_smoothness_vs_n
  sizes = sorted(int(s) for s in cfg.sizes if int(s) <= reps.n)
  dropped = [int(s) for s in cfg.sizes if int(s) > reps.n]
  section = summary.section("Sample size and smoothness (App. B, Figs. 11, 12)")
  if dropped:
    section["notes"].append(f"sizes {dropped} exceed the {reps.n} extracted images and were left "
                            "out (extract more images with n=... to include them)")
  if not sizes:
    section["notes"].append("skipped: no sample size fits the extracted images")
    return {}
  std11, mean12, std12 = {}, {}, {}
  progress = Progress("paper/sample_size", len(reps.models), unit="models", every_s=0)
  for m in reps.models:
    layers = list(reps.layers[m])  # one model's layers at a time
    rep = [layers[i] for i in reps.representative[m]]
    curve = sample_size_curve(rep, layers, sizes=sizes, n_subsamples=cfg.n_subsamples,
                              seed=cfg.seed, **_imbalance_kwargs(ii_cfg))
    per_seed = smoothness(curve["values"], axis=-1).mean(axis=-1)  # [S, R]
    std11[m] = curve["std"].mean(axis=(1, 2))
    mean12[m], std12[m] = per_seed.mean(axis=1), per_seed.std(axis=1, ddof=1)
    save_result(os.path.join(workdir, "sample_size"), f"sample_size_{m}",
                {"sizes": curve["sizes"], "values": curve["values"], "std": curve["std"],
                 "std_mean": std11[m], "smoothness": per_seed, "smoothness_mean": mean12[m],
                 "smoothness_std": std12[m], "layers_a": np.array(reps.representative[m])},
                config=config, extra={"model": m, "n_subsamples": cfg.n_subsamples})
    progress.update(1)
  summary.figure(section, "Fig. 11: std of II over subsamples vs N",
                 lambda: plot_sample_size_std(sizes, std11,
                                              figure_path(workdir, "fig11_sample_size"),
                                              n_subsamples=cfg.n_subsamples))
  summary.figure(section, "Fig. 12: smoothness vs N (mean ± std over seeds)",
                 lambda: plot_smoothness_vs_n(sizes, mean12, std12,
                                              figure_path(workdir, "fig12_smoothness"),
                                              n_seeds=cfg.n_subsamples))
  section["rows"] += [
      (f"std of II over subsamples at the largest N ({sizes[-1]})",
       "flat after N = 1e4; ConvNeXt varies most", _fmt({m: v[-1] for m, v in std11.items()})),
      (f"smoothness at the largest N ({sizes[-1]})", "ConvNeXt least smooth at every N",
       _fmt({m: v[-1] for m, v in mean12.items()})),
  ]
  return {"sizes": sizes, "std": std11, "smoothness_mean": mean12, "smoothness_std": std12}


# ----------------------------------------------------------------------------- images


class Images:
  """Row -> uint8 image of `ids[row]` from `source`, optionally resized; cached.

  `size` (H, W) resizes exactly (bilinear); `thumbnail` bounds the longer side (figures)."""

  def __init__(self, source, ids: Sequence[str], *, size: Sequence[int] | None = None,
               thumbnail: int | None = None):
    self.source, self.ids, self.size, self.thumbnail = source, list(ids), size, thumbnail
    self._cache: dict[int, np.ndarray] = {}

  def __len__(self) -> int:
    return len(self.ids)

  def load(self, row: int) -> np.ndarray:
    from PIL import Image
    image = self.source.load(self.ids[row]).image
    if self.size is not None:
      image = np.asarray(Image.fromarray(image).resize((int(self.size[1]), int(self.size[0])),
                                                       Image.BILINEAR))
    elif self.thumbnail:
      pil = Image.fromarray(image)
      pil.thumbnail((self.thumbnail, self.thumbnail))
      image = np.asarray(pil)
    return image

  def __getitem__(self, row: int) -> np.ndarray:
    row = int(row)
    if row not in self._cache:
      self._cache[row] = self.load(row)
    return self._cache[row]

  def stack(self, rows: Sequence[int], *, num_threads: int = 8) -> np.ndarray:
    """uint8 [len(rows), H, W, 3] (needs `size`), loaded in threads."""
    from repsim_jax.data.pipeline import threaded_map
    return np.stack(list(threaded_map(self.load, [int(r) for r in rows], num_threads=num_threads)))


# ----------------------------------------------------------------------------- Figs. 2, 15-17


def neighbourhood_step(reps: Representations, cfg, config, workdir: str, summary: Summary) -> dict:
  from repsim_jax.analysis.neighbourhoods import neighbourhoods, shared_neighbour_counts
  from repsim_jax.plotting.neighbourhoods import plot_neighbourhoods
  section = summary.section("Image neighbourhoods (Figs. 2, 15-17)")
  if cfg.queries:
    where = {i: r for r, i in enumerate(reps.ids)}
    missing = [q for q in cfg.queries if q not in where]
    if missing:
      raise KeyError(f"analysis.neighbourhoods.queries: ids {missing} are not among the "
                     f"{reps.n} extracted images")
    queries = np.array([where[q] for q in cfg.queries])
  else:
    queries = np.sort(np.random.default_rng(cfg.seed).choice(reps.n, min(cfg.n_queries, reps.n),
                                                             replace=False))
  logging.info("paper: %d nearest neighbours of %d query images among %d", cfg.k, len(queries),
               reps.n)
  result = neighbourhoods(reps.layers, queries, k=cfg.k, layers=reps.representative,
                          metric=cfg.metric)
  shared = shared_neighbour_counts(result["indices"])
  save_result(os.path.join(workdir, "neighbourhoods"), "neighbourhoods",
              {"queries": queries, "query_ids": np.array([reps.ids[q] for q in queries]),
               "layers": result["layers"], "indices": result["indices"],
               "distances": result["distances"], **shared},
              config=config, extra={"models": result["models"], "k": cfg.k})
  images = Images(reps.source, reps.ids, thumbnail=cfg.thumbnail)
  for q, row in enumerate(queries):
    summary.figure(section, f"{cfg.k} nearest neighbours of {reps.ids[row]}",
                   lambda: plot_neighbourhoods(images, int(row), result["indices"][:, :, q],
                                               figure_path(workdir, f"fig02_neighbours_{q:02d}"),
                                               model_names=result["models"],
                                               title=f"{cfg.k} nearest neighbours (cosine) of "
                                                     f"{reps.ids[row]}"))
  common = shared["all_models"].mean(axis=1)  # [R]
  section["rows"].append(
      ("neighbours shared by all models (mean over queries), early / middle / late",
       "late layers share most neighbours, except iGPT",
       " / ".join(f"{v:.1f}" for v in common) + f" of {cfg.k}"))
  return {"queries": queries, **result, **shared}


# ----------------------------------------------------------------------------- Figs. 3, 14


def lowlevel_step(reps: Representations, cfg, config, workdir: str, summary: Summary) -> dict:
  from repsim_jax.analysis.lowlevel import lowlevel_features, lowlevel_neighbour_analysis
  from repsim_jax.plotting.lowlevel import plot_neighbour_sharing
  section = summary.section("Low-level features in neighbourhoods (Figs. 3, 14)")
  n = min(int(cfg.n_images), reps.n)
  rows = np.sort(np.random.default_rng(cfg.seed).choice(reps.n, n, replace=False))
  logging.info("paper: low-level features of %d images at %s", n, tuple(cfg.image_size))
  images = Images(reps.source, reps.ids, size=tuple(cfg.image_size)).stack(rows)
  progress = Progress("paper/lowlevel_features", n, unit="images")
  features = lowlevel_features(images, sigma=cfg.sigma, low_threshold=cfg.low_threshold,
                               high_threshold=cfg.high_threshold, batch_size=cfg.batch_size,
                               progress=progress)
  result = lowlevel_neighbour_analysis({m: layer_rows(reps.layers[m], rows) for m in reps.models},
                                       features, group_size=cfg.group_size, k=cfg.k,
                                       metric=cfg.metric)
  arrays = {"rows": rows, **{f"feature/{p}": v for p, v in features.items()}}
  for scope, r in result.items():
    arrays[f"{scope}/images"] = r["images"]
    arrays[f"{scope}/baseline"] = r["baseline"]
    for m in reps.models:
      arrays[f"{scope}/sharing/{m}"] = r["sharing"][m]
  save_result(os.path.join(workdir, "lowlevel"), "lowlevel", arrays, config=config,
              extra={"baseline": {s: r["baseline"] for s, r in result.items()},
                     "n_images": n, "k": cfg.k, "group_size": cfg.group_size})
  overall = result["overall"]
  summary.figure(section, "Fig. 3: neighbours sharing a low-level category",
                 lambda: plot_neighbour_sharing({"all 9 categories": (overall["sharing"],
                                                                      overall["baseline"])},
                                                figure_path(workdir, "fig03_lowlevel"), k=cfg.k))
  summary.figure(section, "Fig. 14: per property",
                 lambda: plot_neighbour_sharing({s: (r["sharing"], r["baseline"])
                                                 for s, r in result.items() if s != "overall"},
                                                figure_path(workdir, "fig14_lowlevel_properties"),
                                                k=cfg.k))
  pick = lambda which: {m: float(overall["sharing"][m][reps.representative[m][which]])
                        for m in reps.models}
  section["rows"] += [
      ("random baseline (exact, from the category overlaps)", "15.2 %",
       f"{100 * overall['baseline']:.1f} % ({len(overall['images'])} images in a category)"),
      ("early layer: neighbours sharing a category", "> 48 % for all models", _pct(pick(0))),
      ("middle layer", "iGPT rises to 51 %", _pct(pick(1))),
      ("late layer", "drops for ViT and ConvNeXt; DINOv2, iGPT stay high", _pct(pick(2))),
  ]
  return result


# ----------------------------------------------------------------------------- Fig. 4


def semantic_step(reps: Representations, cfg, config, workdir: str, summary: Summary) -> dict:
  from repsim_jax.analysis.semantic import sample_queries, semantic_coherence
  from repsim_jax.plotting.semantic import plot_semantic_coherence
  section = summary.section("Semantic coherence with ManyNames (Fig. 4)")
  rows = getattr(reps.source, "rows", None)
  if config.dataset.get("kind") != "manynames" or rows is None:
    note = (f"skipped: the dataset is {config.dataset.get('kind')!r}, not ManyNames; run the "
            "`manynames` variant for Fig. 4")
    logging.info("paper: semantic coherence %s", note)
    section["notes"].append(note)
    return {}
  labels = [rows[i]["labels"] for i in reps.ids]
  queries = sample_queries(reps.n, min(cfg.n_queries, reps.n), seed=cfg.seed)
  mean, std, out = {}, {}, {}
  for m in reps.models:
    out[m] = semantic_coherence(reps.layers[m], labels, k=cfg.k, queries=queries,
                                metric=cfg.metric)
    mean[m], std[m] = out[m]["mean"], out[m]["std"]
    logging.info("paper: semantic coherence %s done", m)
  save_result(os.path.join(workdir, "semantic"), "semantic",
              {"queries": queries, **{f"{m}/{k}": v for m in reps.models
                                      for k, v in out[m].items() if k != "queries"}},
              config=config, extra={"n_queries": len(queries), "k": cfg.k})
  summary.figure(section, "Fig. 4: Jaccard index of ManyNames labels",
                 lambda: plot_semantic_coherence(mean, std, figure_path(workdir, "fig04_semantic"),
                                                 n_queries=len(queries), k=cfg.k))
  by_depth = {m: " / ".join(f"{mean[m][i]:.3f}" for i in reps.representative[m])
              for m in reps.models}
  section["rows"].append(("Jaccard index, early / middle / late",
                          "rises with depth; iGPT low, peaking in the middle",
                          "; ".join(f"{m}: {v}" for m, v in by_depth.items())))
  return out


# ----------------------------------------------------------------------------- Fig. 5


def _labels(source, ids: Sequence[str], key: str, *, num_threads: int = 8) -> list:
  """`key` label of every id: read from the source's index when it has one, else by loading."""
  if getattr(source, "rows", None) is not None and key in ("labels", "topname", "domain"):
    return [source.rows[i][key] for i in ids]  # ManyNames: the TSV, no image decoding
  if hasattr(source, "wnids") and key in ("label", "wnid"):  # image folder: the id's folder
    index = {w: n for n, w in enumerate(source.wnids)}
    return [index[i.split("/", 1)[0]] if key == "label" else i.split("/", 1)[0] for i in ids]
  from repsim_jax.data.pipeline import threaded_map
  return list(threaded_map(lambda i: source.load(i).labels[key], list(ids),
                           num_threads=num_threads))


def _class_indices(labels: Sequence, min_count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(rows kept, int labels 0..C-1 of those rows, class values) for classes with >= min_count."""
  values, inverse, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
  keep = counts[inverse] >= min_count
  kept_values, kept_inverse = np.unique(inverse[keep], return_inverse=True)
  return np.flatnonzero(keep), kept_inverse, values[kept_values]


def probes_step(reps: Representations, cfg, config, workdir: str, summary: Summary) -> dict:
  from repsim_jax.analysis.probes import class_probe_accuracy, roughness
  from repsim_jax.plotting.probes import plot_roughness
  section = summary.section("Per-class probes and roughness (Fig. 5)")
  if cfg.dataset is not None:
    reps = _other_dataset(config, cfg.dataset, cfg.n_images, workdir, "probes", section)
    if reps is None:
      return {}
  try:
    labels = _labels(reps.source, reps.ids, cfg.label_key)
  except KeyError:
    section["notes"].append(f"skipped: the images have no {cfg.label_key!r} label")
    logging.info("paper: probes skipped: no %r label", cfg.label_key)
    return {}
  rows, y, classes = _class_indices(labels, cfg.min_images_per_class)
  if len(classes) < 2:
    section["notes"].append(f"skipped: fewer than 2 classes with >= {cfg.min_images_per_class} "
                            "images")
    return {}
  logging.info("paper: per-class probes, %d classes x %s layers, %d images", len(classes),
               {m: len(reps.layers[m]) for m in reps.models}, len(rows))
  accuracy, rough = {}, {}
  progress = Progress("paper/probes", len(reps.models), unit="models", every_s=0)
  for m in reps.models:
    accuracy[m] = class_probe_accuracy(layer_rows(reps.layers[m], rows), y, seed=cfg.seed,
                                       test_fraction=cfg.test_fraction,
                                       probe_batch_size=cfg.probe_batch_size)
    rough[m] = roughness(accuracy[m], axis=0)
    progress.update(1)
  save_result(os.path.join(workdir, "probes"), "class_probes",
              {"classes": classes.astype(str), "rows": rows,
               **{f"accuracy/{m}": a for m, a in accuracy.items()},
               **{f"roughness/{m}": r for m, r in rough.items()}},
              config=config,
              extra={"roughness_mean": {m: float(r.mean()) for m, r in rough.items()},
                     "num_classes": len(classes)})
  # examples as in the paper: the roughest and the smoothest class curve over all models
  flat = [(float(r[c]), m, c) for m, r in rough.items() for c in range(len(classes))]
  examples = [{"model": m, "label": str(classes[c]), "accuracy": accuracy[m][:, c], "roughness": r}
              for r, m, c in (max(flat), min(flat))]
  summary.figure(section, "Fig. 5: roughness of per-class probe accuracy across layers",
                 lambda: plot_roughness(rough, figure_path(workdir, "fig05_roughness"),
                                        examples=examples))
  section["rows"] += [
      ("mean roughness per class (std of adjacent-layer accuracy differences)",
       "ConvNeXt widest / roughest; iGPT and ViT smoothest", _fmt({m: float(r.mean())
                                                                  for m, r in rough.items()})),
      ("example curves", "rough 0.395 (ConvNeXt, pizza), smooth 0.080 (iGPT, bloodhound)",
       "; ".join(f"{e['model']} {e['label']}: {e['roughness']:.3f}" for e in examples)),
  ]
  return {"accuracy": accuracy, "roughness": rough, "classes": classes}


# ----------------------------------------------------------------------------- Fig. 13


def _dataset_config(config, dataset, n_images):
  sub = copy.deepcopy(config)
  sub.dataset = dataset
  sub.n_images = n_images
  return sub


def _other_dataset(config, dataset, n_images, workdir: str, subdir: str,
                   section) -> Representations | None:
  """Every model's representations of another dataset (stores under <workdir>/<subdir>), or None
  (with a note naming the exact preparation command) when a tfds dataset is not prepared."""
  dataset = dict(dataset.to_dict() if hasattr(dataset, "to_dict") else dataset)
  sub = _dataset_config(config, dataset, n_images)
  try:
    source = data_lib.from_config(dataset)
  except (FileNotFoundError, ImportError) as e:
    if isinstance(e, ImportError):  # the message names the extra to install
      note = f"skipped {dataset.get('name', dataset)!r}: {e}"
    elif dataset.get("kind") == "tfds":
      from repsim_jax.data.tfds_source import build_command
      command = build_command(dataset["name"], dataset.get("data_dir"))
      note = (f"skipped {dataset['name']!r}: not prepared for tfds; build it with `{command}`")
    else:
      note = f"skipped {dataset}: {e}"
    logging.warning("paper: %s", note)
    section["notes"].append(note)
    return None
  source, ids, paths = ensure_stores(sub, os.path.join(workdir, subdir), source=source)
  return _load(config, source, ids, paths)


def ood_step(config, cfg, workdir: str, summary: Summary) -> dict:
  from repsim_jax.analysis.probes import multiclass_probe_accuracy
  from repsim_jax.plotting.probes import plot_ood_probes
  section = summary.section("Out-of-domain probes (App. C, Fig. 13)")
  accuracy: dict[str, dict[str, np.ndarray]] = {}
  for dataset in cfg.datasets:
    name = dataset.get("name") or dataset.get("kind")
    reps = _other_dataset(config, dataset, cfg.n_images, workdir, os.path.join("ood", name),
                          section)
    if reps is None:
      continue
    _, y, classes = _class_indices(_labels(reps.source, reps.ids, dataset.get("label_key",
                                                                              "label")), 1)
    logging.info("paper: OOD probes on %s: %d images, %d classes", name, reps.n, len(classes))
    accuracy[name] = {m: multiclass_probe_accuracy(list(reps.layers[m]), y, seed=cfg.seed,
                                                   test_fraction=cfg.test_fraction, l2=cfg.l2,
                                                   iterations=cfg.iterations)
                      for m in reps.models}
    save_result(os.path.join(workdir, "ood"), f"ood_{name}",
                {f"accuracy/{m}": a for m, a in accuracy[name].items()}, config=config,
                extra={"dataset": name, "n": reps.n, "num_classes": len(classes),
                       "best": {m: float(a.max()) for m, a in accuracy[name].items()}})
  if not cfg.datasets:
    section["notes"].append("no out-of-domain datasets configured")
  if accuracy:
    summary.figure(section, "Fig. 13: multi-class linear probes per layer",
                   lambda: plot_ood_probes(accuracy, figure_path(workdir, "fig13_ood_probes")))
    for name, acc in accuracy.items():
      peak = {m: f"{np.argmax(a) / max(len(a) - 1, 1):.2f}" for m, a in acc.items()}
      section["rows"].append((f"{name}: relative depth of the best layer (accuracy)",
                              "iGPT peaks halfway; others rise with depth",
                              "; ".join(f"{m}: {peak[m]} ({acc[m].max():.2f})" for m in acc)))
  return accuracy


# ----------------------------------------------------------------------------- driver


def run(config, workdir: str) -> dict[str, Any]:
  """Every analysis of Mahaut & Baroni (2026) on `config` (see the module docstring).

  Returns {"summary": path of summary.md, "imbalance": {...}, "sample_size": {...}, ...}, the
  per-step results (empty dicts for skipped steps).
  """
  from repsim_jax.pipelines.run import Run
  sharding.maybe_initialize_distributed(config.get("distributed") or None)
  a = config.analysis
  context = Run("paper", workdir, total_steps=8)
  workdir = context.workdir
  with context.step("representations"):
    source, ids, paths = ensure_stores(config, workdir)
    reps = _load(config, source, ids, paths)
  summary = Summary(workdir, "Mahaut & Baroni (2026) reproduction: "
                    + ", ".join(f"{m} ({reps.model_types[m]})" for m in reps.models))
  summary.section("Setup")["notes"].append(
      f"{reps.n} images of {source.describe()}; layers per model: "
      + ", ".join(f"{m} {len(reps.layers[m])}" for m in reps.models)
      + "; early / middle / late: " + "; ".join(
          f"{m} " + "/".join(reps.layer_names[m][i] for i in reps.representative[m])
          for m in reps.models))
  out: dict[str, Any] = {}
  steps = [("imbalance", lambda: imbalance_step(reps, a.imbalance, config, workdir, summary)),
           ("sample_size", lambda: sample_size_step(reps, a.sample_size, a.imbalance, config,
                                                    workdir, summary)),
           ("neighbourhoods", lambda: neighbourhood_step(reps, a.neighbourhoods, config, workdir,
                                                         summary)),
           ("lowlevel", lambda: lowlevel_step(reps, a.lowlevel, config, workdir, summary)),
           ("semantic", lambda: semantic_step(reps, a.semantic, config, workdir, summary)),
           ("probes", lambda: probes_step(reps, a.probes, config, workdir, summary)),
           ("ood", lambda: ood_step(config, a.ood, workdir, summary))]
  for name, step in steps:
    if not a[name].get("enabled", True):
      context.skip(name, "disabled in the config")
      summary.section(name)["notes"].append("disabled in the config")
      out[name] = {}
      continue
    with context.step(name):
      out[name] = step()
  out["summary"] = summary.write()
  # the others leave with the writer, instead of waiting for it at jax's shutdown barrier
  sharding.sync(f"paper: done {workdir}")
  context.finish(headline=f"summary: {out['summary']}" if out["summary"] else None)
  return out
