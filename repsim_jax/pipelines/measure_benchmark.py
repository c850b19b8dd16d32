"""Which similarity measure to trust: every registered measure tested on the shapes world.

`run(config, workdir)` (configs/measure_benchmark.py) reads top to bottom:

  1. the demo's world and models (`pipelines.demo`): each model trained with every seed of
     `config.seeds` on the same training images (seeds change the initialisation, the batch
     order and iGPT's colour clusters), extracted on the held-out images;
  2. the true colour factor per layer: the fraction of each image's k nearest neighbours sharing
     its background hue (the demo's `colour_sharing`), for the first seed's models;
  3. for every registered measure (`repsim_jax.measures.measures()`, so measures added by any
     module are included) the `similarity_matrix`es the tests read (`Layout.blocks`: the first
     seed's layers of all models against each other, and each model's first-seed layers against
     its other seeds' layers), timed, and the same with every layer's rows permuted independently
     (the shuffled-image control);
  4. from those matrices (`analysis.measure_quality`): layer identification across seeds
     (Kornblith et al. 2019), layer monotonicity within a model (ReSi), sensitivity to the
     world's colour factor across models, and the cost per layer pair; a table and a figure
     rank the measures, and findings are checked on the trained models and on the control.

A measure that fails on these inputs keeps its row, with the error. Everything is seeded.

References:
  Kornblith, Norouzi, Lee, Hinton. Similarity of Neural Network Representations Revisited.
    ICML 2019 (sec. 6.1, layer identification across initialisations).
  Klabunde, Wald, Schumacher, Strohmaier, Lemmerich. ReSi: A Comprehensive Benchmark for
    Representational Similarity Measures. ICLR 2025 (monotonicity test).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from repsim_jax.analysis import measure_quality as quality
from repsim_jax.data.shapes_world import render_batch
from repsim_jax.measures import measure as get_measure
from repsim_jax.measures import measures as registered_measures
from repsim_jax.measures import similarity_matrix
from repsim_jax.pipelines.demo.inputs import extract_held_out
from repsim_jax.pipelines.demo.neighbour_sharing import colour_sharing
from repsim_jax.pipelines.demo.training import train_model
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.measure_ranking import plot_measure_ranking

TESTS = ("identification", "monotonicity", "factor")
COLUMNS = ["rank", "measure", "kind", "layer identification", "control",
           "monotonicity ρ", "control", "violation rate", "colour factor hits (chance)",
           "control", "ignores image order", "ms / layer pair", "gain over control"]


def seeded_name(model: str, seed: int) -> str:
  return f"{model}_s{seed}"


def _mean_finite(values) -> float:
  finite = [v for v in values if np.isfinite(v)]
  return float(np.mean(finite)) if finite else float("nan")


class Layout:
  """The layer lists a measure is run on, and where each model's layers sit in them.

  `blocks()`: ("seed", first seed's layers of every model, the same) for monotonicity and the
  colour factor, then per model (model, its first-seed layers, its layers of every other seed)
  for layer identification: only the matrices the tests read.
  """

  def __init__(self, layers: dict[tuple[str, int], list], models: list[str], seeds: list[int]):
    self.layers, self.models, self.seeds = layers, models, seeds
    self.depth = {m: len(layers[(m, seeds[0])]) for m in models}
    starts = np.cumsum([0] + [self.depth[m] for m in models])
    self.rows = {m: slice(int(a), int(b)) for m, a, b in zip(models, starts, starts[1:])}

  def blocks(self, layers=None) -> list[tuple[str, list, list]]:
    layers = self.layers if layers is None else layers
    first = [x for m in self.models for x in layers[(m, self.seeds[0])]]
    out = [("seed", first, first)]
    for m in self.models:
      out.append((m, layers[(m, self.seeds[0])],
                  [x for s in self.seeds[1:] for x in layers[(m, s)]]))
    return out


def scores_of(matrices: dict[str, np.ndarray], layout: Layout,
              colour: dict[str, np.ndarray]) -> dict[str, float]:
  """The tests on one measure's oriented matrices (keys as `Layout.blocks`)."""
  seed, rows = matrices["seed"], layout.rows
  ident = [quality.layer_identification(
               matrices[m][:, t * layout.depth[m]:(t + 1) * layout.depth[m]])
           for m in layout.models for t in range(len(layout.seeds) - 1)]
  mono = [quality.layer_monotonicity(seed[rows[m], rows[m]]) for m in layout.models]
  factor = [quality.factor_sensitivity(seed[rows[a], rows[b]], colour[a], colour[b])
            for a in layout.models for b in layout.models if a != b]
  return {"identification": float(np.mean(ident)),
          "monotonicity": _mean_finite([c for c, _ in mono]),
          "violation_rate": _mean_finite([v for _, v in mono]),
          "factor": float(np.mean([h for h, _ in factor])),
          "factor_chance": float(np.mean([c for _, c in factor]))}


def overall(row: dict[str, Any]) -> float:
  """The ranking score: the mean gain over the shuffled-image control of identification,
  monotonicity / 2 (both in [0, 1] then) and colour factor hits. What a measure also scores with
  the images shuffled (e.g. a per-layer statistic that grows with depth) is no evidence that it
  compares representations of the same images."""
  s, c = row["scores"], row["control"]
  return _mean_finite([s["identification"] - c["identification"],
                       (s["monotonicity"] - c["monotonicity"]) / 2, s["factor"] - c["factor"]])


def permuted(layers: dict[Any, list[np.ndarray]], seed: int) -> dict[Any, list[np.ndarray]]:
  """Every layer's rows permuted independently (image correspondence destroyed)."""
  rng = np.random.default_rng(seed)
  return {key: [x[rng.permutation(len(x))] for x in xs] for key, xs in layers.items()}


def benchmark_measure(name: str, layout: Layout, control: dict, colour) -> dict[str, Any]:
  """One measure's matrices, scores and cost; an error is kept in the row. `control`: the
  layers with every layer's rows permuted (`permuted`)."""
  m = get_measure(name)
  try:
    # the control first: same shapes, so the timed matrices do not pay for compilation
    ctrl = {key: similarity_matrix(a, b, measure=name) for key, a, b in layout.blocks(control)}
    start = time.perf_counter()
    main = {key: similarity_matrix(a, b, measure=name) for key, a, b in layout.blocks()}
    seconds = time.perf_counter() - start
  except Exception as e:  # noqa: BLE001 -- one measure's failure must not end the benchmark
    return {"name": name, "kind": m.kind, "error": f"{type(e).__name__}: {e}"}
  # unchanged by shuffling the images (a per-layer statistic): compares no image pairs
  blind = all(np.allclose(main[k], ctrl[k], rtol=1e-4, atol=1e-9) for k in main)

  def scores(matrices):
    return scores_of({k: quality.oriented(v, m.higher_is_similar) for k, v in matrices.items()},
                     layout, colour)
  return {"name": name, "kind": m.kind, "matrices": main, "control_matrices": ctrl,
          "ms_per_pair": 1e3 * seconds / sum(v.size for v in main.values()),
          "order_blind": blind, "scores": scores(main), "control": scores(ctrl)}


def _fmt(x: float, pct: bool = False) -> str:
  if x is None or not np.isfinite(x):
    return "–"
  return f"{x:.0%}" if pct else f"{x:.2f}"


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
  out = []
  for rank, r in enumerate(rows, 1):
    if "error" in r:
      out.append(["–", r["name"], r["kind"], f"failed: {r['error'][:120]}"]
               + [""] * (len(COLUMNS) - 4))
      continue
    s, c = r["scores"], r["control"]
    out.append([str(rank), r["name"], r["kind"], _fmt(s["identification"], True),
                _fmt(c["identification"], True), _fmt(s["monotonicity"]),
                _fmt(c["monotonicity"]), _fmt(s["violation_rate"], True),
                f"{_fmt(s['factor'], True)} ({_fmt(s['factor_chance'], True)})",
                _fmt(c["factor"], True), "yes" if r["order_blind"] else "no",
                f"{r['ms_per_pair']:.1f}", f"{overall(r):+.2f}"])
  return out


def findings(rows: list[dict[str, Any]], key: str, cfg) -> list[dict[str, Any]]:
  """The benchmark's claims on `key` ("scores", or "control": the same claims with every
  layer's images shuffled, which must fail), over the measures that compare images (not
  `order_blind`: those score the same on the control by construction). "The top measure" is the
  first of the ranking (`rows` sorted by `overall`, the gain over the control)."""
  ok = [r for r in rows if "error" not in r and not r["order_blind"]]
  if not ok:
    return [{"statement": "measures that compare images", "measured": "none", "holds": False}]
  top = ok[0]
  mono = [r[key]["monotonicity"] for r in ok]
  mono_ok = int(np.sum(np.nan_to_num(mono, nan=-1) > cfg.min_monotonicity))
  gain = top[key]["factor"] - top[key]["factor_chance"]
  return [
      {"statement": f"the top measure ({top['name']}) identifies at least "
                    f"{cfg.min_identification:.0%} of layers across seeds",
       "measured": f"{top[key]['identification']:.0%}",
       "holds": top[key]["identification"] >= cfg.min_identification},
      {"statement": f"most measures that compare images are monotone in layer distance "
                    f"(Spearman ρ > {cfg.min_monotonicity})",
       "measured": f"{mono_ok} of {len(ok)}", "holds": mono_ok > len(ok) / 2},
      {"statement": f"the top measure finds the colour-driven layers of another model more "
                    f"often than chance, by {cfg.min_factor_gain:.0%} or more",
       "measured": f"{top[key]['factor']:.0%} vs {top[key]['factor_chance']:.0%}",
       "holds": gain >= cfg.min_factor_gain},
  ]


def run(config, workdir: str) -> dict[str, Any]:
  """Runs the measure benchmark; returns {"rows": one dict per measure (ranked), "findings",
  "control", "report", "closing_summary"}."""
  context = Run("measure_benchmark", workdir, config=config,
                title="repsim_jax measure benchmark: which similarity measure to trust")
  w, seeds = config.world, list(config.seeds)
  if len(seeds) < 2:
    raise ValueError(f"config.seeds: layer identification needs at least 2 seeds, got {seeds}")
  with context.step("world"):
    train_images, train_factors = render_batch(range(w.n_train), seed=config.seed, size=w.size)
  checkpoints = {}
  for seed in seeds:
    for entry in config.models:
      seeded = entry.copy_and_resolve_references()
      seeded.name = seeded_name(entry.name, seed)
      with context.step(f"train {seeded.name}"):
        checkpoints[seeded.name], _ = train_model(seeded, train_images, train_factors, context,
                                                  seed=seed)
  del train_images
  with context.step("extract"):
    held_out = extract_held_out(config, context.workdir, checkpoints)
  n = min(config.n_images, len(held_out.ids))
  models = [e.name for e in config.models]
  layers = {(m, s): [x[:n] for x in held_out.layers[seeded_name(m, s)]]
            for m in models for s in seeds}
  layout = Layout(layers, models, seeds)
  with context.step("colour factor"):
    colour, baseline, _ = colour_sharing({m: layers[(m, seeds[0])] for m in models},
                                      held_out.factors["background_hue"][:n], config)
  control = permuted(layers, config.seed + 7)
  pairs = sum(len(a) * len(b) for _, a, b in layout.blocks())
  names = list(config.measures) or [r["name"] for r in registered_measures()]
  rows = []
  with context.step(f"{len(names)} measures"):
    for i, name in enumerate(names):
      rows.append(benchmark_measure(name, layout, control, colour))
      context.log(f"[{i + 1}/{len(names)}] {name}: "
                  + (rows[-1].get("error") or f"{rows[-1]['ms_per_pair']:.1f} ms per pair"))
  rows.sort(key=lambda r: ("error" in r, -overall(r) if "scores" in r else 0))

  found = findings(rows, "scores", config.findings)
  control_found = findings(rows, "control", config.findings)
  context.section("What this is").note(
      f"{len(names)} registered similarity measures on {n} held-out images of the shapes world, "
      f"between the layers of {len(models)} models ({', '.join(models)}), each trained with "
      f"seeds {seeds}. Layer identification: fraction of the seed-{seeds[0]} layers whose most "
      f"similar layer of another seed (same model) is the same layer (Kornblith et al. 2019). "
      f"Monotonicity: ReSi's Spearman ρ between similarity and layer distance within a model "
      f"(+1: farther layers less similar) and its violation rate. Colour factor: of each "
      f"model's colour-driven layers (true background-hue neighbour sharing in the top half of "
      f"its range), the fraction whose most similar layer of another model is colour-driven too "
      f"(chance in brackets). Control: every layer's rows permuted independently (the same "
      f"matrix with no image correspondence). Cost: the measure's time for its {pairs} layer "
      f"pairs (preparation included) per pair, on this machine (a loaded machine is slower). "
      f"Ranked by the gain over the control: the mean of identification, ρ / 2 and colour hits "
      f"minus the same on the control. 'Ignores image order': the measure's matrix is "
      f"unchanged by the shuffle (it compares per-layer statistics, not images).")
  checks = context.section("Findings (measured on this run)")
  checks.table(["statement", "measured", "holds", "shuffled-image control", "control holds"],
               [[f["statement"], f["measured"], f["holds"], c["measured"], c["holds"]]
                for f, c in zip(found, control_found)])
  section = context.section("Measures ranked")
  ok = [r for r in rows if "error" not in r]
  section.figure("Each measure's scores (filled) and on the shuffled-image control (hollow)",
                 lambda: plot_measure_ranking(
                     [r["name"] for r in ok],
                     {"layer identification": [r["scores"]["identification"] for r in ok],
                      "monotonicity (1 + ρ) / 2": [(1 + r["scores"]["monotonicity"]) / 2
                                                   for r in ok],
                      "colour factor hits": [r["scores"]["factor"] for r in ok]},
                     {"layer identification": [r["control"]["identification"] for r in ok],
                      "monotonicity (1 + ρ) / 2": [(1 + r["control"]["monotonicity"]) / 2
                                                   for r in ok],
                      "colour factor hits": [r["control"]["factor"] for r in ok]},
                     context.figure_path("measure_ranking")))
  table = table_rows(rows)
  section.table(COLUMNS, table)
  section.note(f"Colour factor per layer (true background-hue neighbour sharing, seed "
               f"{seeds[0]}; random baseline {baseline:.1%}): " + "; ".join(
                   f"{m}: " + " ".join(f"{v:.0%}" for v in colour[m]) for m in models))
  context.save("measure_benchmark",
               {f"{kind}/{i}/{key}": v for i, r in enumerate(rows) if "matrices" in r
                for kind in ("matrices", "control_matrices") for key, v in r[kind].items()},
               extra={"measures": [r["name"] for r in rows],
                      "rows": [{k: r[k] for k in ("name", "kind", "scores", "control",
                                                  "ms_per_pair", "order_blind", "error")
                                if k in r}
                               for r in rows],
                      "findings": found, "control": control_found, "n_images": n, "seeds": seeds,
                      "colour_factor": {m: colour[m].tolist() for m in models}})
  holds = sum(f["holds"] for f in found)
  control_holds = sum(f["holds"] for f in control_found)
  text = context.finish(headline=f"{len(rows)} measures ranked; {holds}/{len(found)} findings "
                        f"hold ({control_holds} on the control); report: "
                        f"{context.report_paths['html']}")
  if context.is_writer:
    print(" | ".join(COLUMNS))
    print("\n".join(" | ".join(row) for row in table), flush=True)
  return {"rows": rows, "table": table, "findings": found, "control": control_found,
          "report": context.report_paths["html"], "closing_summary": text}
