"""Preprocessing vs the transformers image processors (PIL backends) on generated images.

Tolerances: every PIL-backend processor is reproduced operation by operation (PIL resize of the
uint8 image, then the same float64 rescale and float32 normalize), so its outputs must be
bit-identical (atol 0) and ImageGPT's token ids equal. DINOv3's processor exists only for
torchvision, which is not installed: its reference is the same steps in torch
(`x * scale`, `interpolate(bilinear, antialias=True)`, `(x - mean) / std`). We resize the float
image with PIL mode "F" (double accumulation) where torch accumulates in float32; the measured
difference (float32 weights and sums in torch) is at most 5.1e-6 on values up to 2.2 (~20 ulp),
so atol 2e-5.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from repsim_jax.models import preprocessing

SHAPES = [(40, 56), (64, 48), (33, 33), (20, 70), (97, 61)]


def _image(shape: tuple[int, int], seed: int) -> np.ndarray:
  """Smooth gradients plus noise: exercises interpolation more than flat noise."""
  rng = np.random.default_rng(seed)
  h, w = shape
  yy, xx = np.mgrid[0:h, 0:w]
  base = np.stack([xx / w, yy / h, (xx + yy) / (h + w)], -1) * 200
  return np.clip(base + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)


def _write(tmp_path, config: dict) -> str:
  (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
  return str(tmp_path)


def _hf(path: str, images: list[np.ndarray], key: str = "pixel_values") -> np.ndarray:
  from transformers import AutoImageProcessor
  processor = AutoImageProcessor.from_pretrained(path)
  out = processor(images, return_tensors="np")[key]
  return out.transpose(0, 2, 3, 1) if key == "pixel_values" else out


CONFIGS = {
    # google/vit-base-patch16-224 style (old feature-extractor config, int size).
    "vit": {"feature_extractor_type": "ViTFeatureExtractor", "do_normalize": True,
            "do_resize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
            "resample": 2, "size": 24},
    # facebook/dinov2-base style.
    "dinov2": {"image_processor_type": "BitImageProcessor", "crop_size": {"height": 28, "width": 28},
               "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
               "do_rescale": True, "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
               "image_std": [0.229, 0.224, 0.225], "resample": 3,
               "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 32}},
    # google/bit-50 style (class defaults for mean/std).
    "bit": {"image_processor_type": "BitImageProcessor", "size": {"shortest_edge": 36},
            "crop_size": 30, "resample": 2},
    # facebook/convnext-base-224 style: crop_pct path.
    "convnext": {"feature_extractor_type": "ConvNextFeatureExtractor", "crop_pct": 0.875,
                 "do_normalize": True, "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
                 "image_std": [0.229, 0.224, 0.225], "resample": 3, "size": 28},
    # openai/clip-vit-large-patch14 style (old feature-extractor config, int sizes).
    "clip": {"feature_extractor_type": "CLIPFeatureExtractor", "crop_size": 28,
             "do_center_crop": True, "do_normalize": True, "do_resize": True,
             "image_mean": [0.48145466, 0.4578275, 0.40821073],
             "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 30},
    # google/siglip-so400m-patch14-384 style.
    "siglip": {"image_processor_type": "SiglipImageProcessor", "do_normalize": True,
               "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
               "image_std": [0.5, 0.5, 0.5], "resample": 3,
               "rescale_factor": 0.00392156862745098, "size": {"height": 38, "width": 38}},
    # facebook/deit-base-distilled-patch16-224 style: square resize, then crop.
    "deit": {"feature_extractor_type": "DeiTFeatureExtractor", "crop_size": 24,
             "do_center_crop": True, "do_normalize": True, "do_resize": True,
             "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
             "resample": 3, "size": 28},
    # microsoft/beit-large-patch16-224 style (bilinear, no crop).
    "beit": {"feature_extractor_type": "BeitFeatureExtractor", "crop_size": 24,
             "do_center_crop": False, "do_normalize": True, "do_resize": True,
             "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "reduce_labels": False,
             "resample": 2, "size": 24},
    # BEiT with its class defaults (bicubic 224, no crop) and a crop.
    "beit_crop": {"image_processor_type": "BeitImageProcessor", "do_center_crop": True,
                  "size": {"height": 36, "width": 30}, "crop_size": {"height": 20, "width": 26}},
    # convnext at >= 384: warp without crop.
    "convnext384": {"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 384},
                    "resample": 3},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_pixel_processors_match_hf_exactly(tmp_path, name):
  path = _write(tmp_path, CONFIGS[name])
  ours = preprocessing.load_preprocessor(path)
  for i, shape in enumerate(SHAPES[:3] if name == "convnext384" else SHAPES):
    images = [_image(shape, 10 * i), _image(shape, 10 * i + 1)]
    got, want = ours(images), _hf(path, images)
    assert got.dtype == np.float32 and got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(got, want, err_msg=f"{name} {shape}")
    assert ours.output_size(*shape) == got.shape[1:3]


def test_imagegpt_token_ids_match_hf(tmp_path):
  rng = np.random.default_rng(0)
  clusters = rng.uniform(-1, 1, (512, 3)).round(6).tolist()
  path = _write(tmp_path, {"feature_extractor_type": "ImageGPTFeatureExtractor", "clusters": clusters,
                           "do_normalize": True, "do_resize": True, "resample": 2, "size": 32})
  ours = preprocessing.load_preprocessor(path)
  for i, shape in enumerate(SHAPES):
    images = [_image(shape, i), _image(shape, i + 100)]
    got, want = ours(images), np.asarray(_hf(path, images, key="input_ids"))
    assert got.shape == (2, 1024) and got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(got)) > 20  # the images really span many clusters


def _dinov3_torch(images: list[np.ndarray], size: tuple[int, int], mean, std) -> np.ndarray:
  """DINOv3ViTImageProcessor._preprocess with torchvision's tensor ops spelled in torch."""
  import torch
  x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
  x = x * (1 / 255)  # rescale (uint8 * python float -> float32)
  x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False,
                                      antialias=True)
  x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
  return x.permute(0, 2, 3, 1).numpy()


def test_dinov3_matches_torch_steps(tmp_path):
  mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
  path = _write(tmp_path, {"image_processor_type": "DINOv3ViTImageProcessorFast",
                           "do_center_crop": None, "size": {"height": 32, "width": 48},
                           "resample": 2, "image_mean": mean, "image_std": std})
  ours = preprocessing.load_preprocessor(path)
  worst = 0.0
  for i, shape in enumerate(SHAPES + [(16, 20)]):  # last one upsamples
    images = [_image(shape, i)]
    got, want = ours(images), _dinov3_torch(images, (32, 48), mean, std)
    assert got.shape == want.shape == (1, 32, 48, 3)
    worst = max(worst, float(np.abs(got - want).max()))
  print(f"dinov3 preprocessing max abs diff vs torch: {worst:.2e}")
  assert worst < 2e-5, worst


def test_bad_inputs(tmp_path):
  path = _write(tmp_path, CONFIGS["vit"])
  ours = preprocessing.load_preprocessor(path)
  with pytest.raises(ValueError, match=r"images\[0\]: expected uint8"):
    ours([np.zeros((8, 8, 3), np.float32)])
  with pytest.raises(ValueError, match=r"images\[1\]: expected uint8 \[H, W, 3\]"):
    ours([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 4), np.uint8)])
  (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": "FooProcessor"}))
  with pytest.raises(ValueError, match="unsupported image processor 'FooProcessor'"):
    preprocessing.load_preprocessor(path)
  with pytest.raises(FileNotFoundError, match="no preprocessor_config.json"):
    preprocessing.load_preprocessor(tmp_path.parent)
