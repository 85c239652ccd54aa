r"""`mdmf_demo_whole`: the demo's held-out photographs whole, and whole-picture fakes.

The crop benchmark (data/demo.py) stores model-size crops; this one stores the
same photographs whole, for whole-image detection (docs/whole_image.md). The
photo split is the demo's own (demo_photos.assign_splits with the demo's seed
and fractions), so the val, test and cross_source photographs are still ones
training never saw. Each photograph is fitted into `max_side` (CPU time) by
`fit`:
  "crop"       its central region of at most max_side x max_side native pixels
               (default: the pixels keep the statistics of the demo's crops,
               which training and the bank saw);
  "downscale"  the whole photograph resized (bilinear, antialiased) so that
               its longer side is at most max_side: all the content, but
               resampled, a shift away from the training crops' statistics.
Then its sides are trimmed to multiples of `side_multiple` (a few distinct
shapes: each generator compiles once per shape). Images whose shorter side
ends below `min_side` are left out.

Fakes (layout `generator`: <split>/<generator>/0_real|1_fake/<photo>.png):
  <family>         the demo's generator family applied to the whole picture;
                   the autoencoders are retrained exactly as the demo trains
                   them (same training crops, same seeds), so they are the
                   demo's generators;
  <family>_corner  the picture with its top-left quadrant replaced by the
                   family's output, the rest real: a local fake that a centre
                   crop mostly misses.
Every generator folder holds all of the split's reals (same bytes), so each
generator's table pairs its fakes with every real. Pictures of one shape go
through a generator together (one compile per shape).

    python -m mdmf_jax.data.demo_whole --data_dir=DIR [--whole_config.max_side=448]
"""

from __future__ import annotations

import json
import os
import shutil
import time

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags
import numpy as np
from PIL import Image

from mdmf_jax.data import builder
from mdmf_jax.data import demo
from mdmf_jax.data import demo_photos
from mdmf_jax.data import transforms

SPLITS = ("val", "test", "cross_source")


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.name = "mdmf_demo_whole"
  config.seed = 0  # the demo's seed: its photo split and its autoencoders
  config.fit = "crop"  # crop | downscale (module docstring)
  config.max_side = 336  # CPU time: 3 x 3 tiles of 112 px, 576 patches (a crop: 64)
  config.side_multiple = 56
  config.min_side = 112  # the demo's model size
  # Families of demo.get_config().generators (each a few minutes of autoencoder
  # training on CPU); realesrgan works too but is slow on CPU (seconds per picture).
  config.generators = ("tconv", "bilinear")
  config.corner_generators = ("tconv", "bilinear")  # also as top-left-quadrant fakes
  return config


def fit_photo(image: np.ndarray, fit: str, max_side: int, side_multiple: int) -> np.ndarray:
  """Centre-cropped or downscaled into max_side, then trimmed (bottom/right) to multiples."""
  height, width, _ = image.shape
  if fit == "crop":
    top, left = max(0, (height - max_side) // 2), max(0, (width - max_side) // 2)
    image = image[top:top + max_side, left:left + max_side]
  elif fit == "downscale":
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
      image = transforms.resize(image, round(height * scale), round(width * scale))
  else:
    raise ValueError(f"fit={fit!r}; expected 'crop' or 'downscale'")
  height, width, _ = image.shape
  return image[:height - height % side_multiple, :width - width % side_multiple]


def corner_fake(real: np.ndarray, fake: np.ndarray) -> np.ndarray:
  """`real` with its top-left quadrant (ceil halves) taken from `fake`."""
  out = real.copy()
  half_h, half_w = -(-real.shape[0] // 2), -(-real.shape[1] // 2)
  out[:half_h, :half_w] = fake[:half_h, :half_w]
  return out


def _photos(config, demo_config):
  """({split: {image name: fitted uint8 picture}}, the demo's photo splits)."""
  in_source, cross_source = demo_photos.gather(demo_config.collections,
                                               demo_config.require_debian)
  photo_splits = demo_photos.assign_splits(
      in_source, val_fraction=demo_config.val_fraction,
      test_fraction=demo_config.test_fraction, seed=config.seed)
  photo_splits["cross_source"] = cross_source
  pictures = {}
  for split in SPLITS:
    pictures[split] = {}
    for source in sorted(photo_splits[split], key=lambda s: s.name):
      for view, image in enumerate(source.load()):
        image = fit_photo(image, config.fit, config.max_side, config.side_multiple)
        if min(image.shape[:2]) < config.min_side:
          logging.info("%s: %s view %d is %s after fitting; left out", split, source.name,
                       view, image.shape[:2])
          continue
        pictures[split][f"{source.name}-{view}"] = image
  return pictures, photo_splits


def _train_crops(demo_config, photo_splits, seed) -> np.ndarray:
  """The demo's training crops, drawn exactly as demo.build_demo draws them (first)."""
  train = {"train": photo_splits["train"]}
  photos = {s.name: s.load() for s in photo_splits["train"]}
  crops = demo.crops_per_split(demo_config, train, photos, np.random.default_rng(seed))
  return np.stack([c.pixels for c in crops["train"]])


def _write(path: str, pixels: np.ndarray):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(pixels).save(path)


def build(data_dir: str, config: ml_collections.ConfigDict | None = None) -> dict:
  """Builds the benchmark into data_dir (no-op when built); returns the builder's report."""
  config = config or get_config()
  done = os.path.join(builder.dataset_dir(data_dir, config.name), builder.REPORT_FILENAME)
  if os.path.exists(done):
    return builder.load_report(data_dir, config.name)
  demo_config = demo.get_config()
  entries = {g["name"]: (i, g) for i, g in enumerate(demo_config.generators)}
  unknown = sorted(set(config.generators) - set(entries))
  if unknown or not set(config.corner_generators) <= set(config.generators):
    raise ValueError(f"generators {unknown} are not demo families {sorted(entries)}, or "
                     f"corner_generators {config.corner_generators} not among generators")
  start = time.monotonic()
  pictures, photo_splits = _photos(config, demo_config)
  families = demo.Families(demo_config, _train_crops(demo_config, photo_splits, config.seed),
                           config.seed)
  folder = os.path.join(data_dir, f"{config.name}_images")
  shutil.rmtree(folder, ignore_errors=True)  # leftovers of an interrupted build
  by_shape = {}  # one generator call per picture shape: a compile each
  for split, images in pictures.items():
    for photo, real in images.items():
      by_shape.setdefault(real.shape, []).append((split, photo, real))
  for name in config.generators:
    make_fakes, _ = families.make(*entries[name])
    for group in by_shape.values():
      fakes = make_fakes(np.stack([real for _, _, real in group]))
      for (split, photo, real), fake in zip(group, fakes):
        outputs = {name: fake}
        if name in config.corner_generators:
          outputs[f"{name}_corner"] = corner_fake(real, fake)
        for generator, pixels in outputs.items():
          _write(os.path.join(folder, split, generator, "0_real", f"{photo}.png"), real)
          _write(os.path.join(folder, split, generator, "1_fake", f"{photo}.png"), pixels)
    logging.info("%s: fakes of %d pictures in %d shapes written", name,
                 sum(map(len, pictures.values())), len(by_shape))
  with open(os.path.join(folder, "pictures.json"), "w") as f:
    json.dump({split: {photo: list(image.shape[:2]) for photo, image in images.items()}
               for split, images in pictures.items()}, f, indent=1)
  report = builder.build_image_folder(
      name=config.name, layout="generator", data_dir=data_dir,
      roots={split: os.path.join(folder, split) for split in pictures},
      metadata={"demo_whole": json.loads(config.to_json())})
  logging.info("built %s in %.0f s", config.name, time.monotonic() - start)
  return report


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  build(_DATA_DIR.value, _WHOLE_CONFIG.value)


if __name__ == "__main__":  # flags defined here only: data/build.py defines --data_dir too
  _DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
  _WHOLE_CONFIG = config_flags.DEFINE_config_dict("whole_config", get_config(),
                                                  "Benchmark settings (get_config()).")
  flags.mark_flag_as_required("data_dir")
  app.run(main)
