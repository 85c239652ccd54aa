"""Whole-image scoring: throughput on 1-megapixel images, peak memory for one 12-megapixel one.

With a trained workdir (its backbone, PFS and mdmf bank; --mode=eval run), on
the CPU or accelerator JAX finds:

    python -m bench.whole_image_bench --config=configs/demo.py --workdir=workdirs/demo
    python -m bench.whole_image_bench ... --megapixels=12 --images=1   # peak memory

Each image is a photograph (skimage's astronaut) tiled to the asked size, so
the pixels are natural; speed does not depend on them. The first image is a
warm-up (compilation) and is not timed. Prints images/s, patches/s (patches in
the scored sets, after eval.whole_max_patches), tiles/s (backbone calls cover
all sampled tiles), and the process's peak resident memory (ru_maxrss: run the
12-megapixel case in its own process).
"""

import math
import resource
import time

from absl import app
from absl import flags
from ml_collections import config_flags
import numpy as np
import skimage.data

from bench import common
from mdmf_jax import evaluate, evaluate_whole

_CONFIG = config_flags.DEFINE_config_file("config", None, "The workdir's config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "A trained, evaluated workdir.")
_MEGAPIXELS = flags.DEFINE_float("megapixels", 1.0, "Image size, 4:3.")
_IMAGES = flags.DEFINE_integer("images", 4, "Timed images (after one warm-up image).")
_JSON = flags.DEFINE_string("json", "", "Also write the results to this JSON file.")
flags.mark_flags_as_required(["config", "workdir"])


def photo(megapixels: float) -> np.ndarray:
  """uint8 4:3 image of about `megapixels`, the astronaut photograph tiled (mirrored)."""
  width = int(round(math.sqrt(megapixels * 1e6 * 4 / 3)))
  height = int(round(width * 3 / 4))
  base = skimage.data.astronaut()
  reps = (-(-height // base.shape[0]), -(-width // base.shape[1]), 1)
  return np.tile(np.concatenate([base, base[:, ::-1]], axis=1), reps)[:height, :width]


def main(argv):
  del argv
  config = _CONFIG.value
  scorer = evaluate.load_scorer(config, _WORKDIR.value)
  bank = evaluate.load_bank(f"{_WORKDIR.value}/eval/bank_mdmf.npz")
  whole = evaluate_whole.whole_scorer(config, scorer, bank)
  image = photo(_MEGAPIXELS.value)
  whole(image)  # warm-up: compiles the tile batch and the set-size bucket
  start, patches, tiles = time.perf_counter(), 0, 0
  for _ in range(_IMAGES.value):
    scored = whole(image)
    patches += scored.layout.num_patches
    tiles += len(scored.layout.tile_origins)
  seconds = time.perf_counter() - start
  peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  print(f"{image.shape[1]} x {image.shape[0]} px ({image.shape[0] * image.shape[1] / 1e6:.2f} MP),"
        f" tile {config.data.image_size}, max_patches {config.eval.whole_max_patches}: "
        f"{_IMAGES.value / seconds:.3f} images/s, {patches / seconds:.0f} patches/s, "
        f"{tiles / seconds:.1f} tiles/s ({tiles // _IMAGES.value} tiles and "
        f"{patches // _IMAGES.value} patches per image); peak RSS {peak_gib:.2f} GiB")
  common.write_json(_JSON.value, "whole_image", [{
      "name": f"{_MEGAPIXELS.value:g} MP", "images_per_s": _IMAGES.value / seconds,
      "patches_per_s": patches / seconds, "tiles_per_s": tiles / seconds,
      "peak_rss_gib": peak_gib}])


if __name__ == "__main__":
  app.run(main)
