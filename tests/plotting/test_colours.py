"""One colour per model across the figures of a report (`plotting.colours`): the drawn series of a
model have its palette colour in every figure, whatever order a figure lists the models in."""
from __future__ import annotations

import ml_collections
import numpy as np
import pytest
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure

from repsim_jax.pipelines.run import Run
from repsim_jax.plotting import attention, category_sharing, colours, imbalance, probes, semantic
from repsim_jax.plotting import skip


def test_palette_names_series_after_their_model():
  palette = colours.Palette(["vit", "vit_l", "resnet"])
  assert palette.model_of("vit CLS token (mlp)") == "vit"
  assert palette.model_of("vit_l tokens") == "vit_l"  # the longest name, not "vit"
  assert palette.model_of("vit: a class") == "vit"
  assert palette.model_of("vitamin") is None  # a prefix that is not followed by a separator
  assert len({palette.colour(m) for m in palette.models}) == 3
  with pytest.raises(KeyError, match="none of the models"):
    palette.colour("convnext")
  wider = palette.covering(["resnet GAP", "convnext"])
  assert wider.models == ("vit", "vit_l", "resnet", "convnext")  # appended after the models
  assert wider.colour("vit") == palette.colour("vit")
  assert wider.colour("convnext") not in {palette.colour(m) for m in palette.models}
  assert all(c not in colours.QUALITATIVE for c in colours.NEUTRAL)


def test_variants_share_the_colour_and_differ_by_line():
  palette = colours.Palette(["vit", "resnet"])
  styles = palette.styles(["vit tokens", "resnet tokens", "vit CLS token", "vit mean"])
  vit = [styles[s] for s in ("vit tokens", "vit CLS token", "vit mean")]
  assert {s["color"] for s in vit} == {palette.colour("vit")}
  assert len({(str(s["linestyle"]), s["marker"]) for s in vit}) == 3
  assert styles["resnet tokens"]["color"] == palette.colour("resnet")


def test_shades_run_light_to_dark_in_the_model_hue():
  palette = colours.Palette(["vit", "resnet"])
  shades = palette.shades("resnet", 4)
  lightness = [sum(to_rgb(c)) for c in shades]
  assert all(a > b for a, b in zip(lightness, lightness[1:]))
  base = np.array(to_rgb(palette.colour("resnet")))
  for c in shades:  # a mix with white or black keeps the channels' order (the hue)
    assert list(np.argsort(to_rgb(c))) == list(np.argsort(base))
  assert palette.shades("vit", 1) == [palette.colour("vit")]


def test_run_palette_follows_the_config_models(tmp_path):
  config = ml_collections.ConfigDict({"models": [{"name": "igpt"}, {"name": "vit"}]})
  assert Run("t", str(tmp_path), config=config).colours.models == ("igpt", "vit")
  assert Run("t", str(tmp_path / "b"), config=ml_collections.ConfigDict()).colours.models == ()


@pytest.fixture
def drawn(monkeypatch):
  """Every Figure saved while the test runs (savefig still writes the files)."""
  figures = []
  save = Figure.savefig

  def recording(self, *args, **kwargs):
    if not figures or figures[-1] is not self:
      figures.append(self)
    return save(self, *args, **kwargs)

  monkeypatch.setattr(Figure, "savefig", recording)
  return figures


def _line_colours(fig: Figure) -> dict[str, str]:
  """{legend label: colour} of the lines (and labelled scatters) of every axes of `fig`."""
  out = {}
  for ax in fig.axes:
    for line in ax.get_lines():
      if not line.get_label().startswith("_"):
        out[line.get_label()] = to_hex(line.get_color())
    for points in ax.collections:
      if not points.get_label().startswith("_") and len(points.get_facecolors()):
        out[points.get_label()] = to_hex(points.get_facecolors()[0], keep_alpha=False)
  return out


def test_a_model_has_one_colour_in_every_figure_of_a_report(tmp_path, drawn):
  """The Mahaut & Baroni / demo figures, each given the models in another order."""
  palette = colours.Palette(["vit", "dinov2", "igpt"])
  rng = np.random.default_rng(0)
  curves = {m: rng.random(5) for m in ("igpt", "vit", "dinov2")}
  reordered = {m: curves[m] for m in ("dinov2", "igpt", "vit")}
  sizes = [100, 1000, 10000]
  probes.plot_ood_probes({"a": curves, "b": reordered}, str(tmp_path / "ood"), palette=palette)
  semantic.plot_semantic_coherence(reordered, reordered, str(tmp_path / "sem"), palette=palette)
  category_sharing.plot_neighbour_sharing({"all": (curves, 0.1), "hue": (reordered, 0.2)},
                                          str(tmp_path / "share"), palette=palette)
  imbalance.plot_sample_size_std(sizes, {m: rng.random(3) for m in ("vit", "igpt")},
                                 str(tmp_path / "n"), palette=palette)
  imbalance.plot_smoothness_vs_n(sizes, {"igpt": rng.random(3)}, {"igpt": rng.random(3)},
                                 str(tmp_path / "smooth"), palette=palette)
  imbalance.plot_adjacent_layers({"dinov2": rng.random(4)}, str(tmp_path / "adj"),
                                 palette=palette)
  probes.plot_roughness({"igpt": rng.random(6), "dinov2": rng.random(6)},
                        str(tmp_path / "rough"), palette=palette)
  seen: dict[str, set[str]] = {}
  for fig in drawn:
    for label, colour in _line_colours(fig).items():
      if label in palette.models:
        seen.setdefault(label, set()).add(colour)
  assert seen == {m: {palette.colour(m)} for m in palette.models}
  # without the report's palette each figure colours its series in its own order: the colour
  # the shared palette fixes would otherwise move with the order
  probes.plot_ood_probes({"a": reordered}, str(tmp_path / "alone"))
  assert _line_colours(drawn[-1])["dinov2"] != palette.colour("dinov2")


def test_the_raghu_figures_colour_series_by_their_model(tmp_path, drawn):
  """Figs. 3, 5, 7, 11, C.5: a ViT's blocks, heads and variants in its colour or its shades; the
  CNN's layers in its shades."""
  palette = colours.Palette(["vit", "resnet"])
  rng = np.random.default_rng(1)
  vit, resnet = palette.colour("vit"), palette.colour("resnet")
  attention.plot_attention_distances(rng.uniform(0, 50, (4, 2)), str(tmp_path / "d"),
                                     layers=[0, 3], model="vit", palette=palette)
  assert set(_line_colours(drawn[-1]).values()) == set(palette.shades("vit", 2))
  attention.plot_attention_distance_by_depth(rng.uniform(0, 50, (4, 2)), str(tmp_path / "c5"),
                                             model="vit", palette=palette)
  (heads,) = drawn[-1].axes[0].collections  # every head of every block, unlabelled
  assert {to_hex(c, keep_alpha=False) for c in heads.get_facecolors()} == {vit}
  attention.plot_head_subset_cka(np.arange(3.0), rng.random((3, 2)), str(tmp_path / "f5"),
                                 model="resnet", palette=palette)
  assert set(_line_colours(drawn[-1]).values()) == set(palette.shades("resnet", 2))
  skip.plot_skip_ratio_lines({"resnet": rng.random(6), "vit cls (attn)": rng.random(4),
                              "vit tokens (mlp)": rng.random(4)}, str(tmp_path / "f7"),
                             palette=palette)
  probes.plot_few_shot({"per token": {"vit tokens": rng.random(4),
                                      "resnet tokens": rng.random(6)},
                        "aggregated": {"resnet GAP": rng.random(6),
                                       "vit CLS token": rng.random(4)}},
                       str(tmp_path / "f11"), palette=palette)
  for fig in drawn[-2:]:
    for label, colour in _line_colours(fig).items():
      assert colour == (vit if label.startswith("vit") else resnet), label
