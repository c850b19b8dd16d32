"""Effective receptive fields after and before the residual add (Raghu et al. 2021, Figs. 6,
C.1-C.4)."""
from __future__ import annotations

import numpy as np
from flax import nnx

from repsim_jax.analysis.receptive_field import effective_receptive_field
from repsim_jax.pipelines.raghu.models import Inputs
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.receptive_field import plot_receptive_fields

TITLE = "receptive fields"


def erf_radius(erf: np.ndarray) -> float:
  """ERF-weighted mean pixel distance from the map's centre (a one-number spread)."""
  h, w = erf.shape
  yy, xx = np.mgrid[:h, :w]
  dist = np.hypot(yy - h // 2, xx - w // 2)
  return float((erf * dist).sum() / max(erf.sum(), 1e-30))


def step(inputs: Inputs, settings, run: Run) -> dict:
  """{model: (after [K, H, W], before [K, H, W])}: the ERF of the centre location of every block
  (or `settings.blocks`), after the residual add and of the branch before it."""
  models, images = inputs.models, inputs.images
  ids, image_ids = images.sample(settings.n_images)
  section = run.section(f"Effective receptive fields (Figs. 6, C.1-C.4), N={len(ids)}")
  out = {}
  for m in models:
    x = np.concatenate([batch for batch, _ in images.batches(m, ids)])
    chosen = [b for b in m.main_blocks if not settings.get("blocks") or b in settings.blocks]
    if m.kind == "vit":
      after = [n for b in chosen for n in (f"{b}.mid", b)]
      before = [n for b in chosen for n in (f"{b}.attn", f"{b}.mlp")]
    else:
      after = chosen
      before = [f"{b}.branch" for b in chosen]
    if not chosen:
      run.log("erf: %s has none of the blocks %s; skipped", m.name, settings.blocks)
      continue
    graphdef, state = nnx.split(m.module)
    wanted = after + before

    def features(params, images, graphdef=graphdef, wanted=tuple(wanted)):
      blocks = nnx.merge(graphdef, params)(images, sublayers=True).blocks
      return {n: blocks[n] for n in wanted}

    run.log("erf: %s, %d maps on %d images", m.name, len(wanted), len(x))
    maps = effective_receptive_field(features, x, num_images=None,
                                     num_prefix_tokens=m.num_prefix_tokens,
                                     channels=settings.channels, params=state)
    after_maps = np.stack([np.asarray(maps[n]) for n in after])
    before_maps = np.stack([np.asarray(maps[n]) for n in before])
    radius_after = np.array([erf_radius(e) for e in after_maps])
    radius_before = np.array([erf_radius(e) for e in before_maps])
    out[m.name] = (after_maps, before_maps)
    run.save(f"erf_{m.name}", {"after": after_maps, "before": before_maps,
                               "after_layers": np.array(after), "before_layers": np.array(before),
                               "radius_after": radius_after, "radius_before": radius_before},
             inputs=image_ids, extra={"radius_after": radius_after.tolist()})
    section.figure(f"{m.name}: ERF after the residual add (Figs. 6, C.1-C.3); each map on its "
                   "own colour scale (a map's shape, not its magnitude)",
                   lambda: plot_receptive_fields(
                       after_maps, run.figure_path(f"fig6_erf_{m.name}_after_residual"),
                       titles=after, suptitle=f"{m.name}: ERF after the residual add"))
    section.figure(f"{m.name}: ERF before the residual add (Fig. C.4); each map on its own "
                   "colour scale",
                   lambda: plot_receptive_fields(
                       before_maps, run.figure_path(f"figC4_erf_{m.name}_before_residual"),
                       titles=before, suptitle=f"{m.name}: ERF before the residual add"))
    section.row(f"{m.name}: ERF radius (ERF-weighted mean distance from the centre, px), first "
                "-> last block, after / before the add",
                "ViT: larger than ResNet in the lower layers, global midway; ResNet: local, "
                "growing gradually",
                f"{radius_after[0]:.1f} -> {radius_after[-1]:.1f} / {radius_before[0]:.1f} -> "
                f"{radius_before[-1]:.1f}")
  return out
