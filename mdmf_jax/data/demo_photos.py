"""The demo benchmark's photographs: where they come from and which split each one is in.

    in_source, cross_source = gather(("pip", "debian"))
    splits = assign_splits(in_source, val_fraction=0.15, test_fraction=0.2, seed=0)

Collections:
  pip     the 11 natural photographs that scikit-image, scikit-learn and
          matplotlib ship (always available);
  debian  about 340 photographs from Debian data packages (data/debian_photos.py):
          the IN_SOURCE packages join the train/val/test pool, the CROSS_SOURCE
          packages (wallpapers, camera originals) form the `cross_source` split,
          which training never sees.

Every split holds whole photographs: no photograph has crops in two splits.
Without apt-get (or with a mirror that no longer serves a pinned package) the
Debian collection is unavailable; `gather` then says so in the log and returns
the pip photographs alone, unless `required=True`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Sequence

from absl import logging
import matplotlib.cbook
import numpy as np
from PIL import Image
import skimage.data
import sklearn.datasets

from mdmf_jax.data import debian_photos


@dataclasses.dataclass(frozen=True)
class Source:
  """One source photograph (one name may hold several views of one scene).

  `name` is a folder-safe unique name, `collection` "pip" or the Debian package,
  `licence` the terms its package states.
  """
  name: str
  collection: str
  licence: str
  load: Callable[[], list[np.ndarray]]


def _grace_hopper() -> list[np.ndarray]:
  with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
    return [np.asarray(Image.open(f).convert("RGB"))]


_SKIMAGE = "scikit-image sample data (per-image terms in skimage/data/README.txt)"
_SKLEARN = "CC BY 2.0 (sklearn/datasets/images/README.txt)"
_MATPLOTLIB = "matplotlib sample data (US Navy photograph, public domain)"

# Photo name -> (licence, loader). The two stereo motorcycle views are one source.
PIP_PHOTOS: dict[str, tuple[str, Callable[[], list[np.ndarray]]]] = {
    "astronaut": (_SKIMAGE, lambda: [skimage.data.astronaut()]),
    "chelsea": (_SKIMAGE, lambda: [skimage.data.chelsea()]),
    "coffee": (_SKIMAGE, lambda: [skimage.data.coffee()]),
    "rocket": (_SKIMAGE, lambda: [skimage.data.rocket()]),
    "hubble_deep_field": (_SKIMAGE, lambda: [skimage.data.hubble_deep_field()]),
    "immunohistochemistry": (_SKIMAGE, lambda: [skimage.data.immunohistochemistry()]),
    "retina": (_SKIMAGE, lambda: [skimage.data.retina()]),
    "motorcycle": (_SKIMAGE, lambda: list(skimage.data.stereo_motorcycle()[:2])),
    "china": (_SKLEARN, lambda: [sklearn.datasets.load_sample_image("china.jpg")]),
    "flower": (_SKLEARN, lambda: [sklearn.datasets.load_sample_image("flower.jpg")]),
    "grace_hopper": (_MATPLOTLIB, _grace_hopper),
}

COLLECTIONS = ("pip", "debian")


def folder_name(name: str) -> str:
  """A photo name as one path component ("gcompris/fish/fish1" -> "gcompris-fish-fish1")."""
  return re.sub(r"[^A-Za-z0-9_.]+", "-", name).strip("-")


def pip_sources() -> list[Source]:
  return [Source(name, "pip", licence, load) for name, (licence, load) in PIP_PHOTOS.items()]


def _from_debian(photo: debian_photos.Photo) -> Source:
  return Source(folder_name(photo.name), photo.package, photo.licence, lambda: [photo.load()])


def gather(collections: Sequence[str], required: bool = False
           ) -> tuple[list[Source], list[Source]]:
  """(in-source photographs, cross-source photographs) of the named collections.

  Debian photographs that cannot be fetched are logged and left out (the
  cross-source list is then empty), or raise DebianFetchError if `required`.
  """
  unknown = sorted(set(collections) - set(COLLECTIONS))
  if unknown:
    raise ValueError(f"unknown photo collections {unknown}; known: {list(COLLECTIONS)}")
  in_source = pip_sources() if "pip" in collections else []
  cross_source = []
  if "debian" in collections:
    try:
      photos = debian_photos.fetch_photos()
    except debian_photos.DebianFetchError as error:
      if required:
        raise
      logging.warning("Debian photographs unavailable, running on the pip photographs "
                      "alone (no cross_source split): %s", error)
      photos = []
    for photo in photos:
      target = in_source if photo.package in debian_photos.IN_SOURCE else cross_source
      target.append(_from_debian(photo))
  names = [s.name for s in in_source + cross_source]
  if len(set(names)) != len(names):
    raise ValueError("two source photographs share a folder name")
  return in_source, cross_source


def assign_splits(sources: Sequence[Source], *, val_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, list[Source]]:
  """Whole photographs to train / val / test by a seeded shuffle of the sorted names.

  Each split gets at least one photograph; the counts are rounded fractions of
  the pool, the rest is train.
  """
  if len(sources) < 3:
    raise ValueError(f"{len(sources)} photographs cannot fill train, val and test")
  ordered = sorted(sources, key=lambda s: s.name)
  order = np.random.default_rng(seed).permutation(len(ordered))
  shuffled = [ordered[i] for i in order]
  num_test = max(1, round(test_fraction * len(shuffled)))
  num_val = max(1, round(val_fraction * len(shuffled)))
  if num_test + num_val >= len(shuffled):
    raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} leave "
                     f"no training photograph among {len(shuffled)}")
  return {"test": shuffled[:num_test], "val": shuffled[num_test:num_test + num_val],
          "train": shuffled[num_test + num_val:]}
