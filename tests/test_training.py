"""optax training of our ports and native checkpoints read back through from_pretrained."""
import numpy as np
import pytest
import transformers
from flax import nnx

from repsim_jax import training
from repsim_jax.models import loading, registry


def _tiny_vit():
  config = transformers.ViTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=32, image_size=8, patch_size=4)
  return config, registry.family("vit").build(config, rngs=nnx.Rngs(0), add_pooling_layer=False)


def test_classifier_learns_a_separable_task_and_evaluate_matches_numpy():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 2, 256).astype(np.int32)
  # class 1: bright top half; class 0: bright bottom half; plus noise
  x = rng.normal(0, 0.3, (256, 8, 8, 3)).astype(np.float32)
  x[y == 1, :4] += 1.0
  x[y == 0, 4:] += 1.0
  config, backbone = _tiny_vit()
  clf = training.Classifier(backbone, dim=16, num_classes=2, rngs=nnx.Rngs(1))
  history = training.fit(clf, training.classification_loss, (x[:192], y[:192]), steps=60,
                         batch_size=32, lr=3e-3, progress=None, eval_data=(x[192:], y[192:]))
  assert history["loss"][-10:].mean() < 0.5 * history["loss"][:5].mean()
  logits = np.asarray(clf(x[192:]))
  assert history["eval"]["accuracy"] == pytest.approx(np.mean(logits.argmax(-1) == y[192:]))
  assert history["eval"]["accuracy"] > 0.9


def test_next_pixel_targets_are_the_next_ids():
  config = transformers.ImageGPTConfig(vocab_size=5, n_positions=6, n_embd=8, n_layer=1, n_head=2)
  backbone = registry.family("imagegpt").build(config, rngs=nnx.Rngs(0))
  model = training.NextPixel(backbone, dim=8, vocab_size=5, rngs=nnx.Rngs(1))
  ids = np.array([[0, 1, 2, 3, 0, 1]], np.int32)
  logits = np.asarray(model(ids))
  assert logits.shape == (1, 6, 4)  # no output for the start token
  # Causality: changing id t changes no logit at positions <= t (position t predicts id t).
  changed = ids.copy()
  changed[0, 3] = 2
  other = np.asarray(model(changed))
  np.testing.assert_allclose(other[0, :4], logits[0, :4], atol=1e-6)
  assert not np.allclose(other[0, 4:], logits[0, 4:])
  loss, _ = training.next_pixel_loss(model, ids)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  assert float(loss) == pytest.approx(-np.mean(log_probs[0, np.arange(6), ids[0]]), rel=1e-5)


def test_native_checkpoint_round_trip(tmp_path):
  config, backbone = _tiny_vit()
  x = np.random.default_rng(0).normal(size=(3, 8, 8, 3)).astype(np.float32)
  before = backbone(x)
  pre = {"image_processor_type": "ViTImageProcessor", "size": {"height": 8, "width": 8}}
  path = loading.save_pretrained(backbone, config, tmp_path / "ckpt", preprocessor_config=pre,
                                 metadata={"note": "test"})
  loaded = loading.from_pretrained(path, cache_dir=tmp_path / "cache")
  after = loaded(x)
  assert loaded.pooler is None and not loaded.loaded_from_cache
  for name in before.blocks:
    np.testing.assert_array_equal(np.asarray(after.blocks[name]), np.asarray(before.blocks[name]))
  assert not (tmp_path / "cache").exists()  # nothing converted, nothing cached
  files = loading.weight_files(path)
  assert files[0].name == "empty.json" and len(files) > 1
  with pytest.raises(FileExistsError):
    loading.save_pretrained(backbone, config, path)
