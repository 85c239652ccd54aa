"""The detection CLI core: every file one row, scores, p-values, outputs, heat maps."""

import csv
import json
import logging
import os

import numpy as np
from PIL import Image
import pytest

from mdmf_jax import config_lib
from mdmf_jax import detect
from mdmf_jax import evaluate_whole
from mdmf_jax import metrics
from mdmf_jax import whole_image
from mdmf_jax.data import decode
from mdmf_jax.data import transforms
from tests import test_data_decode as bad
from tests import test_whole_image

SIZE = 16  # the fake detector's S
BATCH = 4
PATCH = 4  # heat map cells of PATCH x PATCH pixels
# Position- and channel-dependent weights (mean 1): a flipped, shifted or
# channel-swapped crop scores differently.
WEIGHTS = np.linspace(0.5, 1.5, SIZE * SIZE * 3, dtype=np.float32).reshape(SIZE, SIZE, 3)


def weighted_brightness(images):
  return (images * WEIGHTS).mean(axis=(-3, -2, -1))


class FakeDetector:
  """score = weighted brightness, heat = per-patch mean - 0.5; records batch shapes."""

  image_size = SIZE
  grid = (SIZE // PATCH, SIZE // PATCH)

  def __init__(self, calibration=None, nan_above=None):
    self.calibration = calibration
    self.nan_above = nan_above  # scores above it become NaN (a broken model)
    self.batch_shapes = []

  def score(self, images):
    self.batch_shapes.append(images.shape)
    scores = weighted_brightness(images)
    if self.nan_above is not None:
      scores = np.where(scores > self.nan_above, np.nan, scores)
    return scores

  def heatmaps(self, images):
    self.batch_shapes.append(images.shape)
    n = images.shape[0]
    cells = images.reshape(n, SIZE // PATCH, PATCH, SIZE // PATCH, PATCH, 3)
    return cells.mean(axis=(2, 4, 5)) - 0.5


def pixels(height, width, seed, channels=3):
  rng = np.random.default_rng(seed)
  shape = (height, width) if channels == 1 else (height, width, channels)
  return rng.integers(0, 256, shape, dtype=np.uint8)


def png(array):
  return bad.encode(Image.fromarray(array), "PNG")


GOOD = {  # path below the tmp root -> bytes; every one scores
    "in/a.png": png(pixels(20, 24, 0)),
    "in/large.jpg": bad.encode(Image.fromarray(pixels(300, 400, 1)), "JPEG"),
    "in/png_named.dat": png(pixels(18, 18, 2)),
    "in/rgba.png": png(pixels(20, 20, 3, channels=4)),
    "in/sixteen.png": bad.encode(Image.fromarray(
        np.random.default_rng(4).integers(0, 65536, (17, 21), dtype=np.uint16)), "PNG"),
    "in/tiny.png": png(pixels(6, 9, 5)),  # smaller than SIZE: padded
    "in/sub/b.jpg": bad.encode(Image.fromarray(pixels(24, 24, 6)), "JPEG", quality=90),
    "in/sub/deeper/grey.png": png(pixels(19, 16, 7, channels=1)),
    "extra/c.png": png(np.full((16, 16, 3), 250, np.uint8)),  # very bright
}
BAD = {  # path -> (bytes, reason code)
    "in/bomb.png": (bad.bomb_png(), decode.DECOMPRESSION_BOMB),
    "in/empty.jpg": (b"", decode.EMPTY),
    "in/float.tif": bad.BAD_FILES["float_tiff"],
    "in/text.jpg": (b"not a picture\n", decode.NOT_AN_IMAGE),
    "in/sub/corrupt.png": bad.BAD_FILES["corrupt_png"],
    "in/sub/truncated.jpg": bad.BAD_FILES["truncated_jpeg"],
    "in/sub/truncated.png": bad.BAD_FILES["truncated_png"],
}
HIDDEN = ("in/.hidden.png", "in/.cache/x.png", "in/sub/.thumb.jpg")
# Input order: the folder walked (sorted files, then sorted subfolders), then the
# files given one by one; a missing file keeps its row.
ORDER = [
    "in/a.png", "in/bomb.png", "in/empty.jpg", "in/float.tif", "in/large.jpg",
    "in/png_named.dat", "in/rgba.png", "in/sixteen.png", "in/text.jpg",
    "in/tiny.png", "in/sub/b.jpg", "in/sub/corrupt.png", "in/sub/truncated.jpg",
    "in/sub/truncated.png", "in/sub/deeper/grey.png", "extra/c.png",
    "extra/missing.png",
]


def write(root, relpath, data):
  path = os.path.join(root, relpath)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("detect"))
  for relpath, data in GOOD.items():
    write(root, relpath, data)
  for relpath, (data, _) in BAD.items():
    write(root, relpath, data)
  for relpath in HIDDEN:
    write(root, relpath, GOOD["in/a.png"])
  inputs = [os.path.join(root, p) for p in ("in", "extra/c.png", "extra/missing.png",
                                            "in/a.png")]  # a.png again: one row
  return root, inputs


def expected_score(data, resize=False):
  """The fake detector's score on the image preprocessed here, step by step."""
  image = decode.decode_rgb8(data)
  if resize:
    image = transforms.resize(image, SIZE, SIZE)
  image = transforms.center_crop(transforms.fit_to_crop(image, SIZE, "pad"), SIZE)
  return float(weighted_brightness(image.astype(np.float32) / np.float32(255)))


def calibration(alpha=0.25):
  """Random-pixel images score about 0.5: calibration scores around it."""
  scores = np.random.default_rng(8).uniform(0.45, 0.55, 39)
  return metrics.calibrate(scores, alpha)


def read_csv(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def csv_run(folder, tmp_path_factory):
  root, inputs = folder
  out = str(tmp_path_factory.mktemp("out"))
  detector = FakeDetector(calibration())
  summary = detect.detect(detector, inputs, os.path.join(out, "scores.csv"),
                          batch_size=BATCH, heatmap_dir=os.path.join(out, "heat"),
                          num_threads=2)
  return root, out, detector, summary, read_csv(os.path.join(out, "scores.csv"))


def test_every_file_gets_one_row_in_input_order(csv_run):
  root, _, _, summary, rows = csv_run
  assert [os.path.relpath(r["path"], root) for r in rows] == ORDER
  assert list(rows[0]) == list(detect.ROW_FIELDS)
  assert summary["num_files"] == len(ORDER)
  assert summary["num_scored"] == len(GOOD)
  assert summary["num_errors"] == len(BAD) + 1


def test_good_files_score_as_their_preprocessed_image(csv_run):
  root, _, _, _, rows = csv_run
  by_path = {os.path.relpath(r["path"], root): r for r in rows}
  for relpath, data in GOOD.items():
    row = by_path[relpath]
    assert row["error"] == ""
    assert float(row["score"]) == pytest.approx(expected_score(data), abs=1e-6)
  # The 6 x 9 image is zero-padded to 16 x 16, centred (extra pixel right).
  tiny = decode.decode_rgb8(GOOD["in/tiny.png"])
  padded = np.pad(tiny, ((5, 5), (3, 4), (0, 0))) / np.float32(255)
  assert float(by_path["in/tiny.png"]["score"]) == pytest.approx(
      float(weighted_brightness(padded)), abs=1e-6)


def test_bad_files_get_error_rows_naming_the_reason(csv_run):
  root, _, _, summary, rows = csv_run
  by_path = {os.path.relpath(r["path"], root): r for r in rows}
  for relpath, (_, code) in BAD.items():
    row = by_path[relpath]
    assert row["error"].startswith(f"{code}: ") and len(row["error"]) > len(code) + 3
    assert row["score"] == row["p_value"] == row["decision"] == ""
  missing = by_path["extra/missing.png"]
  assert missing["error"].startswith("unreadable_file: FileNotFoundError")
  assert summary["errors_by_code"] == {
      "corrupt": 1, "decompression_bomb": 1, "empty": 1, "not_an_image": 1,
      "truncated": 2, "unreadable_file": 1, "unsupported_mode": 1}


def test_p_values_and_decisions_follow_the_calibration(csv_run):
  _, _, detector, summary, rows = csv_run
  cal = detector.calibration
  scored = [r for r in rows if r["score"]]
  for row in scored:
    score = float(row["score"])
    p = (1 + np.sum(cal.scores >= score)) / (len(cal.scores) + 1)
    assert float(row["p_value"]) == pytest.approx(p)
    assert row["decision"] == ("fake" if p <= cal.alpha else "real")
    assert (row["decision"] == "fake") == (score > cal.threshold)
  decisions = {r["decision"] for r in scored}
  assert decisions == {"fake", "real"}  # the data exercise both branches
  assert summary["num_fake"] == sum(r["decision"] == "fake" for r in scored)
  assert summary["alpha"] == cal.alpha


def test_the_detector_only_sees_full_batches(csv_run):
  *_, detector, _, _ = csv_run
  calls = -(-len(GOOD) // BATCH)  # the last batch is partial and padded
  assert len(GOOD) % BATCH
  assert detector.batch_shapes == [(BATCH, SIZE, SIZE, 3)] * (2 * calls)


def test_heat_maps_are_written_for_scored_files_only(csv_run):
  _, out, _, _, _ = csv_run
  written = sorted(os.listdir(os.path.join(out, "heat")))
  assert written == sorted([
      "in__a.png", "in__large.png", "in__png_named.png", "in__rgba.png",
      "in__sixteen.png", "in__tiny.png", "in__sub__b.png", "in__sub__deeper__grey.png",
      "c.png"])
  for name in written:
    with Image.open(os.path.join(out, "heat", name)) as image:
      assert image.format == "PNG" and image.size[0] > SIZE


def test_json_output_has_rows_and_summary(folder, tmp_path):
  root, inputs = folder
  path = str(tmp_path / "deep" / "scores.json")  # its folder is created
  summary = detect.detect(FakeDetector(calibration()), inputs, path,
                          batch_size=BATCH, num_threads=1)
  with open(path) as f:
    saved = json.load(f)
  assert saved["summary"] == summary
  rows = saved["rows"]
  assert [os.path.relpath(r["path"], root) for r in rows] == ORDER
  scored = [r for r in rows if r["error"] is None]
  assert len(scored) == len(GOOD)
  assert all(isinstance(r["score"], float) and r["decision"] in ("fake", "real")
             for r in scored)
  assert all(r["score"] is r["p_value"] is r["decision"] is None
             for r in rows if r["error"] is not None)
  assert os.listdir(tmp_path / "deep") == ["scores.json"]  # no temporary left


def test_without_calibration_p_values_and_decisions_are_empty(folder, tmp_path):
  root, inputs = folder
  path = str(tmp_path / "scores.csv")
  summary = detect.detect(FakeDetector(), inputs, path, batch_size=BATCH)
  rows = read_csv(path)
  scored = [r for r in rows if r["score"]]
  assert len(scored) == len(GOOD)
  assert all(r["p_value"] == r["decision"] == "" for r in rows)
  assert summary["num_fake"] is None and summary["alpha"] is None


def test_resize_scores_the_whole_image(folder, tmp_path):
  root, inputs = folder
  path = str(tmp_path / "scores.csv")
  detect.detect(FakeDetector(), [os.path.join(root, "in", "large.jpg")], path,
                batch_size=BATCH, resize=True)
  (row,) = read_csv(path)
  assert float(row["score"]) == pytest.approx(
      expected_score(GOOD["in/large.jpg"], resize=True), abs=1e-6)
  assert float(row["score"]) != pytest.approx(expected_score(GOOD["in/large.jpg"]),
                                              abs=1e-4)


def test_non_finite_scores_become_error_rows(folder, tmp_path):
  root, _ = folder
  path = str(tmp_path / "scores.json")
  summary = detect.detect(FakeDetector(calibration(), nan_above=0.9),
                          [os.path.join(root, "extra")], path, batch_size=BATCH)
  with open(path) as f:
    (row,) = json.load(f)["rows"]  # strict JSON: no NaN written
  assert row["error"].startswith("non_finite_score: ") and row["score"] is None
  assert summary["num_scored"] == 0 and detect.exit_code(summary) == 1


def test_exit_code_is_zero_only_when_something_was_scored(folder, tmp_path):
  root, _ = folder
  only_bad = [os.path.join(root, p) for p in BAD]
  summary = detect.detect(FakeDetector(), only_bad, str(tmp_path / "bad.csv"))
  assert summary["num_scored"] == 0 and summary["num_errors"] == len(BAD)
  assert len(read_csv(str(tmp_path / "bad.csv"))) == len(BAD)
  assert detect.exit_code(summary) == 1
  mixed = detect.detect(FakeDetector(), only_bad + [os.path.join(root, "in/a.png")],
                        str(tmp_path / "mixed.csv"))
  assert detect.exit_code(mixed) == 0
  nothing = detect.detect(FakeDetector(), [], str(tmp_path / "none.csv"))
  assert nothing["num_files"] == 0 and detect.exit_code(nothing) == 1


def test_an_unknown_output_format_is_refused_before_any_work(folder, tmp_path):
  _, inputs = folder
  detector = FakeDetector()
  with pytest.raises(ValueError, match=r"\.csv or a \.json"):
    detect.detect(detector, inputs, str(tmp_path / "scores.txt"))
  assert detector.batch_shapes == [] and os.listdir(tmp_path) == []


def test_heatmap_names_are_flat_and_unique():
  names = detect.heatmap_names(["a/b/c.jpg", "a/b/c.png", "a/b__c.png", "A/B/C.gif",
                                "x" * 300 + ".png"])
  assert names[:4] == ["a__b__c.png", "a__b__c~2.png", "a__b__c~3.png",
                       "A__B__C~4.png"]
  assert len(names[4]) < 255 and names[4].endswith("x.png")


def test_progress_is_logged_with_rate_and_eta(folder, tmp_path, monkeypatch, caplog):
  root, _ = folder
  monkeypatch.setattr(detect, "_PROGRESS_EVERY_S", 0.0)
  with caplog.at_level(logging.INFO):
    detect.detect(FakeDetector(), [os.path.join(root, "in", "sub")],
                  str(tmp_path / "s.csv"), batch_size=1)
  progress = [r.getMessage() for r in caplog.records if "ETA" in r.getMessage()]
  assert len(progress) == 5  # one a file here; every few seconds in real runs
  assert progress[-1].startswith("detect: 5/5 files, 2 scored, ")
  rate = float(progress[-1].split(", ")[2].split()[0])
  assert rate > 0 and "images/s" in progress[-1]
  patch_rate = float(progress[-1].split(", ")[3].split()[0])
  assert progress[-1].split(", ")[3].endswith("patches/s")
  assert patch_rate == pytest.approx(rate * (SIZE // PATCH) ** 2, rel=0.05)


def test_config_runs_detect_on_comma_separated_inputs(folder, tmp_path):
  root, _ = folder
  config = config_lib.base()
  config.detect.inputs = (f"{os.path.join(root, 'in', 'sub')} , "
                          f"{os.path.join(root, 'extra', 'c.png')},")
  config.detect.output = str(tmp_path / "found.json")
  config.detect.heatmaps = True
  config.detect.batch_size = 3
  detector = FakeDetector(calibration())
  summary = detect.detect_with_config(detector, config)
  assert summary["num_files"] == 6 and summary["num_scored"] == 3
  assert detector.batch_shapes[0] == (3, SIZE, SIZE, 3)
  assert sorted(os.listdir(tmp_path / "found_heatmaps")) == [
      "c.png", "sub__b.png", "sub__deeper__grey.png"]
  config.detect.inputs = " , "
  with pytest.raises(ValueError, match="detect.inputs"):
    detect.detect_with_config(detector, config)


# --------------------------------------------------------------------------
# Whole-image mode.
# --------------------------------------------------------------------------


def whole_detector(calibration=None):
  """A WholeImageDetector on test_whole_image's stand-in backbone (28 px tiles, 14 px patches)."""
  scorer = test_whole_image.patch_statistics_scorer()
  bank_tiles = test_whole_image.smooth_images(4, 28, 28, seed=1).astype(np.float32) / 255
  bank = scorer.bank_from_points(scorer.points(bank_tiles)["mdmf"], "mdmf")
  whole = whole_image.WholeImageScorer(scorer, bank, tile_size=28, window=14, max_patches=64,
                                       tile_batch=4)
  return evaluate_whole.WholeImageDetector(whole, calibration, 28)


def test_whole_mode_scores_every_image_whole_at_native_resolution(tmp_path):
  sizes = {"big.png": (70, 100), "wide.png": (28, 150), "small.png": (20, 40)}
  images = {name: pixels(*size, seed=i) for i, (name, size) in enumerate(sizes.items())}
  for name, image in images.items():
    write(str(tmp_path / "in"), name, png(image))
  detector = whole_detector(metrics.calibrate(np.linspace(0.0, 0.2, 19), 0.1))
  summary = detect.detect(detector, [str(tmp_path / "in")], str(tmp_path / "s.json"),
                          heatmap_dir=str(tmp_path / "heat"), mode="whole", num_threads=2)
  rows = {os.path.basename(r["path"]): r for r in
          json.loads((tmp_path / "s.json").read_text())["rows"]}
  total_patches = 0
  for name, image in images.items():
    fitted = transforms.fit_to_crop(image, 28, "pad")  # small.png: padded to 28 x 40
    expected = detector.score_image(fitted)
    assert rows[name]["score"] == pytest.approx(expected.score, rel=1e-6)
    assert rows[name]["p_value"] == pytest.approx(
        float(metrics.p_values(detector.calibration, expected.score)))
    total_patches += expected.layout.num_patches
  assert summary["mode"] == "whole" and summary["num_scored"] == 3
  # images/s is rounded to 0.01 and patches/s to 0.1: at a slow rate that alone exceeds 5%.
  assert summary["patches_per_s"] == pytest.approx(
      total_patches * summary["images_per_s"] / 3, rel=0.05,
      abs=0.005 * total_patches / 3 + 0.05)
  # The heat map spans the whole picture: its PNG has the picture's aspect ratio.
  with Image.open(tmp_path / "heat" / "in__wide.png") as wide, \
       Image.open(tmp_path / "heat" / "in__big.png") as big:
    assert wide.size[0] / wide.size[1] > big.size[0] / big.size[1]


def test_whole_mode_refuses_resize(folder, tmp_path):
  root, inputs = folder
  with pytest.raises(ValueError, match="whole"):
    detect.detect(FakeDetector(), inputs, str(tmp_path / "s.csv"), resize=True, mode="whole")


@pytest.mark.parametrize("field, value, match", [
    ("detect.mode", "tiles", "detect.mode"),
    ("detect.method", "global", "detect.mode"),
    ("detect.resize", True, "detect.resize"),
])
def test_whole_mode_config_errors_name_the_field(field, value, match):
  config = config_lib.base()
  config.data.data_dir, config.data.name = "/", "x"
  config.detect.mode = "whole"
  section, key = field.split(".")
  config[section][key] = value
  with pytest.raises(config_lib.ConfigError, match=match):
    config_lib.validate(config)
