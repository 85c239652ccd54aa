"""audit.py: flags JPEG reals vs PNG fakes, not a matched set; cues checked against references."""

import io
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
from sklearn import metrics as sk_metrics

from mdmf_jax import audit, config_lib
from mdmf_jax.data import builder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PER_LABEL = 24


def random_picture(rng, height, width):
  """A smooth random colour pattern plus noise (compresses like a photo, not like noise)."""
  coarse = rng.uniform(0, 255, (height // 8, width // 8, 3))
  smooth = np.kron(coarse, np.ones((8, 8, 1)))
  return np.clip(smooth + rng.normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)


def write_pairs(root, real_format, fake_format, seed):
  """generator layout, generators g1 and g2: each fake is its real crop mirrored."""
  rng = np.random.default_rng(seed)
  extension = {"JPEG": "jpg", "PNG": "png"}
  for generator in ("g1", "g2"):
    for label_dir in ("0_real", "1_fake"):
      os.makedirs(os.path.join(root, generator, label_dir))
    for i in range(PER_LABEL):
      crop = random_picture(rng, 40, 48)
      for label_dir, pixels, image_format in (("0_real", crop, real_format),
                                              ("1_fake", crop[:, ::-1], fake_format)):
        path = os.path.join(root, generator, label_dir, f"{i}.{extension[image_format]}")
        Image.fromarray(np.ascontiguousarray(pixels)).save(path, format=image_format,
                                                           quality=90)


def build(tmp_path, name, real_format, fake_format):
  roots = {}
  for seed, split in enumerate(("train", "test")):
    roots[split] = str(tmp_path / name / split)
    write_pairs(roots[split], real_format, fake_format, seed)
  data_dir = str(tmp_path / "tfds")
  builder.build_image_folder(name=name, layout="generator", roots=roots, data_dir=data_dir)
  return data_dir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("audit")
  build(tmp_path, "biased", "JPEG", "PNG")
  return build(tmp_path, "matched", "PNG", "PNG")


def by_key(rows):
  return {(r["split"], r["generator"], r["cue"]): r for r in rows}


def test_jpeg_reals_and_png_fakes_are_flagged(data_dir, tmp_path):
  rows = by_key(audit.audit(data_dir, "biased", str(tmp_path), threshold=0.8))
  for split in ("train", "test"):
    for generator in ("g1", "g2", "all"):
      row = rows[(split, generator, "format")]
      assert row["separability"] == 100.0 and row["warning"] == "WARN"
      assert row["detail"] == "real: JPEG 100%; fake: PNG 100%"
      assert rows[(split, generator, "jpeg_quality")]["warning"] == "WARN"
      assert rows[(split, generator, "width")]["separability"] == 50.0  # same sizes
  assert rows[("test", "all", "format")]["num_real"] == 2 * PER_LABEL
  table = json.load(open(tmp_path / "audit.json"))
  assert len(table["rows"]) == 2 * 3 * len(audit.CUES)
  assert os.path.getsize(tmp_path / "audit.png") > 0
  assert os.path.exists(tmp_path / "audit.md") and os.path.exists(tmp_path / "audit.csv")


def test_a_matched_set_is_not_flagged(data_dir, tmp_path):
  rows = audit.audit(data_dir, "matched", str(tmp_path), threshold=0.8)
  assert not [r for r in rows if r["warning"]]
  keyed = by_key(rows)
  for cue in ("format", "jpeg_tables", "jpeg_quality", "pixels", "mean_red", "mean_grey"):
    assert keyed[("test", "all", cue)]["separability"] == pytest.approx(50.0)  # exact ties


def test_cues_of_one_file_match_references():
  pixels = np.random.default_rng(0).integers(0, 256, (30, 20, 3), dtype=np.uint8)
  for quality in (30, 50, 75, 90):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    cues = audit.image_cues(buffer.getvalue())
    assert cues["format"] == "JPEG" and abs(cues["jpeg_quality"] - quality) <= 1
    assert cues["bytes_per_pixel"] == len(buffer.getvalue()) / 600
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="PNG")
  cues = audit.image_cues(buffer.getvalue())
  assert (cues["width"], cues["height"], cues["pixels"]) == (20, 30, 600)
  assert cues["jpeg_quality"] == audit.NOT_JPEG_QUALITY and cues["jpeg_tables"] == "none"
  np.testing.assert_allclose(cues["mean_green"], pixels[..., 1].mean())
  np.testing.assert_allclose(cues["mean_grey"], (pixels @ [0.299, 0.587, 0.114]).mean())


def test_separability_is_the_auroc_either_way_round():
  labels = np.array([0, 0, 0, 1, 1, 1, 0, 1])
  values = np.array([5.0, 4.0, 6.0, 1.0, 2.0, 7.0, 3.0, 0.5])  # reals mostly higher
  auroc = 100 * sk_metrics.roc_auc_score(labels, values)
  assert auroc < 50
  assert audit.cue_row("width", values, labels)["separability"] == pytest.approx(100 - auroc)
  formats = ["JPEG", "JPEG", "PNG", "PNG", "PNG", "PNG", "JPEG", "WEBP"]
  fraction = np.array([0, 0, 0.75, 0.75, 0.75, 0.75, 0, 1])  # each format's fake share
  expected = 100 * sk_metrics.roc_auc_score(labels, fraction)
  assert audit.cue_row("format", formats, labels)["separability"] == pytest.approx(expected)


def test_max_images_samples_each_group_evenly(data_dir, tmp_path):
  images = audit.read_split(data_dir, "biased", "test", max_images=5)
  counts = {}
  for image in images:
    key = (image["generator"], image["label"])
    counts[key] = counts.get(key, 0) + 1
  assert counts == {(g, l): 5 for g in ("g1", "g2") for l in (0, 1)}


def test_config_and_command_line(data_dir, tmp_path):
  config = config_lib.base()
  config.data.data_dir, config.data.name, config.eval.data_name = data_dir, "matched", "biased"
  config.audit.max_images = 4
  results = audit.audit_with_config(config, str(tmp_path / "w"))
  assert set(results) == {"matched", "biased"}
  assert os.path.exists(tmp_path / "w" / "audit" / "biased" / "audit.png")
  out = tmp_path / "cli"
  result = subprocess.run(
      [sys.executable, "-m", "mdmf_jax.audit", f"--data_dir={data_dir}", "--name=biased",
       f"--out_dir={out}", "--splits=test", "--threshold=0.9"],
      cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "| test | all | format |" in result.stdout
  assert {r["split"] for r in json.load(open(out / "audit.json"))["rows"]} == {"test"}
