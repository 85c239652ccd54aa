"""Bank scoring: streamed scores and heat maps equal the dense MMD formulas; calibration data."""

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mdmf_jax import config_lib, evaluate, metrics, mmd, scoring
from mdmf_jax.data import builder, decode, pipeline
from tests import stand_ins, test_linear_probe


def make_scorer(kernel="deep", block_size=7, devices=None):
  config = config_lib.base()
  config.pfs.hidden_dim, config.pfs.out_dim = 16, 8
  config.kernel.name = kernel
  features_of = lambda params, images: images.reshape(images.shape[0], -1, 6)  # "patches"
  sample = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)
  det, trained = stand_ins.detector(config, features_of, sample)
  return scoring.Scorer(det, None, trained, block_size=block_size, devices=devices)


def random_images(seed, n=3):
  # "Images" of 5 patches x 6 features, reshaped by the stand-in featurizer.
  return np.random.default_rng(seed).normal(size=(n, 5, 6, 1)).astype(np.float32)


@pytest.mark.parametrize("kernel", ["deep", "gaussian", "imq"])
def test_streamed_score_is_the_biased_mmd_and_heat_is_the_witness(kernel):
  scorer = make_scorer(kernel)
  kernel_fn = scorer.kernel_fn()
  bank_points = scorer.points(random_images(1, n=6))["mdmf"]
  bank = scorer.bank_from_points(bank_points, "mdmf")
  flat_bank = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), bank_points)
  images = random_images(2)
  points = scorer.points(images)["mdmf"]
  scores, heat = scorer.scores(images, {"mdmf": bank})["mdmf"]
  for i in range(3):
    x = jax.tree.map(lambda a: a[i], points)
    dense = mmd.mmd2(*mmd.gram_matrices(kernel_fn, x, flat_bank), "biased")
    np.testing.assert_allclose(scores[i], dense, rtol=1e-5, atol=1e-6)
    witness = np.mean(kernel_fn(x, x), axis=1) - np.mean(kernel_fn(x, flat_bank), axis=1)
    np.testing.assert_allclose(heat[i], witness, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(bank.rr_mean, np.mean(kernel_fn(flat_bank, flat_bank)),
                             rtol=1e-5)


def test_global_method_scores_one_pooled_point():
  scorer = make_scorer()
  images = random_images(3)
  bank = scorer.bank_from_points(scorer.points(random_images(4, n=8))["global"], "global")
  scores, _ = scorer.scores(images, {"global": bank})["global"]
  # The pooled point is the PFS of the mean token; the score is its biased MMD to the bank.
  z_mean = images.reshape(3, 5, 6).mean(axis=1, keepdims=True)
  point = scorer.detector.points(scorer.params["trained"], jnp.asarray(z_mean))
  kernel_fn = scorer.kernel_fn()
  for i in range(3):
    x = jax.tree.map(lambda a: a[i], point)
    dense = mmd.mmd2(*mmd.gram_matrices(kernel_fn, x, bank.points), "biased")
    np.testing.assert_allclose(scores[i], dense, rtol=1e-5, atol=1e-6)


def test_patch_vote_counts_low_density_patches():
  scorer = make_scorer()
  bank_points = scorer.points(random_images(5, n=10))["mdmf"]
  bank = scorer.bank_from_points(bank_points, "patch_vote", vote_quantile=0.9)
  flat = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), bank_points)
  kernel_fn = scorer.kernel_fn()
  bank_density = np.mean(kernel_fn(flat, flat), axis=1)
  # 10% of the bank's own patches vote fake.
  assert abs(np.mean(bank_density < bank.vote_threshold) - 0.1) <= 0.04
  images = random_images(6) * 4.0  # far from the bank
  points = scorer.points(images)["mdmf"]
  votes, _ = scorer.scores(images, {"patch_vote": bank})["patch_vote"]
  x = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), points)
  density = np.mean(kernel_fn(x, flat), axis=1).reshape(3, 5)
  np.testing.assert_allclose(votes, np.mean(density < bank.vote_threshold, axis=1))
  assert np.all(votes >= 0.6)
  # Padded sets vote over their valid patches only, as the unpadded sets do.
  mask = np.arange(5)[None, :] < np.array([[5], [3], [1]])
  padded, _ = scorer.score_points(points, bank, mask=mask, method="patch_vote")
  for i, valid in enumerate(mask.sum(1)):
    unpadded, _ = scorer.score_points(jax.tree.map(lambda a: a[i:i + 1, :valid], points), bank,
                                      method="patch_vote")
    np.testing.assert_allclose(padded[i], unpadded[0], rtol=1e-6)


def test_detector_is_jitted_for_fixed_batches_and_reshapes_heat():
  scorer = make_scorer()
  bank = scorer.bank_from_points(scorer.points(random_images(7, n=4))["mdmf"], "mdmf")
  detector = scoring.CropDetector(scorer, bank, image_size=5, grid=(5, 1))
  images = random_images(8, n=4)
  scores = detector.score(images)
  direct, heat = scorer.scores(images, {"mdmf": bank})["mdmf"]
  np.testing.assert_allclose(scores, direct, rtol=1e-6)
  assert detector.heatmaps(images).shape == (4, 5, 1)
  np.testing.assert_allclose(detector.heatmaps(images)[..., 0], heat, rtol=1e-6)


def test_eight_devices_score_as_one():
  """Bank sharded over 8 devices, batch sharded: the scores, heat maps and bank statistics of
  one device. Neither count divides 8: 7 images (padded) against 35 bank patches (shards of
  5 in blocks of 3) and 4 global points (four shards of padding alone)."""
  assert jax.local_device_count() == 8
  one, eight = make_scorer(block_size=3, devices=jax.devices()[:1]), make_scorer(block_size=3)
  assert (one.mesh.size, eight.mesh.size) == (1, 8)
  bank_images, images = random_images(9, n=7), random_images(10, n=7)
  results = []
  for scorer in (one, eight):
    points = scorer.points(bank_images)
    patch_bank = scorer.bank_from_points(points["mdmf"], "patch_vote", 0.8)  # mdmf's too
    banks = {"mdmf": patch_bank, "patch_vote": patch_bank,
             "global": scorer.bank_from_points(points["global"], "global")}
    placed = scorer.place(banks)
    assert placed["mdmf"].valid.sharding.num_devices == scorer.mesh.size
    results.append((jax.tree.map(np.asarray, banks), scorer.scores(images, placed)))
  (banks_1, scores_1), (banks_8, scores_8) = results
  for method in scores_1:
    np.testing.assert_allclose(banks_8[method].rr_mean, banks_1[method].rr_mean, rtol=1e-6)
    np.testing.assert_allclose(banks_8[method].vote_threshold, banks_1[method].vote_threshold,
                               rtol=1e-6)
    for got, expected in zip(scores_8[method], scores_1[method]):
      assert got.shape == expected.shape == (7, 1 if method == "global" else 5)[:got.ndim]
      np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------
# Evaluation protocol: where the calibration reals come from.
# --------------------------------------------------------------------------


def test_calibration_uses_the_training_data_reals_when_the_benchmark_has_no_val(tmp_path):
  data_dir = str(tmp_path / "tfds")
  for name, splits in (("home", ("train", "val")), ("bench", ("test",))):
    roots = {}
    for seed, split in enumerate(splits):
      roots[split] = str(tmp_path / name / split)
      test_linear_probe.write_bright_dark(roots[split], per_label=6, seed=seed)
    builder.build_image_folder(name=name, layout="generator", roots=roots, data_dir=data_dir)
  config = config_lib.base()
  config.data.data_dir, config.data.name, config.eval.data_name = data_dir, "home", "bench"
  config.data.image_size, config.eval.batch_size, config.eval.alpha = 28, 4, 0.5
  mean_pixel = lambda images, banks: {m: (images.mean(axis=(1, 2, 3)), None) for m in banks}
  scorer = types.SimpleNamespace(scores=mean_pixel)
  [calibration] = evaluate.calibrate(config, scorer, {"m": None}, str(tmp_path)).values()
  source = pipeline.open_split(data_dir, "home", "val")
  reals = [decode.decode_rgb8(source[i]["image"]).mean() / 255 for i in range(6)]
  expected = metrics.calibrate(np.float32(reals[0::2]), 0.5)
  np.testing.assert_allclose(calibration.threshold, expected.threshold, rtol=1e-5)
  saved = json.load(open(tmp_path / "eval" / "calibration.json"))["m"]
  assert saved["num_fpr_check"] == 3  # the odd-indexed half of home's 6 val reals
  config.eval.calibration_data_name = "bench"
  with pytest.raises(config_lib.ConfigError,
                     match=r"config.eval.calibration_split: data set 'bench' .* no split 'val'"):
    evaluate.calibrate(config, scorer, {"m": None}, str(tmp_path))
