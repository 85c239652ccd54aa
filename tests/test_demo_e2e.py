"""The whole pipeline through main.py on a tiny demo benchmark: train, eval, detect."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats
from PIL import Image

from mdmf_jax import config_lib, evaluate, evaluate_whole, metrics
from mdmf_jax.data import demo, transforms
from tests.test_data_demo import tiny_config as tiny_demo_config
from tests.test_train import REPO


def run_main(*args):
  result = subprocess.run(
      [sys.executable, "-m", "mdmf_jax.main", "--config=configs/demo.py:tiny", *args],
      cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, capture_output=True, text=True)
  return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("demo"))
  demo.build_demo(data_dir, seed=0, config=tiny_demo_config())
  workdir = str(tmp_path_factory.mktemp("workdir"))
  common = [f"--workdir={workdir}", f"--config.data.data_dir={data_dir}",
            "--config.data.name=demo_tiny"]
  # val as a further evaluation split; the tiny demo has no cross_source (skipped).
  result = run_main(*common, "--config.eval.extra_splits=('val', 'cross_source')")
  assert result.returncode == 0, result.stderr[-4000:]
  return workdir, common, result.stdout + result.stderr


def test_extra_splits_and_the_seen_unseen_summary(trained):
  workdir, _, output = trained
  out = os.path.join(workdir, "eval")
  assert "'cross_source' is not a split of demo_tiny" in output
  assert not os.path.exists(os.path.join(out, "cross_source"))
  summary = {r["method"]: r for r in json.load(open(os.path.join(out, "summary.json")))["rows"]}
  assert set(summary) == {"mdmf", "linear_probe", "global", "patch_vote"}
  for split, folder in (("test", out), ("val", os.path.join(out, "val"))):
    for method, row in summary.items():
      rows = json.load(open(os.path.join(folder, f"{method}.json")))["rows"][:-1]
      assert [r["generator"] for r in rows] == ["bilinear", "nearest", "pixel_shuffle", "tconv"]
      unseen = [r["auroc"] for r in rows if r["generator"] != "tconv"]
      np.testing.assert_allclose(row[f"{split}: seen"], rows[3]["auroc"])  # tconv trains
      np.testing.assert_allclose(row[f"{split}: unseen"], np.mean(unseen))
    assert os.path.exists(os.path.join(folder, "comparison.md"))
    assert os.path.exists(os.path.join(folder, "roc_mdmf.png"))


def test_eval_writes_tables_calibration_plots_and_heatmaps(trained):
  workdir, _, output = trained
  out = os.path.join(workdir, "eval")
  for method in ("mdmf", "global", "patch_vote"):
    rows = json.load(open(os.path.join(out, f"{method}.json")))["rows"]
    generators = [r["generator"] for r in rows]
    assert generators == ["bilinear", "nearest", "pixel_shuffle", "tconv", "average"]
    assert all(0 <= r["auroc"] <= 100 for r in rows)
    assert rows[-1]["num_real"] == np.mean([r["num_real"] for r in rows[:-1]])
    assert os.path.getsize(os.path.join(out, f"roc_{method}.png")) > 0
    assert os.path.getsize(os.path.join(out, f"hist_{method}.png")) > 0
    assert os.path.exists(os.path.join(out, f"{method}.md"))
    assert os.path.exists(os.path.join(out, f"bank_{method}.npz"))
  assert "| average" in output  # the tables are printed
  calibration = json.load(open(os.path.join(out, "calibration.json")))
  for method, cal in calibration.items():  # the threshold is the conformal one of its scores
    expected = metrics.calibrate(np.asarray(cal["scores"]), 0.2)
    assert cal["alpha"] == 0.2 and float(cal["threshold"]) == expected.threshold, method
    assert cal["num_fpr_check"] > 0
    assert cal["empirical_fpr"] * cal["num_fpr_check"] == round(
        cal["empirical_fpr"] * cal["num_fpr_check"])  # a fraction of the held-out reals
  heatmaps = os.listdir(os.path.join(out, "heatmaps"))
  assert len(heatmaps) == 2 and {"0_real" in h for h in heatmaps} == {True, False}
  for kind in ("jpeg", "blur", "noise"):
    assert os.path.exists(os.path.join(out, f"robustness_{kind}.png"))


def test_detect_scores_a_folder_and_reports_bad_files(trained, tmp_path):
  workdir, common, _ = trained
  folder = tmp_path / "inputs"
  os.makedirs(folder / "nested")
  Image.new("RGB", (40, 36), (120, 30, 200)).save(folder / "a.png")
  Image.effect_noise((50, 50), 40).convert("RGB").save(folder / "nested" / "b.jpg")
  (folder / "broken.jpg").write_bytes(b"not an image at all")
  output = tmp_path / "scores.csv"
  result = run_main(*common, "--mode=detect", f"--config.detect.inputs={folder}",
                    f"--config.detect.output={output}", "--config.detect.heatmaps=True")
  assert result.returncode == 0, result.stderr[-4000:]
  rows = {os.path.basename(r["path"]): r for r in csv.DictReader(open(output))}
  assert set(rows) == {"a.png", "b.jpg", "broken.jpg"}
  assert rows["broken.jpg"]["error"] and not rows["broken.jpg"]["score"]
  for name in ("a.png", "b.jpg"):
    assert rows[name]["score"] and not rows[name]["error"]
    assert 0 < float(rows[name]["p_value"]) <= 1 and rows[name]["decision"] in ("real", "fake")
  assert len(os.listdir(tmp_path / "scores_heatmaps")) == 2


def test_detect_fails_when_nothing_can_be_scored(trained, tmp_path):
  workdir, common, _ = trained
  (tmp_path / "only_bad.png").write_bytes(b"")
  result = run_main(*common, "--mode=detect", f"--config.detect.inputs={tmp_path}",
                    f"--config.detect.output={tmp_path / 'out.json'}")
  assert result.returncode == 1, result.stderr[-2000:]  # detect.exit_code, not a crash
  assert "Traceback" not in result.stderr
  written = json.load(open(tmp_path / "out.json"))
  assert written["summary"]["num_files"] == 1 and written["summary"]["num_scored"] == 0
  (row,) = written["rows"]
  assert row["path"].endswith("only_bad.png") and row["error"].startswith("empty")


@pytest.mark.parametrize("method", ["global", "patch_vote"])
def test_detect_method_and_resize_through_main(trained, tmp_path, method):
  """detect.method picks that method's bank and threshold; detect.resize scales, not crops."""
  workdir, common, _ = trained
  image = np.random.default_rng(5).integers(0, 256, (56, 84, 3), dtype=np.uint8)
  Image.fromarray(image).save(tmp_path / "wide.png")
  output = tmp_path / "scores.csv"
  result = run_main(*common, "--mode=detect", f"--config.detect.inputs={tmp_path / 'wide.png'}",
                    f"--config.detect.output={output}", f"--config.detect.method={method}",
                    "--config.detect.resize=True")
  assert result.returncode == 0, result.stderr[-4000:]
  (row,) = list(csv.DictReader(open(output)))
  detector = evaluate.load_detector(workdir, method=method)
  resized = transforms.resize(image, 28, 28).astype(np.float32)  # not a centre crop
  expected = detector.score(resized[None] / 255.0)[0]
  np.testing.assert_allclose(float(row["score"]), expected, rtol=1e-4, atol=1e-6)
  threshold = json.load(open(os.path.join(workdir, "eval", "calibration.json")))[method]
  assert row["decision"] == ("fake" if expected > float(threshold["threshold"]) else "real")


def test_detector_loads_from_the_workdir_alone(trained):
  workdir, _, _ = trained
  detector = evaluate.load_detector(workdir)  # config from WORKDIR/config.json
  assert detector.image_size == 28 and detector.calibration.alpha == 0.2
  images = np.random.default_rng(0).random((8, 28, 28, 3)).astype(np.float32)
  scores = detector.score(images)
  assert scores.shape == (8,) and np.all(np.isfinite(scores))
  assert detector.heatmaps(images).shape == (8, 2, 2)


def test_eval_whole_then_detect_whole_through_main(trained, tmp_path):
  """--mode=eval_whole tabulates crop vs whole; detect.mode=whole uses its calibration."""
  workdir, common, _ = trained
  result = run_main(*common, "--mode=eval_whole", "--config.eval.whole_data_name=demo_tiny",
                    "--config.eval.whole_splits=('test',)")
  assert result.returncode == 0, result.stderr[-4000:]
  out = os.path.join(workdir, "eval", "whole")
  summary = json.load(open(os.path.join(out, "summary.json")))["rows"]
  assert [(r["split"], r["mode"]) for r in summary] == [("test", "crop"), ("test", "whole")]
  # 32 px crops, 28 px model: 2 x 2 patches cropped, 3 x 3 whole (a flush border tile).
  assert [r["patches_per_image"] for r in summary] == [4, 9]
  rows = json.load(open(os.path.join(out, "test.json")))["rows"]
  assert [r["generator"] for r in rows] == ["bilinear", "nearest", "pixel_shuffle", "tconv",
                                            "average"]
  calibration = json.load(open(os.path.join(out, "calibration.json")))
  assert set(calibration) == {"crop", "whole"}
  assert calibration["whole"]["settings"]["max_patches"] == 8192
  # The FPR band and the exchangeability test, recomputed from the per-image scores of the
  # calibration split's reals and of the test split's (distinct images: distinct scores).
  def real_scores(split, mode):
    with open(os.path.join(out, f"{split}_scores.csv")) as f:
      return np.unique([float(r[mode]) for r in csv.DictReader(f) if r["label"] == "0"])
  for row in summary:
    mode = row["mode"]
    calibration_reals = real_scores("val", mode)
    nearest = np.abs(np.subtract.outer(calibration[mode]["scores"], calibration_reals))
    assert nearest.min(axis=1).max() < 1e-6  # every calibration score is a listed real's
    band = metrics.fpr_band(len(calibration[mode]["scores"]), 0.2)
    assert (row["fpr_band_low"], row["fpr_band_high"]) == pytest.approx((100 * band[0],
                                                                          100 * band[1]))
    assert row["ks_p_vs_calibration"] == pytest.approx(scipy.stats.ks_2samp(
        real_scores("test", mode), calibration_reals).pvalue)

  image = np.random.default_rng(6).integers(0, 256, (40, 61, 3), dtype=np.uint8)
  Image.fromarray(image).save(tmp_path / "big.png")
  output = tmp_path / "scores.json"
  result = run_main(*common, "--mode=detect", "--config.detect.mode=whole",
                    f"--config.detect.inputs={tmp_path / 'big.png'}",
                    f"--config.detect.output={output}", "--config.detect.heatmaps=True")
  assert result.returncode == 0, result.stderr[-4000:]
  written = json.load(open(output))
  (row,) = written["rows"]
  config = config_lib.from_json(json.load(open(os.path.join(workdir, "config.json"))))
  detector = evaluate_whole.load_detector(workdir, config)
  expected = detector.score_image(image)
  assert expected.layout.num_patches == 3 * 5
  np.testing.assert_allclose(row["score"], expected.score, rtol=1e-5)
  cal = metrics.Calibration.from_json(calibration["whole"])
  assert row["p_value"] == float(metrics.p_values(cal, row["score"]))
  assert written["summary"]["mode"] == "whole"
  assert os.listdir(tmp_path / "scores_heatmaps") == ["big.png"]
