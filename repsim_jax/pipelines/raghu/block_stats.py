"""Attention distances and skip connections (Raghu et al. 2021, Figs. 3, 4, C.5, C.6 and 7, E.1,
E.2), from one stream of forward passes per model."""
from __future__ import annotations

import numpy as np

from repsim_jax.analysis.attention import sort_heads
from repsim_jax.analysis.block_statistics import block_statistics
from repsim_jax.analysis.skip import summarize_token_stats
from repsim_jax.pipelines.raghu.models import Inputs
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.attention import (plot_attention_distance_by_depth,
                                           plot_attention_distances)
from repsim_jax.plotting.heatmap import data_range, scale_text
from repsim_jax.plotting.skip import plot_skip_ratio_heatmap, plot_skip_ratio_lines

TITLE = "block statistics"


def step(inputs: Inputs, settings, run: Run) -> dict:
  """{model: `block_statistics`} (the head subsets step reads the ViTs' attention distances)."""
  models, images = inputs.models, inputs.images
  ids, image_ids = images.sample(settings.n_images)
  section = run.section(f"Attention distances and skip connections (Figs. 3, 4, 7, C.5, E.1, "
                        f"E.2), N={len(ids)}")
  ratio_lines, cosine_lines, stats_by_model = {}, {}, {}
  for m in models:
    progress = run.progress(f"block statistics: {m.name}", len(ids))
    stats = block_statistics(m.blocks, (x for x, _ in images.batches(m, ids)),
                             patch_size=m.patch_size, num_prefix_tokens=m.num_prefix_tokens,
                             prefix_keys=settings.prefix_keys, progress=progress)
    stats_by_model[m.name] = stats
    if m.kind == "vit":
      distances = stats["attention_distance"]
      sorted_distances, order = sort_heads(distances)
      run.save(f"block_stats_{m.name}", {**stats, "attention_distance_sorted": sorted_distances,
                                         "head_order": order}, inputs=image_ids,
               extra={"first_block_mean_distance": float(distances[0].mean()),
                      "last_block_mean_distance": float(distances[-1].mean())})
      k = min(settings.lowest_highest, distances.shape[0] // 2) or 1
      shown = sorted(set(range(k)) | set(range(distances.shape[0] - k, distances.shape[0])))
      section.figure(f"{m.name}: mean attention distance (Fig. 3)",
                     lambda: plot_attention_distances(
                         distances, run.figure_path(f"fig3_attention_distance_{m.name}"),
                         layers=shown, layer_labels=[f"block {l}" for l in shown],
                         title=f"{m.name}: mean attention distance", model=m.name,
                         palette=run.colours))
      section.figure(f"{m.name}: attention distance of every head (Fig. C.5)",
                     lambda: plot_attention_distance_by_depth(
                         distances, run.figure_path(f"figC5_attention_distance_depth_{m.name}"),
                         title=f"{m.name}: attention distance of every head", model=m.name,
                         palette=run.colours))
      section.row(f"{m.name}: mean attention distance, block 0 (heads min-max) and last block",
                  "lower layers: a mix of local and global heads; higher layers: all global",
                  f"{distances[0].mean():.1f} px ({distances[0].min():.1f}-"
                  f"{distances[0].max():.1f}); {distances[-1].mean():.1f} px")
      for branch in ("attn", "mlp"):
        ratio, cosine = stats[f"{branch}_ratio"], stats[f"{branch}_cosine"]
        tokens = min(ratio.shape[1], 16)  # the first tokens, as the paper shows
        section.figure(f"{m.name} {branch}: ||z|| / ||f(z)|| (Fig. 7); "
                       f"{scale_text(*data_range(ratio[:, :tokens]))} (its range)",
                       lambda: plot_skip_ratio_heatmap(
                           ratio, run.figure_path(f"fig7_skip_ratio_{m.name}_{branch}"),
                           num_tokens=tokens,
                           num_prefix_tokens=m.num_prefix_tokens,
                           title=f"{m.name} {branch}: ||z|| / ||f(z)||"))
        section.figure(f"{m.name} {branch}: cos(z, f(z)) (Fig. E.1); "
                       f"{scale_text(*data_range(cosine[:, :tokens]))} (its range)",
                       lambda: plot_skip_ratio_heatmap(
                           cosine, run.figure_path(f"figE_skip_cosine_{m.name}_{branch}"),
                           num_tokens=tokens,
                           num_prefix_tokens=m.num_prefix_tokens,
                           title=f"{m.name} {branch}: cos(z, f(z))", label="cosine"))
        for stat, target in (("ratio", ratio_lines), ("cosine", cosine_lines)):
          summary = summarize_token_stats(stats[f"{branch}_{stat}"],
                                          num_prefix_tokens=m.num_prefix_tokens)
          for token, values in summary.items():
            if token != "all":
              target[f"{m.name} {token} ({branch})"] = values
      ratio = summarize_token_stats(stats["mlp_ratio"], num_prefix_tokens=m.num_prefix_tokens)
      section.row(f"{m.name}: skip norm ratio ||z|| / ||f(z)|| (MLP), mean over blocks: patch "
                  f"tokens" + ("; CLS" if "cls" in ratio else ""),
                  "much higher in ViT than in ResNet; the CLS token is carried by the skip "
                  "branch in the first half, the patch tokens in the second",
                  f"{ratio['tokens'].mean():.2f}"
                  + (f"; {ratio['cls'].mean():.2f}" if "cls" in ratio else ""))
    else:
      run.save(f"block_stats_{m.name}", stats, inputs=image_ids,
               extra={"mean_ratio": float(np.nanmean(stats["ratio"]))})
      ratio_lines[m.name] = stats["ratio"]
      cosine_lines[m.name] = stats["cosine"]
      section.row(f"{m.name}: skip norm ratio, mean over the identity-shortcut blocks",
                  "lower than ViT's throughout", f"{np.nanmean(stats['ratio']):.2f}")
  section.figure("skip norm ratios per block (Fig. 7, right)", lambda: plot_skip_ratio_lines(
      ratio_lines, run.figure_path("fig7_skip_ratio_lines"), log_scale=True,
      palette=run.colours))
  section.figure("skip cosines per block (Fig. E.2)", lambda: plot_skip_ratio_lines(
      cosine_lines, run.figure_path("figE2_skip_cosine_lines"), title="cos(z, f(z))",
      ylabel="cosine similarity", palette=run.colours))
  return stats_by_model
