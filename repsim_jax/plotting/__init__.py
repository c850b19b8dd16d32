"""Figures, one module per figure kind, one function per figure: arrays in, `<path>.png` and
`<path>.pdf` out (each function returns the two paths). No pyplot, no global state
(`common.new_figure`). Every figure is legible at the report's page width (`common.PAGE_INCHES`;
tests/plotting/test_legibility.py), and a report's figures share one colour per model
(`colours.Palette`, passed as `palette=`).

  colours.py           one colour per model across a report's figures

  heatmap.py           any layer x layer matrix (II, CKA)
  imbalance.py         II grids and heatmaps, sample size and smoothness (Mahaut & Baroni)
  neighbourhoods.py    nearest-neighbour image grids
  category_sharing.py  neighbours sharing a category, per layer
  semantic.py          ManyNames Jaccard per layer
  probes.py            probe accuracy and roughness per layer, few-shot probes
  attention.py         attention distances, head subsets (Raghu et al.)
  receptive_field.py   effective receptive fields
  skip.py              skip-connection ratios and cosines
  localization.py      localization maps
  subspace.py          cross-encoder subspace similarity
"""
