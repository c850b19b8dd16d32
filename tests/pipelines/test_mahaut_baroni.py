"""Mahaut & Baroni (2026) end to end (runlocal: tiny random checkpoints, generated images), its
steps on stores of known layers, and the lazy reading of stores they rely on."""
from __future__ import annotations

import os

import numpy as np
import pytest


def test_runlocal_end_to_end(tmp_path, monkeypatch):
  """The whole paper on 2 tiny random models and 32 generated images, OOD probes on mock tfds
  CIFAR-100; then a rerun reuses the complete stores without extracting."""
  tfds = pytest.importorskip("tensorflow_datasets")
  from configs import mahaut_baroni
  from repsim_jax import information_imbalance_matrix
  from repsim_jax.pipelines import extract as extract_pipeline
  from repsim_jax.extraction.store import load_store_layers
  from repsim_jax.pipelines import mahaut_baroni as paper
  from repsim_jax.results import load_result
  config = mahaut_baroni.get_config("runlocal,models=vit+igpt")
  workdir = str(tmp_path)
  with tfds.testing.mock_data(num_examples=16):
    out = paper.run(config, workdir)
  figures = ["fig01_imbalance_grid", "fig02_neighbours_00", "fig03_lowlevel", "fig05_roughness",
             "fig11_sample_size", "fig12_smoothness", "fig13_ood_probes",
             "fig14_lowlevel_properties", "fig10/fig10_igpt__vit", "subspace"]
  for name in figures:
    for ext in ("png", "pdf"):
      assert os.path.getsize(os.path.join(workdir, "figures", f"{name}.{ext}")) > 0, name
  results = ["imbalance/ii_vit__vit", "imbalance/ii_vit__igpt", "imbalance/ii_igpt__vit",
             "imbalance/ii_igpt__igpt", "sample_size/sample_size_vit",
             "neighbourhoods/neighbourhoods", "lowlevel/lowlevel", "probes/class_probes",
             "ood/ood_cifar100", "imbalance/ii_bootstrap_vit", "subspace/subspace"]
  for name in results:
    for ext in ("npz", "json"):
      assert os.path.exists(os.path.join(workdir, f"{name}.{ext}")), name
  summary = open(out["summary"]).read()
  assert "figures/fig01_imbalance_grid.png" in summary and "15.2 %" in summary
  # every step's value can be stored, so a rerun reuses it (pipelines.records)
  assert sorted(os.listdir(os.path.join(workdir, "steps"))) == sorted(
      f"{s}.{ext}" for s in mahaut_baroni.STEPS for ext in ("json", "npz"))
  assert "not ManyNames" in summary  # the semantic step is skipped with a note

  # a saved II matrix is the II of the store's layers
  arrays, meta = load_result(os.path.join(workdir, "imbalance", "ii_igpt__vit"))
  names_a, layers_a = load_store_layers(os.path.join(workdir, "stores", "igpt"))
  names_b, layers_b = load_store_layers(os.path.join(workdir, "stores", "vit"))
  assert list(arrays["layers_a"]) == names_a and list(arrays["layers_b"]) == names_b
  assert len(names_a) == 5 and meta["values"]["direction"] == "igpt → vit"
  np.testing.assert_allclose(arrays["imbalance"], information_imbalance_matrix(layers_a, layers_b),
                             rtol=0, atol=1e-12)
  # the headline numbers are those of the saved matrices
  vit_self = load_result(os.path.join(workdir, "imbalance", "ii_vit__vit"))[0]["imbalance"]
  assert out["imbalance"]["self_max"]["vit"] == pytest.approx(vit_self.max())
  _check_headline_intervals(workdir, config, out, summary)
  _check_subspace(workdir, config, summary)
  # OOD probes: one accuracy per layer of each model
  ood = load_result(os.path.join(workdir, "ood", "ood_cifar100"))[0]
  assert ood["accuracy/igpt"].shape == (5,) and np.all((0 <= ood["accuracy/vit"]) &
                                                           (ood["accuracy/vit"] <= 1))

  def no_extraction(*args, **kwargs):
    raise AssertionError("complete stores should be reused")
  monkeypatch.setattr(extract_pipeline, "extract_stores", no_extraction)
  _, ids, paths = extract_pipeline.ensure_stores(config, workdir)
  assert len(ids) == 32 and set(paths) == {"vit", "igpt"}


def _resampled_imbalance(x_a, x_b, idx):
  """Δ(x_a → x_b), k = 1, of the image multiset `idx` by brute force in float64: each resampled
  image's nearest other image in a (copies of the image itself left out; all copies of a
  neighbour are equally close in b too, so which one does not matter), its rank in b among the
  resampled images that are not copies of the query."""
  a, b = (np.asarray(x, np.float64)[idx] for x in (x_a, x_b))
  other = idx[:, None] != idx[None, :]
  d_a = np.where(other, np.linalg.norm(a[:, None] - a[None], axis=-1), np.inf)
  d_b = np.linalg.norm(b[:, None] - b[None], axis=-1)
  nearest = np.argmin(d_a, axis=1)
  ranks = 1 + np.sum(other & (d_b < d_b[np.arange(len(idx)), nearest][:, None]), axis=1)
  return 2 / len(idx) * ranks.mean()


def _check_headline_intervals(workdir, config, out, summary):
  """The ± of the II headline rows (the default interval, `intervals.halves_interval`): a
  brute-force numpy II on the store's layers, over the documented split halves and quarters
  (same seed, so the same splits), and the interval's formula in numpy give the saved intervals
  and the report's cells."""
  import scipy.stats
  from repsim_jax.extraction.store import load_store_layers
  from repsim_jax.metrics.intervals import DEFAULT_SPLITS
  from repsim_jax.pipelines.report import interval_text
  from repsim_jax.results import load_result
  cfg = config.analysis.imbalance
  cells = {}
  for m in ("vit", "igpt"):
    saved, _ = load_result(os.path.join(workdir, "imbalance", f"ii_bootstrap_{m}"))
    plain, meta = load_result(os.path.join(workdir, "imbalance", f"ii_{m}__{m}"))
    _, layers = load_store_layers(os.path.join(workdir, "stores", m))
    matrix, rep = plain["imbalance"], list(plain["representative_a"])
    n = len(layers[0])
    off_diagonal = np.where(np.eye(len(matrix), dtype=bool), -np.inf, matrix)
    i, j = np.unravel_index(np.argmax(off_diagonal), matrix.shape)  # a layer with itself is no pair
    assert i != j
    assert meta["values"]["n"] == n and set(saved["rows"]) == set(rep) | {i}

    def largest(idx):
      return _resampled_imbalance(layers[i], layers[j], idx)

    def smooth(idx):
      curves = np.array([[_resampled_imbalance(layers[r], y, idx) for y in layers] for r in rep])
      return np.std(np.diff(curves, axis=1), axis=1).mean()

    def pieces(parts, splits):  # the documented draws of `intervals.split_weights`
      rng = np.random.default_rng([cfg.seed, parts])
      size = n // parts
      return [np.sort(p) for _ in range(splits)
              for p in rng.permutation(n)[:size * parts].reshape(parts, size)]

    for name, statistic in (("self_max", largest), ("smoothness", smooth)):
      h = np.array([statistic(idx) for idx in pieces(2, DEFAULT_SPLITS)])
      q = np.array([statistic(idx) for idx in pieces(4, DEFAULT_SPLITS // 2)])
      var_half = np.mean((h[0::2] - h[1::2]) ** 2) / 2
      var_quarter = np.mean(q.reshape(-1, 4).var(axis=1, ddof=1))
      rate = (1 + np.clip(np.log(var_quarter / var_half) / np.log((n // 2) / (n // 4)), 0.5,
                          3)) / 2
      df = 1 / (2.25 / DEFAULT_SPLITS + 0.25 / (3 * (DEFAULT_SPLITS // 2)))  # ~20.7
      half = (scipy.stats.t.ppf((1 + cfg.confidence) / 2, df)
              * np.sqrt(var_half * ((n // 2) / n) ** rate))
      value = statistic(np.arange(n))  # the plain number: every image once
      np.testing.assert_allclose(saved[f"{name}/halves"], h, rtol=0, atol=1e-12)
      np.testing.assert_allclose(saved[f"{name}/quarters"], q, rtol=0, atol=1e-12)
      np.testing.assert_allclose([saved[f"{name}/low"], saved[f"{name}/high"]],
                                 [value - half, value + half], rtol=0, atol=1e-12,
                                 err_msg=f"{m} {name}")
      assert half > 0  # splitting 32 images moves these numbers
      np.testing.assert_allclose(saved[f"{name}/value"], value, rtol=0, atol=1e-12)
      cells.setdefault(name, []).append(f"{m}: {interval_text(value, value - half, value + half)}")
  assert "; ".join(cells["self_max"]) in summary and "; ".join(cells["smoothness"]) in summary
  assert f"with {cfg.n_boot} image-bootstrap replicates" in summary


def _check_subspace(workdir, config, summary):
  """The subspace step on the stores' late layers against numpy: PCA by SVD, Procrustes
  similarity and CKA of the projections, and a brute-force loop over the documented
  permutations (draw by draw, one `rng.permutation(N)` per model in order) for the null."""
  from repsim_jax.extraction.store import load_store_layers
  from repsim_jax.results import load_result
  cfg = config.analysis.subspace
  saved, meta = load_result(os.path.join(workdir, "subspace", "subspace"))
  assert list(saved["models"]) == ["vit", "igpt"] and meta["values"]["k"] == cfg.k
  scores, explained = [], []
  for n, m in enumerate(saved["models"]):
    names, layers = load_store_layers(os.path.join(workdir, "stores", m))
    late = load_result(os.path.join(workdir, "imbalance", f"ii_{m}__{m}"))[0]["representative_a"][2]
    assert saved["layers"][n] == names[late]
    x = np.asarray(layers[late], np.float64)
    x = x - x.mean(axis=0)
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    scores.append(x @ vt[:cfg.k].T)
    explained.append(sv[:cfg.k] ** 2 / np.sum(sv ** 2))
  np.testing.assert_allclose(saved["explained"], explained, rtol=1e-6)

  def unit(z):
    z = z - z.mean(axis=0)
    return z / np.linalg.norm(z)

  def procrustes(x, y):
    return np.linalg.svd(unit(x).T @ unit(y), compute_uv=False).sum()

  def cka(x, y):
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    return np.sum((x.T @ y) ** 2) / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))

  rng = np.random.default_rng(cfg.seed)
  perms = [[rng.permutation(len(scores[0])) for _ in scores] for _ in range(cfg.n_perm)]
  for name, measure in (("procrustes", procrustes), ("cka", cka)):
    observed = measure(*scores)
    null = np.array([measure(scores[0][p], scores[1][q]) for p, q in perms])
    np.testing.assert_allclose(saved[name][0, 1], observed, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(saved[f"{name}_null"][:, 0], null, rtol=1e-4, atol=1e-6,
                               err_msg=name)
    assert saved[f"{name}_p_value"][0] == (1 + np.sum(null >= observed)) / (1 + cfg.n_perm)
    assert saved[f"{name}_median"] == saved[name][0, 1]  # one pair: its own median
    assert f"{saved[f'{name}_median']:.3f} (null median {np.median(null):.3f}" in summary


def test_subspace_step_three_models(tmp_path):
  """The subspace step on three models of known layers: the chosen layer by relative depth, k
  lowered to the narrowest layer with a note, every pair and the median over the three pairs
  (with its permutation p-value) against numpy and a brute-force permutation loop; one model is
  skipped with a note; a bad layer setting names the setting."""
  import ml_collections
  from configs import mahaut_baroni
  from repsim_jax.extraction.representations import Representations
  from repsim_jax.pipelines.mahaut_baroni import subspace
  from repsim_jax.pipelines.run import Run
  from repsim_jax.results import load_result
  rng = np.random.default_rng(0)
  n, shared = 40, rng.normal(size=(40, 6))
  widths = {"a": 10, "b": 12, "c": 5}
  layers = {m: [(shared @ rng.normal(size=(6, d)) + s * rng.normal(size=(n, d))).astype(np.float32)
                for s in (0.1, 0.5, 1.0, 2.0)] for m, d in widths.items()}
  reps = Representations(None, [str(i) for i in range(n)], list(widths),
                         {m: [f"{m}{l}" for l in range(4)] for m in widths}, layers,
                         {m: [1, 2, 2] for m in widths}, {m: "vit" for m in widths})
  cfg = mahaut_baroni.analysis(local=True).subspace
  cfg.update({"layer": "1.0", "k": 8, "n_perm": 12, "seed": 3})  # as --config...layer=1.0 sets it
  run = Run("paper", tmp_path, config=ml_collections.ConfigDict({"analysis": {"subspace": cfg}}))
  out = subspace.step(reps, cfg, run)
  saved, meta = load_result(str(tmp_path / "subspace" / "subspace"))
  assert list(saved["layers"]) == ["a3", "b3", "c3"] and out["k"] == meta["values"]["k"] == 5
  assert "k lowered from 8 to 5" in run.report.sections[-1].notes[0]

  def procrustes(x, y):
    unit = [(z - z.mean(axis=0)) / np.linalg.norm(z - z.mean(axis=0)) for z in (x, y)]
    return np.linalg.svd(unit[0].T @ unit[1], compute_uv=False).sum()

  scores = []
  for m in widths:
    x = np.asarray(layers[m][3], np.float64)
    x = x - x.mean(axis=0)
    scores.append(x @ np.linalg.svd(x, full_matrices=False)[2][:5].T)
  draw = np.random.default_rng(cfg.seed)
  perms = [[draw.permutation(n) for _ in widths] for _ in range(cfg.n_perm)]
  pairs = [(0, 1), (0, 2), (1, 2)]
  observed = np.array([procrustes(scores[i], scores[j]) for i, j in pairs])
  null = np.array([[procrustes(scores[i][p[i]], scores[j][p[j]]) for i, j in pairs]
                   for p in perms])
  np.testing.assert_array_equal(saved["pairs"], pairs)
  np.testing.assert_allclose([saved["procrustes"][i, j] for i, j in pairs], observed, rtol=1e-5)
  np.testing.assert_allclose(saved["procrustes_null"], null, rtol=1e-4)
  np.testing.assert_allclose(saved["procrustes_median"], np.median(observed), rtol=1e-5)
  np.testing.assert_allclose(saved["procrustes_median_null"], np.median(null, axis=1), rtol=1e-4)
  assert saved["procrustes_median_p_value"] == (
      1 + np.sum(np.median(null, axis=1) >= np.median(observed))) / (1 + cfg.n_perm)
  assert len(run.report.sections[-1].rows) == 2 and run.report.sections[-1].figures

  one = Representations(None, reps.ids, ["a"], reps.layer_names, layers, reps.representative,
                        reps.model_types)
  assert subspace.step(one, cfg, run) == {} and "skipped" in run.report.sections[-1].notes[0]
  for bad in ("last", 1.5, "-0.1"):
    with pytest.raises(ValueError, match="analysis.subspace.layer"):
      subspace.chosen_layer(reps, "a", bad)
  assert [subspace.chosen_layer(reps, "a", x) for x in ("early", 0.0, 0.4, 0.6)] == [1, 0, 1, 2]


def test_semantic_step_reads_manynames_labels(tmp_path):
  """Fig. 4 on the real ManyNames slice (generated stand-ins for the Visual Genome images): the
  labels reach the Jaccard computation through the store's ids."""
  from PIL import Image
  import ml_collections
  from repsim_jax.analysis.semantic import semantic_coherence
  from repsim_jax.data.generated import generated_image
  from repsim_jax.data.manynames import ManyNamesSource, read_manynames
  from repsim_jax.extraction.representations import Representations
  from repsim_jax.pipelines.mahaut_baroni import semantic
  from repsim_jax.pipelines.run import Run
  from repsim_jax.results import load_result
  from configs import mahaut_baroni
  from locations import FIXTURES
  tsv = str(FIXTURES / "manynames" / "manynames-zh-slice.tsv")
  vg = tmp_path / "vg"
  vg.mkdir()
  for i, row in enumerate(read_manynames(tsv)):
    Image.fromarray(generated_image(i, size=(16, 16))[0]).save(vg / f"{row['vg_image_id']}.jpg")
  source = ManyNamesSource(tsv, str(vg))
  ids = list(reversed(source.ids))  # store order differs from the TSV order
  rng = np.random.default_rng(0)
  layers = [rng.normal(size=(len(ids), 6)).astype(np.float32) for _ in range(4)]
  reps = Representations(source, ids, ["m"], {"m": [f"l{i}" for i in range(4)]},
                         {"m": layers}, {"m": [1, 2, 2]}, {"m": "vit"})
  config = ml_collections.ConfigDict({"dataset": {"kind": "manynames"}})
  cfg = mahaut_baroni.analysis(local=True).semantic
  run = Run("paper", tmp_path, config=config, title="t")
  semantic.step(reps, cfg, run)
  arrays, _ = load_result(str(tmp_path / "semantic" / "semantic"))
  labels = [set(r["responses"]) for r in reversed(read_manynames(tsv))]
  expected = semantic_coherence(layers, labels, n_queries=cfg.n_queries, k=cfg.k, seed=cfg.seed)
  np.testing.assert_allclose(arrays["m/mean"], expected["mean"], rtol=1e-12)
  assert os.path.exists(tmp_path / "figures" / "fig04_semantic.png")
  assert "Jaccard" in open(run.write_report()["markdown"]).read()


def test_unprepared_tfds_dataset_is_skipped_with_its_build_command(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  from configs import mahaut_baroni
  from repsim_jax.pipelines.mahaut_baroni.inputs import other_dataset
  from repsim_jax.pipelines.report import Report
  config = mahaut_baroni.get_config("runlocal,models=vit")
  section = Report("t").section("ood")
  data_dir = str(tmp_path / "tfds")
  reps = other_dataset(config, {"kind": "tfds", "name": "stl10", "split": "test",
                                "data_dir": data_dir}, 8, str(tmp_path), "ood/stl10", section)
  assert reps is None and not os.path.exists(tmp_path / "ood")
  assert f"`tfds build stl10 --data_dir={data_dir} --file_format=array_record`" in section.notes[0]


def _synthetic_stores(root, source, skipped=("gen/5",)):
  """Two stores of random layers (float16 and float32, flat and [2, d] rows, a sublayer, NaN rows
  for a skipped image), chunks of 16 rows so row reads cross chunk boundaries."""
  from repsim_jax.extraction.store import ActivationStore
  rng = np.random.default_rng(0)
  ids, paths = source.ids, {}
  for m, (depth, shape, dtype, mtype) in {"a": (6, [8], "float32", "vit"),
                                          "b": (5, [2, 3], "float16", "convnext")}.items():
    names = ["embeddings"] + [f"block_{i:02d}" for i in range(depth)]
    names.insert(3, "block_01.mlp")
    paths[m] = os.path.join(root, m)
    store = ActivationStore.open_or_create(
        paths[m], config={"model": {"id": m, "model_type": mtype}}, ids=ids, chunk_rows=16,
        dtype=dtype)
    store.ensure_layers({n: {"shape": shape} for n in names})
    values = {n: rng.normal(size=(len(ids), *shape)).astype(np.float32) for n in names}
    for v in values.values():
      v[[ids.index(i) for i in skipped]] = np.nan
    for k in range(store.num_chunks):
      start, stop = store.chunk_bounds(k)
      store.write_chunk(k, {n: v[start:stop] for n, v in values.items()},
                        skipped_ids=[i for i in skipped if start <= ids.index(i) < stop])
    assert store.finalize()
  return paths


def test_lazy_layers_read_only_what_a_step_needs(tmp_path, monkeypatch):
  """Store layers read on demand: the neighbourhood step reads the early / middle / late layer of
  each model once, the low-level step streams row blocks of the rows it uses (no whole-layer
  read), and both give the eager path's numbers."""
  import ml_collections
  from configs import mahaut_baroni
  from repsim_jax.data.generated import GeneratedSource
  from repsim_jax.extraction.representations import load_representations
  from repsim_jax.extraction.store import ActivationStore
  from repsim_jax.pipelines.mahaut_baroni import imbalance, lowlevel, neighbourhoods
  from repsim_jax.pipelines.run import Run
  source = GeneratedSource(40, size=(16, 16), seed=0)
  paths = _synthetic_stores(str(tmp_path / "stores"), source)
  eager = load_representations(source, source.ids, paths, lazy=False)
  lazy = load_representations(source, source.ids, paths, lazy=True, cache_mb=0)
  assert eager.n == lazy.n == 39 and eager.representative == lazy.representative
  assert lazy.layer_names["a"] == ["embeddings"] + [f"block_{i:02d}" for i in range(6)]

  reads = []
  layer, iter_rows = ActivationStore.layer, ActivationStore.iter_rows
  monkeypatch.setattr(ActivationStore, "layer", lambda self, name: (
      reads.append(("layer", os.path.basename(self.path), name)), layer(self, name))[1])
  monkeypatch.setattr(ActivationStore, "iter_rows", lambda self, name, block=None: (
      reads.append(("rows", os.path.basename(self.path), name)), iter_rows(self, name, block))[1])

  # the row reader: any order, across chunks, float16 widened, [2, 3] rows flattened
  rows = np.array([38, 0, 17, 16, 15, 3])
  for m in ("a", "b"):
    for l in range(len(lazy.layers[m])):
      np.testing.assert_array_equal(lazy.layers[m].rows(l, rows), eager.layers[m][l][rows])
  assert {r[0] for r in reads} == {"rows"}
  reads.clear()

  a = mahaut_baroni.analysis(local=True)
  config = ml_collections.ConfigDict({"analysis": a})
  out = {}
  for name, reps in (("eager", eager), ("lazy", lazy)):
    run = Run("paper", tmp_path / name, config=config)
    out[name] = neighbourhoods.step(reps, a.neighbourhoods, run)
    if name == "lazy":
      want = sorted(("layer", m, lazy.layer_names[m][i]) for m in ("a", "b")
                    for i in lazy.representative[m])
      assert sorted(reads) == want  # 3 layers per model, each read once
      reads.clear()
    out[name + "/lowlevel"] = lowlevel.step(reps, a.lowlevel, run)
    if name == "lazy":
      assert {r[0] for r in reads} == {"rows"}  # no whole-layer read for 32 of 39 rows
      assert len(reads) == len(lazy.layers["a"]) + len(lazy.layers["b"])
  # II: the union call on eager layers, one call per model pair on lazy ones: the same matrices
  reads.clear()
  a.imbalance.heatmaps = False
  union = imbalance.step(eager, a.imbalance, Run("paper", tmp_path / "eager", config=config))
  a.imbalance.by_model_pair = True
  pairs = imbalance.step(lazy, a.imbalance, Run("paper", tmp_path / "lazy", config=config))
  assert list(pairs["matrices"]) == list(union["matrices"]) == [(x, y) for x in "ab" for y in "ab"]
  for pair, matrix in union["matrices"].items():
    np.testing.assert_allclose(pairs["matrices"][pair], matrix, rtol=0, atol=1e-12)
  # cache off: per pass, and once more per layer for the headline intervals (the same on both)
  assert len(reads) == 3 * (len(lazy.layers["a"]) + len(lazy.layers["b"]))
  for m in "ab":
    for name in ("self_max", "smoothness"):  # the resampled values the halves interval reads
      for key in ("halves", "quarters", "low", "high"):
        np.testing.assert_array_equal(pairs["intervals"][m][name][key],
                                      union["intervals"][m][name][key])
  np.testing.assert_array_equal(out["lazy"]["indices"], out["eager"]["indices"])
  np.testing.assert_array_equal(out["lazy"]["distances"], out["eager"]["distances"])
  for scope, r in out["eager/lowlevel"].items():
    for m in ("a", "b"):
      np.testing.assert_array_equal(out["lazy/lowlevel"][scope]["sharing"][m], r["sharing"][m])


def test_layer_cache_is_lru_within_its_budget(tmp_path):
  from repsim_jax.data.generated import GeneratedSource
  from repsim_jax.extraction.representations import load_representations
  source = GeneratedSource(40, size=(16, 16), seed=0)
  paths = _synthetic_stores(str(tmp_path), source, skipped=())
  layer_bytes = 40 * 8 * 4
  reps = load_representations(source, source.ids, {"a": paths["a"]}, lazy=True,
                              cache_mb=2.5 * layer_bytes / 2**20)
  layers, cache = reps.layers["a"], reps.layers["a"].cache
  first = layers[1]
  assert layers[1] is first and layers[-1] is layers[len(layers) - 1]  # cached: same object
  layers[2]  # evicts layer 1, the least recently used
  assert cache.nbytes <= cache.budget and layers[1] is not first
  np.testing.assert_array_equal(layers[1], first)
  with pytest.raises(IndexError):
    layers[len(layers)]
