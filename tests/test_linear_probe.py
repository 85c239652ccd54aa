"""linear_probe.py: scores equal scikit-learn's, C chosen on val, save/load, tables, training."""

import copy
import os
import types

import jax
import numpy as np
from PIL import Image
import pytest
from sklearn import linear_model
from sklearn import metrics as sk_metrics
from sklearn import preprocessing

from mdmf_jax import config_lib, evaluate, features, linear_probe, reports, scoring
from mdmf_jax.data import builder
from tests import stand_ins

CS = (0.01, 0.1, 1.0, 10.0)


def overlapping_features(seed, n=60, dim=5):
  """Two Gaussian classes that overlap (so C matters), label 1 shifted along axis 0."""
  rng = np.random.default_rng(seed)
  labels = np.arange(n) % 2
  x = rng.normal(size=(n, dim)) * np.array([1.0, 3.0, 0.5, 2.0, 1.0]) + 5.0
  x[:, 0] += 0.8 * labels
  return x, labels


def test_scores_equal_sklearn_decision_function_and_c_is_chosen_on_val():
  train_x, train_y = overlapping_features(0)
  val_x, val_y = overlapping_features(1)
  test_x, _ = overlapping_features(2)
  probe = linear_probe.fit(train_x, train_y, val_x, val_y, CS)
  scaler = preprocessing.StandardScaler().fit(train_x)
  aurocs = []
  for c in CS:
    model = linear_model.LogisticRegression(C=c, max_iter=2000).fit(
        scaler.transform(train_x), train_y)
    aurocs.append(100 * sk_metrics.roc_auc_score(val_y, model.decision_function(
        scaler.transform(val_x))))
  assert [c for c, _ in probe.val_auroc] == list(CS)
  np.testing.assert_allclose([a for _, a in probe.val_auroc], aurocs)
  assert probe.c == CS[int(np.argmax(aurocs))]  # argmax: the first (smallest C) on ties
  model = linear_model.LogisticRegression(C=probe.c, max_iter=2000).fit(
      scaler.transform(train_x), train_y)
  expected = model.decision_function(scaler.transform(test_x))
  np.testing.assert_allclose(probe.decision_function(test_x), expected, rtol=1e-9, atol=1e-9)


def test_scorer_scores_the_probe_like_sklearn_in_float32():
  config = config_lib.base()
  config.pfs.hidden_dim, config.pfs.out_dim = 16, 8
  featurize = lambda params, images: images.reshape(images.shape[0], -1, 5)  # 2 "patches"
  global_featurize = lambda params, images: images.reshape(images.shape[0], -1)[:, :5]
  det, trained = stand_ins.detector(config, featurize,
                                                np.ones((2, 2, 5), np.float32))
  scorer = scoring.Scorer(det, None, trained, global_featurize=global_featurize)
  train_x, train_y = overlapping_features(3)
  probe = linear_probe.fit(train_x, train_y, *overlapping_features(4), CS)
  test_x, _ = overlapping_features(5, n=8)
  images = np.concatenate([test_x, test_x], axis=1).astype(np.float32).reshape(8, 2, 5, 1)
  scores, heat = scorer.scores(images, {"linear_probe": probe})["linear_probe"]
  np.testing.assert_allclose(scores, probe.decision_function(test_x.astype(np.float32)),
                             rtol=1e-4, atol=1e-4)
  assert heat.shape == (8, 2) and np.all(np.isnan(heat))
  with pytest.raises(ValueError, match="global_featurize"):
    scoring.Scorer(det, None, trained).scores(images, {"linear_probe": probe})


def test_save_load_round_trip_is_exact_and_checks_the_key(tmp_path):
  probe = linear_probe.fit(*overlapping_features(6), *overlapping_features(7), CS,
                           feature="mean", block=1)
  path = str(tmp_path / "probe.json")
  linear_probe.save(probe, path, {"feature": "mean"})
  loaded = linear_probe.load(path, {"feature": "mean"})
  for field in ("mean", "scale", "coef", "intercept"):
    np.testing.assert_array_equal(getattr(loaded, field), getattr(probe, field))
  assert (loaded.feature, loaded.block, loaded.c, loaded.val_auroc) == (
      "mean", 1, probe.c, probe.val_auroc)
  x, _ = overlapping_features(8)
  np.testing.assert_array_equal(loaded.decision_function(x), probe.decision_function(x))
  with pytest.raises(ValueError, match="trained with"):
    linear_probe.load(path, {"feature": "cls"})


def test_the_probe_sits_next_to_mdmf_in_the_comparison_table(tmp_path):
  rng = np.random.default_rng(0)
  scored = {"label": np.tile([0, 1], 20), "generator": np.repeat([0, 1], 20)}
  scored["mdmf"] = rng.normal(size=40) + scored["label"]
  scored["linear_probe"] = rng.normal(size=40) + 3 * scored["label"]
  scored["global"] = rng.normal(size=40)
  calibration = types.SimpleNamespace(threshold=0.5)
  tables = {m: evaluate.generator_rows(scored, m, calibration, ["g0", "g1"])
            for m in ("global", "linear_probe", "mdmf")}
  rows = evaluate.comparison_rows(tables)
  assert list(rows[0]) == ["generator", "auroc_mdmf", "auroc_linear_probe", "auroc_global",
                           "ap_mdmf", "ap_linear_probe", "ap_global"]
  assert [r["generator"] for r in rows] == ["g0", "g1", "average"]
  g1 = scored["generator"] == 1
  expected = 100 * sk_metrics.roc_auc_score(scored["label"][g1], scored["linear_probe"][g1])
  assert rows[1]["auroc_linear_probe"] == pytest.approx(expected)
  markdown = reports.write_table(rows, str(tmp_path / "comparison"), "t")
  assert "auroc_mdmf | auroc_linear_probe" in markdown


def write_bright_dark(root, per_label, seed):
  """generator layout, one generator: dark noisy reals, bright noisy fakes (PNG)."""
  rng = np.random.default_rng(seed)
  for label_dir, level in (("0_real", 60), ("1_fake", 190)):
    os.makedirs(os.path.join(root, "g", label_dir))
    for i in range(per_label):
      pixels = np.clip(level + rng.normal(0, 25, (28, 28, 3)), 0, 255).astype(np.uint8)
      Image.fromarray(pixels).save(os.path.join(root, "g", label_dir, f"{i}.png"))


@pytest.fixture(scope="module")
def bright_dark(tmp_path_factory):
  root = tmp_path_factory.mktemp("bright_dark")
  roots = {}
  for seed, split in enumerate(("train", "val", "test")):
    roots[split] = str(root / split)
    write_bright_dark(roots[split], per_label=6, seed=seed)
  data_dir = str(root / "tfds")
  builder.build_image_folder(name="bright_dark", layout="generator", roots=roots,
                             data_dir=data_dir)
  config = config_lib.base()
  config.data.data_dir, config.data.name = data_dir, "bright_dark"
  config.data.image_size, config.data.num_threads = 28, 2
  config.backbone.variant = "tiny/14"
  config.eval.batch_size = 4
  config.eval.probe_feature = "mean"
  config.eval.probe_images = 5  # fewer than stored: the evenly spaced subset
  config.eval.probe_cs = (0.1, 1.0)
  return config


def test_train_or_load_separates_a_trivially_separable_set_and_reloads(bright_dark, tmp_path,
                                                                      monkeypatch):
  config = copy.deepcopy(bright_dark)
  model, params = features.frozen_backbone(config)
  featurize = jax.jit(linear_probe.make_global_featurizer(model, "mean", None))
  scorer = types.SimpleNamespace(global_features=lambda images: featurize(params, images))
  probe = linear_probe.train_or_load(config, scorer, str(tmp_path))
  assert all(auroc == 100.0 for _, auroc in probe.val_auroc)
  test_x, test_y = linear_probe.split_features(config, scorer.global_features, "test", 6,
                                               balanced=False, field="eval.test_split")
  assert list(test_y) == [0] * 6 + [1] * 6
  scores = probe.decision_function(test_x)
  assert scores[test_y == 1].min() > 0 > scores[test_y == 0].max()
  # Reloaded, not retrained: no feature is computed the second time.
  monkeypatch.setattr(linear_probe, "split_features", lambda *a, **k: 1 / 0)
  again = linear_probe.train_or_load(config, scorer, str(tmp_path))
  np.testing.assert_array_equal(again.coef, probe.coef)
  with pytest.raises(ValueError, match="config.eval.probe_val_split.*no split 'dev'"):
    monkeypatch.undo()
    config.eval.probe_val_split = "dev"  # a new key: retrains, and the split is missing
    linear_probe.train_or_load(config, scorer, str(tmp_path))


def test_config_accepts_the_probe_and_refuses_what_it_cannot_do():
  config = config_lib.base()
  assert "linear_probe" in config.eval.methods
  config.data.data_dir, config.data.name = ".", "x"
  config.detect.method = "linear_probe"
  config_lib.validate(config)
  config.detect.heatmaps = True
  with pytest.raises(config_lib.ConfigError, match="detect.heatmaps"):
    config_lib.validate(config)
  config.detect.heatmaps = False
  config.eval.probe_block = 1  # with the default "cls"
  with pytest.raises(config_lib.ConfigError, match="eval.probe_block"):
    config_lib.validate(config)


def test_the_saved_probe_is_not_overwritten_by_a_result_table():
  # evaluate writes W/eval/<method>.json, comparison.json and calibration.json.
  tables = {f"{m}.json" for m in scoring.METHODS} | {"comparison.json", "calibration.json"}
  assert linear_probe.FILENAME not in tables
