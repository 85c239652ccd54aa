"""The offline demo benchmark `mdmf_demo`: real photo crops vs generated fakes.

Real images are crops of natural photographs (data/demo_photos.py): the 11 that
pip packages ship and about 340 from Debian data packages. Whole photographs are
split between train, val and test; the Debian wallpapers and camera originals
form a fourth split, `cross_source`, from collections training never sees. The
crops per photograph are capped (`max_crops_per_photo`), so a few large
photographs do not dominate.

Fakes come from generator families (`config.generators`), each a generator of
the benchmark:
  autoencoder  reconstructions by small convolutional autoencoders trained here
               in JAX on the training crops, one decoder family each
               (data/autoencoders.py);
  upscaler     `model(downscale_x4(crop))` by a GAN-trained Real-ESRGAN model
               from a pinned PyPI wheel (data/upscalers.py): real content, GAN
               textures ("AI-upscaled").
Every fake is made from a real crop of its own folder (same file name), so real
and fake show the same content and differ only by generation traces.

Splits (layout `generator_class`: <generator>/<photo>/0_real|1_fake/<crop>.png):
  train:        crops of the training photographs and their fakes by
                `config.train_generator` only (train on one generator);
  val:          crops of other photographs, per generator: model selection and
                calibration;
  test:         crops of held-out photographs, per generator;
  cross_source: crops of the cross-source photographs, per generator (absent
                when the Debian photographs are unavailable).
Every real crop appears once. All images are stored as PNG. The photographs,
their collection, licence and split are listed in DIR/<name>_images/photos.json.

Build (a no-op when already built with the same seed and config):
  python -m mdmf_jax.data.build --demo --data_dir=DIR [--seed=0] \\
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
from typing import Any, Mapping, Sequence

from absl import logging
import ml_collections
import numpy as np
from PIL import Image
import sklearn.metrics

from mdmf_jax.data import autoencoders
from mdmf_jax.data import builder
from mdmf_jax.data import demo_photos
from mdmf_jax.data import upscalers

EVAL_SPLITS = ("val", "test", "cross_source")


def get_config() -> ml_collections.ConfigDict:
  """The demo benchmark's settings."""
  config = ml_collections.ConfigDict()
  config.name = "mdmf_demo"
  config.crop_size = 112
  config.collections = ("pip", "debian")  # demo_photos.COLLECTIONS
  config.require_debian = False  # else: without apt, log it and use the pip photos alone
  config.val_fraction = 0.15  # of the in-source photographs
  config.test_fraction = 0.2
  config.max_crops_per_photo = 6
  config.train_crops = 512  # real crops in train (each with its fake)
  config.val_crops_per_generator = 32
  config.test_crops_per_generator = 64
  config.cross_source_crops_per_generator = 48
  config.min_crop_std = 10.0  # uint8 units; rejects flat crops (black borders, sky)
  config.train_generator = "tconv"
  # One entry per generator family: kind "autoencoder" (keys of `autoencoder`
  # may be overridden) or "upscaler" (model: a key of upscalers.MODELS).
  config.generators = (  # a tuple, so --demo_config.generators='(...)' can override it
      {"name": "tconv", "kind": "autoencoder", "upsample": "transposed_conv"},
      {"name": "nearest", "kind": "autoencoder", "upsample": "nearest"},
      {"name": "bilinear", "kind": "autoencoder", "upsample": "bilinear"},
      {"name": "pixel_shuffle", "kind": "autoencoder", "upsample": "pixel_shuffle"},
      {"name": "realesrgan", "kind": "upscaler", "model": "realesrgan-x4plus"},
  )
  config.autoencoder = ml_collections.ConfigDict(dict(
      features=(16, 32), latent=8, steps=200, batch_size=16, patch_size=48,
      learning_rate=4e-3))
  config.upscaler_batch_size = 8
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

  Images smaller than the crop are never drawn; crops with a pixel standard
  deviation below min_std (flat regions) are redrawn.
  """
  crops, used = [], set()
  for k in range(count):
    name = names[k % len(names)]
    fitting = [i for i, image in enumerate(photos[name])
               if min(image.shape[:2]) >= size]
    if not fitting:
      raise ValueError(f"photo {name!r} has no image of at least {size}x{size}")
    for _ in range(1000):
      index = fitting[int(rng.integers(len(fitting)))]
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


def _check_config(config: ml_collections.ConfigDict) -> None:
  """Fails before any work on a generator list or collection the builder cannot use."""
  names = [g["name"] for g in config.generators]
  if len(set(names)) != len(names):
    raise ValueError(f"generators: duplicate names in {names}")
  for entry in config.generators:
    kind = entry.get("kind", "autoencoder")
    if kind == "upscaler" and entry.get("model") not in upscalers.MODELS:
      raise ValueError(f"generators: {entry['name']!r} needs a model among "
                       f"{sorted(upscalers.MODELS)}, got {entry.get('model')!r}")
    if kind not in ("autoencoder", "upscaler"):
      raise ValueError(f"generators: {entry['name']!r} has unknown kind {kind!r}")
  train = [g for g in config.generators if g["name"] == config.train_generator]
  if not train or train[0].get("kind", "autoencoder") != "autoencoder":
    raise ValueError(f"train_generator {config.train_generator!r} must name an autoencoder "
                     f"family among {names}")
  if config.crop_size % upscalers.FACTOR:
    raise ValueError(f"crop_size {config.crop_size} must be a multiple of {upscalers.FACTOR}")
  unknown = sorted(set(config.collections) - set(demo_photos.COLLECTIONS))
  if unknown:
    raise ValueError(f"collections: unknown {unknown}; known: {list(demo_photos.COLLECTIONS)}")


class Families:
  """Makes each generator family's fakes; autoencoders are trained on the training crops."""

  def __init__(self, config: ml_collections.ConfigDict, train_pixels: np.ndarray, seed: int):
    self._config = config
    self._train_pixels = train_pixels
    self._seed = seed

  def make(self, index: int, entry: Mapping[str, Any]):
    """fake_fn(uint8 crops) -> uint8 fakes for the family `entry`, and its training stats."""
    settings = dict(entry)
    generator, kind = settings.pop("name"), settings.pop("kind", "autoencoder")
    if kind == "upscaler":
      model = settings.pop("model")
      batch = self._config.upscaler_batch_size
      return lambda pixels: upscalers.upscale_fakes(pixels, model, batch), {"model": model}
    settings = {**self._config.autoencoder.to_dict(), **settings}
    model = autoencoders.Autoencoder(
        upsample=settings.pop("upsample"), features=tuple(settings.pop("features")),
        latent=settings.pop("latent"))
    model_seed = int(np.random.SeedSequence([self._seed, index]).generate_state(1)[0])
    start = time.monotonic()
    params, loss = autoencoders.train(model, self._train_pixels, seed=model_seed,
                                      name=generator, **settings)
    return (lambda pixels: autoencoders.reconstruct(model, params, pixels),
            {"train_loss": round(loss, 6), "train_seconds": round(time.monotonic() - start, 1)})


def crops_per_split(config, photo_splits, photos, rng) -> dict[str, list[Crop]]:
  """The real crops of every split: train, then per-generator chunks of the others."""
  num_generators = len(config.generators)
  wanted = {"train": config.train_crops,
            "val": config.val_crops_per_generator * num_generators,
            "test": config.test_crops_per_generator * num_generators,
            "cross_source": config.cross_source_crops_per_generator * num_generators}
  crops = {}
  for split in ("train", *EVAL_SPLITS):
    if split not in photo_splits:
      continue
    names = sorted(s.name for s in photo_splits[split])
    count = min(wanted[split], config.max_crops_per_photo * len(names))
    if count < wanted[split]:
      logging.warning("%s: %d photographs x max_crops_per_photo=%d give %d of the %d crops "
                      "asked for", split, len(names), config.max_crops_per_photo, count,
                      wanted[split])
    crops[split] = sample_crops(photos, names, count, config.crop_size,
                                config.min_crop_std, rng)
  return crops


def _photo_manifest(photo_splits) -> list[dict[str, str]]:
  return [{"name": s.name, "collection": s.collection, "licence": s.licence, "split": split}
          for split, sources in photo_splits.items() for s in sorted(sources, key=lambda s: s.name)]


def build_demo(data_dir: str, seed: int = 0,
               config: ml_collections.ConfigDict | None = None) -> dict[str, Any]:
  """Builds the demo benchmark into data_dir (no-op if built with the same settings).

  Returns the builder's report plus "generators" (per family: training stats,
  test PSNR, mean-colour AUROC on test), "photos" (count per split and
  collection) and "seconds". Raises ValueError if data_dir holds this name
  built with other settings.
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
  _check_config(config)

  start = time.monotonic()
  in_source, cross_source = demo_photos.gather(config.collections, config.require_debian)
  photo_splits = demo_photos.assign_splits(
      in_source, val_fraction=config.val_fraction, test_fraction=config.test_fraction,
      seed=seed)
  if cross_source:
    photo_splits["cross_source"] = cross_source
  photos = {s.name: s.load() for sources in photo_splits.values() for s in sources}
  rng = np.random.default_rng(seed)
  crops = crops_per_split(config, photo_splits, photos, rng)
  del photos
  families = Families(config, np.stack([c.pixels for c in crops["train"]]), seed)

  folder = os.path.join(data_dir, f"{name}_images")
  shutil.rmtree(folder, ignore_errors=True)  # leftovers of an interrupted build
  stats = {}
  for i, entry in enumerate(config.generators):
    generator = entry["name"]
    make_fakes, stats[generator] = families.make(i, entry)
    # Contiguous chunks: crops cycle through the photos, so each chunk covers all.
    splits = {split: _chunk(crops[split], i, len(crops[split]) // len(config.generators))
              for split in EVAL_SPLITS if split in crops}
    if generator == config.train_generator:
      splits["train"] = crops["train"]
    for split, chunk in splits.items():
      real = np.stack([c.pixels for c in chunk])
      fakes = make_fakes(real)
      _write(os.path.join(folder, split), generator, chunk, fakes)
      if split == "test":
        stats[generator].update(
            test_psnr_db=round(float(np.mean([_psnr(r, f) for r, f in zip(real, fakes)])), 2),
            test_mean_colour_auroc=round(_mean_colour_auroc(real, fakes), 3))
    logging.info("%s: %s", generator, stats[generator])

  manifest = _photo_manifest(photo_splits)
  with open(os.path.join(folder, "photos.json"), "w") as f:
    json.dump(manifest, f, indent=1)
  photo_counts = {split: {} for split in photo_splits}
  for row in manifest:
    counts = photo_counts[row["split"]]
    counts[row["collection"]] = counts.get(row["collection"], 0) + 1
  report = builder.build_image_folder(
      name=name, layout="generator_class",
      roots={split: os.path.join(folder, split) for split in crops},
      data_dir=data_dir,
      metadata={"demo": settings, "generators_stats": stats, "photos": photo_counts})
  report.update(demo=settings, generators=stats, photos=photo_counts,
                seconds=round(time.monotonic() - start, 1))
  with open(done, "w") as f:
    json.dump(report, f, indent=1)
  logging.info("built %s in %.1f s: %s", name, report["seconds"],
               builder.summary_line(report))
  return report
