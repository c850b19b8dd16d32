"""Low-level image features in JAX: Canny edge density, colour warmth, Sobel texture complexity.

Three per-image properties (Mahaut & Baroni 2026, §3.3), arrays in, arrays out, `vmap`ped over
images and scheduled for CPU caches in `batch_features` / `lowlevel_features`:

- **edge density**: fraction of pixels marked as edges by a Canny detector on the grey image. The
  detector reproduces `skimage.feature.canny` step by step (Gaussian smoothing with zero padding
  and bleed-over correction, Sobel gradients with reflected borders, bilinear non-maximum
  suppression, 8-connected hysteresis), so with the same `sigma` and thresholds the edge maps agree
  with scikit-image up to float rounding at threshold and suppression ties.
- **colour warmth**: mean over pixels of (red - blue), with channels scaled to [0, 1]; so it lies in
  [-1, 1], positive for warm (red / orange) images and negative for cold (blue) ones. A plain
  difference rather than a ratio keeps dark pixels, whose hue is noise, from dominating.
- **texture complexity**: population standard deviation (ddof=0) over pixels of the Sobel gradient
  magnitude of the grey image, exactly `np.std(skimage.filters.sobel(gray))`.

The grey image is `skimage.color.rgb2gray`: 0.2125 R + 0.7154 G + 0.0721 B on [0, 1] channels.
How neighbourhoods organise around these properties is `repsim_jax.analysis.category_sharing`.

References:
  Mahaut & Baroni 2026, "Similarity of Processing Steps in Vision Model Representations", §3.3,
    Figs. 3 and 14.
  Canny 1986, "A Computational Approach To Edge Detection", IEEE TPAMI 8:679-714.
  scikit-image `feature.canny` and `filters.sobel` (the reference implementations matched here).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from repsim_jax.progress import Progress

PROPERTIES = ("edge_density", "colour_warmth", "texture_complexity")
GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)  # skimage.color.rgb2gray (ITU-R BT.709 luma)


# ----------------------------------------------------------------------------- filters


@functools.lru_cache(maxsize=None)
def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> tuple[float, ...]:
  """Normalised 1-D Gaussian weights as `scipy.ndimage.gaussian_filter1d` builds them."""
  radius = int(truncate * float(sigma) + 0.5)
  x = np.arange(-radius, radius + 1, dtype=np.float64)
  phi = np.exp(-0.5 / float(sigma) ** 2 * x ** 2)
  return tuple(float(v) for v in phi / phi.sum())


def _edge_pad1(x: jax.Array) -> jax.Array:
  """Pads the last two axes by one pixel repeating the border, which for one pixel is scipy's
  "reflect" (numpy's "symmetric"): the border rule of `scipy.ndimage.sobel`."""
  return jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)], mode="edge")


def _sobel_pair_padded(p: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(`scipy.ndimage.sobel(x, axis=0)`, `scipy.ndimage.sobel(x, axis=1)`) over the last two axes
  of x, from p = x padded by one pixel ([.., H + 2, W + 2]; `_edge_pad1` for scipy's borders):
  derivative [-1, 0, 1] along the axis, smoothing [1, 2, 1] along the other."""
  h, w = p.shape[-2] - 2, p.shape[-1] - 2

  def tap(di: int, dj: int) -> jax.Array:
    return p[..., 1 + di:1 + di + h, 1 + dj:1 + dj + w]

  smooth = {-1: 1.0, 0: 2.0, 1: 1.0}
  d0 = sum((tap(1, dj) - tap(-1, dj)) * smooth[dj] for dj in (-1, 0, 1))
  d1 = sum((tap(di, 1) - tap(di, -1)) * smooth[di] for di in (-1, 0, 1))
  return d0, d1


def rgb_to_gray(images: jax.Array) -> jax.Array:
  """Luma as `skimage.color.rgb2gray`: [..., H, W, 3] in [0, 1] -> [..., H, W]."""
  r, g, b = GRAY_WEIGHTS
  return images[..., 0] * r + images[..., 1] * g + images[..., 2] * b


def to_unit_float(images) -> jax.Array:
  """uint8 images -> float32 / 255; float images are taken to be in [0, 1] already."""
  images = jnp.asarray(images)
  if jnp.issubdtype(images.dtype, jnp.integer):
    return images.astype(jnp.float32) / 255.0
  return images.astype(jnp.float32)


def _sobel_magnitude_padded(p: jax.Array) -> jax.Array:
  s0, s1 = _sobel_pair_padded(p)
  s0, s1 = s0 * 0.25, s1 * 0.25
  return jnp.sqrt((s0 * s0 + s1 * s1) * 0.5)


def sobel_magnitude(gray: jax.Array) -> jax.Array:
  """Sobel gradient magnitude, equal to `skimage.filters.sobel(gray)` (2-D, reflected borders).

  gray: [H, W] float. Returns [H, W]: sqrt((s_0^2 + s_1^2) / 2) with s_a the Sobel response along
  axis a normalised by 1/4 (smoothing weights [1, 2, 1] / 4).
  """
  return _sobel_magnitude_padded(_edge_pad1(gray))


# ----------------------------------------------------------------------------- canny


def _nonmaximum_suppression(isobel, jsobel, magnitude, low_threshold):
  """Bilinear non-maximum suppression as in skimage's `_nonmaximum_suppression_bilinear`.

  isobel, jsobel: [H - 2, W - 2], the gradients of the interior pixels; magnitude: [H, W]. The
  gradient direction picks one of four octant pairs; the magnitude must be >= the linear
  interpolation of the two neighbours on each side along the gradient. Border pixels (outside
  skimage's eroded all-ones mask) are never edges, so only the interior is computed; pixels below
  `low_threshold` are dropped. Returns the kept magnitudes of the interior, [H - 2, W - 2] (0 where
  suppressed).
  """
  h, wd = magnitude.shape[-2] - 2, magnitude.shape[-1] - 2

  def tap(di: int, dj: int) -> jax.Array:
    return magnitude[..., 1 + di:1 + di + h, 1 + dj:1 + dj + wd]

  m = tap(0, 0)
  ai, aj = jnp.abs(isobel), jnp.abs(jsobel)
  # same-sign gradients (both > 0 or both <= 0) vs opposite signs
  same = (isobel > 0) == (jsobel > 0)
  i_major = jnp.where(same, ai > aj, ai >= aj)  # which branch of each pair (skimage's tie rule)
  num = jnp.where(i_major, aj, ai)
  den = jnp.where(i_major, ai, aj)
  w = jnp.where(den > 0, num / jnp.where(den > 0, den, 1), 0)

  s = {(di, dj): tap(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)}
  # (neigh1_1, neigh1_2, neigh2_1, neigh2_2) for the four cases
  same_i = (s[1, 0], s[1, 1], s[-1, 0], s[-1, -1])
  same_j = (s[0, 1], s[1, 1], s[0, -1], s[-1, -1])
  opp_j = (s[0, 1], s[-1, 1], s[0, -1], s[1, -1])
  opp_i = (s[-1, 0], s[-1, 1], s[1, 0], s[1, -1])
  n11, n12, n21, n22 = (
      jnp.where(same, jnp.where(i_major, a, b), jnp.where(i_major, d, c))
      for a, b, c, d in zip(same_i, same_j, opp_j, opp_i))
  c_plus = n12 * w + n11 * (1 - w) <= m
  c_minus = n22 * w + n21 * (1 - w) <= m
  low = low_threshold if low_threshold > 0 else 1e-14
  keep = (m >= low) & c_plus & c_minus
  return jnp.where(keep, m, 0)


def _dilate8_padded(x: jax.Array) -> jax.Array:
  """3x3 binary dilation (8-connectivity) of bit planes [..., H + 2, W + 2] whose 1-pixel border is
  zero; returns the same shape (border zero again).

  Separable (rows, then columns), re-padding after each pass: keeping the state padded between
  steps lets XLA emit each pass as one plain loop over aligned slices, ~3.5x faster than padding a
  [.., H, W] state inside every step.
  """
  lead = [(0, 0)] * (x.ndim - 2)
  rows = x[..., :, :-2] | x[..., :, 1:-1] | x[..., :, 2:]  # [.., H + 2, W]
  rows = jnp.pad(rows, lead + [(0, 0), (1, 1)])
  cols = rows[..., :-2, :] | rows[..., 1:-1, :] | rows[..., 2:, :]  # [.., H, W + 2]
  return jnp.pad(cols, lead + [(1, 1), (0, 0)])


PLANE_DTYPE = jnp.uint8  # 8 images per bit plane; see `_hysteresis_bitplanes`
PLANE_BITS = 8


def _pack_bitplanes(x: jax.Array) -> jax.Array:
  """bool [b, H, W] -> uint8 [ceil(b / 8), H + 2, W + 2]: image k in bit k % 8 of plane k // 8,
  with a zero 1-pixel border (the state `_dilate8_padded` works on)."""
  b, h, w = x.shape
  planes = -(-b // PLANE_BITS)
  x = jnp.pad(x, ((0, planes * PLANE_BITS - b), (0, 0), (0, 0)))
  x = x.reshape(planes, PLANE_BITS, h, w).astype(PLANE_DTYPE)
  packed = functools.reduce(jnp.bitwise_or, [x[:, k] << k for k in range(PLANE_BITS)])  # one loop
  return jnp.pad(packed, ((0, 0), (1, 1), (1, 1)))


def _grow_bitplanes(cand: jax.Array, seed: jax.Array, steps_per_check: int = 4) -> jax.Array:
  """Geodesic dilation of `seed & cand` inside `cand` (packed planes from `_pack_bitplanes`) until
  no bit changes; all images of a plane advance together, one shift-OR-AND pass per step."""
  def grow(state):
    reached, _ = state
    new = reached
    for _ in range(steps_per_check):  # a few steps per convergence check: the check is a reduction
      new = _dilate8_padded(new) & cand
    return new, jnp.max(new ^ reached) != 0  # ~4x cheaper on CPU than jnp.any(new != reached)

  reached, _ = jax.lax.while_loop(lambda s: s[1], grow, (seed & cand, jnp.array(True)))
  return reached


def _unpack_bitplanes(packed: jax.Array, b: int) -> jax.Array:
  """Inverse of `_pack_bitplanes`: [planes, H + 2, W + 2] -> bool [b, H, W]."""
  bits = (PLANE_DTYPE(1) << jnp.arange(PLANE_BITS, dtype=PLANE_DTYPE))[None, :, None, None]
  unpacked = (packed[:, None, 1:-1, 1:-1] & bits) != 0
  return unpacked.reshape((-1,) + unpacked.shape[2:])[:b]


def _bitplane_means(packed: jax.Array, b: int) -> jax.Array:
  """Fraction of set pixels per image of packed planes (border excluded): -> float32 [b]."""
  h, w = packed.shape[-2] - 2, packed.shape[-1] - 2
  counts = [jnp.sum((packed >> k) & 1, axis=(-2, -1), dtype=jnp.int32) for k in range(PLANE_BITS)]
  return (jnp.stack(counts, axis=1).reshape(-1)[:b]).astype(jnp.float32) / (h * w)


def _hysteresis_bitplanes(candidates: jax.Array, strong: jax.Array) -> jax.Array:
  """Batched hysteresis: candidates, strong bool [B, H, W] -> bool [B, H, W].

  Packs 8 images into the bits of one uint8 per pixel, so one dilation step (shifts, ORs, one AND)
  advances 8 geodesic fronts at once, and loops until no bit changes. uint8 planes cost about the
  same per image-step as uint32 ones on CPU (4x as many lanes per vector) but a plane stops at
  the slowest of 8 images rather than of 32, so fewer steps run.
  """
  reached = _grow_bitplanes(_pack_bitplanes(candidates), _pack_bitplanes(strong))
  return _unpack_bitplanes(reached, candidates.shape[0])


@jax.custom_batching.custom_vmap
def hysteresis(candidates: jax.Array, strong: jax.Array) -> jax.Array:
  """Pixels of `candidates` 8-connected (through candidates) to a pixel of `strong`.

  candidates, strong: bool [H, W]. Equivalent to labelling the connected components of
  `candidates` (skimage does it with `ndi.label`) and keeping those holding a strong pixel;
  computed as geodesic dilation of `strong & candidates` inside `candidates` until it stops
  changing. Under `vmap` the images are packed 8 to a uint8 bit plane (see the vmap rule), which
  makes a step ~8x cheaper than on bool images.
  """
  return _hysteresis_bitplanes(candidates[None], strong[None])[0]


@hysteresis.def_vmap
def _hysteresis_vmap(axis_size, in_batched, candidates, strong):
  cand_b, strong_b = in_batched
  if not cand_b:
    candidates = jnp.broadcast_to(candidates, (axis_size,) + candidates.shape)
  if not strong_b:
    strong = jnp.broadcast_to(strong, (axis_size,) + strong.shape)
  if candidates.ndim != 3:  # nested vmap: flatten the outer batch dims, then restore them
    lead = candidates.shape[:-2]
    out = _hysteresis_bitplanes(candidates.reshape((-1,) + candidates.shape[-2:]),
                                strong.reshape((-1,) + strong.shape[-2:]))
    return out.reshape(lead + out.shape[-2:]), True
  return _hysteresis_bitplanes(candidates, strong), True


def _barrier(tree):
  return jax.lax.optimization_barrier(tree)


def _fence_on(token: jax.Array):
  """A fence that materialises its operands on XLA:CPU, keyed on a scalar bool `token`.

  XLA:CPU expands `optimization_barrier` before fusion, so it cannot stop a wide stencil from
  being recomputed inside every consumer (e.g. the grey image re-derived from uint8 RGB for each
  of 17 filter taps). A conditional is a fusion boundary that survives; both branches are the
  identity, so the value of `token` (any runtime scalar, unbatched under vmap) does not matter.
  """
  def fence(tree):
    return jax.lax.cond(token, lambda t: t, lambda t: jax.tree.map(lambda a: a + 0, t), tree)

  return fence


def _canny_candidates_padded(gray_padded, *, sigma, low_threshold, high_threshold, fence):
  """`canny_candidates` of gray from gray_padded = gray zero-padded by the Gaussian radius."""
  weights = gaussian_kernel1d(sigma)
  r = len(weights) // 2
  h, w = gray_padded.shape[-2] - 2 * r, gray_padded.shape[-1] - 2 * r
  # smoothed all-ones image under zero padding (skimage's bleed-over correction): known at trace
  ones_h = np.correlate(np.pad(np.ones(h), r), weights, mode="valid").astype(np.float32)
  ones_w = np.correlate(np.pad(np.ones(w), r), weights, mode="valid").astype(np.float32)
  bleed = ones_h[:, None] * ones_w[None, :] + np.finfo(np.float32).eps
  # separable Gaussian; each fence materialises a stage once (without them XLA recomputes the
  # wide stencils inside every consumer), and each stage writes its output already padded
  rows = fence(sum(gray_padded[..., t:t + h, :] * np.float32(wt) for t, wt in enumerate(weights)))
  smoothed = sum(rows[..., :, t:t + w] * np.float32(wt) for t, wt in enumerate(weights))
  smoothed = fence(_edge_pad1(smoothed / jnp.asarray(bleed)))  # [H + 2, W + 2]
  isobel, jsobel = _sobel_pair_padded(smoothed)
  magnitude = fence(jnp.sqrt(isobel * isobel + jsobel * jsobel))
  # the suppression needs the gradients of interior pixels only: recomputed from `smoothed` there
  # (6 taps each) rather than written and read back
  isobel, jsobel = _sobel_pair_padded(smoothed[..., 1:-1, 1:-1])
  kept = _nonmaximum_suppression(isobel, jsobel, magnitude, low_threshold)
  code = jnp.where(kept > 0, 1 + (kept >= high_threshold), 0).astype(jnp.uint8)
  return fence(jnp.pad(code, [(0, 0)] * (code.ndim - 2) + [(1, 1), (1, 1)]))


def _check_thresholds(low_threshold, high_threshold):
  if high_threshold < low_threshold:
    raise ValueError(f"high_threshold ({high_threshold}) < low_threshold ({low_threshold})")


def _canny_candidates(gray, *, sigma, low_threshold, high_threshold, fence=_barrier):
  if gray.ndim != 2:
    raise ValueError(f"gray: expected one [H, W] image, got shape {gray.shape}; vmap for batches")
  _check_thresholds(low_threshold, high_threshold)
  r = len(gaussian_kernel1d(sigma)) // 2
  return _canny_candidates_padded(jnp.pad(gray.astype(jnp.float32), r), sigma=sigma,
                                  low_threshold=low_threshold, high_threshold=high_threshold,
                                  fence=fence)


def canny_candidates(gray: jax.Array, *, sigma: float = 1.0, low_threshold: float = 0.1,
                     high_threshold: float = 0.2) -> jax.Array:
  """Canny up to (not including) hysteresis: uint8 [H, W], 0 = no edge, 1 = weak, 2 = strong.

  gray: [H, W] float in [0, 1]. Gaussian smoothing with zero padding divided by the smoothed
  all-ones image (skimage's bleed-over correction, + float eps); `scipy.ndimage.sobel` gradients
  (reflected borders); magnitude = hypot; bilinear non-maximum suppression with the 1-pixel border
  removed; survivors >= low_threshold are weak, >= high_threshold strong.
  """
  return _canny_candidates(gray, sigma=sigma, low_threshold=low_threshold,
                           high_threshold=high_threshold)


def _hysteresis_code(code: jax.Array) -> jax.Array:
  return hysteresis(code > 0, code == 2)


@functools.partial(jax.jit, static_argnames=("sigma", "low_threshold", "high_threshold"))
def canny(gray: jax.Array, *, sigma: float = 1.0, low_threshold: float = 0.1,
          high_threshold: float = 0.2) -> jax.Array:
  """Canny edge map of one grey image, matching `skimage.feature.canny` (mode="constant", no mask).

  gray: [H, W] float in [0, 1]. Thresholds are on the gradient magnitude of the smoothed image
  (skimage's defaults for float images: 0.1 and 0.2). Returns bool [H, W]. vmap it for batches.
  `canny_candidates` then `hysteresis`: weak pixels are kept if 8-connected to a strong one.
  """
  return _hysteresis_code(canny_candidates(gray, sigma=sigma, low_threshold=low_threshold,
                                           high_threshold=high_threshold))


# ----------------------------------------------------------------------------- per-image features


def colour_warmth(image: jax.Array) -> jax.Array:
  """Mean over pixels of (red - blue), channels in [0, 1]: image [H, W, 3] -> scalar in [-1, 1]."""
  return jnp.mean(image[..., 0] - image[..., 2])


def texture_complexity(gray: jax.Array) -> jax.Array:
  """Population std (ddof=0) of the Sobel gradient magnitude: gray [H, W] -> scalar."""
  return jnp.std(sobel_magnitude(gray))


def edge_density(gray: jax.Array, *, sigma: float = 1.0, low_threshold: float = 0.1,
                 high_threshold: float = 0.2) -> jax.Array:
  """Fraction of pixels on Canny edges: gray [H, W] -> scalar in [0, 1]."""
  edges = canny(gray, sigma=sigma, low_threshold=low_threshold, high_threshold=high_threshold)
  return jnp.mean(edges.astype(jnp.float32))


def image_features(image: jax.Array, *, sigma: float = 1.0, low_threshold: float = 0.1,
                   high_threshold: float = 0.2) -> jax.Array:
  """The three properties of one image: [H, W, 3] in [0, 1] -> [3] in the order of `PROPERTIES`."""
  gray = rgb_to_gray(image)
  return jnp.stack([
      edge_density(gray, sigma=sigma, low_threshold=low_threshold, high_threshold=high_threshold),
      colour_warmth(image),
      texture_complexity(gray),
  ])


def _gray_planes(image: jax.Array, fence) -> tuple[jax.Array, jax.Array]:
  """One RGB image [H, W, 3] (uint8 or float) -> (its channel planes [3, H, W] as float32 in
  [0, 255] or [0, 1], the scale to [0, 1]). The uint8 transpose is materialised first: reading
  the pixel-interleaved layout inside the float stencils defeats vectorisation (~10x slower)."""
  if jnp.issubdtype(image.dtype, jnp.integer):
    return fence(jnp.moveaxis(image, -1, 0)).astype(jnp.float32), np.float32(1 / 255)
  return fence(jnp.moveaxis(image.astype(jnp.float32), -1, 0)), np.float32(1)


def _chunk_features(images, *, sigma, low_threshold, high_threshold, fence):
  """[c, H, W, 3] -> (edge density, warmth, texture) [c] each: filters vmapped over the chunk, then
  one hysteresis loop over the chunk's packed bit planes, all while the chunk is in cache."""
  r = len(gaussian_kernel1d(sigma)) // 2

  def stage(image):
    planes, scale = _gray_planes(image, fence)
    wr, wg, wb = GRAY_WEIGHTS
    gray = (planes[0] * wr + planes[1] * wg + planes[2] * wb) * scale
    # for uint8 the sum is over integers, exact in float32 below 2**24 (224^2 * 255 = 1.3e7)
    warmth = jnp.mean(planes[0] - planes[2]) * scale
    # each consumer gets the grey image written once with the padding it needs
    code = _canny_candidates_padded(fence(jnp.pad(gray, r)), sigma=sigma,
                                    low_threshold=low_threshold, high_threshold=high_threshold,
                                    fence=fence)
    texture = jnp.std(_sobel_magnitude_padded(fence(_edge_pad1(gray))))
    return code, warmth, texture

  code, warmth, texture = jax.vmap(stage)(images)
  reached = _grow_bitplanes(_pack_bitplanes(code > 0), _pack_bitplanes(code == 2))
  return _bitplane_means(reached, images.shape[0]), warmth, texture


@functools.partial(jax.jit, static_argnames=("sigma", "low_threshold", "high_threshold", "chunk"))
def batch_features(images: jax.Array, *, sigma: float = 1.0, low_threshold: float = 0.1,
                   high_threshold: float = 0.2, chunk: int = PLANE_BITS) -> jax.Array:
  """`image_features` for a batch: images [B, H, W, 3] (uint8 or float in [0, 1]) -> [B, 3].

  The values of vmapping `image_features` (edge density up to a few pixels whose suppression or
  threshold test flips with the float rounding of a different fusion), scheduled for CPU caches:
  one loop (`lax.map`) over chunks of `chunk` images (default 8, one uint8 bit plane), each
  running the filters vmapped over the chunk and then the chunk's hysteresis, so intermediates
  stay in cache and no [B, H, W] array is ever written. uint8 images are converted per chunk.
  """
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images: expected [B, H, W, 3], got shape {images.shape}")
  _check_thresholds(low_threshold, high_threshold)
  b = images.shape[0]
  chunk = max(1, min(chunk, b))
  n_chunks = -(-b // chunk)
  padded = jnp.pad(images, ((0, n_chunks * chunk - b), (0, 0), (0, 0), (0, 0)))
  fence = _fence_on(images[0, 0, 0, 0] > 0)  # any unbatched runtime scalar
  step = functools.partial(_chunk_features, sigma=sigma, low_threshold=low_threshold,
                           high_threshold=high_threshold, fence=fence)
  density, warmth, texture = jax.lax.map(step, padded.reshape((n_chunks, chunk) + images.shape[1:]))
  return jnp.stack([density, warmth, texture], axis=-1).reshape(n_chunks * chunk, 3)[:b]


def lowlevel_features(images, *, sigma: float = 1.0, low_threshold: float = 0.1,
                      high_threshold: float = 0.2, batch_size: int = 64,
                      progress: Progress | None = None) -> dict[str, np.ndarray]:
  """Edge density, colour warmth and texture complexity of every image.

  images: [n, H, W, 3] uint8 or float in [0, 1] (numpy, a memmap or anything sliceable; read
  `batch_size` images at a time). Canny uses `sigma`, `low_threshold`, `high_threshold` on the
  smoothed grey image (scikit-image's conventions). Returns {property: float32 [n]}.
  """
  n = len(images)
  if n == 0:
    raise ValueError("images: expected at least one image, got 0")
  batch_size = min(batch_size, n)
  out = []
  for start in range(0, n, batch_size):
    batch = np.asarray(images[start:start + batch_size])
    m = len(batch)
    if m < batch_size:  # pad the ragged last batch: one compiled shape for the whole run
      batch = np.concatenate([batch, np.zeros((batch_size - m,) + batch.shape[1:], batch.dtype)])
    out.append(np.asarray(batch_features(batch, sigma=sigma, low_threshold=low_threshold,
                                         high_threshold=high_threshold))[:m])
    if progress is not None:
      progress.update(m)
  values = np.concatenate(out)
  return {name: values[:, i] for i, name in enumerate(PROPERTIES)}
