"""Evaluation: reference bank, calibration, per-generator metrics, robustness, heat maps.

    python -m mdmf_jax.main --config=configs/demo.py --workdir=W --mode=eval

(also run at the end of training when `config.eval.after_training`). Reads the
trained PFS from W's latest checkpoint and writes to W/eval/:
  bank_<method>.npz        reference banks (reused by --mode=detect)
  linear_probe_model.json  the linear-probe baseline (linear_probe.py), reused too
  calibration.json         per method: threshold at alpha, calibration scores,
                           and the empirical FPR on a second held-out real set;
                           the reals of config.eval.calibration_data_name
                           (default data.name: the deployed detector's own reals)
  <method>.md|csv|json     per-generator AUROC, AP, accuracies, TPR@FPR
  comparison.md|csv|json   per-generator AUROC and AP of every method side by side
                           (MDMF next to the linear probe)
  summary.md|csv|json      per method: average AUROC over the generators seen in
                           training and the unseen ones, for the test split and
                           each of config.eval.extra_splits
  <extra split>/           the per-method tables, comparison and plots of each
                           of config.eval.extra_splits (e.g. cross_source)
  roc_<method>.png, hist_<method>.png, robustness_*.md|png, heatmaps/*.png
"""

from __future__ import annotations

import copy
import json
import os
import time

from absl import logging
from etils import epath
import grain
import jax
import numpy as np
from jax.experimental import multihost_utils

from mdmf_jax import (checkpoint, config_lib, detector, features, linear_probe, metrics,
                      reports, scoring, selection)
from mdmf_jax.data import builder, pipeline, transforms


def _eval_batches(config, split, benchmark=True, *, name=None, field=None, shard_options=None):
  """Deterministic padded batches of `split`, preprocessed exactly as in training and detection.

  The data set is `name`, else config.eval.data_name (default data.name) when
  `benchmark`, else data.name. A missing split raises ConfigError naming `field`.
  `shard_options`: grain sharding (default: this process's shard, which this process
  scores on its own devices: scoring.py).
  """
  if name is None:
    name = (config.eval.data_name or config.data.name) if benchmark else config.data.name
  try:
    builder.check_split(config.data.data_dir, name, split, field)
  except ValueError as e:
    raise config_lib.ConfigError(str(e)) from None
  return pipeline.eval_dataset(
      config.data.data_dir, name, split=split, global_batch_size=config.eval.batch_size,
      image_size=config.data.image_size, small_images=config.data.small_images,
      format_alignment_quality=config.data.format_alignment_quality,
      num_threads=config.data.num_threads, shard_options=shard_options)


def _eval_dir(workdir):
  path = epath.Path(workdir) / "eval"  # local or a cloud URI (gs://...)
  path.mkdir(parents=True, exist_ok=True)
  return os.fspath(path)


def load_scorer(config, workdir) -> scoring.Scorer:
  """The frozen backbone and the trained PFS of `workdir`: its selected checkpoint when
  training selected one on validation (selection.py), else its latest."""
  model, backbone_params = features.frozen_backbone(config)
  images_in = detector.Detector.from_config(config, model)
  size = config.data.image_size
  z = jax.eval_shape(images_in.features, backbone_params,
                     jax.ShapeDtypeStruct((1, size, size, 3), np.float32))
  trained, which = selection.load_trained(workdir, images_in.template(z.shape[-1]))
  logging.info("scoring with the PFS of %s", which)
  global_featurize = linear_probe.make_global_featurizer(model, config.eval.probe_feature,
                                                         config.eval.probe_block)
  return scoring.Scorer(images_in, backbone_params, trained,
                        block_size=config.eval.bank_block, global_featurize=global_featurize)


# --------------------------------------------------------------------------
# Reading and perturbing images.
# --------------------------------------------------------------------------

PERTURBATIONS = {
    "jpeg": lambda image, quality, rng: transforms.jpeg_roundtrip(image, quality),
    "blur": lambda image, sigma, rng: transforms.gaussian_blur(image, sigma),
    "noise": lambda image, sigma, rng: np.clip(
        np.rint(image + rng.normal(0.0, 255.0 * sigma, image.shape)), 0, 255).astype(np.uint8),
}


def _perturb(images, kind, strength, seed):
  if kind is None or (kind != "jpeg" and strength == 0):  # JPEG is lossy even at 100
    return images
  rng = np.random.default_rng(seed)
  as_uint8 = np.rint(images * 255.0).astype(np.uint8)
  out = np.stack([PERTURBATIONS[kind](image, strength, rng) for image in as_uint8])
  return out.astype(np.float32) / 255.0


def score_split(config, scorer, banks, split, *, perturbation=(None, None), data_name=None,
                field="eval.test_split"):
  """Scores every image of `split` by every method; gathered over processes.

  Returns {"label", "generator", "index", method: scores} over all processes,
  plus "path" in single-process runs. `perturbation` = (kind, strength) is applied
  to the S x S crops (a test-time robustness probe). The data set is `data_name`
  (default: the benchmark, config.eval.data_name or data.name); `field` is the
  config field holding `split`, named if the split is missing. `banks`: placed on the
  scorer's devices once by the caller (`scorer.place`), else placed at every batch.
  """
  data = _eval_batches(config, split, name=data_name, field=field)
  columns = {k: [] for k in ("label", "generator", "index", "mask", *banks)}
  paths = []
  start, seen = time.time(), 0
  for i, batch in enumerate(data):
    images = _perturb(batch["image"], *perturbation, seed=config.seed + i)
    for method, (scores, _) in scorer.scores(images, banks).items():
      columns[method].append(np.asarray(scores))
    for key in ("label", "generator", "index", "mask"):
      columns[key].append(np.asarray(batch[key]))
    paths.extend(batch["path"])
    seen += int(batch["mask"].sum())
    logging.log_every_n_seconds(logging.INFO, "%s: %d images scored, %.1f images/s", 10,
                                split, seen, seen / (time.time() - start))
  out = {k: np.concatenate(v) for k, v in columns.items()}
  out = jax.tree.map(lambda a: np.asarray(multihost_utils.process_allgather(a)).reshape(-1)
                     if jax.process_count() > 1 else a, out)
  keep = out.pop("mask").astype(bool)
  out = {k: v[keep] for k, v in out.items()}
  if jax.process_count() == 1:
    out["path"] = np.asarray(paths)[keep]
  return out


# --------------------------------------------------------------------------
# Banks and calibration.
# --------------------------------------------------------------------------


def _bank_path(workdir, method):
  return os.path.join(_eval_dir(workdir), f"bank_{method}.npz")


def save_bank(path, bank: scoring.Bank, settings: dict | None = None):
  """Writes `bank` (and the `bank_settings` it was built with) to `path`, local or a URI."""
  points = bank.points if isinstance(bank.points, tuple) else (bank.points,)
  with epath.Path(path).open("wb") as f:
    np.savez(f, *points, rr_mean=bank.rr_mean, vote_threshold=bank.vote_threshold,
             settings=json.dumps(settings or {}, sort_keys=True))


def _load_npz(path):
  with epath.Path(path).open("rb") as f:
    return dict(np.load(f))


def load_bank(path) -> scoring.Bank:
  f = _load_npz(path)
  points = tuple(f[f"arr_{i}"] for i in range(sum(k.startswith("arr_") for k in f)))
  return scoring.Bank(points=points if len(points) > 1 else points[0],
                      rr_mean=f["rr_mean"], vote_threshold=f["vote_threshold"])


def bank_settings(config, scorer) -> dict:
  """What a bank depends on beyond the workdir's guarded config: eval.bank_* and the trained
  PFS and kernel."""
  return {"split": config.eval.bank_split, "images": config.eval.bank_images,
          "patches": config.eval.bank_patches, "vote_quantile": config.eval.vote_quantile,
          "trained_sha256": checkpoint.params_digest(scorer.params["trained"])}


def _saved_settings(path) -> dict | None:
  if not epath.Path(path).exists():
    return None
  settings = _load_npz(path).get("settings")  # absent in banks of older versions
  return None if settings is None else json.loads(str(settings))


def build_banks(config, scorer, workdir) -> dict[str, scoring.Bank]:
  """Reference banks from the clean real images of `config.eval.bank_split`, saved in W/eval.

  Every process reads the whole bank split (not its shard), so all score
  against the same bank. Saved banks are reused only if built with the same
  `bank_settings`; otherwise they are stale and rebuilt.
  """
  paths = {m: _bank_path(workdir, m) for m in config.eval.methods}
  settings = bank_settings(config, scorer)
  if all(_saved_settings(p) == settings for p in paths.values()):
    return {m: load_bank(p) for m, p in paths.items()}
  data = _eval_batches(config, config.eval.bank_split, benchmark=False,
                       shard_options=grain.sharding.NoSharding())
  collected, count = {"mdmf": [], "global": []}, 0
  for batch in data:
    real = batch["mask"] & (batch["label"] == 0)
    points = scorer.points(batch["image"])
    for key in collected:
      collected[key].append(jax.tree.map(lambda a: np.asarray(a)[real], points[key]))
    count += int(real.sum())
    if count >= config.eval.bank_images:
      break
  if count < config.eval.bank_images:
    logging.warning("bank: only %d real images in split %r (asked for %d)", count,
                    config.eval.bank_split, config.eval.bank_images)
  rng = np.random.default_rng(config.seed)
  banks = {}
  for method in config.eval.methods:
    key = "global" if method == "global" else "mdmf"
    points = jax.tree.map(lambda *a: np.concatenate(a)[:config.eval.bank_images],
                          *collected[key])
    points = selection.bank_subset(points, config.eval.bank_patches, rng)
    banks[method] = scorer.bank_from_points(points, method, config.eval.vote_quantile)
    if jax.process_index() == 0:
      save_bank(paths[method], banks[method], settings)
  return banks


def calibrate(config, scorer, banks, workdir) -> dict[str, metrics.Calibration]:
  """Thresholds at alpha from half of the calibration split's reals; FPR on the other half.

  The reals are those of config.eval.calibration_data_name (default data.name), not of
  the benchmark: a detector is deployed with the threshold of its own training data,
  and a benchmark may have a test split only.
  """
  scored = score_split(config, scorer, banks, config.eval.calibration_split,
                       data_name=config.eval.calibration_data_name or config.data.name,
                       field="eval.calibration_split")
  real = scored["label"] == 0
  first_half = (scored["index"] % 2 == 0) & real
  second_half = (scored["index"] % 2 == 1) & real
  calibrations, report = {}, {}
  for method in banks:
    calibrations[method], report[method] = metrics.calibrate_and_check(
        scored[method][first_half], scored[method][second_half], config.eval.alpha, method)
  if jax.process_index() == 0:
    (epath.Path(_eval_dir(workdir)) / "calibration.json").write_text(json.dumps(report, indent=2))
  return calibrations


def load_calibrations(workdir) -> dict[str, metrics.Calibration]:
  text = (epath.Path(workdir) / "eval" / "calibration.json").read_text()
  return {m: metrics.Calibration.from_json(d) for m, d in json.loads(text).items()}


# --------------------------------------------------------------------------
# The evaluation.
# --------------------------------------------------------------------------


def generator_rows(scored, method, calibration, generator_names):
  """One metrics row per generator (its reals and fakes) plus the average row."""
  rows = []
  for g, name in enumerate(generator_names):
    rows_g = scored["generator"] == g
    if not rows_g.any():
      continue
    m = metrics.binary_metrics(scored[method][rows_g], scored["label"][rows_g],
                               calibration.threshold)
    rows.append({"generator": name, **m})
  return rows + [reports.average_row(rows)]


def comparison_rows(tables: dict[str, list[dict]]) -> list[dict]:
  """Per generator (and average): AUROC and AP of every method, in scoring.METHODS order."""
  methods = [m for m in scoring.METHODS if m in tables] + [m for m in tables
                                                          if m not in scoring.METHODS]
  rows = []
  for i, row in enumerate(tables[methods[0]]):
    out = {"generator": row["generator"]}
    for metric in ("auroc", "ap"):
      out.update({f"{metric}_{m}": tables[m][i][metric] for m in methods})
    rows.append(out)
  return rows


def build_models(config, scorer, workdir) -> dict:
  """{method: Bank, or the linear_probe.Probe} for config.eval.methods, in table order."""
  mmd_config = copy.deepcopy(config)
  mmd_config.eval.methods = tuple(m for m in config.eval.methods if m != "linear_probe")
  models = build_banks(mmd_config, scorer, workdir)
  if "linear_probe" in config.eval.methods:
    models["linear_probe"] = linear_probe.train_or_load(config, scorer, _eval_dir(workdir))
  return {m: models[m] for m in scoring.METHODS if m in models}


def _robustness(config, scorer, banks, out_dir):
  sweeps = {"jpeg": ("JPEG quality", config.eval.jpeg_qualities),
            "blur": ("Gaussian blur sigma (px)", config.eval.blur_sigmas),
            "noise": ("Gaussian noise sigma (fraction of 255)", config.eval.noise_sigmas)}
  for kind, (label, strengths) in sweeps.items():
    if not strengths:  # a sweep switched off by an empty tuple
      continue
    auroc = {m: {} for m in banks}
    rows = []
    for strength in strengths:
      scored = score_split(config, scorer, banks, config.eval.test_split,
                           perturbation=(kind, strength))
      for method in banks:
        average = metrics.binary_metrics(scored[method], scored["label"], np.inf)
        auroc[method][strength] = average["auroc"]
        rows.append({"method": method, kind: strength, "auroc": average["auroc"],
                     "ap": average["ap"]})
    if jax.process_index() == 0:
      print(reports.write_table(rows, os.path.join(out_dir, f"robustness_{kind}"),
                                f"Robustness to {label} (all generators pooled)"))
      reports.plot_robustness(auroc, os.path.join(out_dir, f"robustness_{kind}.png"), label,
                              "AUROC (%)")


def _heatmaps(config, scorer, banks, calibration, scored, out_dir):
  """Witness heat maps of the highest-scoring test fakes and reals (mdmf)."""
  per_label = max(1, config.eval.num_heatmaps // 2)
  chosen = set()
  for label in (1, 0):
    rows = np.flatnonzero(scored["label"] == label)
    top = rows[np.argsort(-scored["mdmf"][rows])[:per_label]]
    chosen.update(int(i) for i in scored["index"][top])
  crop_detector = scoring.CropDetector(scorer, banks["mdmf"],
                                       image_size=config.data.image_size,
                                       grid=features.grid_shape(config), calibration=calibration)
  folder = os.path.join(out_dir, "heatmaps")
  for batch in _eval_batches(config, config.eval.test_split, field="eval.test_split"):
    hits = [i for i, index in enumerate(batch["index"]) if batch["mask"][i] and index in chosen]
    if not hits:
      continue
    heat, scores = crop_detector.heatmaps(batch["image"]), crop_detector.score(batch["image"])
    for i in hits:
      name = os.path.splitext(batch["path"][i].replace("/", "__"))[0]
      label = "fake" if batch["label"][i] else "real"
      reports.plot_heatmap(batch["image"][i], heat[i], os.path.join(folder, f"{name}.png"),
                           title=f"{label}: score {scores[i]:.3g}")
      chosen.discard(int(batch["index"][i]))
    if not chosen:
      break


def _tabulate(scored, banks, calibrations, names, split, out_dir) -> dict[str, list[dict]]:
  """Per-method tables, ROC curves and histograms of one scored split, plus the comparison."""
  tables = {method: generator_rows(scored, method, calibrations[method], names)
            for method in banks}
  if jax.process_index() != 0:
    return tables
  for method, rows in tables.items():
    title = (f"{method}: split {split!r}, threshold at alpha="
             f"{calibrations[method].alpha} calibrated on held-out reals")
    print(reports.write_table(rows, os.path.join(out_dir, method), title))
    curves = {n: (scored[method][(scored["generator"] == g)],
                  scored["label"][(scored["generator"] == g)]) for g, n in enumerate(names)
              if (scored["generator"] == g).any()}
    reports.plot_roc(curves, os.path.join(out_dir, f"roc_{method}.png"))
    groups = {"real": scored[method][scored["label"] == 0]}
    groups.update({f"fake: {n}": scored[method][(scored["generator"] == g)
                                                & (scored["label"] == 1)]
                   for g, n in enumerate(names)})
    reports.plot_score_histograms(groups, os.path.join(out_dir, f"hist_{method}.png"),
                                  threshold=calibrations[method].threshold)
  print(reports.write_table(comparison_rows(tables), os.path.join(out_dir, "comparison"),
                            f"All methods: AUROC and AP (%), split {split!r}"))
  return tables


def training_generators(config) -> set[str]:
  """The generators whose fakes data.name's training split holds (the "seen" families)."""
  source = pipeline.open_split(config.data.data_dir, config.data.name, config.data.train_split)
  counts = source.dataset_info.metadata["splits"][config.data.train_split]["generators"]
  return {name for name, c in counts.items() if c["fake"]}


def summary_rows(tables: dict[str, dict[str, list[dict]]], seen: set[str]) -> list[dict]:
  """Per method: average AUROC over the seen and the unseen generators of each split.

  `tables` is {split: {method: generator rows}}; a column is NaN where a split
  has no generator of that kind (or a generator's AUROC is undefined).
  """
  rows = []
  for method in next(iter(tables.values())):
    row = {"method": method}
    for split, by_method in tables.items():
      per_generator = by_method[method][:-1]  # the last row is the average
      for kind, keep in (("seen", True), ("unseen", False)):
        values = [r["auroc"] for r in per_generator if (r["generator"] in seen) == keep]
        row[f"{split}: {kind}"] = float(np.mean(values)) if values else float("nan")
    rows.append(row)
  return rows


def evaluate(config, workdir) -> dict[str, dict[str, list[dict]]]:
  """The whole evaluation (module docstring); returns {split: {method: table rows}}."""
  scorer = load_scorer(config, workdir)
  banks = scorer.place(build_models(config, scorer, workdir))  # on the devices, once
  calibrations = calibrate(config, scorer, banks, workdir)
  benchmark = config.eval.data_name or config.data.name
  out_dir = _eval_dir(workdir)
  available = builder.split_names(config.data.data_dir, benchmark)
  splits = [config.eval.test_split]
  for split in config.eval.extra_splits:
    if split in available:
      splits.append(split)
    else:  # e.g. the demo built without its Debian photographs has no cross_source
      logging.warning("config.eval.extra_splits: %r is not a split of %s (it has %s); "
                      "skipped", split, benchmark, available)
  tables, test_scores = {}, None
  for split in splits:
    field = "eval.test_split" if split == config.eval.test_split else "eval.extra_splits"
    scored = score_split(config, scorer, banks, split, field=field)
    names = pipeline.generator_names(pipeline.open_split(config.data.data_dir, benchmark, split))
    split_dir = out_dir if split == config.eval.test_split else os.path.join(out_dir, split)
    tables[split] = _tabulate(scored, banks, calibrations, names, split, split_dir)
    if split == config.eval.test_split:
      test_scores = scored
  if jax.process_index() == 0:
    print(reports.write_table(
        summary_rows(tables, training_generators(config)), os.path.join(out_dir, "summary"),
        "Average AUROC (%) over the generators seen in training and the unseen ones, "
        "per split"))
  if jax.process_index() == 0 and "mdmf" in banks:
    _heatmaps(config, scorer, banks, calibrations["mdmf"], test_scores, out_dir)
  if config.eval.robustness:
    _robustness(config, scorer, banks, out_dir)
  return tables


def load_detector(workdir, config=None, method="mdmf") -> scoring.CropDetector:
  """The trained, calibrated detector of `workdir` (after `evaluate`), for detect.py."""
  if config is None:
    config = config_lib.from_json(
        json.loads((epath.Path(workdir) / checkpoint.CONFIG_FILE).read_text()))
  if method == "linear_probe":
    bank_path = os.path.join(workdir, "eval", linear_probe.FILENAME)
    load = lambda path: linear_probe.load(path, linear_probe.probe_key(config))
  else:
    bank_path, load = _bank_path(workdir, method), load_bank
  if not epath.Path(bank_path).exists():
    raise FileNotFoundError(f"{bank_path} is missing: run --mode=eval on {workdir} first")
  calibration = load_calibrations(workdir).get(method)
  return scoring.CropDetector(load_scorer(config, workdir), load(bank_path),
                              image_size=config.data.image_size,
                              grid=features.grid_shape(config), calibration=calibration,
                              method=method)
