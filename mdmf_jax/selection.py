"""Labelled feature caches, set scoring from cached features, and model selection on val.

    selection = Selection(config, workdir, detector, backbone_params)   # in train.train
    selection.update(step, host_state)     # every config.select.every steps
    params, which = load_trained(workdir, template)  # evaluate / detect: selected, else latest

Model selection (config.select.every > 0), as MMD-MP does: every `every` steps
(and at the last one) the mdmf score of every image of data.name's
`select.split` is computed against a bank of the first `eval.bank_images` clean
reals of `eval.bank_split` (as evaluate.py builds it), and the average over
generators of the per-generator AUROC is the selection metric. The step with the
best value (the earliest on ties) is saved as an Orbax checkpoint in
W/selected/ and described in W/selected.json ({"step", "val_auroc", "history"});
evaluation and detection then score with it. A resumed run reads the best so far
back from selected.json.

The patch features of the selection split and of the bank reals are computed
once by the frozen backbone and cached with their labels and generators
(`patch_features`); study.py writes and reads the same caches.

Every call into the model from cached features (the features-in
detector.Detector's PFS, kernel, bank and scores, and the trained params'
template) is in `SetScorer` and `trained_params`.
"""

from __future__ import annotations

import json
import os
import time

from absl import logging
from etils import epath
import grain
import jax
import numpy as np
from jax.experimental import multihost_utils

from mdmf_jax import checkpoint, config_lib, detector as detector_lib, features, metrics, scoring
from mdmf_jax.data import builder, pipeline

SELECTED_DIR = "selected"
SELECTED_FILE = "selected.json"
LABELS = ("label", "generator")


# --------------------------------------------------------------------------
# Labelled feature caches.
# --------------------------------------------------------------------------


def cache_folder(config, split: str, tag: str, max_images: int | None = None) -> str:
  """Folder of a labelled cache: features.cache_dir's key (backbone, patches, data, split,
  image size) plus `tag`, naming what was computed, and the image limit."""
  suffix = f"-{tag}" + (f"-first{max_images}" if max_images else "")
  return features.cache_dir(config, split) + suffix


def load_cache(folder: str) -> dict | None:
  """{name: memory-mapped array} of a complete cache folder, or None."""
  if not features.cache_complete(folder):
    return None
  return {f[:-4]: np.load(os.path.join(folder, f), mmap_mode="r")
          for f in sorted(os.listdir(folder)) if f.endswith(".npy")}


def save_cache(folder: str, arrays: dict) -> None:
  """Writes `arrays` as .npy files, then done.json (the folder is complete); process 0 only."""
  if jax.process_index() != 0:
    return
  os.makedirs(folder, exist_ok=True)
  for name, array in arrays.items():
    np.save(os.path.join(folder, f"{name}.npy"), array)
  features.mark_cache_complete(folder, {"images": len(arrays["label"])})


def compute(config, split: str, featurize, backbone_params, *,
            max_images: int | None = None) -> dict:
  """{name: (N, ...) features, "label": (N,), "generator": (N,)} of data.name's `split`.

  `featurize(backbone_params, images) -> {name: (B, ...)}` is jitted here.
  `max_images`: the first images only (a split is stored reals first). Every
  process reads the whole split (no sharding), so all see the same features.
  """
  data = pipeline.eval_dataset(
      config.data.data_dir, config.data.name, split=split, global_batch_size=config.eval.batch_size,
      image_size=config.data.image_size, small_images=config.data.small_images,
      format_alignment_quality=config.data.format_alignment_quality,
      num_threads=config.data.num_threads, shard_options=grain.sharding.NoSharding())
  featurize = jax.jit(featurize)
  columns, start, seen = {}, time.time(), 0
  for batch in data:
    keep = batch["mask"]
    outputs = {k: np.asarray(v)[keep] for k, v in featurize(backbone_params, batch["image"]).items()}
    outputs.update({k: np.asarray(batch[k])[keep] for k in LABELS})
    for k, v in outputs.items():
      columns.setdefault(k, []).append(v)
    seen += int(keep.sum())
    logging.log_every_n_seconds(logging.INFO, "features %s/%s: %d images, %.1f images/s", 10,
                                config.data.name, split, seen, seen / (time.time() - start))
    if max_images and seen >= max_images:
      break
  logging.info("features %s/%s: %d images in %.0f s", config.data.name, split, seen,
               time.time() - start)
  return {k: np.concatenate(v)[:max_images] for k, v in columns.items()}


def patch_features(config, split: str, detector, backbone_params, *,
                   max_images: int | None = None) -> dict:
  """{"patches": (N, K, D) `detector.features`, "label", "generator"} of `split`, cached."""
  folder = cache_folder(config, split, "patches", max_images)
  cached = load_cache(folder)
  if cached is not None:
    return cached
  out = compute(config, split, lambda params, images: {"patches": detector.features(params, images)},
                backbone_params, max_images=max_images)
  save_cache(folder, out)
  return out


def average_auroc(scores, labels, generators) -> tuple[float, dict[int, float]]:
  """(mean over generators, {generator: AUROC %}) of one method's scores on a split."""
  per_generator = {}
  for g in np.unique(generators):
    rows = generators == g
    per_generator[int(g)] = metrics.roc(scores[rows], labels[rows])[2]
  return float(np.mean(list(per_generator.values()))), per_generator


def bank_subset(points, count: int, rng):
  """(1, P, ...) -> a random subset of `count` of the bank's flattened patches, sorted.

  `points`: (N, K, ...) pytree of the bank images' points; the whole bank when it
  has no more than `count` patches.
  """
  num, patches = jax.tree.leaves(points)[0].shape[:2]
  if num * patches <= count:
    return points
  keep = np.sort(rng.choice(num * patches, count, replace=False))
  return jax.tree.map(lambda a: np.asarray(a).reshape((-1, 1) + a.shape[2:])[keep], points)


# --------------------------------------------------------------------------
# The model API: every call into the PFS, kernel, bank and scoring is here.
# --------------------------------------------------------------------------


class SetScorer:
  """Scores cached (N, K, D) patch sets by scoring.Scorer; compiled once, any trained params.

    score_sets = SetScorer(config)
    score_sets(trained, bank_sets, {"val": z}, methods=("mdmf", "global"))
        -> {"val": {"mdmf": (N,), "global": (N,)}}

  The bank is built from `bank_sets` (clean reals) exactly as evaluate.build_banks
  does: eval.bank_images images, eval.bank_patches patches drawn with config.seed.
  "mdmf" scores the patch sets, "global" their mean-pooled tokens.
  """

  def __init__(self, config):
    self.config = config
    # Features in, scores out: a detector without a backbone. Compiled once;
    # `with_trained` shares the compiled functions.
    self._scorer = scoring.Scorer(detector_lib.Detector.from_config(config), None, None,
                                  block_size=config.eval.bank_block)

  def __call__(self, trained, bank_sets, sets: dict, methods=("mdmf",)) -> dict:
    config, scorer = self.config, self._scorer.with_trained(trained)
    bank_points = scorer.points(np.asarray(bank_sets[:config.eval.bank_images]))
    rng = np.random.default_rng(config.seed)
    banks = {}
    for method in methods:
      points = bank_subset(bank_points["global" if method == "global" else "mdmf"],
                           config.eval.bank_patches, rng)
      banks[method] = scorer.place(
          scorer.bank_from_points(points, method, config.eval.vote_quantile))
    size = config.eval.batch_size
    out = {}
    for name, z in sets.items():
      columns = {m: [] for m in methods}
      for start in range(0, len(z), size):
        chunk = np.asarray(z[start:start + size])
        padded = np.pad(chunk, [(0, size - len(chunk))] + [(0, 0)] * (chunk.ndim - 1))
        for method, (scores, _) in scorer.scores(padded, banks).items():
          columns[method].append(np.asarray(scores)[:len(chunk)])
      out[name] = {m: np.concatenate(v) for m, v in columns.items()}
    return out


def trained_params(config, workdir, sample) -> tuple:
  """(trained {"pfs", "kernel"} params, which checkpoint) of `workdir`: selected, else latest
  (load_trained). `sample`: patch sets (N, K, D) of the run's features, for the width D.
  """
  template = detector_lib.Detector.from_config(config).template(np.shape(sample)[-1])
  return load_trained(workdir, template)


# --------------------------------------------------------------------------
# Selection during training.
# --------------------------------------------------------------------------


def check_splits(config) -> None:
  """Raises ConfigError naming select.split or eval.bank_split if data.name lacks it."""
  for field, split in (("select.split", config.select.split),
                       ("eval.bank_split", config.eval.bank_split)):
    try:
      builder.check_split(config.data.data_dir, config.data.name, split, field)
    except ValueError as e:
      raise config_lib.ConfigError(str(e)) from None


class Selection:
  """Tracks the best val AUROC over training and keeps its state in W/selected."""

  def __init__(self, config, workdir, detector, backbone_params):
    self.val = patch_features(config, config.select.split, detector, backbone_params)
    bank = patch_features(config, config.eval.bank_split, detector, backbone_params,
                          max_images=config.eval.bank_images)
    self.bank = bank["patches"][bank["label"] == 0]
    self.config, self.workdir = config, workdir
    self.score_sets = SetScorer(config)
    self.record = read_record(workdir) or {"step": None, "val_auroc": None, "history": []}
    self.ckpt = checkpoint.Checkpoints(os.path.join(workdir, SELECTED_DIR), save_every=1, keep=1,
                                       async_save=False)

  def due(self, step: int) -> bool:
    return step % self.config.select.every == 0 or step == self.config.train.total_steps

  def update(self, step: int, host_state) -> None:
    """Scores `host_state` on val; saves it as the selected checkpoint if it is the best."""
    scores = self.score_sets(host_state.params, self.bank,
                             {"val": self.val["patches"]})["val"]["mdmf"]
    auroc, _ = average_auroc(scores, self.val["label"], self.val["generator"])
    history = [h for h in self.record["history"] if h[0] != step] + [[step, auroc]]
    best = self.record["val_auroc"]
    improved = best is None or auroc > best
    if improved:
      self.ckpt.save(step, host_state, force=True)
      self.ckpt.wait()
      self.record.update(step=step, val_auroc=auroc)
    self.record["history"] = sorted(history)
    logging.info("selection: step %d, val average AUROC %.2f; selected step %d (%.2f)", step,
                 auroc, self.record["step"], self.record["val_auroc"])
    if jax.process_index() == 0:
      path = epath.Path(self.workdir) / SELECTED_FILE
      path.write_text(json.dumps(self.record, indent=2))
    multihost_utils.sync_global_devices("selection recorded")

  def close(self):
    self.ckpt.close()


def read_record(workdir) -> dict | None:
  """W/selected.json ({"step", "val_auroc", "history"}), or None before any selection."""
  path = epath.Path(workdir) / SELECTED_FILE
  return json.loads(path.read_text()) if path.exists() else None


def load_selected(workdir, template):
  """(params, record) of W's selected checkpoint, or (None, None) when there is none."""
  record = read_record(workdir)
  if record is None:
    return None, None
  ckpt = checkpoint.Checkpoints(os.path.join(workdir, SELECTED_DIR), save_every=1, keep=1)
  params, step = ckpt.restore_params(template)
  ckpt.close()
  if step != record["step"]:
    raise ValueError(f"{workdir}/{SELECTED_FILE} names step {record['step']}, but the selected "
                     f"checkpoint is of step {step}")
  return params, record


def load_trained(workdir, template):
  """(trained params, description) of W's selected checkpoint if training selected one,
  else of its latest; the optimiser state is never read.

  `template`: the trained params' shapes (detector.Detector.template). Raises FileNotFoundError
  before training.
  """
  params, record = load_selected(workdir, template)
  if record:
    return params, (f"the SELECTED step {record['step']} (validation AUROC "
                    f"{record['val_auroc']:.2f}, {SELECTED_FILE})")
  ckpt = checkpoint.Checkpoints(workdir, save_every=1, keep=1)
  params, step = ckpt.restore_params(template)
  ckpt.close()
  if not step:
    raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints: train first")
  return params, f"the latest step, {step} (no model selection)"
