"""Closed-form few-shot linear probes per block and token mode (Raghu et al. 2021, Figs. 11, 13,
D.4, F.1-F.3)."""
from __future__ import annotations

import numpy as np

from repsim_jax.analysis import ridge_probes
from repsim_jax.pipelines.raghu.models import Inputs
from repsim_jax.pipelines.run import Run
from repsim_jax.plotting.probes import plot_few_shot

# the token modes in the report's words
_MODES = {"tokens": "per token", "cls": "CLS token", "mean": "mean of all tokens",
          "mean_patch": "mean without CLS"}

TITLE = "few-shot probes"


def step(inputs: Inputs, settings, run: Run) -> dict:
  """{model: {token mode: accuracy per block}}: `settings.shots` images per class train a
  closed-form probe per block (per token too, mode "tokens"), up to `n_test` others test it."""
  models, images = inputs.models, inputs.images
  ids, image_ids = images.sample(settings.n_images)
  section = run.section(f"Few-shot linear probes (Figs. 11, 13, D.4, F.1-F.3), N={len(ids)}")
  per_token, aggregated, out = {}, {}, {}
  for m in models:
    abstract = m.abstract_blocks()
    names = m.main_blocks
    if m.kind == "cnn":  # patching step of App. A, to the last stage's grid and width
      last = abstract[names[-1]].shape
      to_tokens = lambda a: ridge_probes.resnet_block_tokens(a, out_hw=(last[1], last[2]),
                                                             target_channels=last[3])
    else:
      to_tokens = lambda a: a
    tokens: dict[str, list[np.ndarray]] = {n: [] for n in names}
    batch_labels = []
    for batch, y in images.batches(m, ids, label_key=settings.label_key,
                                   progress=run.progress(f"few-shot: {m.name}", len(ids))):
      blocks = m.blocks(batch)
      batch_labels.append(y)
      for n in names:
        tokens[n].append(np.asarray(to_tokens(blocks[n])))
    labels = np.concatenate(batch_labels).astype(np.int64)
    if labels.min() < 0:
      raise ValueError(f"few_shot: images without a non-negative integer label "
                       f"{settings.label_key!r} in {images.source.describe()}; set "
                       f"config.analysis.few_shot.label_key")
    train = ridge_probes.few_shot_indices(labels, shots=settings.shots, seed=settings.seed)
    test = np.setdiff1d(np.arange(len(labels)), train)[:settings.n_test]
    layers = [np.concatenate(tokens[n]) for n in names]
    # Blocks of different widths (ResNet stages) are zero-padded to one width so every layer
    # shares one compiled probe (compiles dominate small runs). The same probe: a zero column
    # whitens to exactly 0 ((0 - 0) / (0 + eps)) and gets zero ridge weight. Only rounding can
    # differ (a wider layer may switch `ridge_probe_weights` from the primal to the dual solve),
    # which can flip a near-tied prediction (seen: 1 of 44 test images on random features).
    width = max(a.shape[-1] for a in layers)
    layers = [np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, width - a.shape[-1])]) for a in layers]
    num_classes = int(labels.max()) + 1
    modes = ("tokens", "cls", "mean", "mean_patch") if m.kind == "vit" else ("tokens", "mean")
    accuracy = {}
    for mode in modes:
      run.log("few-shot: %s, mode %s, %d layers", m.name, mode, len(layers))
      if mode == "tokens":
        train_x, test_x, probe_mode = [a[train] for a in layers], [a[test] for a in layers], mode
      else:  # aggregated on the host: every aggregation then shares one compiled probe ("cls"
        # of a single-token input is the aggregate itself)
        train_x = [np.asarray(ridge_probes.token_representation(a[train], mode=mode))
                   for a in layers]
        test_x = [np.asarray(ridge_probes.token_representation(a[test], mode=mode))
                  for a in layers]
        probe_mode = "cls"
      accuracy[mode] = ridge_probes.few_shot_accuracy(train_x, labels[train], test_x,
                                                      labels[test], mode=probe_mode,
                                                      num_classes=num_classes)
    out[m.name] = accuracy
    token_mean = accuracy["tokens"][:, m.num_prefix_tokens:].mean(-1)  # Fig. 11: CLS excluded
    best = {k: float(np.max(token_mean if k == "tokens" else v)) for k, v in accuracy.items()}
    run.save(f"few_shot_{m.name}", {**{f"accuracy_{k}": v for k, v in accuracy.items()},
                                    "per_token_mean": token_mean, "layers": np.array(names),
                                    "train": train, "test": test}, inputs=image_ids,
             extra={"shots": settings.shots, "num_classes": num_classes, "best": best})
    per_token[f"{m.name} tokens"] = token_mean
    if m.kind == "vit":
      aggregated[f"{m.name} CLS token"] = accuracy["cls"]
      aggregated[f"{m.name} mean of all tokens"] = accuracy["mean"]
      aggregated[f"{m.name} mean without CLS"] = accuracy["mean_patch"]
    else:
      aggregated[f"{m.name} GAP"] = accuracy["mean"]
    section.row(f"{m.name}: best layer accuracy per token mode ({settings.shots}-shot, "
                f"{num_classes} classes, chance {100 / num_classes:.0f}%, {len(test)} test "
                "images)",
                "per-token probes: ResNet and GAP ViT tokens do well at higher layers, the "
                "patch tokens of a ViT trained with a CLS token poorly",
                ", ".join(f"{_MODES[k]} {100 * v:.0f}%" for k, v in best.items()))
  section.figure("Few-shot linear probes (Fig. 11)", lambda: plot_few_shot(
      {"per-token probes (mean over tokens)": per_token, "aggregated tokens": aggregated},
      run.figure_path("fig11_few_shot"), shots=settings.shots,
      title="Few-shot linear probes (Fig. 11)", palette=run.colours))
  # the ViTs' CLS token against the CNNs' GAP ("mean without CLS" is no CLS curve)
  section.figure("Few-shot linear probes, ViT vs CNN (Fig. 13)", lambda: plot_few_shot(
      {"ViT vs CNN": {k: v for k, v in aggregated.items()
                      if k.endswith(" CLS token") or k.endswith(" GAP")}},
      run.figure_path("fig13_few_shot"), shots=settings.shots,
      title="Few-shot linear probes (Fig. 13)", palette=run.colours))
  return out
