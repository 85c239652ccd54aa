"""The TFDS image-folder builder: layouts, bad files, report, bytes kept, CLI."""

import io
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from mdmf_jax.data import build
from mdmf_jax.data import builder
from mdmf_jax.data import layouts
from mdmf_jax.data import synthetic
from tests import test_data_decode as bad

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_all(data_dir, name, split):
  source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  return source, [source[i] for i in range(len(source))]


def save(path, data: bytes):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


def image_bytes(pixels, image_format, mode=None, **params):
  image = Image.fromarray(pixels) if mode is None else Image.fromarray(pixels, mode)
  return bad.encode(image, image_format, **params)


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory):
  """A cnnspot folder with every kind of good and bad file, and what to expect."""
  root = str(tmp_path_factory.mktemp("messy"))
  rng = np.random.default_rng(1)
  pixels = lambda h=20, w=24: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
  good = {
      "car/0_real/a.jpg": image_bytes(pixels(), "JPEG", quality=90),
      "car/0_real/b.png": image_bytes(pixels(), "PNG"),
      "car/0_real/grey.png": image_bytes(pixels()[..., 0], "PNG"),
      "car/0_real/palette.png": bad.encode(
          Image.fromarray(pixels()).convert("P"), "PNG"),
      "car/0_real/sub/deeper.webp": image_bytes(pixels(), "WEBP", quality=80),
      "car/1_fake/rgba.png": image_bytes(
          rng.integers(0, 256, (20, 24, 4), dtype=np.uint8), "PNG"),
      "car/1_fake/cmyk.jpg": bad.encode(
          Image.fromarray(pixels()).convert("CMYK"), "JPEG"),
      "car/1_fake/sixteen.png": bad.encode(Image.fromarray(
          rng.integers(0, 65536, (20, 24), dtype=np.uint16)), "PNG"),
      "car/1_fake/small.png": image_bytes(pixels(6, 30), "PNG"),
      "cat/0_real/c.bmp": image_bytes(pixels(), "BMP"),
      "cat/1_fake/d.png": image_bytes(pixels(), "PNG"),
  }
  # The same bytes in another class group count there too.
  good["cat/1_fake/copy_of_b.png"] = good["car/0_real/b.png"]
  bad_files = {
      "car/0_real/empty.jpg": ("empty", b""),
      "car/0_real/notes.txt": ("not_an_image", b"not an image"),
      "car/1_fake/truncated.jpg": ("truncated", bad.BAD_FILES["truncated_jpeg"][0]),
      "cat/0_real/truncated.png": ("truncated", bad.BAD_FILES["truncated_png"][0]),
      "cat/0_real/corrupt.png": ("corrupt", bad.BAD_FILES["corrupt_png"][0]),
      "cat/1_fake/float.tif": ("unsupported_mode", bad.BAD_FILES["float_tiff"][0]),
      "cat/1_fake/bomb.png": ("decompression_bomb", bad.bomb_png()),
      "car/1_fake/copy_of_b.png": ("duplicate", good["car/0_real/b.png"]),
      "README.md": ("outside_layout", b"# notes"),
      "car/stray.jpg": ("outside_layout", good["car/0_real/a.jpg"]),
      "car/maybe_real/e.png": ("outside_layout", image_bytes(pixels(), "PNG")),
  }
  for relpath, data in good.items():
    save(os.path.join(root, relpath), data)
  for relpath, (_, data) in bad_files.items():
    save(os.path.join(root, relpath), data)
  # Not selected by classes=["car", "cat"]: neither built nor reported.
  save(os.path.join(root, "dog/0_real/x.png"), image_bytes(pixels(), "PNG"))
  return root, good, {p: code for p, (code, _) in bad_files.items()}


@pytest.fixture(scope="module")
def messy_build(messy_folder, tmp_path_factory):
  root, _, _ = messy_folder
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  report = builder.build_image_folder(
      name="messy", layout="cnnspot", roots={"train": root}, data_dir=data_dir,
      generator="progan", classes=["car", "cat"], num_threads=3)
  return data_dir, report


def test_every_bad_file_is_reported_by_path_with_its_reason(messy_folder,
                                                            messy_build):
  root, _, expected = messy_folder
  _, report = messy_build
  got = {os.path.relpath(s["path"], root).replace(os.sep, "/"): s["code"]
         for s in report["skipped"]}
  assert got == expected
  assert all(s["reason"] and s["split"] == "train" for s in report["skipped"])
  duplicate = next(s for s in report["skipped"] if s["code"] == "duplicate")
  assert duplicate["reason"].endswith(os.path.join(root, "car/0_real/b.png"))
  counts = {}
  for code in expected.values():
    counts[code] = counts.get(code, 0) + 1
  assert report["skipped_by_code"] == counts


def test_every_good_file_is_present_once_with_its_original_bytes(messy_folder,
                                                                 messy_build):
  _, good, _ = messy_folder
  data_dir, report = messy_build
  source, records = read_all(data_dir, "messy", "train")
  by_path = {r["path"].decode(): r for r in records}
  assert len(records) == len(by_path) == len(good)
  assert set(by_path) == set(good)
  for relpath, data in good.items():
    record = by_path[relpath]
    assert record["image"] == data  # never re-encoded
    assert record["label"] == ("1_fake" in relpath)
    assert record["class"].decode() == relpath.split("/")[0]
    width, height = Image.open(io.BytesIO(data)).size
    assert (record["height"], record["width"]) == (height, width)
  assert by_path["car/0_real/a.jpg"]["format"] == b"JPEG"
  assert source.dataset_info.features["generator"].names == ["progan"]
  assert report["converted_modes"] == {"CMYK": 1, "I;16": 1, "L": 1, "P": 1,
                                       "RGBA": 1}


def test_records_are_stored_real_then_fake_with_counts_in_metadata(messy_build):
  data_dir, report = messy_build
  source, records = read_all(data_dir, "messy", "train")
  labels = [r["label"] for r in records]
  assert labels == sorted(labels)
  counts = source.dataset_info.metadata["splits"]["train"]
  assert (counts["real"], counts["fake"]) == (labels.count(0), labels.count(1))
  assert counts["generators"] == {"progan": {"real": 6, "fake": 6}}
  assert report["splits"]["train"]["real"] == 6
  line = builder.summary_line(report)
  assert "train: 6 real + 6 fake" in line and "skipped 11 files" in line
  assert "1 copies shared across generator/class groups" in line


def test_min_size_skips_small_images_with_reason(messy_folder, tmp_path):
  root, good, _ = messy_folder
  report = builder.build_image_folder(
      name="messy_min", layout="cnnspot", roots={"train": root},
      data_dir=str(tmp_path), generator="progan", classes=["car", "cat"],
      min_size=16)
  too_small = [s for s in report["skipped"] if s["code"] == "too_small"]
  assert [os.path.basename(s["path"]) for s in too_small] == ["small.png"]
  assert "30x6" in too_small[0]["reason"]
  split = report["splits"]["train"]
  assert split["real"] + split["fake"] == len(good) - 1


@pytest.mark.parametrize("layout,names,generators,classes", [
    ("generator", {"generator": ["biggan", "dalle"]}, ["biggan", "dalle"], [""]),
    ("generator_class", {"generator": ["gan"], "class": ["car", "cat"]},
     ["gan"], ["car", "cat"]),
    ("generator_realfake", {"generator": ["sd", "vqdm"]}, ["sd", "vqdm"], [""]),
])
def test_benchmark_layouts(tmp_path, layout, names, generators, classes):
  root = str(tmp_path / "root")
  written = synthetic.write_folder(root, layout, names, per_label=2,
                                   size=(16, 16))
  builder.build_image_folder(name="bench", layout=layout, roots={"test": root},
                             data_dir=str(tmp_path / "tfds"))
  source, records = read_all(str(tmp_path / "tfds"), "bench", "test")
  names_of = source.dataset_info.features["generator"].names
  assert names_of == generators
  assert sorted(r["path"].decode() for r in records) == sorted(written)
  for r in records:
    parts = r["path"].decode().split("/")
    assert names_of[r["generator"]] == parts[0]
    assert r["class"].decode() == (parts[1] if classes != [""] else "")
    assert r["label"] == layouts.LAYOUTS[layout].label_dirs[parts[-2]]


def test_cross_split_duplicates_are_kept_and_listed(tmp_path):
  train = str(tmp_path / "train")
  synthetic.write_folder(train, "generator", {"generator": ["g"]},
                         per_label=2, size=(16, 16), seed=3)
  test = str(tmp_path / "test")
  synthetic.write_folder(test, "generator", {"generator": ["g"]},
                         per_label=2, size=(16, 16), seed=4)
  with open(os.path.join(train, "g/0_real/00000.jpg"), "rb") as f:
    save(os.path.join(test, "g/0_real/leak.jpg"), f.read())
  report = builder.build_image_folder(
      name="leaky", layout="generator", roots={"train": train, "test": test},
      data_dir=str(tmp_path / "tfds"))
  assert report["splits"]["test"]["real"] == 3
  [leak] = report["cross_split_duplicates"]
  assert leak["path"].endswith("leak.jpg") and leak["split"] == "test"
  assert leak["duplicate_of"].endswith("00000.jpg")
  assert leak["duplicate_of_split"] == "train"


def test_reals_shared_by_generators_count_for_each_generator(tmp_path):
  root = str(tmp_path / "root")
  synthetic.write_folder(root, "generator", {"generator": ["g1", "g2", "g3"]},
                         per_label=3, size=(16, 16), seed=5)
  shared = {}
  for i in range(3):
    with open(os.path.join(root, f"g1/0_real/{i:05d}.jpg"), "rb") as f:
      shared[f"{i:05d}.jpg"] = f.read()
  for generator in ("g2", "g3"):
    for filename, data in shared.items():
      save(os.path.join(root, generator, "0_real", filename), data)
  save(os.path.join(root, "g2/0_real/again.jpg"), shared["00000.jpg"])
  report = builder.build_image_folder(
      name="shared", layout="generator", roots={"test": root},
      data_dir=str(tmp_path / "tfds"))
  counts = report["splits"]["test"]["generators"]
  assert counts == {g: {"real": 3, "fake": 3} for g in ("g1", "g2", "g3")}
  assert report["shared_across_groups"] == {"test": 6}
  [duplicate] = report["skipped"]
  assert duplicate["code"] == "duplicate" and duplicate["path"].endswith("g2/0_real/again.jpg")
  assert duplicate["reason"].endswith(os.path.join("g2", "0_real", "00000.jpg"))
  source, records = read_all(str(tmp_path / "tfds"), "shared", "test")
  names = source.dataset_info.features["generator"].names
  reals = sorted((names[r["generator"]], r["path"].decode()) for r in records
                 if r["label"] == 0)
  assert reals == [(g, f"{g}/0_real/{i:05d}.jpg") for g in ("g1", "g2", "g3") for i in range(3)]
  assert all(r["image"] == shared[r["path"].decode().split("/")[-1]]
             for r in records if r["label"] == 0)


def test_rebuilding_is_a_noop(messy_folder, messy_build):
  root, _, _ = messy_folder
  data_dir, report = messy_build
  again = builder.build_image_folder(
      name="messy", layout="cnnspot", roots={"train": root}, data_dir=data_dir,
      generator="progan", classes=["car", "cat"])
  assert again == report


def test_configuration_errors_name_the_problem(messy_folder, tmp_path):
  root, _, _ = messy_folder
  kwargs = dict(roots={"train": root}, data_dir=str(tmp_path))
  with pytest.raises(ValueError, match=r"class folders \['horse'\] not found"):
    builder.build_image_folder(name="x", layout="cnnspot", generator="g",
                               classes=["car", "horse"], **kwargs)
  with pytest.raises(ValueError, match="pass generator=NAME"):
    builder.build_image_folder(name="x", layout="cnnspot", **kwargs)
  with pytest.raises(ValueError, match="unknown layout 'progan'"):
    builder.build_image_folder(name="x", layout="progan", **kwargs)
  with pytest.raises(ValueError, match="TFDS catalogue"):
    builder.build_image_folder(name="mnist", layout="cnnspot", generator="g",
                               **kwargs)
  with pytest.raises(ValueError, match="lower_snake_case"):
    builder.build_image_folder(name="My-Data", layout="cnnspot", generator="g",
                               **kwargs)
  with pytest.raises(ValueError, match="no file under"):
    builder.build_image_folder(name="x", layout="generator_realfake", **kwargs)
  with pytest.raises(FileNotFoundError, match="nowhere"):
    builder.build_image_folder(name="x", layout="cnnspot", generator="g",
                               roots={"train": str(tmp_path / "nowhere")},
                               data_dir=str(tmp_path))


def test_a_split_of_only_bad_files_fails_naming_split_and_reasons(tmp_path):
  save(str(tmp_path / "root/g/0_real/a.png"), b"")
  save(str(tmp_path / "root/g/1_fake/b.png"), b"<html></html>")
  with pytest.raises(ValueError, match=r"split 'test': none of the 2 files .*empty"):
    builder.build_image_folder(name="hopeless", layout="generator",
                               roots={"test": str(tmp_path / "root")},
                               data_dir=str(tmp_path / "tfds"))


def test_parse_roots():
  assert build.parse_roots(["train=/a/b", "/c=d", "val=/e"], "test") == {
      "train": "/a/b", "test": "/c=d", "val": "/e"}
  with pytest.raises(ValueError, match="'train' given twice"):
    build.parse_roots(["/a", "train=/b"], "train")


def test_command_line_build(tmp_path):
  root = str(tmp_path / "progan")
  synthetic.write_folder(root, "cnnspot", {"class": ["car", "cat", "dog"]},
                         per_label=2, size=(16, 16))
  data_dir = str(tmp_path / "tfds")
  command = [sys.executable, "-m", "mdmf_jax.data.build", "--layout=cnnspot",
             f"--root=train={root}", f"--data_dir={data_dir}", "--name=progan2",
             "--generator=progan", "--classes=car,cat"]
  result = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                          check=False)
  assert result.returncode == 0, result.stderr
  assert "progan2: train: 4 real + 4 fake; skipped 0 files" in result.stdout
  report = builder.load_report(data_dir, "progan2")
  assert report["splits"]["train"]["generators"] == {
      "progan": {"real": 4, "fake": 4}}
