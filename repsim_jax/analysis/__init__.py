"""The papers' analyses as functions over arrays: representations (and labels, images, model
outputs) in, arrays out. Nothing here reads stores, writes files or runs a pipeline
(`repsim_jax.pipelines` does); figures are in `repsim_jax.plotting`.

Mahaut & Baroni (2026):
  neighbourhoods.py     nearest neighbours of query images at the early / middle / late layer
  category_sharing.py   neighbours sharing a category (low-level features, true factors)
  semantic.py           ManyNames label overlap of neighbours (Jaccard)
  logistic_probes.py    per-class binary probes and roughness; multi-class out-of-domain probes
Raghu et al. (2021):
  attention.py          attention distances, local -> global head subsets
  skip.py               skip-connection norm ratios and cosines
  block_statistics.py   both, streamed over image batches
  receptive_field.py    effective receptive fields
  localization.py       CKA of a token with the input patches
  ridge_probes.py       closed-form few-shot probes per layer and token
  tokens.py             token / feature-map layouts these share
Across encoders:
  subspace.py           top PCA subspaces of one layer of several encoders, compared
"""
