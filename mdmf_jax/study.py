"""The study harness: recipe variants trained and scored on the same cached features.

    python -m mdmf_jax.study --config=configs/study.py --workdir=workdirs/study

1. The frozen backbone runs once per split (train, val, test, cross_source):
   one pass yields the patch tokens of every block a variant asks for and the
   CLS token, cached with labels and generators in selection.py's caches
   (shared with model selection during training).
2. Each variant of config.study.variants (a name and dotted overrides of the
   config) is trained by train.train from the feature cache, with model
   selection on val (config.select.every); variants that differ only in eval.*
   share one training run.
3. The selected PFS scores config.study.splits by the mdmf and global methods
   against a bank of the first eval.bank_images train reals (as evaluate.py).
4. Linear probes (linear_probe.fit) on the CLS token and on mean-pooled tokens of
   each of study.probe_blocks, trained on train, C chosen on val.
5. One table (study.md|csv|json) and one plot (study.png) in the workdir: per row,
   val average AUROC, test on the training family, test on the unseen families,
   cross_source, and the global baseline of the same run.

Results are stored per variant (results/<name>.json): a rerun reuses cached
features, finished training runs and scores, and only computes what is missing
(e.g. test and cross_source once the defaults were chosen on val).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np
from ml_collections import config_flags

from mdmf_jax import (config_lib, evaluate, features, linear_probe, reports,
                      selection, train)
from mdmf_jax.data import pipeline

SPLITS = ("train", "val", "test", "cross_source")
TIMING_FILE = "train_seconds.json"  # written when a variant's training has finished
AUROC_COLUMNS = ("val", "test: seen", "test: unseen", "cross_source",
                 "global: test unseen", "global: cross_source")


# --------------------------------------------------------------------------
# Variants.
# --------------------------------------------------------------------------


def variant_configs(config) -> dict:
  """{name: validated config} of config.study.variants (all checked before any work)."""
  base = copy.deepcopy(config)
  base.study = config_lib.base().study  # the study's own settings are not the variant's
  base.eval.after_training = False
  out = {}
  for name, overrides in config.study.variants:
    if name in out:
      raise config_lib.ConfigError(f"config.study.variants: {name!r} appears twice")
    variant = copy.deepcopy(base)
    try:
      # Unlocked so free-form kernel.params can gain fields; validate() below still
      # rejects any misspelt field.
      with variant.unlocked():
        variant.update_from_flattened_dict(dict(overrides))
    except (KeyError, AttributeError) as e:
      raise config_lib.ConfigError(f"config.study.variants: {name!r}: {e}") from None
    config_lib.validate(variant, device_count=jax.device_count())
    if variant.patches.mode != "tokens":
      raise config_lib.ConfigError(f"config.study.variants: {name!r}: patches.mode must be "
                                   f"'tokens' (one backbone pass serves every block)")
    out[name] = variant
  return out


def training_key(config) -> str:
  """What determines a training run: the config without eval.*, detect.* and study.*."""
  fields = json.loads(config.to_json_best_effort())
  for section in ("eval", "detect", "study"):
    fields.pop(section)
  return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def with_block(config, block):
  block_config = copy.deepcopy(config)
  block_config.patches.block = block
  return block_config


# --------------------------------------------------------------------------
# Features: one backbone pass per split, every block at once.
# --------------------------------------------------------------------------


def _blocks_featurizer(model, blocks):
  """featurize(params, images) -> {"block_<b>": (N, K, D) tokens (b = "last" for None),
  "cls": (N, D)}: the backbone's tokens exactly as patches.patch_set's "tokens" mode."""
  intermediate = tuple(b for b in blocks if b is not None)

  def featurize(params, images):
    out = model.apply({"params": params}, model.normalize(images), blocks=intermediate)
    tokens = {f"block_{b}": out["blocks"][b] for b in intermediate}
    tokens["block_last"] = out["patch_tokens"]
    tokens["cls"] = out["cls"]
    return jax.tree.map(lambda a: a.astype(np.float32), tokens)

  return featurize


def _block_name(block):
  return "last" if block is None else str(block)


def cache_features(config, blocks, model, backbone_params) -> None:
  """Fills the per-(split, block) patch caches and the per-split CLS caches."""
  for split in SPLITS:
    folders = {b: selection.cache_folder(with_block(config, b), split, "patches") for b in blocks}
    cls_folder = selection.cache_folder(with_block(config, None), split, "cls")
    if all(selection.load_cache(f) is not None for f in [*folders.values(), cls_folder]):
      continue
    out = selection.compute(config, split, _blocks_featurizer(model, blocks), backbone_params)
    labels = {k: out[k] for k in selection.LABELS}
    for b, folder in folders.items():
      tokens = out[f"block_{_block_name(b)}"]
      selection.save_cache(folder, {"patches": tokens, **labels})
      if split == config.data.train_split:
        _save_training_cache(with_block(config, b), tokens, labels["label"])
    selection.save_cache(cls_folder, {"cls": out["cls"], **labels})


def _save_training_cache(config, tokens, label):
  """The same tokens as train.train's feature cache (features.build_cache's layout, one
  process), so that no variant runs the backbone over the training split again."""
  folder = features.cache_dir(config, config.data.train_split)
  if not features.cache_complete(folder):
    features.write_cache_part(folder, tokens[label == 0], tokens[label == 1])
    features.mark_cache_complete(folder, {"images": len(label)})


def cache_banks(config, blocks, sizes) -> None:
  """The first-N-images train caches that model selection reads its bank from."""
  for block in blocks:
    block_config = with_block(config, block)
    for size in sizes:
      folder = selection.cache_folder(block_config, config.data.train_split, "patches", size)
      if selection.load_cache(folder) is None:
        full = _load(block_config, config.data.train_split)
        selection.save_cache(folder, {k: np.asarray(v[:size]) for k, v in full.items()})


def _load(config, split, tag="patches"):
  return selection.load_cache(selection.cache_folder(config, split, tag))


# --------------------------------------------------------------------------
# Scoring and tables.
# --------------------------------------------------------------------------


def per_generator(scores, split_features, names) -> dict[str, float]:
  _, aurocs = selection.average_auroc(scores, split_features["label"],
                                      split_features["generator"])
  return {names[g]: a for g, a in aurocs.items()}


def summary(result: dict, seen: set[str]) -> dict:
  """The table's AUROC columns of one result {split: {method: {generator: AUROC}}}."""

  def mean(split, method, keep=lambda g: True):
    values = [a for g, a in result.get(split, {}).get(method, {}).items() if keep(g)]
    return float(np.mean(values)) if values else float("nan")

  method = "mdmf" if "mdmf" in result.get("val", {}) else "probe"
  return {"val": mean("val", method),
          "test: seen": mean("test", method, lambda g: g in seen),
          "test: unseen": mean("test", method, lambda g: g not in seen),
          "cross_source": mean("cross_source", method),
          "global: test unseen": mean("test", "global", lambda g: g not in seen),
          "global: cross_source": mean("cross_source", "global")}


def run_variant(config, run_dir, names) -> dict:
  """Trains (or resumes) `config` in `run_dir`; scores the selected PFS on study splits."""
  timing = os.path.join(run_dir, TIMING_FILE)
  if not os.path.exists(timing):  # a finished run is only scored (e.g. on a later split)
    start = time.time()
    final = train.train(config, run_dir)
    if int(final.step) != config.train.total_steps:  # preempted (SIGTERM): not finished
      raise RuntimeError(f"{run_dir} stopped at step {int(final.step)}; rerun to finish it")
    with open(timing, "w") as f:
      json.dump(time.time() - start, f)
  with open(timing) as f:
    seconds = json.load(f)
  train_features = _load(config, "train")
  reals = train_features["patches"][train_features["label"] == 0]
  params, which = selection.trained_params(config, run_dir, train_features["patches"][:2])
  logging.info("study: scoring %s with %s", run_dir, which)
  sets = {s: _load(config, s) for s in names}
  scores = selection.SetScorer(config)(params, reals, {s: f["patches"] for s, f in sets.items()},
                                       methods=("mdmf", "global"))
  result = {s: {m: per_generator(v, sets[s], names[s]) for m, v in by_method.items()}
            for s, by_method in scores.items()}
  record = selection.read_record(run_dir) or {}
  return {"auroc": result, "selected_step": record.get("step"), "train_seconds": seconds}


def probe_result(config, feature, block, names) -> dict:
  """A linear probe on the CLS token or on mean-pooled tokens of `block`: trained on
  train, C chosen on val, scored on the study splits."""
  block_config = with_block(config, block)

  def features_of(split):
    f = _load(block_config, split, "cls") if feature == "cls" else _load(block_config, split)
    x = np.asarray(f["cls"]) if feature == "cls" else np.asarray(f["patches"]).mean(axis=1)
    return x, np.asarray(f["label"]), f

  train_x, train_y, _ = features_of("train")
  val_x, val_y, _ = features_of("val")
  probe = linear_probe.fit(train_x, train_y, val_x, val_y, config.eval.probe_cs,
                           feature=feature, block=block)
  result = {}
  for split in names:
    x, _, f = features_of(split)
    result[split] = {"probe": per_generator(probe.decision_function(x), f, names[split])}
  return {"auroc": result, "selected_step": None, "train_seconds": 0.0}


def _stored(path, splits):
  """A stored result holding every split of `splits`, else None."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    result = json.load(f)
  return result if set(splits) <= set(result["auroc"]) else None


def study(config, workdir: str) -> list[dict]:
  """Runs the whole study (module docstring); returns the table rows."""
  variants = variant_configs(config)
  for split in config.study.splits:
    if split not in SPLITS[1:]:
      raise config_lib.ConfigError(f"config.study.splits: {split!r} is not one of {SPLITS[1:]}")
  blocks = sorted({v.patches.block for v in variants.values()} | set(config.study.probe_blocks),
                  key=lambda b: -1 if b is None else b)
  model, backbone_params = features.frozen_backbone(config)
  cache_features(config, blocks, model, backbone_params)
  cache_banks(config, blocks, {v.eval.bank_images for v in variants.values()})
  names = {s: pipeline.generator_names(pipeline.open_split(config.data.data_dir, config.data.name,
                                                           s)) for s in config.study.splits}
  seen = evaluate.training_generators(config)
  jobs = []
  for name, variant in variants.items():
    run_dir = os.path.join(workdir, "runs", training_key(variant))
    if not (config.study.train or os.path.exists(os.path.join(run_dir, TIMING_FILE))):
      logging.info("study: %s is not trained and study.train is off: left out", name)
      continue
    jobs.append((name, lambda v=variant, d=run_dir: run_variant(v, d, names)))
  for block in config.study.probe_blocks:
    jobs.append((f"linear probe, mean tokens of block {_block_name(block)}",
                 lambda b=block: probe_result(config, "mean", b, names)))
  jobs.append(("linear probe, CLS", lambda: probe_result(config, "cls", None, names)))

  rows, start = [], time.time()
  os.makedirs(os.path.join(workdir, "results"), exist_ok=True)
  for i, (name, job) in enumerate(jobs):
    path = os.path.join(workdir, "results", name.replace("/", "_").replace(" ", "_") + ".json")
    result = _stored(path, config.study.splits)
    if result is None:
      result = job()
      with open(path, "w") as f:
        json.dump(result, f, indent=2)
    rows.append({"variant": name, **summary(result["auroc"], seen),
                 "selected step": result["selected_step"],
                 "train s": round(result["train_seconds"])})
    _write(rows, seen, config.study.splits, workdir)  # after every row: a stopped study shows
    elapsed = time.time() - start
    logging.info("study: %d/%d %s done; %.0f s elapsed, about %.0f s to go", i + 1, len(jobs),
                 name, elapsed, elapsed / (i + 1) * (len(jobs) - i - 1))
  with open(os.path.join(workdir, "study.md")) as f:
    print(f.read())
  return rows


def _write(rows, seen, splits, workdir):
  """study.md|csv|json and study.png in `workdir`."""
  title = (f"Study: average AUROC (%) per split; seen = {', '.join(sorted(seen))} "
           f"(splits scored: {', '.join(splits)})")
  reports.write_table(rows, os.path.join(workdir, "study"), title)
  reports.plot_matrix([[r[c] for c in AUROC_COLUMNS] for r in rows],
                      [r["variant"] for r in rows], list(AUROC_COLUMNS),
                      os.path.join(workdir, "study.png"), title="Average AUROC (%)",
                      vmin=50, vmax=100)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  study(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":  # flags defined here only: main.py defines --config too
  _CONFIG = config_flags.DEFINE_config_file("config", None, "Study config file.",
                                            lock_config=True)
  _WORKDIR = flags.DEFINE_string("workdir", None, "Directory for caches, runs and the table.")
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
