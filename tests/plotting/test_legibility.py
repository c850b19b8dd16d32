"""Figures are legible at the report's page width: report.html shows a PNG at its own size up to
1100 px wide and shrinks a wider one, text included. At paper-sized inputs (12-48 layers, 12
heads, 24 ERF maps, 4 models), every text of every report figure must be at least MIN_PX pixels
high as the page shows it."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text
from PIL import Image

from repsim_jax.plotting import attention, category_sharing, heatmap, imbalance, localization
from repsim_jax.plotting import neighbourhoods, probes, receptive_field, semantic, skip, subspace

PAGE_PX = 1100  # the max-width of report.html's body (pipelines.report)
MIN_PX = 11  # about 8 pt on a screen: smaller text is hard to read


def _shown_text_px(fig: Figure, png: str) -> dict[str, float]:
  """{text: its height in px on the page} for every visible text of `fig` saved as `png`."""
  with Image.open(png) as image:
    width, dpi = image.size[0], image.info["dpi"][0]
  scale = min(1.0, PAGE_PX / width)
  return {t.get_text(): t.get_fontsize() * dpi / 72 * scale for t in fig.findobj(Text)
          if t.get_visible() and t.get_text().strip()}


@pytest.fixture
def drawn(monkeypatch):
  """[(Figure, png path)] of every figure saved while the test runs."""
  figures = []
  save = Figure.savefig

  def recording(self, path, *args, **kwargs):
    if str(path).endswith(".png"):
      figures.append((self, str(path)))
    return save(self, path, *args, **kwargs)

  monkeypatch.setattr(Figure, "savefig", recording)
  return figures


def _assert_legible(drawn):
  assert drawn
  for fig, png in drawn:
    sizes = _shown_text_px(fig, png)
    small = {t: round(px, 1) for t, px in sizes.items() if px < MIN_PX}
    assert not small, f"{png}: text under {MIN_PX} px at page width: {small}"


def test_raghu_figures_are_legible_at_page_width(tmp_path, drawn):
  rng = np.random.default_rng(0)
  blocks = [f"block_{i:02d}" for i in range(12)]
  sublayers = [f"{b}.{s}" for b in blocks for s in ("attn", "mid", "mlp", "out")]
  resnet = [f"stage_{s}.block_{b}" for s in range(4) for b in range(4)]
  path = lambda name: str(tmp_path / name)
  heatmap.layer_heatmap(rng.random((12, 12)), row_labels=blocks, col_labels=blocks,
                        title="vit_b16: CKA between blocks", path=path("fig1"), cbar_label="CKA")
  heatmap.layer_heatmap(rng.random((48, 48)), row_labels=sublayers, col_labels=sublayers,
                        title="vit_b16: CKA, blocks and sublayers", path=path("figB1"))
  heatmap.layer_heatmap(rng.random((12, 16)), row_labels=blocks, col_labels=resnet,
                        title="CKA vit_b16 vs resnet50", path=path("fig2"))
  distances = rng.uniform(0, 120, (12, 12))
  attention.plot_attention_distances(distances, path("fig3"), layers=[0, 1, 10, 11],
                                     layer_labels=["block 0", "block 1", "block 10", "block 11"],
                                     model="vit_b16")
  attention.plot_attention_distance_by_depth(distances, path("figC5"), model="vit_b16")
  attention.plot_head_subset_cka(np.linspace(10, 100, 10), rng.random((10, 3)), path("fig5"),
                                 layer_labels=[f"resnet50 {n}" for n in resnet[:3]],
                                 model="resnet50")
  receptive_field.plot_receptive_fields(rng.random((24, 32, 32)), path("fig6"),
                                        titles=[f"{b}{s}" for b in blocks for s in (".mid", "")],
                                        suptitle="vit_b16: ERF after the residual add")
  skip.plot_skip_ratio_heatmap(rng.random((12, 197)), path("fig7"), num_tokens=16)
  lines = {f"vit_b16 {t} ({b})": rng.random(12) for t in ("CLS", "tokens") for b in ("attn", "mlp")}
  skip.plot_skip_ratio_lines({**lines, "resnet50": rng.random(16)}, path("fig7_lines"),
                             log_scale=True)
  localization.plot_localization(rng.random((6, 14, 14)), path("fig9"),
                                 tokens=[(0, 0), (0, 7), (7, 0), (7, 7), (3, 10), (13, 13)])
  probes.plot_few_shot({"per-token probes (mean over tokens)": {
      "vit_b16 tokens": rng.random(12), "resnet50 tokens": rng.random(16)},
      "aggregated tokens": {"vit_b16 CLS token": rng.random(12),
                            "vit_b16 mean of all tokens": rng.random(12),
                            "vit_b16 mean without CLS": rng.random(12),
                            "resnet50 GAP": rng.random(16)}}, path("fig11"), shots=10)
  _assert_legible(drawn)


def test_mahaut_baroni_figures_are_legible_at_page_width(tmp_path, drawn):
  rng = np.random.default_rng(1)
  models = {"igpt_l": 48, "dinov2_g": 40, "convnext_xl": 28, "vit_l": 24}
  names = {m: [f"block_{i}" for i in range(n)] for m, n in models.items()}
  matrices = {(a, b): rng.random((models[a], models[b])) for a in models for b in models}
  path = lambda name: str(tmp_path / name)
  imbalance.plot_imbalance_grid(matrices, path("fig1"), models=list(models),
                                representative={m: [1, n // 2, n - 1] for m, n in models.items()},
                                layer_names=names)
  imbalance.plot_imbalance_heatmaps({k: matrices[k] for k in [("igpt_l", "dinov2_g")]},
                                    str(tmp_path / "fig10"), layer_names=names)
  curves = {m: rng.random(n) for m, n in models.items()}
  sizes = [100, 1000, 10000, 100000]
  imbalance.plot_sample_size_std(sizes, {m: rng.random(4) for m in models}, path("fig11"))
  imbalance.plot_smoothness_vs_n(sizes, {m: rng.random(4) for m in models},
                                 {m: rng.random(4) / 10 for m in models}, path("fig12"))
  category_sharing.plot_neighbour_sharing(
      {p: (curves, 0.1) for p in ("shape", "colour", "texture", "size", "position")},
      path("fig14"))
  semantic.plot_semantic_coherence(curves, {m: v / 10 for m, v in curves.items()},
                                   path("fig4"))
  probes.plot_ood_probes({d: curves for d in ("cifar100", "dtd", "flowers", "pets")},
                         path("fig13"))
  probes.plot_roughness({m: rng.random(100) for m in models}, path("fig5"),
                        examples=[{"model": "vit_l", "label": "tabby cat",
                                   "accuracy": rng.random(24)}])
  n_models = 7
  pairs = np.array([(i, j) for i in range(n_models) for j in range(i + 1, n_models)])
  result = {"models": [f"model_{i}" for i in range(n_models)], "pairs": pairs, "k": 10}
  for key in ("procrustes", "cka"):
    result[key] = rng.random((n_models, n_models))
    result[f"{key}_pairs"] = {"p_value": rng.random(len(pairs))}
    result[f"{key}_median_null"] = rng.random(200)
    result[f"{key}_median"] = 0.5
    result[f"{key}_median_test"] = {"p_value": 0.01}
  subspace.plot_subspace_similarity(result, path("subspace"))
  images = rng.random((20, 16, 16, 3))
  neighbourhoods.plot_neighbourhoods(images, 0, rng.integers(0, 20, (4, 3, 9)), path("grid"),
                                     model_names=list(models))
  _assert_legible(drawn)
