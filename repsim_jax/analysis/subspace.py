"""Cross-encoder subspace analysis: do different encoders share their top principal subspace?

For each model, the top-k principal components (k = 16 by default) of one chosen layer; between
every pair of models, how well one k-dimensional projection matches the other

  * Procrustes-aligned similarity  ||X^T Y||_*  of the centred projections scaled to unit
    Frobenius norm (1 - squared Procrustes distance / 2, Ding et al. 2021): 1 when a rotation
    maps one onto the other, the fraction of variance a rotation can align; the registered
    measure `nbs-score` (normalized Bures similarity, Harvey et al. 2023);
  * linear CKA of the projections (Kornblith et al. 2019), `cka-kernel=linear-hsic=...-score`;

each calibrated against a permutation null (every model's rows permuted independently, so every
pair sees a random correspondence; `metrics.calibration.calibrate`), and the median over pairs
with the null of the median (the same permutations). Both measures and their nulls come from the
measure protocol (`repsim_jax.measures.permutation_null`: CKA's fast null, the generic one for
NBS). Arrays in, arrays out: the caller picks the layer and reads it from wherever it is stored.

References:
  Ding, Denain, Steinhardt. Grounding Representation Similarity with Statistical Testing.
    NeurIPS 2021.
  Kornblith, Norouzi, Lee, Hinton. Similarity of Neural Network Representations Revisited.
    ICML 2019.
  Gröger, Wen, Brbić. Revisiting the Platonic Representation Hypothesis: An Aristotelian View.
    ICML 2026 (permutation calibration).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from repsim_jax.measures import permutation_null
from repsim_jax.metrics import validation
from repsim_jax.metrics.calibration import calibrate


def principal_components(x, k: int = 16) -> dict[str, np.ndarray]:
  """Top-k principal components of x [N, d]: float64 eigendecomposition, chunked over rows.

  Returns:
    {"scores": [N, k] centred x projected on the components (the k-dim representation),
     "components": [k, d] unit directions (sign: largest |loading| positive),
     "explained": [k] fraction of the total variance each explains}.
  """
  x = validation.as_representation(x, "x")
  n, d = x.shape
  if not 1 <= k <= min(n - 1, d):
    raise ValueError(f"k={k}: expected 1 <= k <= min(N - 1, d) = {min(n - 1, d)} for x of shape "
                     f"{x.shape}")
  mean = x.mean(axis=0, dtype=np.float64)
  cov = np.zeros((d, d))
  for start in range(0, n, 4096):  # float64 without a full float64 copy of x
    c = np.asarray(x[start:start + 4096], np.float64) - mean
    cov += c.T @ c
  values, vectors = np.linalg.eigh(cov)
  order = np.argsort(values)[::-1][:k]
  comps = vectors[:, order].T
  comps *= np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])[:, None]
  scores = np.concatenate([(np.asarray(x[s:s + 4096], np.float64) - mean) @ comps.T
                           for s in range(0, n, 4096)])
  total = max(float(np.trace(cov)), np.finfo(float).tiny)
  return {"scores": scores, "components": comps, "explained": values[order] / total}


def cross_encoder_subspace(representations: Mapping[str, object], *, k: int = 16,
                           n_perm: int = 200, seed: int = 0, alpha: float = 0.05,
                           debiased: bool = False) -> dict:
  """Procrustes similarity and CKA between the top-k PCA subspaces of every pair of models.

  Args:
    representations: {model: [N, d_m]} one chosen layer per model, rows = the same N images.
    k: principal components per model.
    n_perm, seed: null draws (at least `validation.MIN_PERM`); draw p permutes every model's
      rows with its own `np.random.default_rng(seed)` permutation (models in the given order,
      draw by draw).
    alpha: level of the critical values and calibrated scores (`calibrate`).
    debiased: debiased (HSIC_1) instead of the plain linear CKA of the projections.

  Returns:
    {"models": [M] names, "k": k, "explained": [M, k], "pairs": [n_pairs, 2] model indices (i < j),
     and for measure in ("procrustes", "cka"):
       measure: [M, M] symmetric observed similarities (diagonal 1);
       f"{measure}_null": [P, n_pairs]; f"{measure}_pairs": `calibrate` of the pairs
         (p_value, critical, calibrated, p_value_max, ... each [n_pairs]);
       f"{measure}_median": median over pairs; f"{measure}_median_null": [P];
       f"{measure}_median_test": `calibrate` of the median against its null}.
  """
  models = list(representations)
  if len(models) < 2:
    raise ValueError(f"representations: expected at least 2 models, got {models}")
  arrays = [validation.as_representation(representations[m], f"representations[{m!r}]")
            for m in models]
  names = [f"representations[{m!r}]" for m in models]
  n = validation.check_same_n(arrays, names)
  n_perm = validation.check_count(n_perm, "n_perm", validation.MIN_PERM,
                                  "the smallest p-value of P permutations is 1 / (P + 1)")
  validation.warn_degenerate_layers(arrays, names, measure="subspace", duplicates=False)
  pcs = [principal_components(x, k) for x in arrays]
  scores = [p["scores"].astype(np.float32) for p in pcs]
  rng = np.random.default_rng(seed)
  perms = np.stack([np.stack([rng.permutation(n) for _ in models]) for _ in range(n_perm)])
  pairs = np.array([(i, j) for i in range(len(models)) for j in range(i + 1, len(models))])
  out = {"models": models, "k": k, "explained": np.stack([p["explained"] for p in pcs]),
         "pairs": pairs}
  names = {"procrustes": "nbs-score",
           "cka": f"cka-kernel=linear-hsic={'song' if debiased else 'gretton'}-score"}
  observed = {"procrustes": [], "cka": []}
  null = {"procrustes": [], "cka": []}
  for i, j in pairs:
    # Permuting both models' rows is permuting model j's rows by perm_j o perm_i^-1 alone.
    relative = np.take_along_axis(perms[:, j], np.argsort(perms[:, i], axis=1), axis=1)
    for key, name in names.items():
      obs, nul = permutation_null([scores[i]], [scores[j]], perms=relative, measure=name)
      observed[key].append(obs[0, 0])
      null[key].append(nul[:, 0, 0])
  for measure in ("procrustes", "cka"):
    obs, nul = np.array(observed[measure]), np.stack(null[measure], axis=1)  # [pairs], [P, pairs]
    matrix = np.eye(len(models))
    matrix[pairs[:, 0], pairs[:, 1]] = matrix[pairs[:, 1], pairs[:, 0]] = obs
    out[measure] = matrix
    out[f"{measure}_null"] = nul
    out[f"{measure}_pairs"] = calibrate(obs, nul, alpha=alpha)
    out[f"{measure}_median"] = float(np.median(obs))
    out[f"{measure}_median_null"] = np.median(nul, axis=1)
    out[f"{measure}_median_test"] = calibrate(np.median(obs), np.median(nul, axis=1),
                                              alpha=alpha)
  return out
