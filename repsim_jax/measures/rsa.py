"""Representational similarity analysis (RSA): compare two representations through their RDMs.

An RDM (representational dissimilarity matrix) holds one dissimilarity per pair of stimuli
(rows) i < j; as a vector it is the upper triangle read row by row (scipy's `pdist` /
`squareform` order, rsatoolbox's `RDMs.get_vectors()` order), M = n (n - 1) / 2 entries.

RDMs (`rdm=`):
  euclidean           ||x_i - x_j||
  squared_euclidean   ||x_i - x_j||^2 (rsatoolbox's 'euclidean' is this divided by d; every
                      comparator below is invariant to that scale)
  correlation         1 - pearson(x_i, x_j) over features (rsatoolbox 'correlation')
  cosine              1 - cos(x_i, x_j)
A zero row (a constant row for `correlation`) has dissimilarity 1 to every other row for the
cosine / correlation RDMs (its normalised vector is taken as 0) instead of NaN; cosine and
correlation dissimilarities within 16 ulps of 0 are set to 0, so repeated rows are exactly tied.
Ties: values equal in exact arithmetic but computed from different rows can differ in the last
bit (as in any float implementation); integer-valued features give exact euclidean ties.

Comparators (`compare=`), rsatoolbox 0.3.2's `rsatoolbox.rdm.compare` conventions:
  pearson     Pearson correlation of the two RDM vectors ('corr')
  cosine      cosine of the two RDM vectors
  spearman    Pearson correlation of the average ranks (ties get their mean rank)
  rho_a       12 <r_a - mean, r_b - mean> / (M^3 - M) with average ranks r: Spearman's rho
              without the tie correction of the denominator (Nili et al. 2014)
  tau_a       (concordant - discordant) / (M (M - 1) / 2): Kendall's tau-a, the variant
              Kriegeskorte / Nili et al. recommend when a model RDM has ties
  tau_b       Kendall's tau-b (scipy.stats.kendalltau)
  cosine_cov  cosine after whitening with the covariance of the RDM entries under i.i.d. noise
              (Diedrichsen et al. 2021): with G = -1/2 H D H the double-centred RDM,
              <G_a, G_b>_F / (||G_a||_F ||G_b||_F) over the full n x n matrices
  corr_cov    the same after subtracting each RDM vector's mean from its off-diagonal entries

Scale. An RDM at n = 1e5 has 5e9 entries; no comparator here holds it in memory as n x n:
* pearson, cosine, cosine_cov, corr_cov are exact at any n. With c the mean RDM entry, D~ the
  full n x n matrix D - c off the diagonal and 0 on it, and H = I - 11^T / n, they are
  functions of per-layer statistics (c, S_aa = sum_{i<j} (D_ij - c)^2, K_aa = ||H D~ H||_F^2)
  and two cross sums, S_ab = sum_{i<j} (a_ij - c_a)(b_ij - c_b) and K_ab = <H D~_a H, H D~_b H>_F:
  pearson = S_ab / sqrt(S_aa S_bb); cosine uses the raw sums S_ab + M c_a c_b; corr_cov =
  K_ab / sqrt(K_aa K_bb), and cosine_cov adds c_a c_b (n - 1) to every K (<H D~ H, H>_F = 0,
  <H, H>_F = n - 1). How the sums are computed depends on the RDM:
  - squared_euclidean, correlation, cosine (Gram form, O(n d_a d_b) per pair, O(n d^2) per
    layer, no RDM entry is formed). Each is D_ij = s |z_i - z_j|^2 + b_i + b_j for i != j:
    squared_euclidean has z = x, s = 1, b = 0; correlation / cosine have z the normalised
    (row-centred for correlation) rows, s = 1/2 (1 - z_i.z_j = |z_i - z_j|^2 / 2 for unit rows),
    and a zero row has z_i = 0, b_i = 1/2, so its dissimilarity to every row is exactly 1, the
    convention above (b = 0 elsewhere). The form is translation invariant in z, so z is
    column-centred (z~ = z - m, sum_i z~_i = 0): for correlation / cosine that is the expansion
    z_i.z_j = (z~_i + m).(z~_j + m) into a centred Gram plus rank-one terms, which the
    squared-distance form absorbs; a large common offset (of x, or the common direction m of
    highly correlated rows) thus never enters a sum and cannot cancel. With q_i = |z~_i|^2,
    K = Z~ Z~^T (rows summing to 0), q~ = q - mean(q), b~ = b - mean(b), a = s q~ + b~:
      c = 2 s mean(q) n / (n - 1) + 2 mean(b),
      D_ij - c = a_i + a_j - 2 s K_ij - 2 s mean(q) / (n - 1)                 (i != j).
    Summing products of two such expansions over all (i, j) (every sum of a centred vector or
    of a row of K vanishes; sum_ij K^a_ij K^b_ij = ||Z~_a^T Z~_b||_F^2) and subtracting the
    diagonal terms (i = j) gives, with W_ab = ||Z~_a^T Z~_b||_F^2 - (sum q_a)(sum q_b) / (n - 1),
      S_ab = n a_a.a_b - 2 b~_a.b~_b + 2 s_a s_b W_ab,
      K_ab = 4 s_a s_b W_ab + 4 s_a q~_a.b~_b + 4 s_b b~_a.q~_b + 4 (1 - 2/n) b~_a.b~_b
    (H D~ H = -2 s K - H diag(f) H with f_i = 2 b~_i - 2 s mean(q) n / (n - 1)). A layer's
    own S_aa, K_aa are the same expressions with both layers the same. The prepared layer
    holds z~ and the O(n) vectors. Numerics: every term is a sum of centred quantities, so nothing
    scales with the RDM's mean; the one cancellation left is inside W (the diagonal's share,
    about n mean(q_a) mean(q_b), is subtracted from the Frobenius norm), which costs
    log10(d / n) digits when n < d and none at the n where this path matters. Long float32
    sums are taken in two levels (`_sum`).
  - euclidean (no such form): blocks of RDM rows computed on the fly from the features
    (O(n^2 d) per pair, memory O(block x n)), accumulated centred and Kahan-compensated; with
    R~ the row sums of D~, K_ab = 2 S_ab - (2/n) R~_a . R~_b.
* spearman, rho_a, tau_a, tau_b are exact (ranks of all M entries from one sort, Kendall's
  discordant pairs by merge counting in O(M log^2 M)) while the RDM vector fits in memory:
  the prepared layer is the rank vector, M values (n = 1e4: 5e7 entries, 200 MB in float32;
  n = 1e5 would need 20 GB per layer). Beyond that, `rsa_sampled_pairs` estimates them from a
  uniform sample of stimulus pairs (documented estimator; its measured error is in the tests).

References:
  Kriegeskorte, Mur, Bandettini. Representational similarity analysis - connecting the branches
    of systems neuroscience. Front. Syst. Neurosci. 2008.
  Nili, Wingfield, Walther, Su, Marslen-Wilson, Kriegeskorte. A toolbox for representational
    similarity analysis. PLoS Comput. Biol. 2014 (tau-a, rho-a).
  Diedrichsen, Berlot, Mur, Schuett, Kriegeskorte. Comparing representational geometries using
    whitened unbiased-distance-matrix similarity. Neurons, Behavior, Data analysis and Theory
    2021 (cosine_cov, corr_cov).
  rsatoolbox 0.3.2 (github rsagroup/rsatoolbox): rdm/calc.py, rdm/compare.py, the anchor.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.measures.protocol import Measure, Properties, register
from repsim_jax.metrics.validation import (as_layer, as_layer_list, check_rows,
                                          layer_lists)

__all__ = ["RDMS", "COMPARATORS", "STREAMED", "GRAM_RDMS", "rdm", "compare", "rsa_sampled_pairs",
           "to_rsatoolbox", "from_rsatoolbox", "rsa_matrix"]

_HI = jax.lax.Precision.HIGHEST
RDMS = ("euclidean", "squared_euclidean", "correlation", "cosine")
STREAMED = ("pearson", "cosine", "cosine_cov", "corr_cov")
RANKED = ("spearman", "rho_a", "tau_a", "tau_b")
COMPARATORS = STREAMED + RANKED
# Rows of the RDM computed at once: a block holds block x n dissimilarities per layer.
_BLOCK_ENTRIES = 1 << 22


# --------------------------------------------------------------------------------------- RDMs

def _row_features(x, metric):
  """x: [n, d] -> (z [n, d], sq [n]) with D_ij = f(z_i . z_j, sq_i, sq_j) (see `_dissim`)."""
  if metric in ("euclidean", "squared_euclidean"):
    # Distances are translation invariant; shifting by the first row limits float cancellation
    # for a large common offset and, unlike subtracting the mean, keeps integer-valued
    # features integer, so their exactly tied distances stay exactly tied.
    z = x - x[:1]
  elif metric == "correlation":
    z = x - jnp.mean(x, axis=1, keepdims=True)
  else:
    z = x
  sq = jnp.sum(z * z, axis=1)
  if metric in ("correlation", "cosine"):
    norm = jnp.sqrt(sq)
    z = z / jnp.where(norm > 0, norm, 1.0)[:, None]
    sq = jnp.sum(z * z, axis=1)
  return z, sq


def _dissim(dots, sq_rows, sq_cols, metric):
  """Dissimilarities from dot products of `_row_features` (broadcasting sq_rows against
  sq_cols: pass [b, 1] and [1, n] for a block, equal shapes for a list of pairs)."""
  if metric in ("correlation", "cosine"):
    # Identical (normalised) rows have 1 - z.z within a few ulps of 0, its sign and size set by
    # rounding; snapping those to exactly 0 keeps repeated rows exactly tied.
    d = 1.0 - dots
    return jnp.where(jnp.abs(d) < 16 * jnp.finfo(d.dtype).eps, 0.0, d)
  d2 = jnp.maximum(sq_rows + sq_cols - 2.0 * dots, 0.0)
  return jnp.sqrt(d2) if metric == "euclidean" else d2


def _block_rows(n: int) -> int:
  return int(max(1, min(n, _BLOCK_ENTRIES // max(n, 1))))


def _rdm_block(feat, start, rows, metric, n):
  """Rows [start, start + rows) of the full RDM of the first n rows of padded `feat` and the
  mask of their upper-triangle entries, [rows, n_padded] each."""
  z, sq = feat
  zi = jax.lax.dynamic_slice_in_dim(z, start, rows)
  sqi = jax.lax.dynamic_slice_in_dim(sq, start, rows)
  d = _dissim(jnp.matmul(zi, z.T, precision=_HI), sqi[:, None], sq[None, :], metric)
  i = start + jnp.arange(rows)[:, None]
  j = jnp.arange(z.shape[0])[None, :]
  return d, (j > i) & (j < n)


def _padded(feat, rows):
  """Pads the rows to a multiple of `rows` (padded rows are masked out of every block)."""
  z, sq = feat
  pad = (-z.shape[0]) % rows
  return jnp.pad(z, ((0, pad), (0, 0))), jnp.pad(sq, (0, pad))


@functools.partial(jax.jit, static_argnames=("metric",))
def rdm_from_features(x, *, metric):
  """x: [n, d] -> the RDM vector [n (n - 1) / 2] (dense: n x n is formed; small n only)."""
  z, sq = _row_features(x, metric)
  d = _dissim(jnp.matmul(z, z.T, precision=_HI), sq[:, None], sq[None, :], metric)
  return d.reshape(-1)[_upper_flat_indices(x.shape[0])]


def _upper_flat_indices(n):
  """Flat indices of the upper triangle (i < j) of an n x n matrix, row-major, computed on
  device (np.triu_indices would embed 2 x M constants in the compiled program)."""
  i, j = jnp.arange(n)[:, None], jnp.arange(n)[None, :]
  return jnp.nonzero((j > i).reshape(-1), size=n * (n - 1) // 2)[0]


def _compensated_sum(block_fn, like, starts):
  """sum over `starts` of block_fn(start) (a pytree shaped like `like`), Kahan-compensated
  across blocks, so float32 sums over thousands of row blocks keep float32 precision."""
  def body(acc, start):
    total, comp = acc
    y = jax.tree.map(jnp.subtract, block_fn(start), comp)
    t = jax.tree.map(jnp.add, total, y)
    comp = jax.tree.map(lambda t, s, y: (t - s) - y, t, total, y)
    return (t, comp), None
  zeros = jax.tree.map(jnp.zeros_like, like)
  return jax.lax.scan(body, (zeros, zeros), starts)[0][0]


def rdm(x: Any, *, metric: str = "correlation") -> jax.Array:
  """The RDM of x as a vector (upper triangle, row-major; scipy `pdist` order).

  Args:
    x: [n, d] representation (rows are stimuli).
    metric: one of RDMS.

  Returns:
    [n (n - 1) / 2] dissimilarities; `squareform` gives the n x n matrix.
  """
  _check(metric, RDMS, "rdm")
  return rdm_from_features(as_layer(x, "x"), metric=metric)


# ------------------------------------------------- streamed comparators: the Gram form

def _sum(v):
  """Sum of every entry of `v`, in two levels (chunks of 1024, then the chunk sums): a float32
  sum of ~1e6 terms keeps ~1e-7 relative accuracy whatever order the backend adds in."""
  v = v.reshape(-1)
  v = jnp.pad(v, (0, (-v.shape[0]) % 1024))
  return jnp.sum(jnp.sum(v.reshape(-1, 1024), axis=1))


def _gram_features(x, metric):
  """x: [n, d] -> (z~ [n, d] column-centred, b [n]) with D_ij = s |z~_i - z~_j|^2 + b_i + b_j
  for i != j (module docstring, Gram form)."""
  if metric == "squared_euclidean":
    z, b = x, jnp.zeros(x.shape[0], x.dtype)
  else:
    z, sq = _row_features(x, metric)  # normalised rows, 0 for a zero row
    b = jnp.where(sq > 0, 0.0, 0.5).astype(x.dtype)
  # The form is translation invariant in z: subtracting the first row removes a common offset
  # exactly where rows agree; the mean then centres what is left, twice: the sums assume
  # sum_i z~_i = 0, and one pass leaves a mean of order eps |z| sqrt(n). A layer of identical
  # rows gets z~ = 0 exactly (its RDM is 0, so every comparator is 0 as on the block path),
  # whatever the rounding of each row's normalisation.
  z = jnp.where(jnp.all(x == x[:1]), 0.0, z - z[:1])
  z = z - jnp.mean(z, axis=0)
  return z - jnp.mean(z, axis=0), b


def _gram_cross(pa, pb, sa, sb):
  """(S_ab, K_ab) of two Gram-form layers (module docstring): one d_a x d_b product."""
  n = pa["z"].shape[0]
  cross = jnp.matmul(pa["z"].T, pb["z"], precision=_HI)
  w = _sum(cross * cross) - pa["qsum"] * pb["qsum"] / (n - 1)
  bb = _sum(pa["b"] * pb["b"])
  sab = n * _sum(pa["a"] * pb["a"]) - 2.0 * bb + 2.0 * sa * sb * w
  kab = (4.0 * sa * sb * w + 4.0 * sa * _sum(pa["q"] * pb["b"]) + 4.0 * sb * _sum(pa["b"] * pb["q"])
         + 4.0 * (1.0 - 2.0 / n) * bb)
  return sab, kab


# RDMs of the Gram form and their scale s.
GRAM_RDMS = {"squared_euclidean": 1.0, "correlation": 0.5, "cosine": 0.5}


@functools.partial(jax.jit, static_argnames=("metric",))
def _prepare_gram(x, *, metric):
  """Per-layer Gram-form statistics: z~ [n, d], the centred vectors q~, b~, a [n], sum q,
  c, S_aa, K_aa."""
  n, s = x.shape[0], GRAM_RDMS[metric]
  z, b = _gram_features(x, metric)
  q = jnp.sum(z * z, axis=1)
  qbar, bbar = _sum(q) / n, _sum(b) / n
  p = {"z": z, "q": q - qbar, "b": b - bbar, "a": s * (q - qbar) + (b - bbar), "qsum": n * qbar,
       "c": 2.0 * s * qbar * n / (n - 1) + 2.0 * bbar}
  p["saa"], p["kaa"] = _gram_cross(p, p, s, s)
  return p


@functools.partial(jax.jit, static_argnames=("metric",))
def _gram_pair(pa, pb, *, metric):
  """[len(STREAMED)]: every streamed comparator of a Gram-form layer pair (one compilation
  serves them all)."""
  s = GRAM_RDMS[metric]
  sab, kab = _gram_cross(pa, pb, s, s)
  return _every_comparator(sab, kab, pa, pb, pa["z"].shape[0])


# ------------------------------------------------ streamed comparators: blocks of RDM rows

def _centred_products(sab, ra, rb, n):
  """<H D~_a H, H D~_b H>_F from S_ab and the row sums of D~ (module docstring)."""
  return 2.0 * sab - 2.0 / n * jnp.dot(ra, rb, precision=_HI)


@functools.partial(jax.jit, static_argnames=("metric", "rows"))
def _prepare_streamed(x, *, metric, rows):
  """Per-layer statistics for the streamed comparators (two passes over RDM row blocks).

  Returns dict: feat (z, sq) padded, c = mean RDM entry, saa = sum_{i<j} (D_ij - c)^2,
  rows = row sums of the full (symmetric) D - c off the diagonal, [n], kaa = ||H D~ H||_F^2.
  """
  n = x.shape[0]
  feat = _padded(_row_features(x, metric), rows)
  starts = jnp.arange(0, feat[0].shape[0], rows)
  m = n * (n - 1) / 2

  zero = jnp.zeros((), x.dtype)

  def total(start):
    d, mask = _rdm_block(feat, start, rows, metric, n)
    return jnp.sum(jnp.where(mask, d, 0.0))
  c = _compensated_sum(total, zero, starts) / m

  def centred(start):
    d, mask = _rdm_block(feat, start, rows, metric, n)
    dc = jnp.where(mask, d - c, 0.0)
    # The full symmetric matrix's row sums: this block's upper-triangle rows, placed at
    # [start, start + rows), plus its columns (the lower triangle's rows).
    upper = jax.lax.dynamic_update_slice(jnp.zeros_like(dc[0]), jnp.sum(dc, axis=1), (start,))
    return jnp.sum(dc * dc), upper + jnp.sum(dc, axis=0)
  saa, row_sums = _compensated_sum(centred, (zero, jnp.zeros(feat[0].shape[0], x.dtype)),
                                   starts)
  row_sums = row_sums[:n]
  return {"feat": feat, "c": c, "saa": saa, "rows": row_sums,
          "kaa": _centred_products(saa, row_sums, row_sums, n)}


def _cross_sum(pa, pb, metric, rows):
  """S_ab = sum_{i<j} (a_ij - c_a)(b_ij - c_b), streamed over RDM row blocks."""
  starts = jnp.arange(0, pa["feat"][0].shape[0], rows)

  def block(start):
    n = pa["rows"].shape[0]
    da, mask = _rdm_block(pa["feat"], start, rows, metric, n)
    db, _ = _rdm_block(pb["feat"], start, rows, metric, n)
    return jnp.sum(jnp.where(mask, (da - pa["c"]) * (db - pb["c"]), 0.0))
  return _compensated_sum(block, jnp.zeros((), pa["c"].dtype), starts)


def _from_stats(sab, kab, pa, pb, compare, n):
  """The streamed comparators from the cross sums S_ab, K_ab and each layer's c, S_aa, K_aa
  (module docstring)."""
  m = n * (n - 1) / 2
  ca, cb = pa["c"], pb["c"]
  if compare == "pearson":
    return _safe_ratio(sab, jnp.sqrt(pa["saa"] * pb["saa"]))
  if compare == "cosine":
    return _safe_ratio(sab + m * ca * cb,
                       jnp.sqrt((pa["saa"] + m * ca * ca) * (pb["saa"] + m * cb * cb)))
  kaa, kbb = pa["kaa"], pb["kaa"]
  if compare == "cosine_cov":
    kab, kaa, kbb = (kab + ca * cb * (n - 1), kaa + ca * ca * (n - 1), kbb + cb * cb * (n - 1))
  return _safe_ratio(kab, jnp.sqrt(kaa * kbb))


def _every_comparator(sab, kab, pa, pb, n):
  return jnp.stack([_from_stats(sab, kab, pa, pb, c, n) for c in STREAMED])


def _safe_ratio(num, den):
  # An RDM with no variation has no defined correlation; 0 (no similarity), never NaN.
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), 0.0)


# ------------------------------------------------------------------------ rank comparators

def _tied_pairs(*sorted_keys):
  """Pairs (i < j) equal in every key, for keys sorted jointly (lexicographically)."""
  idx = jnp.arange(sorted_keys[0].shape[0])
  new = jnp.zeros(idx.shape, bool).at[0].set(True)
  for k in sorted_keys:
    new = new | jnp.concatenate([jnp.ones(1, bool), k[1:] != k[:-1]])
  start = jax.lax.cummax(jnp.where(new, idx, 0))
  return jnp.sum((idx - start).astype(_count_dtype()))


def _count_dtype():
  return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


@jax.jit
def _prepare_ranked(v):
  """RDM vector [M] -> dict: average ranks centred ('r'), integer min-ranks ('key'), tied pairs."""
  s = jnp.sort(v)
  lo = jnp.searchsorted(s, v, side="left")
  hi = jnp.searchsorted(s, v, side="right")
  r = (lo + hi + 1).astype(v.dtype) / 2.0  # scipy.stats.rankdata(method='average'), 1-based
  return {"r": r - jnp.mean(r), "key": lo.astype(jnp.int32), "ties": _tied_pairs(s)}


def _discordant(b_sorted_by_a):
  """Strict inversions (i < j, b_i > b_j) of an int vector, by bottom-up merge counting."""
  m = b_sorted_by_a.shape[0]
  size = 1 << max(1, int(np.ceil(np.log2(max(m, 2)))))
  # Padding at the tail with a value above every key adds no inversion.
  v = jnp.concatenate([b_sorted_by_a, jnp.full(size - m, np.iinfo(np.int32).max, jnp.int32)])
  total = jnp.zeros((), _count_dtype())
  width = 1
  while width < size:
    runs = v.reshape(-1, 2, width)
    left, right = runs[:, 0], runs[:, 1]
    not_above = jax.vmap(lambda l, r: jnp.searchsorted(l, r, side="right"))(left, right)
    total = total + jnp.sum((width - not_above).astype(_count_dtype()))
    v = jnp.sort(runs.reshape(-1, 2 * width), axis=1).reshape(-1)
    width *= 2
  return total


@functools.partial(jax.jit, static_argnames=("compare",))
def _ranked_pair(pa, pb, *, compare):
  m = pa["r"].shape[0]
  if compare == "spearman":
    return _safe_ratio(jnp.dot(pa["r"], pb["r"], precision=_HI),
                       jnp.sqrt(jnp.dot(pa["r"], pa["r"], precision=_HI)
                                * jnp.dot(pb["r"], pb["r"], precision=_HI)))
  if compare == "rho_a":
    return 12.0 * jnp.dot(pa["r"], pb["r"], precision=_HI) / (float(m) ** 3 - m)
  ka, kb = jax.lax.sort((pa["key"], pb["key"]), num_keys=2)
  dis = _discordant(kb)
  both = _tied_pairs(ka, kb)
  total = m * (m - 1) / 2.0
  con_minus_dis = total - pa["ties"] - pb["ties"] + both - 2.0 * dis
  if compare == "tau_a":
    tau = con_minus_dis / total
  else:
    tau = _safe_ratio(con_minus_dis, jnp.sqrt((total - pa["ties"]) * (total - pb["ties"])))
  return jnp.clip(tau, -1.0, 1.0)


# ---------------------------------------------------------------------------- public API

def _check(value, allowed, what):
  if value not in allowed:
    raise ValueError(f"{what}: expected one of {allowed}, got {value!r}")


def _path(metric, compare, path):
  """How `compare` on `metric` RDMs is computed: 'ranks', 'gram' or 'blocks' (module
  docstring); `path` None picks the Gram form wherever the RDM has it."""
  if compare in RANKED:
    return "ranks"
  if path is None:
    return "gram" if metric in GRAM_RDMS else "blocks"
  _check(path, ("gram", "blocks") if metric in GRAM_RDMS else ("blocks",),
         f"path (streamed comparators on {metric} RDMs)")
  return path


def prepare(x: Any, *, metric: str = "correlation", compare: str = "pearson",
            path: str | None = None):
  """Per-layer preparation for `compare` on `metric` RDMs: statistics of the streamed RDM
  (STREAMED comparators: the Gram form's centred features and vectors, or the block path's
  statistics; `path` forces one, for tests and benchmarks) or the ranks of the RDM vector
  (rank comparators)."""
  _check(metric, RDMS, "rdm")
  _check(compare, COMPARATORS, "compare")
  how = _path(metric, compare, path)
  x = as_layer(x, "x")
  if how == "gram":
    return _prepare_gram(x, metric=metric)
  if how == "blocks":
    return _prepare_streamed(x, metric=metric, rows=_block_rows(x.shape[0]))
  return _prepare_ranked(rdm_from_features(x, metric=metric))


def pair(pa, pb, *, metric: str = "correlation", compare: str = "pearson"):
  """The comparator between two prepared layers (see `prepare`; both by the same path)."""
  if compare in RANKED:
    return _ranked_pair(pa, pb, compare=compare)
  if "z" in pa:
    return _gram_pair(pa, pb, metric=metric)[STREAMED.index(compare)]
  return _streamed_pair(pa, pb, metric=metric,
                        rows=_block_rows(pa["rows"].shape[0]))[STREAMED.index(compare)]


@functools.partial(jax.jit, static_argnames=("metric", "rows"))
def _streamed_pair(pa, pb, *, metric, rows):
  """[len(STREAMED)]: every streamed comparator of a layer pair by the block path."""
  n = pa["rows"].shape[0]
  sab = _cross_sum(pa, pb, metric, rows)
  return _every_comparator(sab, _centred_products(sab, pa["rows"], pb["rows"], n), pa, pb, n)


def compare(rdm_a: Any, rdm_b: Any, *, method: str = "pearson") -> float:
  """A comparator between two RDM vectors given as arrays ([M] each, same n).

  The streamed comparators need the RDM's row sums (cosine_cov, corr_cov): they are read from
  the vectors here, so this entry point is for RDMs that fit in memory (e.g. from rsatoolbox).
  """
  _check(method, COMPARATORS, "method")
  va, vb = jnp.asarray(rdm_a), jnp.asarray(rdm_b)
  if method in RANKED:
    return float(_ranked_pair(_prepare_ranked(va), _prepare_ranked(vb), compare=method))
  n = int(round((1 + np.sqrt(1 + 8 * va.shape[0])) / 2))
  upper = _upper_flat_indices(n)

  def stats(v):
    c = jnp.mean(v)
    full = jnp.zeros(n * n, v.dtype).at[upper].set(v - c).reshape(n, n)
    saa, rows = jnp.sum((v - c) ** 2), jnp.sum(full + full.T, axis=1)
    return {"c": c, "saa": saa, "rows": rows, "kaa": _centred_products(saa, rows, rows, n)}
  sa, sb = stats(va), stats(vb)
  sab = jnp.sum((va - sa["c"]) * (vb - sb["c"]))
  kab = _centred_products(sab, sa["rows"], sb["rows"], n)
  return float(_from_stats(sab, kab, sa, sb, method, n))


@functools.partial(jax.jit, static_argnames=("metric", "compare", "n_pairs"))
def _sampled(x, y, key, *, metric, compare, n_pairs):
  n = x.shape[0]
  ki, kj = jax.random.split(key)
  i = jax.random.randint(ki, (n_pairs,), 0, n)
  j = (i + jax.random.randint(kj, (n_pairs,), 1, n)) % n  # uniform over the pairs j != i

  def dissim(z):
    zf, sq = _row_features(z, metric)
    return _dissim(jnp.sum(zf[i] * zf[j], axis=1), sq[i], sq[j], metric)
  return _ranked_pair(_prepare_ranked(dissim(x)), _prepare_ranked(dissim(y)), compare=compare)


def rsa_sampled_pairs(x: Any, y: Any, *, metric: str = "correlation", compare: str = "spearman",
                      n_pairs: int = 1_000_000, seed: int = 0) -> float:
  """ESTIMATOR of a rank comparator for RDMs too large to rank exactly (n ~ 1e5).

  Draws `n_pairs` stimulus pairs (i, j), i != j, uniformly with replacement (seeded), computes
  both representations' dissimilarities on those pairs only (O(n_pairs d) work, no RDM) and the
  comparator between the two sampled vectors. It estimates the comparator of the full RDMs with
  an error of order 1 / sqrt(n_pairs) (a rank correlation of a sample is a consistent, slightly
  biased estimate of the population one); tests/measures/test_rsa.py measures it against the
  exact value. Not registered as a measure: its value depends on the seed.

  Args:
    x: [n, d_x]; y: [n, d_y].
    metric: one of RDMS; compare: one of the rank comparators (spearman, rho_a, tau_a, tau_b).
    n_pairs: sampled pairs; seed: the sampler's seed.
  """
  _check(metric, RDMS, "rdm")
  _check(compare, RANKED, "compare (sampled pairs are for the rank comparators)")
  x, y = as_layer(x, "x"), as_layer(y, "y")
  return float(_sampled(x, y, jax.random.PRNGKey(seed), metric=metric, compare=compare,
                        n_pairs=int(n_pairs)))


# ------------------------------------------------------------------ streamed whole matrix

@functools.partial(jax.jit, static_argnames=("metric", "rows"))
def _matrix_cross(prep_a, prep_b, *, metric, rows):
  """[La, Lb] of S_ab over all layer pairs: each layer's RDM block is computed once per row
  block and every pair's cross sum is one matmul of the stacked blocks."""
  starts = jnp.arange(0, prep_a[0]["feat"][0].shape[0], rows)

  def centred_blocks(prep, start):
    out = []
    for p in prep:
      d, mask = _rdm_block(p["feat"], start, rows, metric, p["rows"].shape[0])
      out.append(jnp.where(mask, d - p["c"], 0.0).reshape(-1))
    return jnp.stack(out)

  def block(start):
    ba, bb = centred_blocks(prep_a, start), centred_blocks(prep_b, start)
    return jnp.matmul(ba, bb.T, precision=_HI)
  like = jnp.zeros((len(prep_a), len(prep_b)), prep_a[0]["c"].dtype)
  return _compensated_sum(block, like, starts)


def _gram_matrix(layers_a, layers_b, same, *, metric, compare):
  """[La, Lb] by the Gram form, one layer pair at a time (one d_a x d_b product each): A's
  layers prepared once, B's one at a time, so memory holds La + 1 prepared layers beside the
  inputs (each input is converted only when it is prepared)."""
  def prepared(x, name):
    return _prepare_gram(as_layer(x, name), metric=metric)
  pa = [prepared(x, f"layers_a[{i}]") for i, x in enumerate(layers_a)]
  out = np.zeros((len(pa), len(layers_b)))
  for j, y in enumerate(layers_b):
    pb = pa[j] if same else prepared(y, f"layers_b[{j}]")
    rows = range(j + 1) if same else range(len(pa))  # symmetric: each unordered pair once
    values = [_gram_pair(pa[i], pb, metric=metric)[STREAMED.index(compare)] for i in rows]
    out[: len(values), j] = [float(v) for v in values]  # read back: pb is freed before the next
    if same:
      out[j, : j + 1] = out[: j + 1, j]
  return out


def rsa_matrix(layers_a: Sequence[Any], layers_b: Sequence[Any] | None = None, *,
               metric: str = "correlation", compare: str = "pearson",
               path: str | None = None) -> np.ndarray:
  """[La, Lb] RSA between every pair of layers.

  Streamed comparators, Gram form (squared_euclidean, correlation, cosine RDMs): each layer's
  centred features once, then one d_a x d_b product per pair (`_gram_matrix`). Block path
  (euclidean RDMs, or `path="blocks"`): each layer's statistics once, then one pass over RDM row
  blocks for all pairs together (memory O(block x n x (La + Lb)), never n x n). Rank
  comparators: each layer's ranks once, then every pair.
  """
  _check(metric, RDMS, "rdm")
  _check(compare, COMPARATORS, "compare")
  how = _path(metric, compare, path)
  layers_b = layers_a if layers_b is None else layers_b
  if how == "gram":
    same = layers_b is layers_a
    la = as_layer_list(layers_a, "layers_a")
    lb = la if same else as_layer_list(layers_b, "layers_b")
    check_rows([x.shape for x in la + lb], [f"layers_a[{i}]" for i in range(len(la))]
               + [f"layers_b[{j}]" for j in range(len(lb))], min_n=3, why="RSA")
    return _gram_matrix(la, lb, same, metric=metric, compare=compare)
  la, lb, same = layer_lists(layers_a, layers_b, min_n=3, why="RSA")
  pa = [prepare(x, metric=metric, compare=compare, path=how) for x in la]
  pb = pa if same else [prepare(x, metric=metric, compare=compare, path=how) for x in lb]
  if how == "ranks":
    return np.array([[float(_ranked_pair(a, b, compare=compare)) for b in pb] for a in pa])
  n = la[0].shape[0]
  cross = np.asarray(_matrix_cross(pa, pb, metric=metric, rows=_block_rows(n)))
  return np.array([[float(_from_stats(cross[i, j], _centred_products(cross[i, j], a["rows"],
                                                                     b["rows"], n),
                                      a, b, compare, n))
                    for j, b in enumerate(pb)] for i, a in enumerate(pa)])


# ------------------------------------------------------------------------- rsatoolbox interop

def to_rsatoolbox(rdms: Any, *, metric: str = "correlation", **descriptors):
  """Our RDM vectors ([M] or [K, M], e.g. `rdm(x)` per layer) as an `rsatoolbox.rdm.RDMs`.

  `dissimilarity_measure` is our metric name; for 'squared_euclidean' note that rsatoolbox's
  own 'euclidean' RDMs are ours divided by the number of features d. Extra keyword arguments
  go to `RDMs` (rdm_descriptors=..., pattern_descriptors=...). Needs rsatoolbox installed.
  """
  from rsatoolbox.rdm import RDMs  # optional dependency: only this function needs it
  vectors = np.atleast_2d(np.asarray(rdms, np.float64))
  return RDMs(dissimilarities=vectors, dissimilarity_measure=metric, **descriptors)


def from_rsatoolbox(rdms) -> np.ndarray:
  """An `rsatoolbox.rdm.RDMs` as our RDM vectors, [n_rdm, M] (the same upper-triangle order)."""
  return np.asarray(rdms.get_vectors())


# --------------------------------------------------------------------------------- registry

def _register_all():
  for metric in RDMS:
    for comp in COMPARATORS:
      register(Measure(
          name=f"rsa-rdm={metric}-compare={comp}-score",
          pair=functools.partial(_pair_fixed, metric=metric, compare=comp),
          prepare=functools.partial(_prepare_fixed, metric=metric, compare=comp),
          preparation=("RDM ranks" if comp in RANKED
                       else "centred features (Gram form)" if metric in GRAM_RDMS
                       else "RDM statistics (streamed)"),
          kind="similarity",
          properties=Properties(
              metric=False, symmetric=True,
              # Every RDM here is unchanged by permuting features; all comparators are scale
              # free; euclidean RDMs are also unchanged by rotations and translations, cosine
              # RDMs by rotations (the correlation RDM's row centring is not).
              invariances=("permutation", "isotropic_scaling") + (
                  ("orthogonal", "translation") if metric in ("euclidean", "squared_euclidean")
                  else ("orthogonal",) if metric == "cosine" else ())),
          aliases=(("rsa",) if (metric, comp) == ("correlation", "spearman") else ()),
          min_rows=3,
          matrix=functools.partial(_matrix_fixed, metric=metric, compare=comp),
          reference="Kriegeskorte et al. 2008; Nili et al. 2014; Diedrichsen et al. 2021; "
                    "anchor rsatoolbox 0.3.2 rdm.calc / rdm.compare",
      ))


def _prepare_fixed(x, *, metric, compare):
  return prepare(x, metric=metric, compare=compare)


def _pair_fixed(pa, pb, *, metric, compare):
  return pair(pa, pb, metric=metric, compare=compare)


def _matrix_fixed(layers_a, layers_b, *, metric, compare):
  return rsa_matrix(layers_a, layers_b, metric=metric, compare=compare)


_register_all()
