"""Shared NNX building blocks of the model ports, written once, one module per kind:

  core          PRECISION ("highest"), linear, layer_norm, LayerScale, check_pixel_values
  activations   transformers' activation functions by name
  attention     MultiHeadAttention, WindowAttention (Swin), EncoderBlock, run_encoder
  mlp           MLP, GatedMLP
  convolution   conv2d (one convolution, lowered per platform: conv_lowering), Conv2d,
                PatchEmbedding, compiler_options
  positions     rotary embeddings, RelativePositionBias
  resize        torch's resize matrices (bicubic, bilinear, antialiased)

Parameter names follow the transformers modules where that costs nothing (q_proj, fc1,
gate_proj, ...), so the converters in the family modules stay short. Everything is re-exported
here: a port writes `layers.MLP(...)`.
"""
from repsim_jax.models.layers.activations import ACTIVATIONS, activation
from repsim_jax.models.layers.attention import (EncoderBlock, MultiHeadAttention, WindowAttention,
                                                merge_windows, partition_windows, run_encoder,
                                                shifted_window_mask)
from repsim_jax.models.layers.convolution import (CONV_LOWERINGS, Conv2d, Padding, PatchEmbedding,
                                                  compiler_options, conv2d, conv_lowering)
from repsim_jax.models.layers.core import (PRECISION, LayerScale, check_pixel_values, layer_norm,
                                           linear)
from repsim_jax.models.layers.mlp import MLP, GatedMLP
from repsim_jax.models.layers.positions import (RelativePositionBias, RopeFn, apply_rotary,
                                                relative_position_index, rotate_half)
from repsim_jax.models.layers.resize import (antialias_matrix, bicubic_matrix, bilinear_matrix,
                                             resize_bicubic, resize_separable)
from repsim_jax.shapes import pair

__all__ = ["ACTIVATIONS", "activation", "EncoderBlock", "MultiHeadAttention", "WindowAttention",
           "merge_windows", "partition_windows", "run_encoder", "shifted_window_mask",
           "CONV_LOWERINGS", "Conv2d", "Padding", "PatchEmbedding", "compiler_options", "conv2d",
           "conv_lowering", "PRECISION", "LayerScale", "check_pixel_values", "layer_norm",
           "linear", "MLP", "GatedMLP", "RelativePositionBias", "RopeFn", "apply_rotary",
           "relative_position_index", "rotate_half", "antialias_matrix", "bicubic_matrix",
           "bilinear_matrix", "resize_bicubic", "resize_separable", "pair"]
