"""experiments.compare_torch end to end on a tiny ImageGPT checkpoint (with its preprocessor):
exit status 0 on a faithful port, 1 when one converted parameter is corrupted, and the table
names exactly the tensors downstream of the corruption."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from torch_parity import perturb_  # noqa: E402

def _tiny_imagegpt(path):
  torch.manual_seed(0)
  config = transformers.ImageGPTConfig(vocab_size=33, n_positions=16, n_embd=32, n_layer=2, n_head=4)
  perturb_(transformers.ImageGPTModel(config), scale=0.2).save_pretrained(path)
  rng = np.random.default_rng(0)
  (path / "preprocessor_config.json").write_text(json.dumps({
      "image_processor_type": "ImageGPTImageProcessor", "size": {"height": 4, "width": 4},
      "clusters": rng.uniform(-1, 1, (32, 3)).tolist()}))


def _run_tool(argv):
  """The tool as `python -m experiments.compare_torch ...` runs it: absl parses argv and exits
  with main's status (in-process, to keep the test fast)."""
  from absl import app, flags

  from experiments import compare_torch
  flags.FLAGS.unparse_flags()
  with pytest.raises(SystemExit) as exit_info:
    app.run(compare_torch.main, argv=["compare_torch", *argv])
  return exit_info.value.code


def test_passes_on_faithful_checkpoint(tmp_path, capsys):
  _tiny_imagegpt(tmp_path / "ckpt")
  status = _run_tool([f"--model={tmp_path / 'ckpt'}", "--n_images=2", "--sublayers",
                      "--image_size=24", f"--cache_dir={tmp_path / 'cache'}"])
  out = capsys.readouterr().out
  assert status == 0, out
  assert "ImageGPTImageProcessor" in out and "block_01.attn_probs" in out
  # 3 hidden states + last_hidden_state + embeddings + 2 blocks * (block + 4 sublayers)
  assert "15/15 within rtol=0.0001" in out, out


def test_corrupted_parameter_exits_nonzero(tmp_path, capsys, monkeypatch):
  """One converted weight of block 1 off by 0.05 (a converter bug the tool must catch): the
  embeddings and block 0 still match, block 1 and everything after it fail."""
  from repsim_jax.models import imagegpt
  _tiny_imagegpt(tmp_path / "ckpt")
  convert = imagegpt.convert

  def corrupted(state_dict, config):
    params = convert(state_dict, config)
    fc1 = params["layers"][1]["mlp"]["fc1"]
    fc1["kernel"] = fc1["kernel"].copy()  # the converted arrays are read-only memory maps
    fc1["kernel"][3, 5] += 0.05
    return params

  monkeypatch.setattr(imagegpt, "convert", corrupted)
  status = _run_tool([f"--model={tmp_path / 'ckpt'}", "--n_images=2", "--image_size=24",
                      "--no_cache"])
  out = capsys.readouterr().out
  assert status == 1, out
  failed = {line.split()[0] for line in out.splitlines() if line.endswith("FAIL") or "FAIL  <-" in line}
  assert failed == {"block_01", "hidden_states.2", "last_hidden_state"}, out
