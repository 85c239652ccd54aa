"""Whole-image patch sets at native resolution (docs/whole_image.md).

An image of any size, both sides at least the model size S, becomes ONE patch set:

  tiles    S x S windows of native pixels (no resampling). Along each axis the
           origins are 0, S, 2S, ...; where the image does not end on a tile
           boundary, one more tile sits flush with the far border, overlapping
           its neighbour (no padding, no invented pixels).
  patches  every tile's grid of W px patches; of a border tile that overlaps,
           only the patches reaching pixels that no earlier tile covers are
           kept. Every pixel is in a kept patch, and at most W - 1 px at a
           border are in two.
  cap      an image with more than `max_patches` kept patches is scored on a
           uniform subsample of them drawn without replacement by
           `numpy.random.default_rng(seed)`: the same positions for every
           image of the same size. Tiles holding no sampled patch are not run.

Memory: tiles are cut and run through the backbone `tile_batch` at a time (the
last batch zero-padded; an image of fewer tiles pads them to the next power of
two, so a few compiled shapes), so the backbone's memory does not
grow with the image; the patch points kept are at most `max_patches`, and the
set MMD, quadratic in the set size, is bounded by the cap. Sets are padded to
the next power of two (at most `max_patches`) with a mask, so the jitted MMD
compiles once per size bucket.

    whole = WholeImageScorer(scorer, bank, tile_size=S, window=W, max_patches=8192)
    result = whole(image)  # uint8 (H, W, 3)
    result.score, heat_map(result.layout, result.witness)  # (H, W) witness heat
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import jax
import numpy as np



def axis_tiles(length: int, tile: int, window: int) -> list[tuple[int, np.ndarray]]:
  """[(tile origin, indices of its kept patches along this axis)] covering [0, length)."""
  if length < tile:
    raise ValueError(f"an image side of {length} px is below the tile size {tile} px")
  per_tile = tile // window
  tiles = [(origin, np.arange(per_tile)) for origin in range(0, length - tile + 1, tile)]
  covered = tiles[-1][0] + tile
  if covered < length:  # a last tile flush with the border; keep its new patches only
    origin = length - tile
    ends = origin + window * (np.arange(per_tile) + 1)
    tiles.append((origin, np.flatnonzero(ends > covered)))
  return tiles


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where an image's tiles and the patches of its set lie (all in pixels of the image)."""

  height: int
  width: int
  tile: int
  window: int
  tile_origins: np.ndarray  # (T, 2) top, left
  patch_tiles: np.ndarray  # (K,) index into tile_origins
  patch_cells: np.ndarray  # (K,) row-major index in the tile's patch grid
  patch_origins: np.ndarray  # (K, 2) top, left

  @property
  def num_patches(self) -> int:
    return len(self.patch_tiles)


def layout(height: int, width: int, tile: int, window: int) -> Layout:
  """The tiles and kept patches of a height x width image (module docstring)."""
  if tile % window:
    raise ValueError(f"tile size {tile} is not a multiple of the patch size {window}")
  per_tile = tile // window
  origins, tile_of, cells = [], [], []
  for top, rows in axis_tiles(height, tile, window):
    for left, cols in axis_tiles(width, tile, window):
      grid_rows, grid_cols = np.meshgrid(rows, cols, indexing="ij")
      cells.append((grid_rows * per_tile + grid_cols).ravel())
      tile_of.append(np.full(cells[-1].size, len(origins)))
      origins.append((top, left))
  origins, tile_of, cells = np.asarray(origins), np.concatenate(tile_of), np.concatenate(cells)
  patch_origins = origins[tile_of] + window * np.stack([cells // per_tile, cells % per_tile], 1)
  return Layout(height, width, tile, window, origins, tile_of, cells, patch_origins)


def capped(full: Layout, max_patches: int, seed: int) -> Layout:
  """`full` with at most `max_patches` patches (seeded uniform subsample); unused tiles dropped."""
  if full.num_patches <= max_patches:
    return full
  keep = np.sort(np.random.default_rng(seed).choice(full.num_patches, max_patches,
                                                    replace=False))
  used, patch_tiles = np.unique(full.patch_tiles[keep], return_inverse=True)
  return dataclasses.replace(full, tile_origins=full.tile_origins[used], patch_tiles=patch_tiles,
                             patch_cells=full.patch_cells[keep],
                             patch_origins=full.patch_origins[keep])


def cut_tiles(image: np.ndarray, where: Layout, first: int, count: int) -> np.ndarray:
  """float32 (count, S, S, 3) in [0, 1]: tiles first.. of `where`, zero tiles past the end."""
  size = where.tile
  out = np.zeros((count, size, size, 3), np.float32)
  for i, (top, left) in enumerate(where.tile_origins[first:first + count]):
    out[i] = image[top:top + size, left:left + size]
  return out / 255.0


def bucket_size(count: int, limit: int) -> int:
  """The padded size of 1 <= count <= limit patches (or tiles): the next power of two, capped."""
  return min(1 << math.ceil(math.log2(count)), limit)


def pad_set(points, num: int):
  """Leaves (K, ...) zero-padded to (num, ...), and the (num,) mask of the real K."""
  count = jax.tree.leaves(points)[0].shape[0]
  padded = jax.tree.map(lambda a: np.pad(a, [(0, num - count)] + [(0, 0)] * (a.ndim - 1)),
                        points)
  return padded, np.arange(num) < count


@dataclasses.dataclass(frozen=True)
class Scored:
  """One whole image's score, the witness of each patch of its set, and where they lie."""

  score: float
  witness: np.ndarray  # (K,) one per patch of `layout`
  layout: Layout


class WholeImageScorer:
  """Scores whole uint8 images against `bank` (module docstring); `scorer` is a scoring.Scorer."""

  def __init__(self, scorer, bank, *, tile_size: int, window: int, max_patches: int,
               tile_batch: int = 16, seed: int = 0):
    if max_patches <= 0 or tile_batch <= 0:
      raise ValueError(f"max_patches={max_patches} and tile_batch={tile_batch} must be > 0")
    self.tile_size, self.window = tile_size, window
    self.max_patches, self.tile_batch, self.seed = max_patches, tile_batch, seed
    # scoring.Scorer's API is read here only: tile points and the set score, with the
    # bank placed on the scorer's devices once.
    self._scorer, self._bank = scorer, scorer.place(bank)

  def layout(self, height: int, width: int) -> Layout:
    return capped(layout(height, width, self.tile_size, self.window), self.max_patches,
                  self.seed)

  def points(self, image: np.ndarray, where: Layout):
    """Leaves (K, ...): the PFS points of `where`'s patches, tiles streamed in batches."""
    parts = []
    # A small image's tiles are padded to a power of two, not to a full tile batch.
    batch_size = bucket_size(len(where.tile_origins), self.tile_batch)
    for first in range(0, len(where.tile_origins), batch_size):
      batch = jax.device_get(
          self._scorer.points(cut_tiles(image, where, first, batch_size))["mdmf"])
      here = (where.patch_tiles >= first) & (where.patch_tiles < first + batch_size)
      rows, cells = where.patch_tiles[here] - first, where.patch_cells[here]
      parts.append(jax.tree.map(lambda a: a[rows, cells], batch))
    return jax.tree.map(lambda *a: np.concatenate(a), *parts)

  def __call__(self, image: np.ndarray) -> Scored:
    where = self.layout(*image.shape[:2])
    points, mask = pad_set(self.points(image, where),
                           bucket_size(where.num_patches, self.max_patches))
    batch = jax.tree.map(lambda a: a[None], points)
    # Masked (padded) patches count nowhere.
    score, witness = self._scorer.score_points(batch, self._bank, mask=mask[None])
    return Scored(float(score[0]), np.asarray(witness[0, :where.num_patches]), where)


def heat_map(where: Layout, witness: np.ndarray) -> np.ndarray:
  """(H, W) float64: each pixel's mean witness over the set's patches covering it (NaN: none)."""
  total = np.zeros((where.height, where.width))
  count = np.zeros((where.height, where.width))
  w = where.window
  for (top, left), value in zip(where.patch_origins, witness):
    total[top:top + w, left:left + w] += value
    count[top:top + w, left:left + w] += 1
  with np.errstate(invalid="ignore"):
    return total / np.where(count > 0, count, np.nan)


def for_display(image: np.ndarray, heat: np.ndarray, max_side: int = 1024):
  """(image in [0, 1], heat) block-averaged by one integer factor so the longer side <= max_side."""
  factor = max(1, math.ceil(max(image.shape[:2]) / max_side))
  height, width = (n // factor * factor for n in image.shape[:2])

  def shrink(a, mean):
    a = a[:height, :width].reshape(height // factor, factor, width // factor, factor,
                                   *a.shape[2:])
    return mean(a, axis=(1, 3))

  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN block stays NaN, as wanted
    return shrink(image.astype(np.float64) / 255.0, np.mean), shrink(heat, np.nanmean)
