"""End-to-end test of `experiments.raghu` (repsim_jax.pipelines.raghu.run) on the runlocal variant.

Reference for the numbers: a saved CKA matrix is recomputed here from the model outputs through
an independent path (one forward pass on all images, numpy pooling) and `repsim_jax.cka_matrix`.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

import repsim_jax
from configs import raghu as raghu_config
from repsim_jax.pipelines import raghu
from repsim_jax.data import from_config, sample_ids
from repsim_jax.models import from_pretrained, jit_forward, load_preprocessor
from repsim_jax.results import load_result

# One figure per figure group of the paper (model names of the runlocal variant: vit, bit).
EXPECTED_FIGURES = [
    "fig1_cka_vit", "fig1_cka_bit", "figB1_cka_vit_sublayers", "fig2_cka_vit_vs_bit",
    "fig3_attention_distance_vit", "figC5_attention_distance_depth_vit",
    "fig5_head_subsets_vit_vs_bit", "fig6_erf_vit_after_residual", "fig6_erf_bit_after_residual",
    "figC4_erf_vit_before_residual", "fig7_skip_ratio_vit_attn", "fig7_skip_ratio_vit_mlp",
    "fig7_skip_ratio_lines", "figE2_skip_cosine_lines", "fig9_localization_vit_block_03",
    "fig11_few_shot", "fig13_few_shot",
]


def test_runlocal_end_to_end(tmp_path):
  config = raghu_config.get_config("runlocal")
  workdir = str(tmp_path)
  out = raghu.run(config, workdir)

  for path in out["files"]:
    assert os.path.isfile(path), path
  for name in EXPECTED_FIGURES:
    for ext in ("png", "pdf"):
      assert os.path.getsize(os.path.join(workdir, "figures", f"{name}.{ext}")) > 0, name
  summary = open(out["summary"]).read()
  linked = set(re.findall(r"\]\((figures/[^)]+\.png)\)", summary))
  pngs = {f"figures/{f}" for f in os.listdir(os.path.join(workdir, "figures")) if f.endswith(".png")}
  assert linked == pngs  # every figure linked once, no dead link
  for name in ("cka_vit", "cka_vit_vs_bit", "block_stats_vit", "block_stats_bit",
               "head_subsets_vit_vs_bit", "erf_vit", "erf_bit", "localization_vit_block_03",
               "few_shot_vit", "few_shot_bit"):
    with open(os.path.join(workdir, f"{name}.json")) as f:
      meta = json.load(f)
    assert meta["config"]["analysis"]["cka"]["batch_size"] == 8 and "jax" in meta["versions"]
    assert meta["inputs"]["checkpoint/vit"] and meta["inputs"]["image_ids"]

  # The saved within-ViT matrix (blocks and sublayers) against cka_matrix on the model outputs.
  arrays, meta = load_result(os.path.join(workdir, "cka_vit"))
  names = [str(n) for n in arrays["layers"]]
  checkpoint = os.path.join(workdir, "checkpoints", "vit")
  processor = load_preprocessor(checkpoint)
  source = from_config(config.dataset)
  ids = sample_ids(source.ids, config.n_images, seed=config.seed)
  pixels = processor([source.load(i).image for i in ids])
  blocks = jit_forward(from_pretrained(checkpoint), sublayers=True)(pixels).blocks
  layers = [np.asarray(blocks[n])[:, 1:].mean(1) for n in names]  # mean over patch tokens
  cka = config.analysis.cka
  expected = repsim_jax.cka_matrix(layers, layers, debiased=cka.debiased,
                                   batch_size=cka.batch_size, n_samples=cka.n_samples,
                                   repeats=cka.repeats, seed=cka.seed)
  assert len(names) == 1 + 4 * 4  # embeddings + 4 blocks x (attn, mid, mlp, output)
  np.testing.assert_allclose(arrays["cka"], expected, rtol=0, atol=1e-5)
  assert np.all(np.isfinite(arrays["cka"]))
