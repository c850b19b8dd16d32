"""Data sources, sampler and input pipeline: decoding, conversions, bad inputs, determinism."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from locations import FIXTURES
from repsim_jax.data.base import BadImageError, to_rgb_array
from repsim_jax.data.folder import ImageFolder
from repsim_jax.data.generated import GeneratedSource, generated_image, write_image_folder
from repsim_jax.data.manynames import ManyNamesSource, read_manynames
from repsim_jax.data.pipeline import host_chunks, iter_batches, threaded_map
from repsim_jax.data.sampler import sample_ids

MANYNAMES_TSV = str(FIXTURES / "manynames" / "manynames-zh-slice.tsv")


# ------------------------------------------------------------------ image folder
def test_image_folder_modes_converted_to_rgb(tmp_path):
  ids = write_image_folder(str(tmp_path), num_classes=2, per_class=4, size=(12, 10),
                           modes=("RGB", "L", "CMYK", "RGBA"))
  words = tmp_path.parent / "words.txt"
  words.write_text("n00000000\tgoldfish, Carassius auratus\nn00000001 great white shark\n")
  folder = ImageFolder(str(tmp_path), class_names=str(words))
  assert folder.ids == sorted(ids)
  for image_id in ids:
    ex = folder.load(image_id)
    assert ex.image.dtype == np.uint8 and ex.image.shape == (12, 10, 3)
    pil = Image.open(folder.path(image_id))
    if pil.mode == "RGBA":  # reference: alpha composited on white
      rgba = np.asarray(pil, np.float64)
      alpha = rgba[..., 3:] / 255.0
      expected = rgba[..., :3] * alpha + 255.0 * (1 - alpha)
      np.testing.assert_allclose(ex.image, expected, atol=1.0)
    else:
      np.testing.assert_array_equal(ex.image, np.asarray(pil.convert("RGB")))
    if pil.mode == "L":
      assert (ex.image[..., 0] == ex.image[..., 2]).all()
  ex = folder.load(ids[5])
  assert ex.labels == {"label": 1, "wnid": "n00000001", "class_name": "great white shark"}
  assert folder.describe()["num_classes"] == 2


def test_sixteen_bit_greyscale_keeps_top_bits():
  array = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
  rgb = to_rgb_array(Image.fromarray(array))
  np.testing.assert_array_equal(rgb[..., 1], (array >> 8).astype(np.uint8))


def test_image_folder_bad_inputs(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    ImageFolder(str(tmp_path / "nope"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="class sub-folders"):
    ImageFolder(str(tmp_path / "empty"))
  root = tmp_path / "imgs"
  ids = write_image_folder(str(root), num_classes=1, per_class=3)
  (root / "n00000000" / "broken.JPEG").write_bytes(b"not a jpeg at all")
  truncated = root / "n00000000" / ids[1].split("/")[1]
  truncated.write_bytes(truncated.read_bytes()[:40])
  folder = ImageFolder(str(root))
  with pytest.raises(BadImageError, match="n00000000/broken.JPEG") as err:
    folder.load("n00000000/broken.JPEG")
  assert err.value.image_id == "n00000000/broken.JPEG" and err.value.path.endswith("broken.JPEG")
  with pytest.raises(BadImageError, match="cannot decode"):
    folder.load(ids[1])
  os.remove(root / "n00000000" / ids[2].split("/")[1])
  with pytest.raises(BadImageError, match="file not found") as err:
    folder.load(ids[2])
  assert err.value.image_id == ids[2]
  with pytest.raises(BadImageError, match="unknown class"):
    folder.load("n99999999/x.JPEG")


# ------------------------------------------------------------------ tfds
def test_tfds_source_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  from repsim_jax.data.tfds_source import TfdsSource
  with tfds.testing.mock_data(num_examples=6):
    source = TfdsSource("cifar100", "train")
    assert len(source) == 6 and source.ids[0] == "train/0"
    ex = source.load("train/3")
    record = tfds.data_source("cifar100", split="train")[3]
  assert ex.image.dtype == np.uint8 and ex.image.shape == (32, 32, 3)
  np.testing.assert_array_equal(ex.image, record["image"])
  assert ex.labels["label"] == int(record["label"])
  assert ex.labels["coarse_label"] == int(record["coarse_label"])
  assert "class_name" in ex.labels and source.describe()["kind"] == "tfds"


def test_tfds_missing_dataset_names_build_command(tmp_path):
  pytest.importorskip("tensorflow_datasets")
  from repsim_jax.data.tfds_source import TfdsSource
  with pytest.raises(FileNotFoundError) as err:
    TfdsSource("cifar100", "test", data_dir=str(tmp_path))
  assert f"tfds build cifar100 --data_dir={tmp_path} --file_format=array_record" in str(err.value)
  assert not any(tmp_path.iterdir()) or not (tmp_path / "downloads").exists()


# ------------------------------------------------------------------ ManyNames
def _reference_rows(path):
  with open(path, encoding="utf-8") as f:
    lines = f.read().splitlines()
  header = lines[0].split("\t")
  return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def test_read_manynames_real_slice():
  rows = read_manynames(MANYNAMES_TSV)
  reference = _reference_rows(MANYNAMES_TSV)
  assert len(rows) == len(reference) == 60
  for row, ref in zip(rows, reference):
    assert row["vg_object_id"] == int(ref["vg_object_id"])
    assert row["vg_image_id"] == int(ref["vg_image_id"])
    responses = row["responses"]
    # the file's own summary columns: N distinct names, total count, top name(s) most frequent
    assert len(responses) == int(ref["N"]) == len(row["labels"])
    assert sum(responses.values()) == int(ref["total_responses"])
    top = max(responses.values())
    assert sorted(row["topnames"]) == sorted(n for n, c in responses.items() if c == top)
    assert set(row["labels"]) == set(responses)
    assert len(row["vg_bbox_xywh"]) == 4
  assert rows[6]["topnames"] == ["运动员", "女人"]  # a tie in the real data


def test_manynames_source_with_local_images(tmp_path):
  rows = read_manynames(MANYNAMES_TSV)
  vg = tmp_path / "vg"
  (vg / "VG_100K_2").mkdir(parents=True)
  for i, row in enumerate(rows[:-1]):  # the last image is missing on purpose
    x, y, w, h = row["vg_bbox_xywh"]
    image, _ = generated_image(i, size=(y + h + 3, x + w + 5))
    folder = vg / "VG_100K_2" if i % 2 else vg
    Image.fromarray(image).save(folder / f"{row['vg_image_id']}.jpg")
  source = ManyNamesSource(MANYNAMES_TSV, str(vg))
  assert source.ids == [str(r["vg_object_id"]) for r in rows]
  ex = source.load(source.ids[1])
  assert ex.labels["labels"] == sorted(rows[1]["responses"]) and ex.labels["topname"] == "女人"
  x, y, w, h = rows[1]["vg_bbox_xywh"]
  assert ex.image.shape == (y + h + 3, x + w + 5, 3)
  cropped = ManyNamesSource(MANYNAMES_TSV, str(vg), crop_to_object=True).load(source.ids[1])
  np.testing.assert_array_equal(cropped.image, ex.image[y:y + h, x:x + w])
  with pytest.raises(BadImageError, match=f"{rows[-1]['vg_image_id']}.jpg") as err:
    source.load(source.ids[-1])
  assert err.value.image_id == source.ids[-1]


def test_manynames_bad_tsv(tmp_path):
  with pytest.raises(FileNotFoundError):
    read_manynames(str(tmp_path / "missing.tsv"))
  lines = open(MANYNAMES_TSV, encoding="utf-8").read().splitlines()
  header = lines[0].split("\t")
  no_responses = tmp_path / "a.tsv"
  keep = [i for i, c in enumerate(header) if c != "responses"]
  no_responses.write_text("\n".join("\t".join(l.split("\t")[i] for i in keep) for l in lines[:3]),
                          encoding="utf-8")
  with pytest.raises(ValueError, match="missing columns.*responses"):
    read_manynames(str(no_responses))
  broken = tmp_path / "b.tsv"
  cells = lines[2].split("\t")
  cells[header.index("responses")] = "{'狗': 19"
  broken.write_text("\n".join([lines[0], lines[1], "\t".join(cells)]), encoding="utf-8")
  with pytest.raises(ValueError, match="line 3"):
    read_manynames(str(broken))
  with pytest.raises(FileNotFoundError, match="Visual Genome"):
    ManyNamesSource(MANYNAMES_TSV, str(tmp_path / "no_images"))


# ------------------------------------------------------------------ generated + sampler
def test_generated_source_is_deterministic_and_order_free():
  a, b = GeneratedSource(10, size=(8, 6), seed=3), GeneratedSource(10, size=(8, 6), seed=3)
  later = b.load("gen/7").image
  np.testing.assert_array_equal(a.load("gen/7").image, later)
  assert not np.array_equal(a.load("gen/7").image, GeneratedSource(10, size=(8, 6), seed=4).load("gen/7").image)
  assert a.load("gen/7").labels == {"label": 7} and a.load("gen/7").image.shape == (8, 6, 3)
  with pytest.raises(ValueError, match="positive"):
    GeneratedSource(0)


def test_sample_ids():
  ids = [f"img{i}" for i in range(50)]
  chosen = sample_ids(ids, 20, seed=5)
  expected = [ids[i] for i in sorted(np.random.default_rng(5).permutation(50)[:20])]
  assert chosen == expected and len(set(chosen)) == 20
  assert sample_ids(ids, 20, seed=5) == chosen and sample_ids(ids, 20, seed=6) != chosen
  assert set(sample_ids(ids, 10, seed=5)) <= set(chosen)  # nested in n
  assert sample_ids(ids, None, seed=0) == ids
  for bad in (0, 51):
    with pytest.raises(ValueError, match=r"\[1, 50\]"):
      sample_ids(ids, bad, seed=0)


# ------------------------------------------------------------------ pipeline
def test_threaded_map_keeps_order_and_raises_in_order():
  items = list(range(100))
  assert list(threaded_map(lambda i: i * i, items, num_threads=4, prefetch=7)) == [i * i for i in items]
  def fail_at_5(i):
    if i == 5:
      raise KeyError(i)
    return i
  seen = []
  with pytest.raises(KeyError):
    for v in threaded_map(fail_at_5, items, num_threads=3, prefetch=4):
      seen.append(v)
  assert seen == [0, 1, 2, 3, 4]


def test_host_chunks_partition():
  for num_chunks in (1, 7, 16):
    for hosts in (1, 3, 4):
      parts = [list(host_chunks(num_chunks, process_index=i, process_count=hosts)) for i in range(hosts)]
      assert sum(parts, []) == list(range(num_chunks))
  with pytest.raises(ValueError):
    host_chunks(4, process_index=2, process_count=2)


def test_iter_batches_skip_bad_images(tmp_path):
  write_image_folder(str(tmp_path), num_classes=1, per_class=5)
  (tmp_path / "n00000000" / "zz_bad.JPEG").write_bytes(b"\x00" * 10)
  folder = ImageFolder(str(tmp_path))
  flat = lambda im: im.astype(np.float32).mean(axis=(0, 1))
  rows = np.arange(len(folder.ids))
  batches = list(iter_batches(folder, folder.ids, rows, flat, batch_size=4, input_shape=(3,),
                              input_dtype=np.float32, skip_bad_images=True, num_threads=2))
  assert [len(b.rows) for b in batches] == [4, 2]
  assert batches[1].skipped == ["n00000000/zz_bad.JPEG"] and batches[1].valid.tolist() == [True, False]
  np.testing.assert_allclose(batches[0].inputs[2], flat(folder.load(folder.ids[2]).image))
  with pytest.raises(BadImageError, match="zz_bad"):
    list(iter_batches(folder, folder.ids, rows, flat, batch_size=4, input_shape=(3,),
                      input_dtype=np.float32, num_threads=2))
  with pytest.raises(ValueError, match="fixed size"):
    list(iter_batches(folder, folder.ids, rows[:2], lambda im: im, batch_size=2,
                      input_shape=(5, 5, 3), input_dtype=np.uint8))


def test_from_config(tmp_path):
  from repsim_jax.data import from_config
  assert from_config({"kind": "generated", "n": 5, "size": (8, 8)}).load("gen/4").image.shape == (8, 8, 3)
  write_image_folder(str(tmp_path / "f"), num_classes=2, per_class=1)
  assert len(from_config({"kind": "image_folder", "root": str(tmp_path / "f")}).ids) == 2
  (tmp_path / "vg").mkdir()
  mn = from_config({"kind": "manynames", "tsv": MANYNAMES_TSV, "image_dir": str(tmp_path / "vg")})
  assert len(mn.ids) == len(read_manynames(MANYNAMES_TSV)) == 60
  with pytest.raises(ValueError, match="dataset.kind"):
    from_config({"kind": "webdataset"})
