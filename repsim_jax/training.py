"""Training our NNX ports with optax: a classification head or a next-pixel head on a backbone.

Used to make small models whose training objective is known (the shapes-world demo); the trained
backbone is then saved with `models.loading.save_pretrained` and read back through the normal
model path, so every analysis sees it exactly like a downloaded checkpoint. The heads are not
saved (the analyses read block outputs, as for the pretrained backbones).

  model = registry.family("vit").build(config, rngs=nnx.Rngs(0))
  clf = Classifier(model, dim=config.hidden_size, num_classes=5, rngs=nnx.Rngs(1))
  history = fit(clf, classification_loss, (pixels, labels), steps=600, batch_size=64)

One step is one jit-compiled function of pure pytrees (parameters, optimiser state, batch):
AdamW with linear warm-up and cosine decay, global-norm clipping; batches are drawn from the
in-memory arrays with a seeded permutation per epoch.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from repsim_jax.progress import Progress


class Classifier(nnx.Module):
  """backbone(x) -> pooled features -> linear logits [B, K].

  Pooled features: `pooler_output` when the backbone has one (ConvNeXt: layer norm of the mean
  over positions, as ConvNextForImageClassification), else the first token of
  `last_hidden_state` (ViT without pooler: the layer-normed CLS token, as
  ViTForImageClassification). pool="mean": the mean over all tokens of `last_hidden_state`
  (trains faster for small ViTs; the pooling used by DINOv2 / BEiT heads).
  """

  def __init__(self, backbone: nnx.Module, *, dim: int, num_classes: int, rngs: nnx.Rngs,
               pool: str = "default"):
    if pool not in ("default", "mean"):
      raise ValueError(f"Classifier: pool {pool!r}; expected 'default' or 'mean'")
    self.backbone = backbone
    self.pool = pool
    self.head = nnx.Linear(dim, num_classes, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    out = self.backbone(x)
    if self.pool == "mean":  # mean over every token of the final (normed) sequence
      pooled = jnp.mean(out.last_hidden_state, axis=1)
    elif out.pooler_output is not None:
      pooled = out.pooler_output
    else:
      pooled = out.last_hidden_state[:, 0]
    return self.head(pooled)


class NextPixel(nnx.Module):
  """ImageGPT-style causal model: ids [B, T] -> logits [B, T, vocab - 1] for the next id.

  The input is the id sequence shifted right behind the start token (`imagegpt.prepend_sos`), so
  position t predicts id t from ids < t, as ImageGPTForCausalImageModeling (whose head, like this
  one, has no bias and no output for the start token).
  """

  def __init__(self, backbone: nnx.Module, *, dim: int, vocab_size: int, rngs: nnx.Rngs):
    self.backbone = backbone
    self.vocab_size = vocab_size
    self.head = nnx.Linear(dim, vocab_size - 1, use_bias=False, rngs=rngs)

  def __call__(self, ids: jax.Array) -> jax.Array:
    sos = jnp.full((ids.shape[0], 1), self.vocab_size - 1, ids.dtype)
    shifted = jnp.concatenate([sos, ids[:, :-1]], axis=1)
    return self.head(self.backbone(shifted).last_hidden_state)


def classification_loss(model: Classifier, x: jax.Array, y: jax.Array):
  """Mean softmax cross-entropy and accuracy of a batch."""
  logits = model(x)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == y)}


def next_pixel_loss(model: NextPixel, ids: jax.Array):
  """Mean next-id cross-entropy (nats per pixel) and next-id accuracy of a batch."""
  logits = model(ids)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, ids).mean()
  return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == ids)}


def _optimizer(steps: int, lr: float, weight_decay: float, warmup: float):
  schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup_steps=max(1, int(warmup * steps)),
                                                decay_steps=steps, end_value=lr * 0.02)
  return optax.chain(optax.clip_by_global_norm(1.0),
                     optax.adamw(schedule, weight_decay=weight_decay))


def fit(model: nnx.Module, loss_fn: Callable[..., tuple[jax.Array, dict]],
        data: Sequence[np.ndarray], *, steps: int, batch_size: int, lr: float = 2e-3,
        weight_decay: float = 0.05, warmup: float = 0.1, seed: int = 0,
        progress: Callable[[str], None] | None = print, name: str = "train",
        eval_data: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
  """Trains `model` in place on `data` (arrays with the same first dim) for `steps` steps.

  loss_fn(model, *batch) -> (scalar loss, {metric: scalar}). warmup: fraction of the steps with a
  linear learning-rate warm-up (then cosine decay to 2 % of lr). eval_data: arrays evaluated once at
  the end (in batches of `batch_size`). Returns {"loss": [steps] per-step losses, "<metric>":
  [steps], "seconds": wall time, "eval": {"loss": ..., metric: ...} when eval_data is given}.
  """
  n = len(data[0])
  if any(len(a) != n for a in data):
    raise ValueError(f"fit: data arrays have different lengths {[len(a) for a in data]}")
  if batch_size > n:
    raise ValueError(f"fit: batch_size {batch_size} exceeds the {n} training examples")
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = _optimizer(steps, lr, weight_decay, warmup)
  opt_state = tx.init(params)

  def loss_of(params, rest, *batch):
    return loss_fn(nnx.merge(graphdef, params, rest), *batch)

  @jax.jit
  def step(params, opt_state, rest, *batch):
    (loss, metrics), grads = jax.value_and_grad(loss_of, has_aux=True)(params, rest, *batch)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, metrics

  rng = np.random.default_rng(seed)
  order, pos = rng.permutation(n), 0
  history: dict[str, list[float]] = {"loss": []}
  bar = Progress(name, steps, unit="steps", every_s=10.0, log=progress) if progress else None
  start = time.perf_counter()
  for _ in range(steps):
    if pos + batch_size > n:
      order, pos = rng.permutation(n), 0
    idx = np.sort(order[pos:pos + batch_size])
    pos += batch_size
    params, opt_state, loss, metrics = step(params, opt_state, rest, *(a[idx] for a in data))
    history["loss"].append(loss)
    for k, v in metrics.items():
      history.setdefault(k, []).append(v)
    if bar is not None:
      bar.update(1, loss=round(float(loss), 4))
  out: dict[str, Any] = {k: np.asarray(jax.device_get(v), np.float64) for k, v in history.items()}
  out["seconds"] = time.perf_counter() - start
  nnx.update(model, params)
  if eval_data is not None:
    out["eval"] = evaluate(model, loss_fn, eval_data, batch_size=batch_size)
  return out


def evaluate(model: nnx.Module, loss_fn, data: Sequence[np.ndarray], *,
             batch_size: int) -> dict[str, float]:
  """Example-weighted mean of loss_fn's loss and metrics over `data`, in batches."""
  graphdef, state = nnx.split(model)

  @jax.jit
  def batch_metrics(state, *batch):
    loss, metrics = loss_fn(nnx.merge(graphdef, state), *batch)
    return {"loss": loss, **metrics}

  n = len(data[0])
  sums: dict[str, float] = {}
  for start in range(0, n, batch_size):
    batch = [a[start:start + batch_size] for a in data]  # a short last batch compiles once more
    m = {k: float(v) for k, v in batch_metrics(state, *batch).items()}
    for k, v in m.items():
      sums[k] = sums.get(k, 0.0) + v * len(batch[0])
  return {k: v / n for k, v in sums.items()}
