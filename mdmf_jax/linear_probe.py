"""The linear-probe baseline (UnivFD-style): logistic regression on frozen global features.

    probe = linear_probe.train_or_load(config, scorer, eval_dir)  # W/eval/linear_probe_model.json
    scores = probe.decision_function(features)  # higher = more likely generated

Features (`config.eval.probe_feature`), from the same frozen backbone as MDMF:
  "cls"   the final CLS token (UnivFD's feature);
  "mean"  the patch tokens mean-pooled, of block `config.eval.probe_block` (None: last).
Training: a balanced set of up to `config.eval.probe_images` reals and as many fakes
of data.name's `data.train_split`, evenly spaced over the stored (generator, class,
path) order so that every folder contributes; centre crops exactly as in evaluation
(no augmentation). Features are standardised with the training mean and standard
deviation, then scikit-learn's `LogisticRegression` (L2) is fitted for every C of
`config.eval.probe_cs`; the C with the best AUROC on data.name's
`config.eval.probe_val_split` (reals and fakes) wins, the smallest C on ties. The test
split is never looked at.

The probe is saved as JSON (`linear_probe_model.json`: standardisation, weights, C, the
validation AUROC of every C, and a key of everything that determined it) and
reloaded when the key matches, so `--mode=eval` and `--mode=detect` do not retrain.
The score is `decision_function`, the logit: it is calibrated and tabulated like
every other method. Every process computes the same features (all of the subset,
not a shard); fine for the few thousand images a probe needs.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
from typing import Any, Sequence

from absl import logging
from etils import epath
import flax
import jax
import jax.numpy as jnp
import numpy as np
from sklearn import linear_model
from sklearn import preprocessing

from mdmf_jax import metrics
from mdmf_jax.data import builder
from mdmf_jax.data import pipeline

FILENAME = "linear_probe_model.json"  # linear_probe.json is the method's result table
FEATURES = ("cls", "mean")


@flax.struct.dataclass
class Probe:
  """A fitted probe: score(f) = ((f - mean) / scale) . coef + intercept.

  The arrays are pytree leaves (they enter jitted scoring as arguments); the rest is
  static description.
  """

  mean: Any  # (D,)
  scale: Any  # (D,)
  coef: Any  # (D,)
  intercept: Any  # ()
  feature: str = flax.struct.field(pytree_node=False, default="cls")
  block: int | None = flax.struct.field(pytree_node=False, default=None)
  c: float = flax.struct.field(pytree_node=False, default=1.0)
  val_auroc: tuple = flax.struct.field(pytree_node=False, default=())  # ((C, AUROC %), ...)

  def decision_function(self, features):
    """(N,) logits of (N, D) features (NumPy or JAX, also inside jit)."""
    return ((features - self.mean) / self.scale) @ self.coef + self.intercept


def make_global_featurizer(model, feature: str, block: int | None):
  """global_featurize(backbone_params, images (N, S, S, 3) in [0, 1]) -> (N, D) float32.

  `model` is a backbone module (models/backbones.py); images get its normalisation.
  """
  if feature not in FEATURES:
    raise ValueError(f"probe feature {feature!r}; expected one of {FEATURES}")
  if feature == "cls" and block is not None:
    raise ValueError("the backbone returns the CLS token of the last block only")

  def global_featurize(params, images):
    blocks = () if block is None else (block,)
    out = model.apply({"params": params}, model.normalize(images), blocks=blocks)
    if feature == "cls":
      return out["cls"].astype(jnp.float32)
    tokens = out["patch_tokens"] if block is None else out["blocks"][block]
    return jnp.mean(tokens, axis=1).astype(jnp.float32)

  return global_featurize


def fit(train_features, train_labels, val_features, val_labels, cs: Sequence[float], *,
        feature: str = "cls", block: int | None = None, max_iter: int = 2000) -> Probe:
  """Standardise on train, fit one L2 logistic regression per C, keep the best on val."""
  if len(set(np.asarray(val_labels).tolist())) < 2:
    raise ValueError("choosing C needs validation reals and fakes "
                     "(config.eval.probe_val_split)")
  scaler = preprocessing.StandardScaler().fit(train_features)
  train_x, val_x = scaler.transform(train_features), scaler.transform(val_features)
  best, results = None, []
  for c in sorted(cs):  # ascending: on ties the strongest regularisation wins
    model = linear_model.LogisticRegression(C=c, max_iter=max_iter).fit(train_x, train_labels)
    _, _, auroc = metrics.roc(model.decision_function(val_x), val_labels)
    results.append((float(c), auroc))
    logging.info("linear probe: C=%g, validation AUROC %.2f", c, auroc)
    if best is None or auroc > best[1]:
      best = (model, auroc, float(c))
  model, _, c = best
  return Probe(mean=scaler.mean_, scale=scaler.scale_, coef=model.coef_[0],
               intercept=np.float64(model.intercept_[0]), feature=feature, block=block,
               c=c, val_auroc=tuple(results))


def save(probe: Probe, path: str, key: dict) -> None:
  state = {"key": key, "feature": probe.feature, "block": probe.block, "c": probe.c,
           "val_auroc": [list(r) for r in probe.val_auroc],
           **{k: np.asarray(getattr(probe, k), np.float64).tolist()
              for k in ("mean", "scale", "coef", "intercept")}}
  epath.Path(path).write_text(json.dumps(state))  # floats round-trip exactly; local or a URI


def load(path: str, key: dict | None = None) -> Probe:
  """The probe saved at `path`; with `key`, raises ValueError when it was made otherwise."""
  state = json.loads(epath.Path(path).read_text())
  if key is not None and state["key"] != key:
    raise ValueError(f"{path} was trained with {state['key']}, the config asks for {key}")
  arrays = {k: np.asarray(state[k], np.float64) for k in ("mean", "scale", "coef", "intercept")}
  return Probe(**arrays, feature=state["feature"], block=state["block"], c=state["c"],
               val_auroc=tuple(tuple(r) for r in state["val_auroc"]))


def probe_key(config) -> dict:
  """Everything that determines the probe; a saved probe is reused only if it matches."""
  return {"backbone": config.backbone.to_dict(),
          "seed_if_random": None if config.backbone.weights else config.seed,
          "data": [config.data.data_dir, config.data.name, config.data.train_split,
                   config.eval.probe_val_split],
          "image": [config.data.image_size, config.data.small_images,
                    config.data.format_alignment_quality],
          "feature": config.eval.probe_feature, "block": config.eval.probe_block,
          "cs": [float(c) for c in config.eval.probe_cs], "images": config.eval.probe_images}


def split_features(config, global_features, split: str, per_class: int,
                   balanced: bool, field: str) -> tuple[np.ndarray, np.ndarray]:
  """(features (N, D), labels (N,)) of up to `per_class` reals and fakes of data.name's split.

  `global_features(images)` maps float32 (B, S, S, 3) batches to (B, D); `balanced`
  takes as many reals as fakes; `field` names the config field holding `split`.
  """
  builder.check_split(config.data.data_dir, config.data.name, split, field)
  source = pipeline.open_split(config.data.data_dir, config.data.name, split)
  num_real, num_fake = pipeline.real_fake_counts(source, split)
  if balanced:
    per_class = min(per_class, num_real, num_fake)
  indices = np.concatenate([
      builder.spread_indices(0, num_real, per_class),
      builder.spread_indices(num_real, num_real + num_fake, per_class)])
  transform = pipeline.EvalTransform(source, pipeline.ImageOptions(
      config.data.image_size, None, config.data.small_images,
      config.data.format_alignment_quality))
  batch_size = config.eval.batch_size
  features, labels = [], []
  with concurrent.futures.ThreadPoolExecutor(config.data.num_threads) as pool:
    for start in range(0, len(indices), batch_size):
      chunk = indices[start:start + batch_size]
      padded = np.pad(chunk, (0, batch_size - len(chunk)), constant_values=-1)  # static shape
      examples = list(pool.map(transform.map, padded.tolist()))
      images = np.stack([e["image"] for e in examples]).astype(np.float32) / 255
      features.append(np.asarray(global_features(images))[:len(chunk)])
      labels.extend(e["label"] for e in examples[:len(chunk)])
  logging.info("linear probe: %d reals and %d fakes of %s/%s", np.sum(indices < num_real),
               np.sum(indices >= num_real), config.data.name, split)
  return np.concatenate(features), np.asarray(labels, np.int32)


def train_or_load(config, scorer, eval_dir: str) -> Probe:
  """The probe in `eval_dir` if it was made with this config's settings, else a new one."""
  path, key = os.path.join(eval_dir, FILENAME), probe_key(config)
  if epath.Path(path).exists():
    try:
      return load(path, key)
    except ValueError as e:
      logging.warning("retraining the linear probe: %s", e)
  train = split_features(config, scorer.global_features, config.data.train_split,
                         config.eval.probe_images, balanced=True, field="data.train_split")
  val = split_features(config, scorer.global_features, config.eval.probe_val_split,
                       config.eval.probe_images, balanced=False,
                       field="eval.probe_val_split")
  probe = fit(*train, *val, config.eval.probe_cs, feature=config.eval.probe_feature,
              block=config.eval.probe_block)
  logging.info("linear probe: C=%g (validation AUROC %s)", probe.c, probe.val_auroc)
  if jax.process_index() == 0:
    save(probe, path, key)
  return probe
