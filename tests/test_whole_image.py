"""Whole-image patch sets: tiling, masked set MMD, cap, calibration, full-picture heat maps.

References: float64 NumPy (tiles cut here, MMD by its formula), dense mmd.mmd2, and
simulation for the calibration.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mdmf_jax import (config_lib, detector, evaluate_whole, features, metrics, mmd, scoring,
                      whole_image)
from mdmf_jax.data import demo_whole
from tests import stand_ins

TILE, WINDOW = 28, 14  # the tiny ViT: a 2 x 2 patch grid per tile


def _set_mmd(kernel_fn, points, mask, bank, block_size):
  """(scores, witness) of padded sets by the project's one set-vs-bank MMD."""
  return mmd.bank_mmd2(kernel_fn, points, bank.points, bank.rr_mean, mask=mask,
                       block_size=block_size)[:2]


def make_scorer(kernel="gaussian", seed=0):
  """A random tiny/14 ViT + random PFS, as evaluate.load_scorer assembles a trained one."""
  config = config_lib.base()
  config.backbone.variant, config.backbone.weights = "tiny/14", None
  config.data.image_size, config.seed = TILE, seed
  config.pfs.hidden_dim, config.pfs.out_dim = 16, 8
  config.kernel.name = kernel
  if kernel == "gaussian":
    config.kernel.learn_bandwidth, config.kernel.params.bandwidth = False, 4.0
  model, backbone_params = features.frozen_backbone(config)
  images_in = detector.Detector.from_config(config, model)
  z = images_in.features(backbone_params, np.zeros((2, TILE, TILE, 3), np.float32))
  trained = jax.jit(images_in.init)(z, *jax.random.split(jax.random.key(seed)))
  return scoring.Scorer(images_in, backbone_params, trained, block_size=16)


def smooth_images(n, height, width, seed):
  """uint8 low-frequency pictures (bilinear upsampling of coarse noise)."""
  rng = np.random.default_rng(seed)
  coarse = rng.uniform(60, 200, (n, height // 14 + 2, width // 14 + 2, 3))
  rows = np.linspace(0, coarse.shape[1] - 1, height)
  cols = np.linspace(0, coarse.shape[2] - 1, width)
  r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
  r1, c1 = np.minimum(r0 + 1, coarse.shape[1] - 1), np.minimum(c0 + 1, coarse.shape[2] - 1)
  fr, fc = (rows - r0)[None, :, None, None], (cols - c0)[None, None, :, None]
  top = coarse[:, r0][:, :, c0] * (1 - fc) + coarse[:, r0][:, :, c1] * fc
  bottom = coarse[:, r1][:, :, c0] * (1 - fc) + coarse[:, r1][:, :, c1] * fc
  return np.rint(top * (1 - fr) + bottom * fr).astype(np.uint8)


def bank_of(scorer, seed=1):
  tiles = smooth_images(6, TILE, TILE, seed).astype(np.float32) / 255
  return scorer.bank_from_points(scorer.points(tiles)["mdmf"], "mdmf")


def whole_scorer(scorer, bank, max_patches=10_000, tile_batch=3, seed=0):
  return whole_image.WholeImageScorer(scorer, bank, tile_size=TILE, window=WINDOW,
                                      max_patches=max_patches, tile_batch=tile_batch, seed=seed)


# --------------------------------------------------------------------------
# Tiling.
# --------------------------------------------------------------------------


def test_axis_tiles_by_hand():
  # 70 px: tiles at 0 and 28 (all patches), then one flush with the end at 42 whose
  # first patch (42..56) is already covered: only its patch 56..70 is new.
  tiles = whole_image.axis_tiles(70, TILE, WINDOW)
  assert [origin for origin, _ in tiles] == [0, 28, 42]
  assert [list(kept) for _, kept in tiles] == [[0, 1], [0, 1], [1]]
  assert [o for o, _ in whole_image.axis_tiles(56, TILE, WINDOW)] == [0, 28]  # exact fit
  with pytest.raises(ValueError, match="below the tile size"):
    whole_image.axis_tiles(27, TILE, WINDOW)


def test_every_pixel_is_in_a_kept_patch_and_overlap_is_below_one_patch():
  for length in range(TILE, 120):
    cover = np.zeros(length, int)
    for origin, kept in whole_image.axis_tiles(length, TILE, WINDOW):
      assert origin >= 0 and origin + TILE <= length  # native pixels only, no padding
      for k in kept:
        cover[origin + WINDOW * k:origin + WINDOW * (k + 1)] += 1
    assert cover.min() == 1, length
    assert np.sum(cover == 2) < WINDOW and cover.max() <= 2, length


def test_layout_positions_are_tile_origin_plus_cell_offset():
  where = whole_image.layout(70, 50, TILE, WINDOW)
  assert where.tile_origins.tolist() == [[0, 0], [0, 22], [28, 0], [28, 22], [42, 0], [42, 22]]
  for tile, cell, (top, left) in zip(where.patch_tiles, where.patch_cells, where.patch_origins):
    row, col = divmod(int(cell), TILE // WINDOW)
    assert (top, left) == tuple(where.tile_origins[tile] + WINDOW * np.array([row, col]))
  # Rows: the flush tile at 42 adds 56..70 only. Columns: the flush tile at 22 adds
  # 22..36 (pixels 28..36 are new) and 36..50.
  assert sorted({int(t) for t, _ in where.patch_origins}) == [0, 14, 28, 42, 56]
  assert sorted({int(l) for _, l in where.patch_origins}) == [0, 14, 22, 36]
  assert where.num_patches == 5 * 4


# --------------------------------------------------------------------------
# Scores: the dense set MMD over all the image's patches; masks never leak.
# --------------------------------------------------------------------------


def _numpy_gaussian(x, y, bandwidth):
  d2 = np.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
  return np.exp(-d2 / bandwidth)


def _reference_points(scorer, image, where):
  """The PFS points of `where`'s patches, each tile cut and run here on its own."""
  out = []
  for tile, cell in zip(where.patch_tiles, where.patch_cells):
    top, left = where.tile_origins[tile]
    crop = image[None, top:top + TILE, left:left + TILE].astype(np.float32) / 255
    out.append(jax.tree.map(lambda a: np.asarray(a)[0, cell], scorer.points(crop)["mdmf"]))
  return jax.tree.map(lambda *a: np.stack(a), *out)


def test_whole_image_score_equals_the_float64_set_mmd_over_all_its_patches():
  scorer = make_scorer("gaussian")
  bank = bank_of(scorer)
  image = np.random.default_rng(3).integers(0, 256, (70, 50, 3), np.uint8)
  scored = whole_scorer(scorer, bank)(image)
  assert scored.layout.num_patches == 20 and scored.witness.shape == (20,)
  x = _reference_points(scorer, image, scored.layout).astype(np.float64)
  r = np.asarray(bank.points, np.float64)
  k_xx, k_xr = _numpy_gaussian(x, x, 4.0), _numpy_gaussian(x, r, 4.0)
  expected = k_xx.mean() + _numpy_gaussian(r, r, 4.0).mean() - 2 * k_xr.mean()
  np.testing.assert_allclose(scored.score, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(scored.witness, k_xx.mean(1) - k_xr.mean(1), rtol=1e-5, atol=1e-6)


def test_deep_kernel_whole_image_score_equals_the_dense_mmd():
  scorer = make_scorer("deep")
  bank = bank_of(scorer)
  image = np.random.default_rng(4).integers(0, 256, (45, 61, 3), np.uint8)
  # One tile per backbone call, as the reference runs them: the raw-feature term of
  # the deep kernel would amplify the backbone's batch-size-dependent float32 sums.
  scored = whole_scorer(scorer, bank, tile_batch=1)(image)
  x = _reference_points(scorer, image, scored.layout)
  k_xx, _, k_xr = mmd.gram_matrices(scorer.kernel_fn(), x, bank.points)
  # The bank's own R-R mean (streamed; see test_scoring for it against the dense one).
  dense = np.mean(k_xx) + bank.rr_mean - 2 * np.mean(k_xr)
  np.testing.assert_allclose(scored.score, dense, rtol=1e-5, atol=1e-6)


def test_masks_never_leak():
  scorer = make_scorer("deep")
  bank = bank_of(scorer)
  kernel_fn = scorer.kernel_fn()
  rng = np.random.default_rng(5)
  sets = [scorer.points(rng.uniform(size=(n, TILE, TILE, 3)).astype(np.float32))["mdmf"]
          for n in (3, 1)]
  sets = [jax.tree.map(lambda a: np.asarray(a).reshape((-1,) + a.shape[2:]), s) for s in sets]
  alone = [_set_mmd(kernel_fn, jax.tree.map(lambda a: a[None], s),
                    np.ones((1, len(s[0])), bool), bank, 16) for s in sets]
  # Both sets padded to 16 with junk (huge values), scored in one batch.
  padded, masks = [], []
  for s in sets:
    count = len(s[0])
    padded.append(jax.tree.map(lambda a: np.concatenate(
        [a, rng.normal(0, 1e3, (16 - count,) + a.shape[1:]).astype(np.float32)]), s))
    masks.append(np.arange(16) < count)
  batch = jax.tree.map(lambda *a: np.stack(a), *padded)
  # Through the Scorer too: the bank sharded over the devices, the sets gathered.
  scores, witness = _set_mmd(kernel_fn, batch, np.stack(masks), bank, 16)
  sharded = scorer.score_points(batch, bank, mask=np.stack(masks))
  for got, expected in zip(sharded, (scores, witness)):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
  for i, (score, heat) in enumerate(alone):
    count = heat.shape[1]
    np.testing.assert_allclose(scores[i], score[0], rtol=1e-6)
    np.testing.assert_allclose(witness[i, :count], heat[0], rtol=1e-6, atol=1e-7)
    assert np.all(np.isnan(witness[i, count:]))


def test_the_patch_cap_is_a_seeded_subsample_scored_densely():
  scorer = make_scorer("gaussian")
  bank = bank_of(scorer)
  image = np.random.default_rng(6).integers(0, 256, (84, 112, 3), np.uint8)  # 6 x 8 patches
  full = whole_image.layout(84, 112, TILE, WINDOW)
  capped = whole_image.capped(full, 10, seed=7)
  assert capped.num_patches == 10
  again = whole_image.capped(full, 10, seed=7)  # seeded: the same subsample
  np.testing.assert_array_equal(capped.patch_origins, again.patch_origins)
  positions = {tuple(p) for p in full.patch_origins}
  assert {tuple(p) for p in capped.patch_origins} <= positions
  assert len(capped.tile_origins) == len(np.unique(capped.patch_tiles))  # unused tiles dropped
  scored = whole_scorer(scorer, bank, max_patches=10, seed=7)(image)
  np.testing.assert_array_equal(scored.layout.patch_origins, capped.patch_origins)
  x = _reference_points(scorer, image, capped).astype(np.float64)
  r = np.asarray(bank.points, np.float64)
  expected = (_numpy_gaussian(x, x, 4.0).mean() + _numpy_gaussian(r, r, 4.0).mean()
              - 2 * _numpy_gaussian(x, r, 4.0).mean())
  np.testing.assert_allclose(scored.score, expected, rtol=1e-5, atol=1e-6)


def test_bucket_sizes_are_powers_of_two_up_to_the_cap():
  assert [whole_image.bucket_size(k, 100) for k in (1, 2, 3, 64, 65, 100)] == [
      1, 2, 4, 64, 100, 100]


# --------------------------------------------------------------------------
# Calibration in whole-image mode (simulation).
# --------------------------------------------------------------------------


def _simulated_scores(rng, sizes, bank, kernel_fn):
  """Biased set MMDs of Gaussian patch sets of the given sizes (reals: same law as the bank)."""
  num = len(sizes)
  points = rng.normal(size=(num, max(sizes), 2)).astype(np.float32)
  mask = np.arange(max(sizes))[None] < np.asarray(sizes)[:, None]
  return np.asarray(_set_mmd(kernel_fn, points, mask, bank, 64)[0])


def test_calibration_is_exact_when_calibration_reals_are_scored_whole():
  rng = np.random.default_rng(8)
  kernel_fn = lambda x, y: mmd.gaussian(x, y, 2.0)
  r = rng.normal(size=(64, 2)).astype(np.float32)
  bank = scoring.Bank(points=r, rr_mean=np.mean(kernel_fn(r, r)), vote_threshold=np.nan)
  trials, n_cal, alpha = 1500, 19, 0.1
  # Whole images of random sizes (4 to 32 patches): calibration and test drawn alike.
  whole = _simulated_scores(rng, rng.integers(4, 33, trials * (n_cal + 1)), bank, kernel_fn)
  whole = whole.reshape(trials, n_cal + 1)
  flagged = np.array([metrics.p_values(metrics.calibrate(row[:n_cal], alpha), row[n_cal])
                      <= alpha for row in whole])
  exact = math.floor(alpha * (n_cal + 1)) / (n_cal + 1)  # 2 / 20, no ties
  slack = 4 * math.sqrt(exact * (1 - exact) / trials)
  assert abs(flagged.mean() - exact) <= slack
  # Calibrating on whole images but testing 4-patch crops breaks it: the biased MMD
  # of a small set is larger (its self term holds k(x, x) = 1 with weight 1 / K).
  crops = _simulated_scores(rng, np.full(trials, 4), bank, kernel_fn)
  flagged = np.array([metrics.p_values(metrics.calibrate(row[:n_cal], alpha), crop) <= alpha
                      for row, crop in zip(whole, crops)])
  assert flagged.mean() > exact + 5 * slack


# --------------------------------------------------------------------------
# Heat maps over the whole picture.
# --------------------------------------------------------------------------


def test_heat_map_averages_overlapping_patches_and_leaves_unsampled_pixels_nan():
  where = whole_image.layout(28, 42, TILE, WINDOW)  # columns 0, 14 and the flush tile's 28
  heat = whole_image.heat_map(where, np.arange(where.num_patches, dtype=float))
  assert heat.shape == (28, 42)
  for (top, left), value in zip(where.patch_origins, range(where.num_patches)):
    assert np.all(heat[top:top + WINDOW, left:left + WINDOW] == value)
  sparse = whole_image.capped(where, 2, seed=0)
  heat = whole_image.heat_map(sparse, np.ones(2))
  assert np.sum(np.isfinite(heat)) == 2 * WINDOW**2 and np.all(heat[np.isfinite(heat)] == 1)


def patch_colour_statistics(params, images):
  """A context-free stand-in backbone: each 14 px patch's per-channel mean and std."""
  del params
  n, height, width, _ = images.shape
  blocks = images.reshape(n, height // WINDOW, WINDOW, width // WINDOW, WINDOW, 3)
  blocks = blocks.transpose(0, 1, 3, 2, 4, 5).reshape(n, -1, WINDOW * WINDOW, 3)
  return jnp.concatenate([blocks.mean(2), blocks.std(2)], -1)


def patch_statistics_scorer():
  """A Scorer on `patch_colour_statistics` with a random PFS and a Gaussian kernel (fast)."""
  config = config_lib.base()
  config.pfs.hidden_dim, config.pfs.out_dim = 16, 8
  config.kernel.name, config.kernel.learn_bandwidth = "gaussian", False
  config.kernel.params.bandwidth = 1.0
  det, trained = stand_ins.detector(config, patch_colour_statistics,
                                                np.ones((2, 4, 6), np.float32))
  return scoring.Scorer(det, None, trained, block_size=16)


def test_a_planted_corner_defect_lights_up_in_that_corner():
  scorer = patch_statistics_scorer()
  clean = smooth_images(1, 112, 140, seed=10)[0]
  image = clean.copy()
  image[-28:, -28:] = (255, 0, 255)  # a flat magenta bottom-right corner
  # Bank: the clean picture's own K patches. Then a defect patch d has witness
  # (4 - sum_c k(d, c)) / K over the 4 clean corner patches c, near 4 / K, and any
  # other patch x (4 k(x, d) - sum_c k(x, c)) / K, near 0 or below.
  whole = whole_scorer(scorer, bank=None)
  clean_points = whole.points(clean, whole.layout(112, 140))
  bank = scorer.bank_from_points(jax.tree.map(lambda a: a[None], clean_points), "mdmf")
  scored = whole_scorer(scorer, bank)(image)
  heat = whole_image.heat_map(scored.layout, scored.witness)
  corner = np.zeros(heat.shape, bool)
  corner[-28:, -28:] = True
  assert np.nanmin(heat[corner]) > np.nanmax(heat[~corner]) + 1 / 80
  shown, shown_heat = whole_image.for_display(image, heat, max_side=70)  # factor 2
  assert shown.shape == (56, 70, 3) and shown_heat.shape == (56, 70)
  np.testing.assert_allclose(shown[0, 0], image[:2, :2].mean(axis=(0, 1)) / 255)
  np.testing.assert_allclose(shown_heat[-14:, -14:], heat[-28:, -28:][::2, ::2])


# --------------------------------------------------------------------------
# Whole-image evaluation tables.
# --------------------------------------------------------------------------


def test_evaluation_calibrates_each_mode_on_distinct_reals_and_tabulates_both():
  rng = np.random.default_rng(12)
  # Two generators; each folder holds the same 10 reals (same digests) and 10 fakes.
  reals = [f"r{i}" for i in range(10)]
  scored = {"label": [], "generator": [], "path": [], "digest": []}
  for g in (0, 1):
    for label, names in ((0, reals), (1, [f"f{g}{i}" for i in range(10)])):
      for name in names:
        scored["label"].append(label)
        scored["generator"].append(g)
        scored["path"].append(f"g{g}/{label}/{name}.png")
        scored["digest"].append(name)
  scored = {k: np.asarray(v) for k, v in scored.items()}
  value = {d: rng.uniform() + d.startswith("f") for d in set(scored["digest"])}
  scored["whole"] = np.asarray([value[d] for d in scored["digest"]])
  scored["crop"] = scored["whole"][::-1].copy()
  scored["patches"] = np.full(40, 20)
  config = config_lib.base()
  calibrations, report = evaluate_whole.calibrate(config, scored)
  distinct = sorted(reals)  # path order of the first folder
  for mode in evaluate_whole.MODES:
    first = [scored[mode][(scored["digest"] == d) & (scored["generator"] == 0)][0]
             for d in distinct[0::2]]
    assert calibrations[mode] == metrics.calibrate(first, config.eval.alpha)
    assert report[mode]["num_fpr_check"] == 5
    assert report[mode]["settings"] == evaluate_whole.settings(config)
  rows = evaluate_whole.comparison_rows(scored, calibrations, ["a", "b"])
  assert [r["generator"] for r in rows] == ["a", "b", "average"]
  for g, row in enumerate(rows[:2]):
    keep = scored["generator"] == g
    for mode in evaluate_whole.MODES:
      m = metrics.binary_metrics(scored[mode][keep], scored["label"][keep],
                                 calibrations[mode].threshold)
      assert (row[f"auroc_{mode}"], row[f"tpr_{mode}"]) == (m["auroc"], m["fake_acc"])
  # The same reals as calibration reals: exchangeable by construction, KS p = 1; shifted
  # ones are told apart.
  first_folder_reals = (scored["label"] == 0) & (scored["generator"] == 0)
  shifted = {"crop": scored["crop"][first_folder_reals],
             "whole": scored["whole"][first_folder_reals] + 10.0}
  summary = evaluate_whole.summary_rows("test", scored, calibrations, rows, crop_patches=4,
                                        calibration_reals=shifted)
  assert [(r["mode"], r["num_real"], r["num_fake"], r["patches_per_image"])
          for r in summary] == [("crop", 10, 20, 4.0), ("whole", 10, 20, 20.0)]
  assert summary[0]["ks_p_vs_calibration"] == pytest.approx(1.0)
  assert summary[1]["ks_p_vs_calibration"] < 1e-4
  band = metrics.fpr_band(5, config.eval.alpha)  # 5 calibration reals: k > n, (0, 0)
  assert [(r["fpr_band_low"], r["fpr_band_high"]) for r in summary] == [
      (100 * band[0], 100 * band[1])] * 2


def test_whole_benchmark_pictures_keep_native_pixels_or_are_downscaled():
  photo = np.random.default_rng(13).integers(0, 256, (500, 700, 3), np.uint8)
  cropped = demo_whole.fit_photo(photo, "crop", 336, 56)
  np.testing.assert_array_equal(cropped, photo[82:82 + 336, 182:182 + 336])  # central, native
  assert demo_whole.fit_photo(photo, "downscale", 336, 56).shape == (224, 336, 3)  # 240 -> 224
  assert demo_whole.fit_photo(photo[:100, :130], "crop", 336, 56).shape == (56, 112, 3)
  fake = np.zeros_like(cropped)
  corner = demo_whole.corner_fake(cropped, fake)
  assert np.all(corner[:168, :168] == 0)
  np.testing.assert_array_equal(corner[168:], cropped[168:])
  np.testing.assert_array_equal(corner[:, 168:], cropped[:, 168:])
