"""The embedded default: the whole pipeline on the shapes-and-colours world, offline, in minutes.

`run(config, workdir)` (configs/demo.py) reads top to bottom:

  1. the world (`repsim_jax.data.shapes_world`): a training set and a held-out set with a
     different seed, every image's shape, colours, texture, clutter, position known;
  2. three small models trained with optax (`training.py`) from our own NNX ports: a ViT and a
     ConvNeXt classifying shape, and an ImageGPT-style next-pixel model on k-means colour
     clusters (as iGPT); each saved as a native checkpoint under <workdir>/checkpoints/<name> and
     reused when the training config matches;
  3. extraction of every block on the held-out images into ActivationStores, through the same
     extraction as the paper experiments (`inputs.py`, `repsim_jax.extraction`);
  4. the steps of `config.analysis.steps`, each a module of this package with
     `step(held_out, settings, run)` (settings: `config.analysis`), using the library functions
     and figure code of the paper experiments: shape and colour probes per layer, neighbour
     category sharing for the world's *true* colour / texture / clutter factors, II between all
     layers of all models (+ smoothness), CKA between all layers, nearest-neighbour grids, and
     the shuffled-label control;
  5. findings (`findings.py`): the questions the world was built for, each measured, checked and
     repeated on the control, which must not pass; <workdir>/report.html shows all of it.

Everything is seeded: the same config gives the same numbers on the same machine.

References:
  Mahaut & Baroni 2026, "Similarity of Processing Steps in Vision Model Representations".
  Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited" (CKA).
"""
from __future__ import annotations

from typing import Any

from repsim_jax.data.shapes_world import HUES, SHAPES, render_batch
from repsim_jax.pipelines import checks
from repsim_jax.pipelines.demo.findings import findings
from repsim_jax.pipelines.demo.imbalance import adjacency_interval
from repsim_jax.pipelines.demo.inputs import extract_held_out
from repsim_jax.pipelines.demo.training import train_model
from repsim_jax.pipelines.run import Run, step_names

# the steps whose results the findings read (`findings.findings` and the control's checks)
FINDINGS_NEED = ("probes", "neighbour_sharing", "imbalance", "control")


def run(config, workdir: str) -> dict[str, Any]:
  """Runs the demo end to end; returns {"report": path, "findings": [...], "control": [...],
  plus every step's results}."""
  cfg = config.analysis
  checks.steps(__name__, cfg.steps)  # before minutes of training, not after
  missing = [s for s in FINDINGS_NEED if s not in step_names(cfg.steps)]
  if missing:  # before minutes of training, not after
    raise ValueError(f"config.analysis.steps lacks {missing}, which the findings read; steps: "
                     f"{tuple(cfg.steps)}")
  context = Run("demo", workdir, config=config,
                title="repsim_jax demo: the shapes-and-colours world")
  w = config.world
  context.log(f"world: {w.n_train} training images (seed {config.seed}), {w.n_eval} held-out "
              f"images (seed {config.seed + 1}), {w.size}x{w.size}")

  with context.step("world"):
    train_images, train_factors = render_batch(range(w.n_train), seed=config.seed, size=w.size)
  checkpoints, training = {}, {}
  for entry in config.models:
    with context.step(f"train {entry.name}"):
      checkpoints[entry.name], training[entry.name] = train_model(entry, train_images,
                                                                  train_factors, context)
  del train_images
  with context.step("extract"):
    held_out = extract_held_out(config, context.workdir, checkpoints)

  context.section("What this is").note(
      f"{w.n_eval} held-out images of a generated world ({len(SHAPES)} shapes: "
      f"{', '.join(SHAPES)}; {len(HUES)} object / background hues, half warm; random "
      f"texture noise, clutter lines, position, size). Models trained here in "
      f"{sum(t['result']['seconds'] for t in training.values()):.0f} s: "
      + "; ".join(f"{m} ({t['objective']}, {t['result']['parameters'] / 1e3:.0f}k params, "
                  f"final train accuracy {t['result']['final_train_accuracy']:.1%})"
                  for m, t in training.items()) + ". 'Layer 0' is the embedding / stem output.")
  findings_section = context.section("Findings (measured on this run)")
  results: dict[str, Any] = {}
  for out in context.run_steps(__name__, cfg.steps, held_out, settings=lambda name: cfg).values():
    results.update(out)

  results["findings"] = findings(
      results, held_out.classifiers, held_out.next_pixel, cfg, n_images=len(held_out.ids),
      adjacency_interval=adjacency_interval(held_out.layers, cfg, seed=config.seed))
  findings_section.table(
      ["statement", "measured", "holds", "shuffled-label control", "control holds"],
      [[f["statement"], f["measured"], f["holds"], c["measured"], c["holds"]]
       for f, c in zip(results["findings"], results["control"])])
  findings_section.note(
      "A finding holds only when its whole 95 % interval clears the margin: the probe gain's "
      "(binomial, on the probes' test images), the colour-sharing change's (over images), and "
      "that of adjacent - ratio x distant II (an image bootstrap). Control: probes and colour "
      "sharing with the labels shuffled over images; II with every layer's rows permuted "
      "independently. A check that still held on the control would measure nothing.")
  holds = sum(f["holds"] for f in results["findings"])
  control_holds = sum(f["holds"] for f in results["control"])
  context.save("findings", {}, extra={"findings": results["findings"],
                                      "control": results["control"]})
  path = context.report_paths["html"]
  text = context.finish(headline=f"{holds}/{len(results['findings'])} findings hold "
                        f"({control_holds} on the shuffled-label control); report: {path}")
  if context.is_writer:
    print("\n".join(f"  [{'yes' if f['holds'] else 'NO '}] {f['statement']}: {f['measured']}"
                    for f in results["findings"]), flush=True)
  results.update(report=path, layer_names=held_out.layer_names, training=training,
                 closing_summary=text)
  return results
