r"""One command for accelerator figures: every kernel against what a user would run instead, on
the same device, each printed as a ratio measured in this run.

  python benchmarks/accelerator_suite.py              # one GPU / TPU: under 8 minutes
  python benchmarks/accelerator_suite.py --scale=tiny  # seconds, on any CPU (the test runs it)

Without an accelerator it runs on the CPU at --scale=cpu (smaller sizes, said in its output).
Sections, each with its sizes in the line it prints:

  matmul       the anchor: plain [n, n] x [n, n] matmul, float32 at precision "highest" (what
               the metric kernels use) and bfloat16, in jax and in torch (TF32 off), TFLOP/s;
  II pair      `repsim_jax.information_imbalance_pair` vs a blocked torch implementation of the
               same exact formula (the squared-distance matmul per row block, self excluded,
               top-k neighbours in A, rank = 1 + #closer in B), written below as a user would;
  II matrix    `information_imbalance_matrix` over L x L layers vs the same torch code with each
               layer's neighbour lists computed once and every B block reused for all A layers;
  extraction   images/s of our ViT-B/16 port vs transformers torch (random weights, same batch,
               float32, every hidden state mean-pooled and copied to the host);
  CKA          minibatch CKA over L x L layers vs the per-pair torch loop of bench_cka.py;
  probes       per-class binary probes (classes x layers) vs scikit-learn's loop (CPU, a timed
               subset extrapolated as in bench_probes.py);
  TFLOP/s      each II run's distance work (2 N^2 d per layer pass) against the plain matmul.

Needs torch and scikit-learn (`pip install -e ".[test]"`; on a CUDA machine a CUDA torch).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Callable

import numpy as np
from absl import app, flags, logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

_SCALE = flags.DEFINE_enum("scale", None, ["accelerator", "cpu", "tiny"],
                           "problem sizes (default: accelerator if jax has one, else cpu)")
_SECTIONS = flags.DEFINE_list("sections",
                              ["matmul", "ii_pair", "ii_matrix", "extraction", "cka", "probes"],
                              "which sections to run")

SIZES = {  # per scale: what fits in ~8 min on one H200 / a few min on 2 CPU cores / seconds
    "accelerator": dict(matmul=8192, ii_n=20_000, ii_d=1536, ii_layers=24, ii_matrix_n=10_000,
                        ii_matrix_d=1024, vit="base", batch=64, batches=20, cka_layers=24,
                        cka_n=10_240, cka_d=768, cka_batch=1024, probe_classes=1000,
                        probe_layers=40, probe_dim=512, sklearn_probes=200),
    "cpu": dict(matmul=2048, ii_n=4000, ii_d=512, ii_layers=6, ii_matrix_n=2000,
                ii_matrix_d=256, vit="base", batch=8, batches=3, cka_layers=8, cka_n=4096,
                cka_d=256, cka_batch=1024, probe_classes=100, probe_layers=8, probe_dim=128,
                sklearn_probes=40),
    "tiny": dict(matmul=256, ii_n=300, ii_d=32, ii_layers=3, ii_matrix_n=300, ii_matrix_d=24,
                 vit="tiny", batch=4, batches=2, cka_layers=3, cka_n=256, cka_d=16,
                 cka_batch=64, probe_classes=6, probe_layers=2, probe_dim=16, sklearn_probes=6),
}


# ----------------------------------------------------------------------------- timing


def _sync_torch(torch):
  if torch.cuda.is_available():
    torch.cuda.synchronize()


def timed(fn: Callable[[], object], *, repeats: int = 3, sync: Callable[[object], None] = None):
  """(median seconds of `repeats` calls after one warm-up call, last result)."""
  result = fn()
  if sync is not None:
    sync(result)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    result = fn()
    if sync is not None:
      sync(result)
    times.append(time.perf_counter() - start)
  return sorted(times)[len(times) // 2], result


def _block(x):
  import jax
  jax.block_until_ready(x)


# ----------------------------------------------------------------------------- torch anchors


def torch_sq_distances(torch, x, sq, rows):
  """Squared euclidean distances [len(rows), n] of rows of x to every point, self at +inf."""
  d = sq[rows, None] - 2.0 * (x[rows] @ x.T) + sq[None, :]
  d[torch.arange(len(rows), device=x.device), rows] = float("inf")
  return d


def torch_imbalance_matrix(torch, layers_a, layers_b, *, k: int = 1, block: int = 1024):
  """Delta(A_i -> B_j) for every pair, DADApy's conventions (1-based ranks, ties "min"): what a
  user writes in torch, blocked over query rows so memory stays O(block * n). Each A layer's
  neighbour lists are computed once; each B block once, and counted for every A layer."""
  n = layers_a[0].shape[0]
  sq = lambda x: (x * x).sum(1)
  neighbours = []
  for a in layers_a:
    sa, nn = sq(a), []
    for start in range(0, n, block):
      rows = torch.arange(start, min(n, start + block), device=a.device)
      nn.append(torch_sq_distances(torch, a, sa, rows).topk(k, largest=False).indices)
    neighbours.append(torch.cat(nn))  # [n, k]
  out = np.zeros((len(layers_a), len(layers_b)))
  for j, b in enumerate(layers_b):
    sb = sq(b)
    totals = torch.zeros(len(layers_a), dtype=torch.int64, device=b.device)
    for start in range(0, n, block):
      rows = torch.arange(start, min(n, start + block), device=b.device)
      d = torch_sq_distances(torch, b, sb, rows)
      for i, nn in enumerate(neighbours):
        picked = d.gather(1, nn[rows])  # [block, k]
        closer = (d[:, None, :] < picked[:, :, None]).sum(-1)
        totals[i] += (closer + 1).sum()
    out[:, j] = 2.0 / n * totals.cpu().numpy() / (n * k)
  return out


# ----------------------------------------------------------------------------- sections


def section_matmul(s, torch, tdev):
  import jax
  import jax.numpy as jnp
  n = s["matmul"]
  rng = np.random.default_rng(0)
  a = rng.standard_normal((n, n), dtype=np.float32)
  out = {}
  for name, dtype in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16)):
    x = jnp.asarray(a, dtype)
    f = jax.jit(lambda u: jnp.dot(u, u, precision="highest"))
    t, _ = timed(lambda: f(x), sync=_block)
    xt = torch.from_numpy(a).to(tdev, getattr(torch, name))
    tt, _ = timed(lambda: xt @ xt, sync=lambda _: _sync_torch(torch))
    out[name] = 2 * n ** 3 / t / 1e12
    print(f"matmul {n}^3 {name}: jax {out[name]:.2f} TFLOP/s, torch {2 * n ** 3 / tt / 1e12:.2f} "
          f"TFLOP/s = {tt / t:.2f}x (jax over torch)")
  return out["float32"]


def _layers(n, d, count, seed=0):
  """count [n, d] float32 layers sharing a latent, drifting with depth (real II structure)."""
  rng = np.random.default_rng(seed)
  z = rng.standard_normal((n, 32)).astype(np.float32)
  out, mix = [], rng.standard_normal((32, d)).astype(np.float32)
  for _ in range(count):
    mix = mix + 0.3 * rng.standard_normal((32, d)).astype(np.float32)
    out.append(np.tanh(z @ mix / 6) + 0.1 * rng.standard_normal((n, d)).astype(np.float32))
  return out


def section_ii(s, torch, tdev, matmul_tflops, *, matrix: bool):
  import repsim_jax
  if matrix:
    n, d, L = s["ii_matrix_n"], s["ii_matrix_d"], s["ii_layers"]
    layers = _layers(n, d, L)
    ours_fn = lambda: repsim_jax.information_imbalance_matrix(layers, layers, check_duplicates=False)
    passes, what = L, f"II matrix {L}x{L} layers, N={n}, d={d}"
  else:
    n, d = s["ii_n"], s["ii_d"]
    layers = _layers(n, d, 2)
    ours_fn = lambda: np.array(repsim_jax.information_imbalance_pair(*layers))
    passes, what = 2, f"II pair both directions, N={n}, d={d}"
  t_ours, ours = timed(ours_fn, repeats=1)
  on_dev = [torch.from_numpy(x).to(tdev) for x in layers]
  if matrix:
    torch_fn = lambda: torch_imbalance_matrix(torch, on_dev, on_dev)
  else:
    torch_fn = lambda: np.array([torch_imbalance_matrix(torch, on_dev[:1], on_dev[1:])[0, 0],
                                 torch_imbalance_matrix(torch, on_dev[1:], on_dev[:1])[0, 0]])
  t_torch, ref = timed(torch_fn, repeats=1, sync=lambda _: _sync_torch(torch))
  flops = passes * 2.0 * n * n * d
  tflops = flops / t_ours / 1e12
  print(f"{what}: ours {t_ours:.2f} s vs blocked torch {t_torch:.2f} s = {t_torch / t_ours:.2f}x; "
        f"max |ours - torch| {np.max(np.abs(np.asarray(ours) - ref)):.1e} (torch has no float64 "
        f"re-ranking of near-ties); distance work {tflops:.3f} TFLOP/s = "
        f"{tflops / matmul_tflops:.0%} of the plain float32 matmul")


def _vit_pair(scale: str, workdir: str):
  """(our port, torch model) of a ViT with the same random weights (save_pretrained + ours)."""
  import torch
  import transformers
  from repsim_jax.models import from_pretrained
  config = transformers.ViTConfig() if scale == "base" else transformers.ViTConfig(
      hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
      image_size=32, patch_size=8)
  torch.manual_seed(0)
  model = transformers.ViTModel(config, add_pooling_layer=False).eval()
  model.save_pretrained(workdir)
  return from_pretrained(workdir, use_cache=False), model, config.image_size


def section_extraction(s, torch, tdev):
  import jax
  import jax.numpy as jnp
  from repsim_jax.models import jit_forward
  with tempfile.TemporaryDirectory() as tmp:
    ours, model, size = _vit_pair(s["vit"], tmp)
  model = model.to(tdev)
  forward = jit_forward(ours)
  pooled = jax.jit(lambda x: jnp.stack([h[:, 1:].mean(1) for h in forward(x).hidden_states]))
  b = s["batch"]
  x = np.random.default_rng(0).standard_normal((b, size, size, 3)).astype(np.float32)
  xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(tdev)

  def torch_step():
    with torch.inference_mode():
      hidden = model(xt, output_hidden_states=True).hidden_states
      return torch.stack([h[:, 1:].mean(1) for h in hidden]).cpu().numpy()

  jx = jax.device_put(x)
  t_ours, a = timed(lambda: np.asarray(pooled(jx)), repeats=s["batches"])
  t_torch, r = timed(torch_step, repeats=s["batches"])
  rel = np.max(np.abs(a - r)) / np.max(np.abs(r))
  print(f"extraction ViT ({s['vit']}, {size}px), batch {b}, every hidden state pooled to host: "
        f"ours {b / t_ours:.1f} img/s vs transformers torch {b / t_torch:.1f} img/s = "
        f"{t_torch / t_ours:.2f}x (max rel diff {rel:.1e})")


def section_cka(s, torch, tdev):
  import repsim_jax
  from bench_cka import SyntheticLayer, torch_per_pair
  L, n, d, b = s["cka_layers"], s["cka_n"], s["cka_d"], s["cka_batch"]
  layers = [SyntheticLayer(n, d, l)[0:n] for l in range(L)]
  t_ours, ours = timed(lambda: repsim_jax.cka_matrix(layers, layers, batch_size=b), repeats=1)
  pairs = [(i, j) for i in range(L) for j in range(L)][:max(L, 24)]
  t_pairs, ref = timed(lambda: torch_per_pair(layers, layers, pairs, b, device=tdev), repeats=1,
                       sync=lambda _: _sync_torch(torch))
  t_torch = t_pairs * L * L / len(pairs)
  diff = max(abs(ours[i, j] - v) for (i, j), v in ref.items())
  print(f"minibatch CKA {L}x{L}, N={n}, d={d}, batch {b}: ours {t_ours:.2f} s vs torch per-pair "
        f"loop {t_torch:.2f} s ({len(pairs)} pairs timed, scaled) = {t_torch / t_ours:.1f}x; "
        f"max diff {diff:.1e}")


def section_probes(s):
  import jax
  from bench_probes import sklearn_probe_loop, synthetic_layers
  from repsim_jax.analysis import logistic_probes
  classes, L, dim = s["probe_classes"], s["probe_layers"], s["probe_dim"]
  labels = np.repeat(np.arange(classes), 50)
  features = synthetic_layers(jax.random.key(0), labels, L, dim)
  splits = logistic_probes.balanced_binary_splits(labels, seed=0)
  t_ours, acc = timed(lambda: logistic_probes.class_probe_accuracy(features, labels, splits=splits),
                      repeats=1)
  subset = np.random.default_rng(1).choice(classes * L, s["sklearn_probes"], replace=False)
  ref, per_probe, _ = sklearn_probe_loop(np.asarray(features), splits, subset, classes)
  t_sklearn = per_probe * classes * L
  print(f"probes {classes} classes x {L} layers (d={dim}): ours {t_ours:.2f} s vs scikit-learn "
        f"loop {t_sklearn:.1f} s on the CPU (extrapolated from {len(subset)}) = "
        f"{t_sklearn / t_ours:.1f}x; accuracy {acc.reshape(-1)[subset].mean():.3f} vs "
        f"{ref.mean():.3f} on that subset")


def main(argv):
  del argv
  import jax
  import torch
  import transformers
  logging.set_verbosity(logging.WARNING)  # the kernels' own progress lines would interleave
  transformers.utils.logging.disable_progress_bar()
  torch.backends.cuda.matmul.allow_tf32 = False  # exact float32, as our "highest" precision
  torch.backends.cudnn.allow_tf32 = False
  accelerated = jax.default_backend() != "cpu"
  scale = _SCALE.value or ("accelerator" if accelerated else "cpu")
  s = SIZES[scale]
  tdev = "cuda" if torch.cuda.is_available() else "cpu"
  print(f"accelerator suite, scale {scale}: jax {jax.__version__} on {jax.devices()[0].device_kind} "
        f"({jax.device_count()} devices), torch {torch.__version__} on {tdev}"
        + ("" if accelerated else "; no accelerator: CPU sizes, ratios are CPU figures"))
  start = time.perf_counter()
  sections = set(_SECTIONS.value)
  matmul = section_matmul(s, torch, tdev) if "matmul" in sections else float("nan")
  if "ii_pair" in sections:
    section_ii(s, torch, tdev, matmul, matrix=False)
  if "ii_matrix" in sections:
    section_ii(s, torch, tdev, matmul, matrix=True)
  if "extraction" in sections:
    section_extraction(s, torch, tdev)
  if "cka" in sections:
    section_cka(s, torch, tdev)
  if "probes" in sections:
    section_probes(s)
  print(f"accelerator suite done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
  app.run(main)
