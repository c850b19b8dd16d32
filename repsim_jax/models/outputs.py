"""What every model port returns.

`hidden_states` mirrors the torch model's `output_hidden_states=True` (same count and order;
transformer entries [B, T, D], convolutional entries NHWC). `blocks` holds every block's output
under stable names, in forward order, plus sublayers when asked for:

  transformer: "embeddings", "block_00" ... "block_{L-1}";
               with sublayers=True also "block_XX.attn" (attention branch before the residual
               add, after any layer scale), "block_XX.mid" (residual stream after the attention
               add), "block_XX.mlp" (MLP branch before the add), "block_XX.attn_probs" [B,H,T,T].
  conv:        "stem", "stage0.block00" ... (global order); with sublayers=True also
               "stageS.blockBB.branch" (residual branch before the add).
  staged transformer (Swin): "embeddings", "stage0.block00" ... ([B, h_s * w_s, C_s] tokens);
               with sublayers=True the transformer sublayers "stageS.blockBB.attn", ".mid",
               ".mlp", ".attn_probs" (windowed: [B * windows, H, w², w²]).
"""
from __future__ import annotations

import dataclasses

import jax


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class ModelOutput:
  hidden_states: tuple[jax.Array, ...]
  blocks: dict[str, jax.Array]
  last_hidden_state: jax.Array | None = None
  pooler_output: jax.Array | None = None


_FIRST = ("embeddings", "stem")


def forward_order(names) -> list[str]:
  """Names in forward order. jit returns dicts with sorted keys; zero-padded block names sort in
  forward order already, so only the input entries ("embeddings", "stem") need moving first."""
  names = list(names)
  return [n for n in _FIRST if n in names] + sorted(n for n in names if n not in _FIRST)


def block_names(blocks: dict[str, jax.Array]) -> list[str]:
  """The main block names in forward order (sublayer entries like "block_03.attn" left out)."""
  def is_sublayer(name: str) -> bool:
    return name.count(".") > (1 if name.startswith("stage") else 0)
  return [name for name in forward_order(blocks) if not is_sublayer(name)]


def representative_indices(n_blocks: int) -> tuple[int, int, int]:
  """(early, middle, late) block indices of Mahaut & Baroni (2026): the second, the middle
  (n // 2) and the penultimate block, "to avoid effects from tokenization or detokenization on
  the very first and very last layers". The one definition every analysis uses."""
  if n_blocks < 3:
    raise ValueError(f"early / middle / late needs at least 3 blocks, got {n_blocks}")
  return 1, n_blocks // 2, n_blocks - 2
