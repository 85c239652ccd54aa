"""Input pipeline throughput (images/s, decode included) against a plain PIL loop.

  python -m bench.input_bench [--num_images=512 --source_size=256 --image_size=224
                                 --batch_size=64 --batches=12 --threads=2 --workers=0 --json=PATH]

Writes a CNNSpot-layout folder (half JPEG reals, half PNG fakes, source_size^2,
crops of the demo photos, like ProGAN's 256x256 training images), builds it with
the TFDS builder (every file fully decoded once: files/s), then times
  reference: a Python loop reading each file, decoding it with Pillow, converting
             to RGB, random crop, random flip, float32 / 255, stacking batches;
  train:     pipeline.train_dataset doing the same work (augmentation off);
  train+aug: with CNNSpot's blur and JPEG at p=0.1 each (the default);
  eval:      pipeline.eval_dataset (centre crop, padding, mask).
The ratio is pipeline images/s over reference images/s. Every number is the best
of 3 timed passes over `batches` batches after one warm-up batch (robust to other
load on the machine).
"""

import itertools
import os
import tempfile
import time

from absl import app
from absl import flags
import numpy as np
from PIL import Image

from bench import common
from mdmf_jax.data import builder
from mdmf_jax.data import pipeline
from mdmf_jax.data import synthetic


def best_rate(make_iterator, images_per_batch, batches, repeats=3):
  rates = []
  for _ in range(repeats):
    iterator = make_iterator()
    next(iterator)  # warm-up: threads, workers, first reads
    start = time.perf_counter()
    for _ in itertools.islice(iterator, batches):
      pass
    rates.append(images_per_batch * batches / (time.perf_counter() - start))
    if hasattr(iterator, "close"):
      iterator.close()  # stops grain's threads and worker processes
  return max(rates)


def reference_batches(paths, batch_size, image_size, seed=0):
  """The plain loop: PIL decode + crop + flip + float, one file after another."""
  rng = np.random.default_rng(seed)
  for start in itertools.count(0, batch_size):
    batch = []
    for i in range(start, start + batch_size):
      with Image.open(paths[i % len(paths)]) as image:
        pixels = np.asarray(image.convert("RGB"))
      top = rng.integers(pixels.shape[0] - image_size, endpoint=True)
      left = rng.integers(pixels.shape[1] - image_size, endpoint=True)
      pixels = pixels[top:top + image_size, left:left + image_size]
      if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
      batch.append(pixels.astype(np.float32) / 255)
    yield np.stack(batch)


_NUM_IMAGES = flags.DEFINE_integer("num_images", 512, "Images written and built.")
_SOURCE_SIZE = flags.DEFINE_integer("source_size", 256, "Side of the stored images.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Crop size.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per batch.")
_BATCHES = flags.DEFINE_integer("batches", 12, "Timed batches per pass.")
_THREADS = flags.DEFINE_integer("threads", os.cpu_count(), "Reader threads.")
_WORKERS = flags.DEFINE_integer("workers", 0, "grain worker processes.")
_JSON = flags.DEFINE_string("json", "", "Also write the results to this JSON file.")


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as tmp:
    root = os.path.join(tmp, "images")
    relpaths = synthetic.write_folder(
        root, "cnnspot", {"class": ["a", "b"]}, per_label=_NUM_IMAGES.value // 4,
        size=(_SOURCE_SIZE.value, _SOURCE_SIZE.value))
    paths = [os.path.join(root, p) for p in relpaths]
    start = time.perf_counter()
    builder.build_image_folder(name="input_bench", layout="cnnspot",
                               roots={"train": root, "test": root},
                               data_dir=os.path.join(tmp, "tfds"),
                               generator="synthetic", num_threads=_THREADS.value)
    build_rate = 2 * len(paths) / (time.perf_counter() - start)

    options = dict(global_batch_size=_BATCH_SIZE.value, image_size=_IMAGE_SIZE.value,
                  num_threads=_THREADS.value, num_workers=_WORKERS.value)
    data_dir = os.path.join(tmp, "tfds")
    train = lambda **aug: lambda: iter(pipeline.train_dataset(
        data_dir, "input_bench", seed=0, **options, **aug))
    rates = {
        "reference (PIL loop)": best_rate(
            lambda: reference_batches(paths, _BATCH_SIZE.value, _IMAGE_SIZE.value),
            _BATCH_SIZE.value, _BATCHES.value),
        "train (no blur/JPEG)": best_rate(
            train(blur_prob=0.0, jpeg_prob=0.0), _BATCH_SIZE.value, _BATCHES.value),
        "train + blur/JPEG p=0.1": best_rate(train(), _BATCH_SIZE.value,
                                             _BATCHES.value),
        "eval": best_rate(lambda: iter(pipeline.eval_dataset(
            data_dir, "input_bench", split="test", **options)),
                          _BATCH_SIZE.value, min(_BATCHES.value,
                                               len(paths) // _BATCH_SIZE.value - 1)),
    }

  print(f"{len(paths)} images of {_SOURCE_SIZE.value}^2 (JPEG real, PNG fake) -> "
        f"crops {_IMAGE_SIZE.value}^2, batch {_BATCH_SIZE.value}, threads "
        f"{_THREADS.value}, workers {_WORKERS.value}, {os.cpu_count()} CPUs")
  print(f"  build (decode-validate + array_record write): {build_rate:8.0f} files/s")
  reference = rates["reference (PIL loop)"]
  for name, rate in rates.items():
    print(f"  {name:26s} {rate:8.0f} images/s   x{rate / reference:.2f}")
  common.write_json(_JSON.value, "input", [{"name": "build", "files_per_s": build_rate}] + [
      {"name": name, "images_per_s": rate, "ratio": rate / reference}
      for name, rate in rates.items()])


if __name__ == "__main__":
  app.run(main)
