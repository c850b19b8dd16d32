"""ImageGPT port vs transformers' torch ImageGPTModel, every hidden state, block and sublayer.

Tiny random torch models with every parameter perturbed (so the RMS-norm weights and biases are
not trivial), saved with save_pretrained and loaded with from_pretrained. float32, rel <= 1e-5
(measured: ~6e-7).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from repsim_jax.models import from_pretrained, imagegpt, jit_forward, parity  # noqa: E402
from torch_parity import perturb_  # noqa: E402  (tests/helpers)

RTOL = 1e-5


def _tiny_config(**overrides):
  base = dict(vocab_size=33, n_positions=16, n_embd=32, n_layer=2, n_head=4,
              layer_norm_epsilon=1e-5)
  return transformers.ImageGPTConfig(**{**base, **overrides})


def _save(tmp_path, config, *, cls=None, seed=0):
  torch.manual_seed(seed)
  model = perturb_((cls or transformers.ImageGPTModel)(config).eval(), seed=seed, scale=0.2)
  model.save_pretrained(tmp_path)
  return model


def _ids(config, batch=2, seed=0):
  # Cluster ids only, as the HF processor returns; the SOS id appears in test_sos below.
  return np.random.default_rng(seed).integers(0, config.vocab_size - 1, (batch, config.n_positions))


def _check(torch_model, ours, config, ids, *, what):
  out = jit_forward(ours, sublayers=True)(jnp.asarray(ids))
  reference = parity.run_torch(torch_model, torch.from_numpy(np.array(ids)),
                               imagegpt.torch_hooks(config, sublayers=True))
  assert len(out.hidden_states) == config.n_layer + 1
  rows = parity.compare(parity.flatten_output(out), reference, rtol=RTOL)
  assert len(rows) == (config.n_layer + 1) + 1 + 1 + 5 * config.n_layer
  parity.assert_close(rows, what=what)
  return out


@pytest.mark.parametrize("overrides", [
    {},
    # the GPT-2 options ImageGPT inherits: per-layer logit scaling, upcast path, n_inner, gelu
    {"scale_attn_by_inverse_layer_idx": True, "reorder_and_upcast_attn": True, "n_inner": 48,
     "activation_function": "gelu"},
], ids=["default", "options"])
def test_matches_torch(tmp_path, overrides):
  config = _tiny_config(**overrides)
  torch_model = _save(tmp_path, config)
  ours = from_pretrained(tmp_path, use_cache=False)
  out = _check(torch_model, ours, config, _ids(config), what=f"imagegpt {overrides}")
  # blocks are the raw block outputs; the last hidden state is ln_f of the last one
  np.testing.assert_array_equal(out.blocks["embeddings"], out.hidden_states[0])
  np.testing.assert_array_equal(out.blocks["block_00"], out.hidden_states[1])


def test_sos_and_causal_model_checkpoint(tmp_path):
  """A causal-LM checkpoint (weights under 'transformer.', lm_head ignored), SOS-first ids,
  causality, and a sequence shorter than n_positions."""
  config = _tiny_config()
  lm = _save(tmp_path, config, cls=transformers.ImageGPTForCausalImageModeling, seed=1)
  # hub checkpoints also store the causal-mask buffers; they must be skipped, not rejected
  from safetensors.numpy import load_file, save_file
  weights = load_file(tmp_path / "model.safetensors")
  weights["transformer.h.0.attn.bias"] = np.tril(np.ones((1, 1, 16, 16), bool))
  weights["transformer.h.0.attn.masked_bias"] = np.array(-1e4, np.float32)
  save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
  ours = from_pretrained(tmp_path, use_cache=False)
  ids = np.asarray(imagegpt.prepend_sos(_ids(config, seed=3), config))
  assert (ids[:, 0] == config.vocab_size - 1).all() and ids.shape[1] == config.n_positions
  _check(lm.transformer, ours, config, ids, what="imagegpt causal-LM checkpoint, SOS")
  # causality: changing the last token leaves every earlier position untouched
  changed = ids.copy()
  changed[:, -1] = (changed[:, -1] + 1) % (config.vocab_size - 1)
  forward = jit_forward(ours)
  a, b = forward(jnp.asarray(ids)).last_hidden_state, forward(jnp.asarray(changed)).last_hidden_state
  np.testing.assert_array_equal(a[:, :-1], b[:, :-1])
  assert not np.allclose(a[:, -1], b[:, -1])
  short = ids[:, :7].copy()
  out = forward(jnp.asarray(short))
  with torch.no_grad():
    want = lm.transformer(torch.from_numpy(short)).last_hidden_state.numpy()
  np.testing.assert_allclose(out.last_hidden_state, want, rtol=0, atol=RTOL * np.abs(want).max())


def test_bad_inputs():
  config = _tiny_config()
  model = nnx.eval_shape(lambda: imagegpt.build(config, rngs=nnx.Rngs(0)))  # checks come first
  with pytest.raises(TypeError, match="integer colour-cluster ids"):
    model(jnp.zeros((1, 4), jnp.float32))
  with pytest.raises(ValueError, match=r"must lie in \[0, 33\)"):
    model(jnp.full((1, 4), 33))
  with pytest.raises(ValueError, match="exceeds n_positions 16"):
    model(jnp.zeros((1, 17), jnp.int32))
  with pytest.raises(ValueError, match=r"\[batch, seq_len\]"):
    model(jnp.zeros((4,), jnp.int32))


@pytest.mark.slow
@pytest.mark.parametrize("size", ["small", "large"])
def test_full_size_random_weights(size):
  """ImageGPT-S (24 x 512) / -L (48 x 1536) at full length (1024 tokens), random weights, one
  image: every hidden state within 1e-5 of torch (run with --runslow; -L needs ~25 GB RAM)."""
  from repsim_jax.models import load_params
  dims = {"small": (512, 24, 8), "large": (1536, 48, 16)}[size]
  config = transformers.ImageGPTConfig(n_embd=dims[0], n_layer=dims[1], n_head=dims[2])
  torch.manual_seed(0)
  torch_model = perturb_(transformers.ImageGPTModel(config).eval(), scale=0.02)
  params = imagegpt.convert({k: v.numpy() for k, v in torch_model.state_dict().items()}, config)
  ours = load_params(nnx.eval_shape(lambda: imagegpt.build(config, rngs=nnx.Rngs(0))), params)
  ids = _ids(config, batch=1)
  out = jit_forward(ours)(jnp.asarray(ids))
  reference = parity.run_torch(torch_model, torch.from_numpy(ids), {})
  rows = parity.compare(parity.flatten_output(out), reference, rtol=RTOL)
  print(f"imagegpt-{size}: max rel {max(r.rel for r in rows):.2e}")
  parity.assert_close(rows, what=f"imagegpt-{size}")
