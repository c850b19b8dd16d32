"""tensorflow-datasets through random-access `tfds.data_source` (array_record files, no TensorFlow).

Ids are `"<split>/<index>"`; labels are every scalar feature of the record (e.g. `label`,
`coarse_label`), plus `class_name` when the label feature has names.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from repsim_jax.data.base import BadImageError, Example, to_rgb_array
from repsim_jax.paths import absolute


def build_command(name: str, data_dir: str | None) -> str:
  """The command that prepares `name` in the random-access format this source reads."""
  data_dir_flag = f" --data_dir={data_dir}" if data_dir else ""
  return f"tfds build {name}{data_dir_flag} --file_format=array_record"


class TfdsSource:
  """One split of a TFDS dataset, read by index.

  Args:
    name: TFDS name, optionally with config/version ("cifar100", "imagenet2012", "food101").
    split: "train", "validation", "test", or a slice like "train[:10%]".
    data_dir: where the prepared dataset lives (default: TFDS's default, ~/tensorflow_datasets).
    image_key / label_key: feature names of the image and of the class label.
  """

  def __init__(self, name: str, split: str, *, data_dir: str | None = None,
               image_key: str = "image", label_key: str = "label"):
    try:
      import tensorflow_datasets as tfds
    except ImportError:
      raise ImportError(f"the TFDS dataset {name!r} needs tensorflow-datasets, which the base "
                        f"install leaves out; install it with:  pip install -e \".[tfds]\"") from None
    data_dir = absolute(data_dir) if data_dir else data_dir
    self.name, self.split, self.data_dir = name, split, data_dir
    self.image_key, self.label_key = image_key, label_key
    try:
      # download=False: never start a download or a build from inside an extraction run.
      self._ds = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as e:  # tfds raises several types (AssertionError, NotImplementedError, ...)
      raise FileNotFoundError(
          f"TFDS dataset {name!r} split {split!r} is not prepared in array_record format under "
          f"data_dir={data_dir!r} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
          f"Prepare it with:\n  {build_command(name, data_dir)}") from e
    features = self._ds.dataset_info.features
    if image_key not in features:
      raise KeyError(f"TFDS dataset {name!r} has no image feature {image_key!r}; features: "
                     f"{sorted(features.keys())}")
    label = features[label_key] if label_key in features else None
    self._label_names = list(label.names) if hasattr(label, "names") else None
    self._ids = [f"{split}/{i}" for i in range(len(self._ds))]

  @property
  def ids(self) -> list[str]:
    return self._ids

  def __len__(self) -> int:
    return len(self._ids)

  def load(self, image_id: str) -> Example:
    index = int(image_id.rsplit("/", 1)[1])
    where = f"tfds:{self.name}/{self.split}[{index}]"
    try:
      record = self._ds[index]
      image = to_rgb_array(np.asarray(record[self.image_key]))
    except (IndexError, ValueError, KeyError, OSError) as e:
      raise BadImageError(image_id, where, f"cannot read ({type(e).__name__}: {e})") from e
    labels: dict[str, Any] = {}
    for key, value in record.items():
      if key != self.image_key and np.ndim(value) == 0:
        value = value.item() if isinstance(value, np.generic) or isinstance(value, np.ndarray) else value
        labels[key] = value.decode() if isinstance(value, bytes) else value
    if self._label_names is not None and self.label_key in labels:
      labels["class_name"] = self._label_names[int(labels[self.label_key])]
    return Example(image_id, image, labels)

  def describe(self) -> dict[str, Any]:
    return {"kind": "tfds", "name": self.name, "split": self.split, "data_dir": self.data_dir,
            "num_images": len(self._ids)}
