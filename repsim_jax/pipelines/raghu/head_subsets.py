"""Head subsets of the first block, local to global, against the CNN's lower layers (Raghu et al.
2021, Fig. 5). Reads the attention distances of the `block_stats` step, which must run first."""
from __future__ import annotations

import numpy as np

from repsim_jax.analysis import attention
from repsim_jax.analysis.tokens import flatten_representation
from repsim_jax.metrics.kernel_alignment import cka_matrix
from repsim_jax.pipelines.raghu.models import Inputs
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.attention import plot_head_subset_cka

TITLE = "head subsets"
READS = ("block_stats",)  # its attention distances (step records: recomputed with it)


def step(inputs: Inputs, settings, run: Run) -> dict:
  """{vit name: CKA [subsets, CNN layers]} for every ViT (or `settings.vit`) against the first
  CNN (or `settings.cnn`); skipped without both."""
  models, images = inputs.models, inputs.images
  cnns = [m for m in models if m.kind == "cnn" and (settings.cnn in (None, m.name))]
  vits = [m for m in models if m.kind == "vit" and (settings.vit in (None, m.name))]
  if not cnns or not vits:
    run.log("head subsets: need a ViT and a CNN; skipped")
    return {}
  if "block_stats" not in run.results:
    raise ValueError("analysis.steps: head_subsets reads the attention distances of "
                     "block_stats; list block_stats before head_subsets")
  stats = run.results["block_stats"]
  cnn = cnns[0]
  ids, image_ids = images.sample(settings.n_images)
  cnn_names = cnn.main_blocks[:settings.cnn_layers]
  cnn_layers: dict[str, list[np.ndarray]] = {n: [] for n in cnn_names}
  for inputs_, _ in images.batches(cnn, ids,
                                   progress=run.progress(f"head subsets: {cnn.name}", len(ids))):
    blocks = cnn.blocks(inputs_)
    for n in cnn_names:
      cnn_layers[n].append(np.asarray(flatten_representation(blocks[n],
                                                             pooling=settings.pooling)))
  cnn_reps = [np.concatenate(cnn_layers[n]) for n in cnn_names]
  opts = dict(hsic="song" if settings.debiased else "gretton",
              batch_size=settings.get("batch_size"))
  section = run.section(f"Head subsets vs CNN (Fig. 5), N={len(ids)}")
  out = {}
  for m in vits:
    distances = stats[m.name]["attention_distance"][0]  # first block, over block_stats' images
    num_heads = distances.shape[0]
    size = settings.subset_size or max(1, num_heads // 4)
    indices, mean_distance = attention.head_subsets(distances, subset_size=size,
                                                    stride=settings.stride)
    first = m.main_blocks[0]
    block = m.module.layers[int(first.split("_")[1])]
    subsets: list[list[np.ndarray]] = [[] for _ in indices]
    for inputs_, _ in images.batches(m, ids,
                                     progress=run.progress(f"head subsets: {m.name}", len(ids))):
      blocks = m.blocks(inputs_)
      heads = attention.attention_head_outputs(
          blocks[f"{first}.attn_probs"], attention.attention_values(block, blocks["embeddings"]))
      for s, rep in enumerate(attention.head_subset_representations(
          heads, indices, num_prefix_tokens=m.num_prefix_tokens, pooling=settings.pooling)):
        subsets[s].append(np.asarray(rep))
    similarity = cka_matrix([np.concatenate(s) for s in subsets], cnn_reps, **opts)
    out[m.name] = similarity
    name = f"head_subsets_{m.name}_vs_{cnn.name}"
    run.save(name, {"mean_distance": mean_distance, "cka": similarity, "indices": indices,
                    "cnn_layers": np.array(cnn_names)}, inputs=image_ids,
             extra={"subset_size": size, "most_local_cka": similarity[0].tolist(),
                    "most_global_cka": similarity[-1].tolist()})
    section.figure(f"{m.name} block 0 head subsets vs {cnn.name} (Fig. 5)",
                   lambda: plot_head_subset_cka(
                       mean_distance, similarity, run.figure_path(f"fig5_{name}"),
                       layer_labels=[f"{cnn.name} {n}" for n in cnn_names],
                       title=f"{m.name} block 0 head subsets vs {cnn.name}", model=cnn.name,
                       palette=run.colours))
    section.row(f"{m.name} vs {cnn.name} {cnn_names[0]}: CKA of the most local and of the most "
                f"global head subset ({size} heads each)",
                "falls monotonically as the subset's mean attention distance grows",
                f"{similarity[0, 0]:.3f}; {similarity[-1, 0]:.3f}")
  return out
