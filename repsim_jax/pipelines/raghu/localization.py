"""Localization: CKA of each token with the input patches (Raghu et al. 2021, Figs. 9, 10,
D.1-D.3)."""
from __future__ import annotations

import numpy as np

from repsim_jax.analysis.localization import localization_maps
from repsim_jax.pipelines.raghu.models import Inputs, Model
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.heatmap import data_range, scale_text
from repsim_jax.plotting.localization import plot_localization


def default_tokens(gh: int, gw: int) -> list[tuple[int, int]]:
  """Corner, edges, centre and an interior position, as the panels of Fig. 9."""
  picks = [(0, 0), (0, gw // 2), (gh // 2, 0), (gh // 2, gw // 2), (gh // 4, (3 * gw) // 4),
           (gh - 1, gw - 1)]
  return list(dict.fromkeys(picks))


def grid_of(model: Model, shape: tuple) -> tuple[int, int]:
  """The spatial grid of a block output of `shape` (tokens: the square grid of the patches)."""
  if model.kind == "cnn":
    return shape[1], shape[2]
  side = int(round((shape[1] - model.num_prefix_tokens) ** 0.5))
  return side, side


def step(inputs: Inputs, settings, run: Run) -> dict:
  """{(model, layer): maps [tokens, grid_h, grid_w]} for `settings.layers` (default: the last two
  blocks whose feature map is at least 2 x 2) of every model."""
  models, images = inputs.models, inputs.images
  ids, image_ids = images.sample(settings.n_images)
  section = run.section(f"Localization (Figs. 9, 10, D.1-D.3), N={len(ids)}")
  out = {}
  for m in models:
    abstract = m.abstract_blocks()
    layers = list(settings.layers or [])
    if not layers:  # the last two blocks whose feature map is at least 2 x 2
      layers = [n for n in m.main_blocks if min(grid_of(m, abstract[n].shape)) >= 2][-2:]
    layers = [n for n in layers if n in abstract]
    feats: dict[str, list[np.ndarray]] = {n: [] for n in layers}
    inputs_all = []
    for batch, _ in images.batches(m, ids, progress=run.progress(f"localization: {m.name}",
                                                                 len(ids))):
      blocks = m.blocks(batch)
      inputs_all.append(batch)
      for n in layers:
        feats[n].append(np.asarray(blocks[n]))
    x = np.concatenate(inputs_all)
    for n in layers:
      f = np.concatenate(feats[n])
      gh, gw = grid_of(m, f.shape)
      everything = [(r, c) for r in range(gh) for c in range(gw)]
      maps = localization_maps(f, x, num_prefix_tokens=m.num_prefix_tokens, tokens=everything,
                               debiased=settings.debiased, batch_size=settings.get("batch_size"))
      own = np.array([maps[k].reshape(-1).argmax() == k for k in range(len(everything))])
      out[(m.name, n)] = maps
      name = f"localization_{m.name}_{n.replace('.', '_')}"  # a dot would read as an extension
      run.save(name, {"maps": maps, "tokens": np.array(everything)}, inputs=image_ids,
               extra={"own_patch_is_max_fraction": float(own.mean())})
      shown = [tuple(t) for t in (settings.tokens or default_tokens(gh, gw))]
      shown_maps = maps[[everything.index(t) for t in shown]]
      section.figure(f"{m.name} {n}: CKA of a token with input patches (Fig. 9); "
                     f"{scale_text(*data_range(shown_maps))}, one scale for all maps",
                     lambda: plot_localization(
                         shown_maps,
                         run.figure_path(f"fig9_{name}"), tokens=shown,
                         suptitle=f"{m.name} {n}: CKA of a token with input patches"))
      section.row(f"{m.name} {n}: tokens whose most similar input patch is their own "
                  f"({len(everything)} tokens)",
                  "ViT (CLS token): interior tokens well localized; ResNet and GAP ViT weaker",
                  f"{100 * own.mean():.0f}%")
  return out
