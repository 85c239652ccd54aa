"""Small image folders in any supported layout, made from the demo photos.

For tests, the input benchmark, and trying the builder without a data set. Images
are random crops of the pip-packaged photos in `demo_photos.PIP_PHOTOS` (so decoding costs are those of
natural images); an image's label is only the folder it is written to.
"""

from __future__ import annotations

import functools
import itertools
import os
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

from mdmf_jax.data import demo_photos
from mdmf_jax.data import layouts

_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp"}


@functools.cache
def _photos() -> tuple[np.ndarray, ...]:
  return tuple(image for _, load in demo_photos.PIP_PHOTOS.values() for image in load())


def random_crop(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
  """A random height x width crop of a random demo photo (uint8 RGB)."""
  photos = [p for p in _photos() if p.shape[0] >= height and p.shape[1] >= width]
  if not photos:
    raise ValueError(f"no demo photo is {height}x{width} or larger")
  photo = photos[rng.integers(len(photos))]
  top = rng.integers(photo.shape[0] - height, endpoint=True)
  left = rng.integers(photo.shape[1] - width, endpoint=True)
  return photo[top:top + height, left:left + width]


def write_folder(
    root: str,
    layout: str,
    names: Mapping[str, Sequence[str]],
    *,
    per_label: int,
    size: tuple[int, int],
    real_format: str = "JPEG",
    fake_format: str = "PNG",
    seed: int = 0,
) -> list[str]:
  """Writes `per_label` images per label folder of every folder combination.

  Args:
    root: output folder (created).
    layout: a key of layouts.LAYOUTS.
    names: folder names per layout field, e.g. {"generator": ["a", "b"],
      "class": ["car"]}; every field of the layout needs an entry.
    per_label: images per real and per fake folder.
    size: (height, width) of every image.
    real_format, fake_format: Pillow format names ("JPEG" at quality 95).
    seed: seed of the crops.

  Returns:
    The written paths relative to root, with "/".
  """
  rng = np.random.default_rng(seed)
  spec = layouts.get_layout(layout)
  written = []
  for folders in itertools.product(*(names[f] for f in spec.fields)):
    for label_dir, label in spec.label_dirs.items():
      image_format = fake_format if label else real_format
      for i in range(per_label):
        relpath = "/".join(
            [*folders, label_dir, f"{i:05d}.{_EXTENSIONS[image_format]}"])
        path = os.path.join(root, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(random_crop(rng, *size)).save(path, format=image_format,
                                                      quality=95)
        written.append(relpath)
  return written
