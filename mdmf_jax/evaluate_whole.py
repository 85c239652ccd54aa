"""Whole-image evaluation: centre-crop vs whole-image scoring of full-size images.

    python -m mdmf_jax.main --config=configs/demo.py --workdir=W --mode=eval_whole \
        --config.eval.whole_data_name=mdmf_demo_whole

(also at the end of --mode=eval when config.eval.whole_data_name is set). With
W's trained PFS and mdmf bank (built by --mode=eval if missing), every image of
the benchmark `eval.whole_data_name` is scored twice: its centre S x S crop, as
evaluate.py scores, and whole (whole_image.py: all its patches at native
resolution, at most eval.whole_max_patches). Each mode is calibrated on its own
scores of the reals of `eval.whole_calibration_split` (half calibrate, half
check the FPR), so its p-values are exact in that mode. Writes W/eval/whole/:
  calibration.json       per mode: the conformal calibration, its empirical FPR
                         on the other half beside the 95% band of that FPR for
                         this many calibration reals, and the whole-image
                         settings (reused by --mode=detect --config.detect.mode=whole)
  <split>.md|csv|json    per generator: AUROC and TPR at the calibrated
                         threshold, crop next to whole
  <split>_scores.csv     per image: path, label, generator, patches, crop and
                         whole scores (the calibration split's reals too)
  summary.md|csv|json    per split and mode: average AUROC; empirical FPR on
                         the split's reals, its 95% band, and a KS test of those
                         reals against the calibration reals (exchangeable or
                         not: the guarantee needs it); mean patches per image
A real stored once per generator folder (same bytes) is scored once.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import json
import os
import time

from absl import logging
from etils import epath
import numpy as np
import scipy.stats

from mdmf_jax import config_lib, evaluate, features, metrics, reports, whole_image
from mdmf_jax.data import builder, pipeline, transforms

MODES = ("crop", "whole")
CALIBRATION_FILE = "calibration.json"


def whole_scorer(config, scorer, bank) -> whole_image.WholeImageScorer:
  """`scorer` (a scoring.Scorer) and `bank` scoring whole images as `config` says."""
  size = config.data.image_size
  return whole_image.WholeImageScorer(
      scorer, bank, tile_size=size, window=size // features.grid_shape(config)[0],
      max_patches=config.eval.whole_max_patches, tile_batch=config.eval.whole_tile_batch,
      seed=config.seed)


def settings(config) -> dict:
  """What whole-image scores depend on beyond the workdir: a calibration holds only for these."""
  return {"tile_size": config.data.image_size, "max_patches": config.eval.whole_max_patches,
          "seed": config.seed}


def _crop_scores(scorer, bank, crops, batch_size):
  """mdmf scores of uint8 (N, S, S, 3) crops in zero-padded batches (static shapes)."""
  out = []
  for first in range(0, len(crops), batch_size):
    chunk = crops[first:first + batch_size]
    batch = np.zeros((batch_size,) + chunk.shape[1:], np.float32)
    batch[:len(chunk)] = chunk / 255.0
    out.append(np.asarray(scorer.scores(batch, {"mdmf": bank})["mdmf"][0])[:len(chunk)])
  return np.concatenate(out)


def score_split(config, scorer, whole, bank, split, field, reals_only=False
                ) -> dict[str, np.ndarray]:
  """{"label", "generator", "path", "digest", "patches", "crop", "whole"} of every record
  (of every real one if `reals_only`)."""
  name = config.eval.whole_data_name
  try:
    builder.check_split(config.data.data_dir, name, split, field)
  except ValueError as e:
    raise config_lib.ConfigError(str(e)) from None
  options = pipeline.ImageOptions(image_size=config.data.image_size,
                                  small_images=config.data.small_images,
                                  format_alignment_quality=config.data.format_alignment_quality)
  columns = {k: [] for k in ("label", "generator", "path", "digest")}
  by_digest, crops = {}, []  # digest -> (whole score, patches); first-seen crops
  start, patches = time.monotonic(), 0
  for record in pipeline.open_split(config.data.data_dir, name, split):
    if reals_only and record["label"] != 0:
      continue
    digest = hashlib.sha256(record["image"]).hexdigest()
    for key, value in (("label", record["label"]), ("generator", record["generator"]),
                       ("path", record["path"]), ("digest", digest)):
      columns[key].append(value)
    if digest in by_digest:
      continue
    image = options.fit(options.load(record["image"]))
    scored = whole(image)
    by_digest[digest] = (scored.score, scored.layout.num_patches)
    crops.append(transforms.center_crop(image, config.data.image_size))
    patches += scored.layout.num_patches
    elapsed = time.monotonic() - start
    logging.log_every_n_seconds(logging.INFO, "%s/%s: %d images, %.2f images/s, %.0f patches/s",
                                10, name, split, len(by_digest), len(by_digest) / elapsed,
                                patches / elapsed)
  crop_of = dict(zip(by_digest, _crop_scores(scorer, bank, np.stack(crops),
                                             config.eval.batch_size)))
  out = {k: np.asarray(v) for k, v in columns.items()}
  out["whole"] = np.asarray([by_digest[d][0] for d in out["digest"]])
  out["patches"] = np.asarray([by_digest[d][1] for d in out["digest"]])
  out["crop"] = np.asarray([crop_of[d] for d in out["digest"]])
  return out


def _unique_reals(scored) -> np.ndarray:
  """Row indices of the distinct real images (by bytes), in path order."""
  first = {}
  for i in np.argsort(scored["path"], kind="stable"):
    if scored["label"][i] == 0:
      first.setdefault(scored["digest"][i], i)
  return np.asarray(sorted(first.values(), key=lambda i: scored["path"][i]), int)


def calibrate(config, scored) -> tuple[dict[str, metrics.Calibration], dict]:
  """Per mode: threshold from the even-numbered distinct reals, FPR on the odd ones."""
  reals = _unique_reals(scored)
  first, second = reals[0::2], reals[1::2]
  calibrations, report = {}, {}
  for mode in MODES:
    calibrations[mode], report[mode] = metrics.calibrate_and_check(
        scored[mode][first], scored[mode][second], config.eval.alpha,
        f"whole-image evaluation, {mode}")
    report[mode]["settings"] = settings(config)
  return calibrations, report


def comparison_rows(scored, calibrations, names) -> list[dict]:
  """Per generator (and average): AUROC and TPR at the calibrated threshold, crop and whole."""
  rows = []
  for g, name in enumerate(names):
    rows_g = scored["generator"] == g
    if not rows_g.any():
      continue
    row = {"generator": name}
    for metric, column in (("auroc", "auroc"), ("fake_acc", "tpr")):
      for mode in MODES:
        m = metrics.binary_metrics(scored[mode][rows_g], scored["label"][rows_g],
                                   calibrations[mode].threshold)
        row[f"{column}_{mode}"] = m[metric]
    rows.append(row)
  return rows + [reports.average_row(rows)]


def summary_rows(split, scored, calibrations, comparison, crop_patches, calibration_reals
                 ) -> list[dict]:
  """Per mode: average AUROC; empirical FPR (%) on the split's distinct reals beside the
  95% band one calibration set's FPR falls in (metrics.fpr_band); the Kolmogorov-Smirnov
  p-value of the split's reals against `calibration_reals` (the calibration split's
  distinct reals' {mode: scores}), small when the two are not exchangeable, so that the
  band does not apply; patches/image."""
  reals = _unique_reals(scored)
  patches = {"crop": float(crop_patches), "whole": float(np.mean(scored["patches"]))}
  rows = []
  for mode in MODES:
    band = metrics.fpr_band(calibrations[mode].scores.size, calibrations[mode].alpha)
    rows.append({
        "split": split, "mode": mode, "auroc": comparison[-1][f"auroc_{mode}"],
        "fpr_at_alpha": 100 * metrics.empirical_fpr(calibrations[mode], scored[mode][reals]),
        "fpr_band_low": 100 * band[0], "fpr_band_high": 100 * band[1],
        "ks_p_vs_calibration": float(scipy.stats.ks_2samp(
            scored[mode][reals], calibration_reals[mode]).pvalue),
        "tpr_at_alpha": comparison[-1][f"tpr_{mode}"], "num_real": len(reals),
        "num_fake": int(np.sum(scored["label"] == 1)), "patches_per_image": patches[mode]})
  return rows


def write_scores(path, scored, names):
  """Per-image rows: path, label, generator name, patches, crop score, whole score."""
  with epath.Path(path).open("w") as f:
    writer = csv.writer(f)
    writer.writerow(("path", "label", "generator", "patches", "crop", "whole"))
    for i in range(len(scored["path"])):
      writer.writerow((scored["path"][i], scored["label"][i], names[scored["generator"][i]],
                       scored["patches"][i], scored["crop"][i], scored["whole"][i]))


def _generator_names(config, split) -> list[str]:
  return pipeline.generator_names(
      pipeline.open_split(config.data.data_dir, config.eval.whole_data_name, split))


def _out_dir(workdir) -> str:
  path = epath.Path(workdir) / "eval" / "whole"
  path.mkdir(parents=True, exist_ok=True)
  return os.fspath(path)


def _mdmf_bank(config, scorer, workdir):
  """W's mdmf bank (evaluate.build_banks: reused when saved with the same settings)."""
  mdmf_only = copy.deepcopy(config)
  mdmf_only.eval.methods = ("mdmf",)
  return evaluate.build_banks(mdmf_only, scorer, workdir)["mdmf"]


def evaluate_whole(config, workdir) -> dict[str, list[dict]]:
  """The whole-image evaluation (module docstring); returns {split: comparison rows}."""
  if not config.eval.whole_data_name:
    raise config_lib.ConfigError("config.eval.whole_data_name: name a benchmark of "
                                 "full-size images (e.g. mdmf_demo_whole)")
  scorer = evaluate.load_scorer(config, workdir)
  bank = scorer.place(_mdmf_bank(config, scorer, workdir))  # on the devices, once
  whole = whole_scorer(config, scorer, bank)
  out_dir = _out_dir(workdir)
  scored = score_split(config, scorer, whole, bank, config.eval.whole_calibration_split,
                       "eval.whole_calibration_split", reals_only=True)
  calibrations, report = calibrate(config, scored)
  (epath.Path(out_dir) / CALIBRATION_FILE).write_text(json.dumps(report, indent=2))
  calibration_reals = {mode: scored[mode][_unique_reals(scored)] for mode in MODES}
  write_scores(os.path.join(out_dir, f"{config.eval.whole_calibration_split}_scores.csv"),
               scored, _generator_names(config, config.eval.whole_calibration_split))
  crop_patches = int(np.prod(features.grid_shape(config)))
  tables, summary = {}, []
  for split in config.eval.whole_splits:
    scored = score_split(config, scorer, whole, bank, split, "eval.whole_splits")
    names = _generator_names(config, split)
    write_scores(os.path.join(out_dir, f"{split}_scores.csv"), scored, names)
    tables[split] = comparison_rows(scored, calibrations, names)
    print(reports.write_table(
        tables[split], os.path.join(out_dir, split),
        f"Centre crop vs whole image: AUROC and TPR (%) at alpha={config.eval.alpha}, "
        f"split {split!r} of {config.eval.whole_data_name}"))
    summary += summary_rows(split, scored, calibrations, tables[split], crop_patches,
                            calibration_reals)
  print(reports.write_table(
      summary, os.path.join(out_dir, "summary"),
      f"Centre crop vs whole image: average AUROC, empirical FPR and TPR (%) at "
      f"alpha={config.eval.alpha} (calibrated per mode on split "
      f"{config.eval.whole_calibration_split!r})"))
  return tables


@dataclasses.dataclass(frozen=True)
class WholeImageDetector:
  """detect.py's whole-image detector: `score_image(uint8 image) -> whole_image.Scored`."""

  score_image: whole_image.WholeImageScorer
  calibration: metrics.Calibration | None
  image_size: int


def load_detector(workdir, config, method="mdmf") -> WholeImageDetector:
  """W's whole-image detector, with its whole-image calibration (after --mode=eval_whole).

  Without that calibration p-values are left empty: the crop calibration does not
  hold for whole-image scores.
  """
  if method != "mdmf":
    raise config_lib.ConfigError(f"config.detect.mode='whole' scores with mdmf only, "
                                 f"not detect.method={method!r}")
  bank_path = os.path.join(workdir, "eval", "bank_mdmf.npz")
  if not epath.Path(bank_path).exists():
    raise FileNotFoundError(f"{bank_path} is missing: run --mode=eval on {workdir} first")
  calibration = None
  path = epath.Path(workdir) / "eval" / "whole" / CALIBRATION_FILE
  if path.exists():
    saved = json.loads(path.read_text())["whole"]
    if saved["settings"] != settings(config):
      raise config_lib.ConfigError(
          f"config.eval.whole_max_patches (or seed, data.image_size): the whole-image "
          f"calibration in {path} was made with {saved['settings']}, not "
          f"{settings(config)}; rerun --mode=eval_whole or match them")
    calibration = metrics.Calibration.from_json(saved)
  else:
    logging.warning("%s is missing (run --mode=eval_whole): whole-image scores get no "
                    "p-values", path)
  whole = whole_scorer(config, evaluate.load_scorer(config, workdir),
                       evaluate.load_bank(bank_path))
  return WholeImageDetector(whole, calibration, config.data.image_size)
