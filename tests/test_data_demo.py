"""The offline demo benchmark, built small: aligned fakes, split by photo,
determinism (API and command line), no mean-colour shortcut, no-op rebuilds,
the upscaler family, per-photograph crop caps."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import sklearn.metrics
import tensorflow_datasets as tfds

from mdmf_jax.data import autoencoders
from mdmf_jax.data import debian_photos
from mdmf_jax.data import decode
from mdmf_jax.data import demo
from mdmf_jax.data import demo_photos
from mdmf_jax.data import upscalers
from mdmf_jax.models import rrdbnet

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPLITS = ("train", "val", "test")
# The small setting, as command-line overrides of demo.get_config() (the same
# settings build the data set through the API below and through the CLI).
AUTOENCODERS = ["tconv", "nearest", "bilinear", "pixel_shuffle"]
TINY = {
    "name": "demo_tiny",
    "collections": ("pip",),  # no Debian download in tests
    "max_crops_per_photo": 64,
    "generators": tuple(g for g in demo.get_config().generators if g["name"] in AUTOENCODERS),
    "crop_size": 32,
    "train_crops": 16,
    "val_crops_per_generator": 4,
    "test_crops_per_generator": 8,
    "autoencoder.features": (16, 16),
    "autoencoder.latent": 8,
    "autoencoder.steps": 300,
    "autoencoder.batch_size": 8,
    "autoencoder.patch_size": 16,
}


def tiny_config():
  config = demo.get_config()
  for key, value in TINY.items():
    section, _, field = key.rpartition(".")
    (config[section] if section else config)[field] = value
  return config


def read_split(data_dir, split):
  source = tfds.data_source("demo_tiny", split=split, data_dir=data_dir,
                            download=False)
  return source, [source[i] for i in range(len(source))]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("demo"))
  return data_dir, demo.build_demo(data_dir, seed=0, config=tiny_config())


def test_splits_and_counts(built):
  data_dir, report = built
  generators = sorted(AUTOENCODERS)
  assert sorted(report["generators"]) == generators
  splits = report["splits"]
  assert splits["train"]["generators"] == {"tconv": {"real": 16, "fake": 16}}
  for split, per_generator in (("val", 4), ("test", 8)):
    assert splits[split]["generators"] == {
        g: {"real": per_generator, "fake": per_generator} for g in generators}
  assert "cross_source" not in splits  # the pip photographs alone have none
  assert report["skipped"] == [] and report["cross_split_duplicates"] == []
  source, records = read_split(data_dir, "test")
  assert source.dataset_info.features["generator"].names == generators
  assert {r["format"] for r in records} == {b"PNG"}  # no format shortcut
  assert all((r["height"], r["width"]) == (32, 32) for r in records)


def test_train_and_test_come_from_different_photographs(built):
  data_dir, _ = built
  photos = {split: {r["class"].decode() for r in read_split(data_dir, split)[1]}
            for split in SPLITS}
  expected = demo_photos.assign_splits(demo_photos.pip_sources(), val_fraction=0.15,
                                       test_fraction=0.2, seed=0)
  for split in SPLITS:
    assert photos[split] == {s.name for s in expected[split]}
  assert photos["train"] | photos["val"] | photos["test"] == set(demo_photos.PIP_PHOTOS)
  assert not (photos["train"] & photos["val"] or photos["train"] & photos["test"]
              or photos["val"] & photos["test"])
  manifest = json.load(open(os.path.join(data_dir, "demo_tiny_images", "photos.json")))
  assert {(m["name"], m["split"]) for m in manifest} == {
      (p, split) for split in SPLITS for p in photos[split]}
  assert all(m["licence"] for m in manifest)


def decoded(records, label):
  return {r["path"].decode().replace(f"/{label}/", "/"):
          decode.decode_rgb8(r["image"]).astype(np.float64)
          for r in records if r["label"] == (label == "1_fake")}


def psnr(a, b):
  return 10 * np.log10(255 ** 2 / np.mean((a - b) ** 2))


@pytest.mark.parametrize("split", SPLITS)
def test_each_fake_reconstructs_its_own_real_crop(built, split):
  _, records = read_split(built[0], split)
  reals, fakes = decoded(records, "0_real"), decoded(records, "1_fake")
  assert reals.keys() == fakes.keys()  # a fake per real, under the same name
  photo = lambda name: name.split("/")[1]
  paired, same_photo, own_is_nearest = [], [], []
  for name, fake in fakes.items():
    own = psnr(fake, reals[name])
    paired.append(own)
    # Crops of one photo may overlap, and dark crops of two photos (a night sky,
    # a dark background) may be alike, so the own crop must be the nearest for
    # nearly every fake...
    own_is_nearest.append(all(psnr(fake, real) < own for other, real in reals.items()
                              if photo(other) != photo(name)))
    same_photo += [psnr(fake, real) for other, real in reals.items()
                   if photo(other) == photo(name) and other != name]
  assert np.mean(own_is_nearest) >= 0.9
  # ... and on average the own crop wins by far.
  assert np.mean(paired) > 18 and np.mean(paired) > np.mean(same_photo) + 5


@pytest.mark.parametrize("split", ["val", "test"])
def test_mean_colour_does_not_separate_real_from_fake(built, split):
  # AUROC of each channel's mean and of the grey mean as a fake-score: 0.5 is
  # chance, 0 or 1 a trivial shortcut (a format or colour-cast giveaway).
  _, records = read_split(built[0], split)
  means = np.stack([decode.decode_rgb8(r["image"]).mean(axis=(0, 1))
                    for r in records])
  labels = [r["label"] for r in records]
  for statistic in [*means.T, means.mean(axis=1)]:
    assert 0.3 < sklearn.metrics.roc_auc_score(labels, statistic) < 0.7


def test_rebuild_is_a_noop_and_other_settings_are_refused(built, monkeypatch):
  data_dir, report = built
  monkeypatch.setattr(demo_photos, "gather", None)  # a rebuild would call it and fail
  assert demo.build_demo(data_dir, seed=0, config=tiny_config()) == report
  with pytest.raises(ValueError, match="built with other settings"):
    demo.build_demo(data_dir, seed=1, config=tiny_config())


def test_command_line_build_is_identical(built, tmp_path):
  """The CLI with the same settings rebuilds byte-identical images (determinism)."""
  overrides = [f"--demo_config.{k}={v}" for k, v in TINY.items()]
  result = subprocess.run(
      [sys.executable, "-m", "mdmf_jax.data.build", "--demo",
       f"--data_dir={tmp_path}", *overrides],
      capture_output=True, text=True, cwd=REPO, check=False)
  assert result.returncode == 0, result.stderr
  assert "demo built in" in result.stdout and "demo_tiny: train: 16 real" in (
      result.stdout)
  for split in SPLITS:
    _, ours = read_split(built[0], split)
    _, theirs = read_split(str(tmp_path), split)
    assert [(r["path"], r["image"]) for r in ours] == [
        (r["path"], r["image"]) for r in theirs]


def test_every_upsampler_doubles_the_resolution():
  x = np.zeros((2, 8, 12, 3), np.float32)
  for upsample in autoencoders.UPSAMPLERS:
    model = autoencoders.Autoencoder(upsample=upsample, features=(4, 6, 8),
                                     latent=2)
    out = jax.eval_shape(lambda: model.apply(model.init(jax.random.key(0), x), x))
    assert out.shape == x.shape


def test_crops_per_photograph_are_capped(tmp_path):
  config = tiny_config()
  config.name, config.max_crops_per_photo = "demo_capped", 2
  config.generators = config.generators[:1]  # tconv
  config.autoencoder.steps = 5  # the fakes' quality does not matter here
  report = demo.build_demo(str(tmp_path), seed=0, config=config)
  for split in SPLITS:
    source = tfds.data_source("demo_capped", split=split, data_dir=str(tmp_path),
                              download=False)
    per_photo = {}
    for i in range(len(source)):
      record = source[i]
      if record["label"] == 0:
        photo = record["class"].decode()
        per_photo[photo] = per_photo.get(photo, 0) + 1
    assert max(per_photo.values()) == 2, (split, per_photo)
  assert report["splits"]["train"]["generators"]["tconv"]["real"] == 2 * 7  # 7 train photos


def test_upscaler_family_fakes_are_the_model_on_the_downscaled_crop(tmp_path, monkeypatch):
  module = rrdbnet.SRVGGNetCompact(num_feat=4, num_conv=1)
  params = module.init(jax.random.key(0), np.zeros((1, 8, 8, 3), np.float32))["params"]
  monkeypatch.setattr(upscalers, "load_model", lambda name: (module, params))
  config = tiny_config()
  config.name, config.autoencoder.steps = "demo_up", 5
  config.generators = (config.generators[0],
                       {"name": "upscaled", "kind": "upscaler", "model": "realesrgan-x4plus"})
  demo.build_demo(str(tmp_path), seed=0, config=config)
  source = tfds.data_source("demo_up", split="test", data_dir=str(tmp_path), download=False)
  records = [source[i] for i in range(len(source))
             if source[i]["generator"] == source.dataset_info.features["generator"].str2int(
                 "upscaled")]
  reals, fakes = decoded(records, "0_real"), decoded(records, "1_fake")
  assert reals and reals.keys() == fakes.keys()
  names = sorted(reals)
  expected = upscalers.upscale_with(module, params,
                                    np.stack([reals[n] for n in names]).astype(np.uint8))
  np.testing.assert_array_equal(np.stack([fakes[n] for n in names]), expected)


def test_bad_generator_lists_fail_before_any_work(tmp_path):
  config = tiny_config()
  config.generators = (*config.generators, {"name": "x", "kind": "upscaler", "model": "nope"})
  with pytest.raises(ValueError, match="'x' needs a model"):
    demo.build_demo(str(tmp_path), config=config)
  config = tiny_config()
  config.train_generator = "nope"
  with pytest.raises(ValueError, match="train_generator 'nope'"):
    demo.build_demo(str(tmp_path), config=config)
  assert not os.listdir(tmp_path)


def test_without_debian_photographs_the_pip_ones_are_used_and_it_says_why(monkeypatch, caplog):
  def unavailable(packages=None):
    raise debian_photos.DebianFetchError("apt-get is not on PATH")
  monkeypatch.setattr(debian_photos, "fetch_photos", unavailable)
  in_source, cross_source = demo_photos.gather(("pip", "debian"))
  assert [s.name for s in in_source] == list(demo_photos.PIP_PHOTOS) and cross_source == []
  assert "apt-get is not on PATH" in caplog.text and "pip photographs alone" in caplog.text
  with pytest.raises(debian_photos.DebianFetchError, match="apt-get"):
    demo_photos.gather(("pip", "debian"), required=True)


def test_debian_photographs_join_train_or_cross_source_by_package(monkeypatch):
  def photo(name, package):
    return debian_photos.Photo(name=name, package=package, group=package, path="p", member="",
                               sha256="0", licence="GPL-2+", root="/nonexistent")
  photos = [photo("gcompris/fish/fish1", debian_photos.IN_SOURCE[0]),
            photo("lomiri/bridge", debian_photos.CROSS_SOURCE[0])]
  monkeypatch.setattr(debian_photos, "fetch_photos", lambda packages=None: photos)
  in_source, cross_source = demo_photos.gather(("debian",))
  assert [(s.name, s.collection) for s in in_source] == [
      ("gcompris-fish-fish1", debian_photos.IN_SOURCE[0])]
  assert [(s.name, s.licence) for s in cross_source] == [("lomiri-bridge", "GPL-2+")]
