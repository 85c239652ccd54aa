"""The study harness and model selection on validation, on a tiny four-split data set."""

import os

import jax
import numpy as np
from PIL import Image
import pytest

from configs import study as study_config
from mdmf_jax import (checkpoint, config_lib, detector, evaluate, features, linear_probe,
                      metrics, scoring, selection, study, train)
from mdmf_jax.data import builder

SPLITS = ("train", "val", "test", "cross_source")


@pytest.fixture(scope="module")
def four_splits(tmp_path_factory):
  """A data set with train (generator "nearest") and val/test/cross_source ("nearest" and
  "bilinear"), 8 reals and 8 fakes per generator and split, 28 px."""
  root = tmp_path_factory.mktemp("images")
  data_dir = tmp_path_factory.mktemp("tfds")
  rng = np.random.default_rng(0)
  resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR}
  for split in SPLITS:
    for generator in (["nearest"] if split == "train" else ["nearest", "bilinear"]):
      for label in ("0_real", "1_fake"):
        os.makedirs(root / split / generator / label)
      for i in range(8):
        small = Image.fromarray(rng.integers(0, 255, (7, 7, 3), dtype=np.uint8))
        real = Image.fromarray(rng.integers(0, 255, (28, 28, 3), dtype=np.uint8))
        real.save(root / split / generator / "0_real" / f"{i}.png")
        small.resize((28, 28), resample[generator]).save(
            root / split / generator / "1_fake" / f"{i}.png")
  builder.build_image_folder(name="four_splits", layout="generator",
                             roots={s: str(root / s) for s in SPLITS}, data_dir=str(data_dir))
  return str(data_dir)


def quick_config(data_dir, tmp_path):
  c = study_config.get_config("quick")
  c.data.data_dir, c.data.name = data_dir, "four_splits"
  c.data.cache_dir = str(tmp_path / "cache")
  return c


def test_score_sets_equals_the_scorer_on_images(four_splits, tmp_path):
  """Cached features scored by score_sets equal evaluate's Scorer on the images."""
  config = quick_config(four_splits, tmp_path)
  config.eval.bank_patches = 10  # fewer than the bank's 4 x 4 patches: a random subset
  model, backbone_params = features.frozen_backbone(config)
  images_in = detector.Detector.from_config(config, model)
  val = selection.patch_features(config, "val", images_in, backbone_params)
  bank = selection.patch_features(config, "train", images_in, backbone_params, max_images=4)
  assert val["patches"].shape == (32, 4, 128) and (bank["label"] == 0).all()
  trained = jax.jit(images_in.init)(np.asarray(val["patches"][:2]),
                                    *jax.random.split(jax.random.key(1)))
  got = selection.SetScorer(config)(trained, bank["patches"],
                                    {"val": val["patches"]}, methods=("mdmf", "global"))["val"]

  scorer = scoring.Scorer(images_in, backbone_params, trained)
  evaluate_config = config.copy_and_resolve_references()
  evaluate_config.eval.methods = ("mdmf", "global")
  banks = evaluate.build_banks(evaluate_config, scorer, str(tmp_path / "w"))
  expected = evaluate.score_split(evaluate_config, scorer, banks, "val")
  for method in ("mdmf", "global"):
    np.testing.assert_allclose(got[method], expected[method], rtol=2e-4, atol=1e-6)
  np.testing.assert_array_equal(val["label"], expected["label"])
  np.testing.assert_array_equal(val["generator"], expected["generator"])


def test_average_auroc_is_the_mean_over_generators():
  scores = np.array([0.1, 0.9, 0.2, 0.3, 0.35, 0.4])
  labels = np.array([0, 1, 0, 1, 0, 1])
  generators = np.array([0, 0, 0, 1, 1, 1])
  mean, per = selection.average_auroc(scores, labels, generators)
  assert per == {0: 100.0, 1: 50.0} and mean == 75.0
  assert per[1] == metrics.roc(scores[3:], labels[3:])[2]


def selection_config(data_dir, tmp_path):
  config = quick_config(data_dir, tmp_path)
  config.data.feature_cache = True
  config.train.total_steps, config.select.every, config.train.checkpoint_every = 6, 2, 2
  return config


@pytest.fixture(scope="module")
def selected_run(four_splits, tmp_path_factory):
  """(config, workdir, final state, the val AUROC of every scored step) of a 6-step run."""
  config = selection_config(four_splits, tmp_path_factory.mktemp("selected"))
  workdir = str(tmp_path_factory.mktemp("run"))
  seen = []
  call = selection.SetScorer.__call__

  def recording(self, trained, bank, sets, methods=("mdmf",)):
    out = call(self, trained, bank, sets, methods)
    seen.append(out["val"]["mdmf"])
    return out

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(selection.SetScorer, "__call__", recording)
    final = train.train(config, workdir)
  val = selection.load_cache(selection.cache_folder(config, "val", "patches"))
  aurocs = [selection.average_auroc(s, val["label"], val["generator"])[0] for s in seen]
  return config, workdir, final, aurocs


def test_selection_keeps_the_step_with_the_best_val_auroc(selected_run):
  config, workdir, final, aurocs = selected_run
  record = selection.read_record(workdir)
  assert [h[0] for h in record["history"]] == [2, 4, 6]
  np.testing.assert_allclose([h[1] for h in record["history"]], aurocs)
  best = int(np.argmax(aurocs))  # the first of equal bests
  assert record["step"] == 2 * (best + 1) and record["val_auroc"] == aurocs[best]

  template = jax.eval_shape(lambda: final.params)
  params, which = selection.load_trained(workdir, template)
  assert "SELECTED" in which and f"step {record['step']} " in which
  selected = checkpoint.Checkpoints(os.path.join(workdir, selection.SELECTED_DIR), save_every=1,
                                    keep=1)
  state, step = selected.restore_or(jax.device_get(final))  # the whole state, for its step
  selected.close()
  assert int(state.step) == step == record["step"]
  assert checkpoint.params_digest(params) == checkpoint.params_digest(state.params)
  scorer = evaluate.load_scorer(config, workdir)  # evaluation and detection score with it
  assert checkpoint.params_digest(scorer.params["trained"]) == checkpoint.params_digest(params)


def test_resume_keeps_the_best_so_far(selected_run, monkeypatch):
  """A run that dies after step 4's selection resumes to the uninterrupted run's record."""
  config, uninterrupted, final, _ = selected_run
  resumed = os.path.join(os.path.dirname(uninterrupted), "resumed")
  update = selection.Selection.update

  def dies_after_step_4(self, step, host_state):
    update(self, step, host_state)
    if step == 4:
      raise KeyboardInterrupt

  monkeypatch.setattr(selection.Selection, "update", dies_after_step_4)
  with pytest.raises(KeyboardInterrupt):
    train.train(config, resumed)
  assert [h[0] for h in selection.read_record(resumed)["history"]] == [2, 4]
  monkeypatch.setattr(selection.Selection, "update", update)
  train.train(config, resumed)
  assert selection.read_record(resumed) == selection.read_record(uninterrupted)
  template = jax.eval_shape(lambda: final.params)
  params, _ = selection.load_trained(resumed, template)
  expected, _ = selection.load_trained(uninterrupted, template)
  assert checkpoint.params_digest(params) == checkpoint.params_digest(expected)


def test_bad_selection_split_fails_naming_the_field(four_splits, tmp_path):
  config = quick_config(four_splits, tmp_path)
  config.data.feature_cache = True
  config.select.split = "nope"
  with pytest.raises(config_lib.ConfigError, match="select.split"):
    train.train(config, str(tmp_path / "w"))
  config.select.split, config.select.every = "val", -1
  with pytest.raises(config_lib.ConfigError, match="select.every"):
    config_lib.validate(config)


def test_study_quick_writes_one_table_and_reuses_results(four_splits, tmp_path):
  config = quick_config(four_splits, tmp_path)
  workdir = str(tmp_path / "study")
  rows = study.study(config, workdir)
  assert [r["variant"] for r in rows] == [
      "block 0, mmd_d", "block 0, mmd_d, bank of 2", "linear probe, mean tokens of block last",
      "linear probe, mean tokens of block 0", "linear probe, CLS"]
  assert all(0 <= r["val"] <= 100 for r in rows)
  assert all(np.isnan(r["test: unseen"]) for r in rows)  # val only until asked
  # The bank variant shares the training run of the same config.
  assert len(os.listdir(os.path.join(workdir, "runs"))) == 1
  for suffix in (".md", ".csv", ".json", ".png"):
    assert os.path.exists(os.path.join(workdir, "study" + suffix))

  # The cached block tokens equal the project's featurizer of that block.
  model, params = features.frozen_backbone(config)
  block0 = study.with_block(config, 0)
  cached = selection.load_cache(selection.cache_folder(block0, "test", "patches"))
  direct = selection.patch_features(block0, "test", detector.Detector.from_config(block0, model),
                                    params, max_images=8)
  np.testing.assert_allclose(cached["patches"][:8], direct["patches"], rtol=1e-5, atol=1e-5)

  # The probe row is linear_probe.fit's val AUROC recomputed from the cached features.
  train_f = selection.load_cache(selection.cache_folder(config, "train", "patches"))
  val_f = selection.load_cache(selection.cache_folder(config, "val", "patches"))
  probe = linear_probe.fit(np.asarray(train_f["patches"]).mean(1), train_f["label"],
                           np.asarray(val_f["patches"]).mean(1), val_f["label"], (1.0,))
  expected, _ = selection.average_auroc(probe.decision_function(
      np.asarray(val_f["patches"]).mean(1)), val_f["label"], val_f["generator"])
  assert rows[2]["val"] == pytest.approx(expected)

  # A rerun asking for test too trains nothing and scores the new split.
  mtimes = {f: os.path.getmtime(os.path.join(workdir, "runs", f))
            for f in os.listdir(os.path.join(workdir, "runs"))}
  config.study.splits = ("val", "test")
  config.study.train = False  # an untrained variant is left out, not trained
  config.study.variants = config.study.variants + (("never trained", {"optim.lr": 0.5}),)
  again = study.study(config, workdir)
  assert [r["variant"] for r in again] == [r["variant"] for r in rows]
  assert [r["val"] for r in again] == [r["val"] for r in rows]
  assert all(0 <= r["test: unseen"] <= 100 for r in again)
  assert all(np.isnan(r["cross_source"]) for r in again)
  assert mtimes == {f: os.path.getmtime(os.path.join(workdir, "runs", f)) for f in mtimes}
