"""The offline demo benchmark `mdmf_demo`: real photo crops vs autoencoder fakes.

Real images are crops of the natural photographs that ship inside pip packages
(scikit-image, scikit-learn, matplotlib). Fakes are reconstructions of those same
crops by small convolutional autoencoders trained here in JAX on the training
crops; each decoder family (`config.generators`) is one generator of the
benchmark. Real and fake crops therefore show the same content and differ only by
generation traces ("aligned" real/fake pairs).

Splits (layout `generator_class`: <generator>/<photo>/0_real|1_fake/<crop>.png):
  train: crops of the training photos and their reconstructions by
         `config.train_generator` (the paper's protocol: train on one generator);
  val:   other crops of the training photos, per generator, for model selection
         and calibration;
  test:  crops of the held-out `config.test_photos` (never seen in training, by
         the detector or by the autoencoders), per generator.
Every real crop appears once; a generator's fakes are the reconstructions of the
real crops in its own folder (same file name). All images are PNG.

Build (a no-op when already built with the same seed and config):
  python -m mdmf_jax.data.build --demo --data_dir=DIR [--seed=0] \
      [--demo_config.crop_size=64]
or `build_demo(data_dir, seed=0)`. The image folder is kept at
DIR/<name>_images, the TFDS data set at DIR/<name>/1.0.0.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import Any, Callable, Mapping, Sequence

from absl import logging
import matplotlib.cbook
import ml_collections
import numpy as np
from PIL import Image
import skimage.data
import sklearn.datasets
import sklearn.metrics

from mdmf_jax.data import autoencoders
from mdmf_jax.data import builder


def _grace_hopper() -> list[np.ndarray]:
  with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
    return [np.asarray(Image.open(f).convert("RGB"))]


# Photo name -> loader of its image(s). One name is one "source photograph" for
# the train/test split (the two stereo motorcycle views are one source).
PHOTOS: Mapping[str, Callable[[], list[np.ndarray]]] = {
    "astronaut": lambda: [skimage.data.astronaut()],
    "chelsea": lambda: [skimage.data.chelsea()],
    "coffee": lambda: [skimage.data.coffee()],
    "rocket": lambda: [skimage.data.rocket()],
    "hubble_deep_field": lambda: [skimage.data.hubble_deep_field()],
    "immunohistochemistry": lambda: [skimage.data.immunohistochemistry()],
    "retina": lambda: [skimage.data.retina()],
    "motorcycle": lambda: list(skimage.data.stereo_motorcycle()[:2]),
    "china": lambda: [sklearn.datasets.load_sample_image("china.jpg")],
    "flower": lambda: [sklearn.datasets.load_sample_image("flower.jpg")],
    "grace_hopper": _grace_hopper,
}


def get_config() -> ml_collections.ConfigDict:
  """The demo benchmark's settings (about 2 minutes to build on 2 CPU cores)."""
  config = ml_collections.ConfigDict()
  config.name = "mdmf_demo"
  config.crop_size = 112
  config.test_photos = ["chelsea", "coffee", "flower", "grace_hopper"]
  config.train_crops = 256  # real crops in train (each with its fake)
  config.val_crops_per_generator = 32
  config.test_crops_per_generator = 64
  config.min_crop_std = 10.0  # uint8 units; rejects flat crops (black borders)
  config.train_generator = "tconv"
  # One entry per generator family; keys of `autoencoder` may be overridden.
  config.generators = [
      {"name": "tconv", "upsample": "transposed_conv"},
      {"name": "nearest", "upsample": "nearest"},
      {"name": "bilinear", "upsample": "bilinear"},
      {"name": "pixel_shuffle", "upsample": "pixel_shuffle"},
  ]
  config.autoencoder = ml_collections.ConfigDict(dict(
      features=(16, 32), latent=8, steps=300, batch_size=16, patch_size=48,
      learning_rate=4e-3))
  return config


@dataclasses.dataclass(frozen=True)
class Crop:
  photo: str
  image_index: int
  top: int
  left: int
  pixels: np.ndarray

  @property
  def filename(self) -> str:
    return f"{self.photo}-{self.image_index}-y{self.top}-x{self.left}.png"


def sample_crops(photos: Mapping[str, list[np.ndarray]], names: Sequence[str],
                 count: int, size: int, min_std: float,
                 rng: np.random.Generator) -> list[Crop]:
  """`count` distinct size x size crops, round-robin over `names`.

  Crops with a pixel standard deviation below min_std (flat regions) are redrawn.
  """
  crops, used = [], set()
  for k in range(count):
    name = names[k % len(names)]
    for _ in range(1000):
      index = int(rng.integers(len(photos[name])))
      image = photos[name][index]
      top = int(rng.integers(image.shape[0] - size, endpoint=True))
      left = int(rng.integers(image.shape[1] - size, endpoint=True))
      pixels = image[top:top + size, left:left + size]
      if (name, index, top, left) not in used and pixels.std() >= min_std:
        break
    else:
      raise ValueError(f"photo {name!r}: no new {size}x{size} crop with "
                       f"std >= {min_std} in 1000 draws")
    used.add((name, index, top, left))
    crops.append(Crop(name, index, top, left, pixels))
  return crops


def _chunk(items: Sequence[Crop], index: int, size: int) -> Sequence[Crop]:
  return items[index * size:(index + 1) * size]


def _write(folder: str, generator: str, crops: Sequence[Crop],
           fakes: np.ndarray):
  for crop, fake in zip(crops, fakes, strict=True):
    for label_dir, pixels in (("0_real", crop.pixels), ("1_fake", fake)):
      path = os.path.join(folder, generator, crop.photo, label_dir, crop.filename)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      Image.fromarray(pixels).save(path)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def _mean_colour_auroc(real: np.ndarray, fake: np.ndarray) -> float:
  """AUROC of an image's mean intensity as a real/fake score (0.5 = useless)."""
  scores = np.concatenate([real, fake]).mean(axis=(1, 2, 3))
  labels = np.r_[np.zeros(len(real)), np.ones(len(fake))]
  return float(sklearn.metrics.roc_auc_score(labels, scores))


def _settings(seed: int, config: ml_collections.ConfigDict) -> dict[str, Any]:
  return {"seed": seed, "config": json.loads(config.to_json())}


def build_demo(data_dir: str, seed: int = 0,
               config: ml_collections.ConfigDict | None = None) -> dict[str, Any]:
  """Builds the demo benchmark into data_dir (no-op if built with the same settings).

  Returns the builder's report plus "generators" (per family: training loss,
  training seconds, test PSNR, mean-colour AUROC on test) and "seconds".
  Raises ValueError if data_dir holds this name built with other settings.
  """
  config = config or get_config()
  settings = _settings(seed, config)
  name = config.name
  done = os.path.join(builder.dataset_dir(data_dir, name), builder.REPORT_FILENAME)
  if os.path.exists(done):
    report = builder.load_report(data_dir, name)
    if report.get("demo") != settings:
      raise ValueError(
          f"{os.path.dirname(done)} was built with other settings "
          f"{report.get('demo')}; remove it or pick another data_dir or name")
    logging.info("%s already built in %s; reusing it", name, data_dir)
    return report

  start = time.monotonic()
  names = {g["name"] for g in config.generators}
  if config.train_generator not in names:
    raise ValueError(f"train_generator {config.train_generator!r} is not in "
                     f"generators {sorted(names)}")
  unknown = sorted(set(config.test_photos) - set(PHOTOS))
  if unknown:
    raise ValueError(f"test_photos {unknown} are not among {sorted(PHOTOS)}")
  photos = {name: load() for name, load in PHOTOS.items()}
  train_photos = sorted(set(PHOTOS) - set(config.test_photos))
  rng = np.random.default_rng(seed)
  num_generators = len(config.generators)
  size = config.crop_size
  from_train_photos = sample_crops(
      photos, train_photos,
      config.train_crops + config.val_crops_per_generator * num_generators,
      size, config.min_crop_std, rng)
  train_crops = from_train_photos[:config.train_crops]
  val_crops = from_train_photos[config.train_crops:]
  test_crops = sample_crops(
      photos, sorted(config.test_photos),
      config.test_crops_per_generator * num_generators, size,
      config.min_crop_std, rng)
  train_pixels = np.stack([c.pixels for c in train_crops])

  folder = os.path.join(data_dir, f"{name}_images")
  shutil.rmtree(folder, ignore_errors=True)  # leftovers of an interrupted build
  stats = {}
  for i, entry in enumerate(config.generators):
    settings_i = {**config.autoencoder.to_dict(), **entry}
    generator = settings_i.pop("name")
    model = autoencoders.Autoencoder(
        upsample=settings_i.pop("upsample"),
        features=tuple(settings_i.pop("features")),
        latent=settings_i.pop("latent"))
    model_seed = int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
    train_start = time.monotonic()
    params, loss = autoencoders.train(model, train_pixels, seed=model_seed,
                                      name=generator, **settings_i)
    train_seconds = time.monotonic() - train_start
    # Contiguous chunks: crops cycle through the photos, so each chunk covers all.
    splits = {"val": _chunk(val_crops, i, config.val_crops_per_generator),
              "test": _chunk(test_crops, i, config.test_crops_per_generator)}
    if generator == config.train_generator:
      splits["train"] = train_crops
    for split, crops in splits.items():
      fakes = autoencoders.reconstruct(model, params,
                                       np.stack([c.pixels for c in crops]))
      _write(os.path.join(folder, split), generator, crops, fakes)
      if split == "test":
        real = np.stack([c.pixels for c in crops])
        stats[generator] = {
            "train_loss": round(loss, 6),
            "train_seconds": round(train_seconds, 1),
            "test_psnr_db": round(float(np.mean(
                [_psnr(r, f) for r, f in zip(real, fakes)])), 2),
            "test_mean_colour_auroc": round(_mean_colour_auroc(real, fakes), 3),
        }
    logging.info("%s: %s", generator, stats[generator])

  report = builder.build_image_folder(
      name=name, layout="generator_class",
      roots={split: os.path.join(folder, split) for split in ("train", "val", "test")},
      data_dir=data_dir, metadata={"demo": settings, "generators_stats": stats})
  report.update(demo=settings, generators=stats,
                seconds=round(time.monotonic() - start, 1))
  with open(done, "w") as f:
    json.dump(report, f, indent=1)
  logging.info("built %s in %.1f s: %s", name, report["seconds"],
               builder.summary_line(report))
  return report
