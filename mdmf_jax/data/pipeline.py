"""grain input pipelines over data sets made by `builder` (read via tfds.data_source).

Train (`train_dataset`), per process and per step, b = global_batch_size / P:
  {"image": float32 (b, S, S, 3) in [0, 1], "label": int32 (b,)}
  rows [0, b/2) are real (label 0), rows [b/2, b) are fake (label 1). Infinite,
  shuffled (each epoch of real and of fake reshuffled), deterministic given `seed`
  (grain `random_map`: every random draw is seeded by (seed, element index), so
  thread and worker counts do not change the batches); the iterator's
  `get_state()` / `set_state()` (or grain's Orbax handler) checkpoints it.
  Per image: decode -> [format alignment] -> [resize] -> [blur, p=blur_prob,
  sigma ~ U(blur_sigma)] -> [JPEG, p=jpeg_prob, quality ~ U{jpeg_quality}] ->
  fit small images (pad/upsample) -> random S x S crop -> [horizontal flip, p=0.5].
  Blur and JPEG come before the crop, as in CNNSpot.

Eval (`eval_dataset`), per process, b = global_batch_size / P:
  {"image": float32 (b, S, S, 3), "label": int32, "generator": int32 (index into
   `generator_names`), "index": int32 (record index in the split), "path": str
   (host-side only: drop before device_put), "mask": bool}
  decode -> [format alignment] -> [resize] -> fit small images -> centre crop.
  Deterministic order; every example of the split appears exactly once with
  mask=True over all processes; padding rows (mask=False, index=-1, generator=-1,
  zero image) complete the last batch, and every process yields the same number of
  batches, so shapes stay static and multi-host loops stay in step.

Multi-host: each process reads its own shard (grain `ShardByJaxProcess` by
default): train shards the real and the fake examples separately, eval strides the
split. Normalisation (ImageNet statistics) is left to the model.

Format alignment (off by default): `format_alignment_quality=Q` re-encodes every
image, real and fake alike, as JPEG at quality Q right after decoding. It removes
the "real is JPEG, fake is PNG" shortcut a detector otherwise learns. Stored bytes
are never changed; this is a read-time transform.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import grain
import numpy as np
import tensorflow_datasets as tfds

from mdmf_jax.data import decode
from mdmf_jax.data import transforms


def open_split(data_dir: str, name: str, split: str) -> Sequence[dict[str, Any]]:
  """Random-access records of one split (tfds ArrayRecordDataSource, no TF)."""
  return tfds.data_source(name, split=split, data_dir=data_dir, download=False)


def generator_names(source) -> list[str]:
  """Generator id -> name, for the "generator" field of eval batches."""
  return list(source.dataset_info.features["generator"].names)


def real_fake_counts(source, split: str) -> tuple[int, int]:
  """(#real, #fake) of a split, from the metadata; checks the real-then-fake order."""
  counts = source.dataset_info.metadata["splits"][split]
  num_real, num_fake = counts["real"], counts["fake"]
  if num_real + num_fake != len(source):
    raise ValueError(f"split {split!r}: metadata counts {num_real}+{num_fake} != "
                     f"{len(source)} records; was it built by mdmf_jax.data.builder?")
  if (num_real and source[num_real - 1]["label"] != 0) or (
      num_fake and source[num_real]["label"] != 1):
    raise ValueError(f"split {split!r}: records are not stored real-then-fake")
  return num_real, num_fake


def per_process_batch_size(global_batch_size: int, process_count: int,
                           multiple_of: int = 1) -> int:
  if global_batch_size <= 0 or global_batch_size % (process_count * multiple_of):
    raise ValueError(
        f"global_batch_size={global_batch_size} must be a positive multiple of "
        f"{multiple_of} x {process_count} processes")
  return global_batch_size // process_count


@dataclasses.dataclass(frozen=True)
class ImageOptions:
  """What every image goes through before cropping (train and eval alike)."""

  image_size: int = 224
  resize: int | None = None  # resize the whole image to resize x resize first
  small_images: str = "pad"  # transforms.SMALL_IMAGE_POLICIES
  format_alignment_quality: int | None = None

  def __post_init__(self):
    if self.small_images not in transforms.SMALL_IMAGE_POLICIES:
      raise ValueError(f"small_images={self.small_images!r}; choose one of "
                       f"{transforms.SMALL_IMAGE_POLICIES}")

  def load(self, data: bytes) -> np.ndarray:
    image = decode.decode_rgb8(data)
    if self.format_alignment_quality is not None:
      image = transforms.jpeg_roundtrip(image, self.format_alignment_quality)
    if self.resize is not None:
      image = transforms.resize(image, self.resize, self.resize)
    return image

  def fit(self, image: np.ndarray) -> np.ndarray:
    return transforms.fit_to_crop(image, self.image_size, self.small_images)


@dataclasses.dataclass(frozen=True)
class TrainTransform(grain.transforms.RandomMap):
  """record -> {"image", "label"} with the CNNSpot augmentations (module doc)."""

  options: ImageOptions
  flip: bool = True
  blur_prob: float = 0.1
  blur_sigma: tuple[float, float] = (0.0, 3.0)
  jpeg_prob: float = 0.1
  jpeg_quality: tuple[int, int] = (30, 100)  # inclusive

  def random_map(self, record, rng: np.random.Generator):
    image = self.options.load(record["image"])
    if rng.random() < self.blur_prob:
      image = transforms.gaussian_blur(image, rng.uniform(*self.blur_sigma))
    if rng.random() < self.jpeg_prob:
      quality = rng.integers(self.jpeg_quality[0], self.jpeg_quality[1],
                             endpoint=True)
      image = transforms.jpeg_roundtrip(image, quality)
    image = self.options.fit(image)
    size = self.options.image_size
    top = rng.integers(image.shape[0] - size, endpoint=True)
    left = rng.integers(image.shape[1] - size, endpoint=True)
    image = transforms.crop(image, top, left, size)
    if self.flip and rng.random() < 0.5:
      image = image[:, ::-1]
    return {"image": image, "label": np.int32(record["label"])}


def _collate(examples: Sequence[dict[str, Any]],
             order: Sequence[int] | None = None) -> dict[str, np.ndarray]:
  """Stacks examples (in `order`); uint8 images -> float32 in [0, 1].

  Converting the whole batch at once is about twice as fast as per image.
  """
  order = range(len(examples)) if order is None else order
  batch = {k: np.stack([examples[i][k] for i in order]) for k in examples[0]}
  images = batch["image"].astype(np.float32)
  images /= 255
  batch["image"] = images
  return batch


def _reals_first(examples: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
  return _collate(examples,
                  sorted(range(len(examples)), key=lambda i: examples[i]["label"]))


def _shard_options(shard_options) -> grain.sharding.ShardOptions:
  return shard_options or grain.sharding.ShardByJaxProcess()


def _read(ds: grain.MapDataset, num_threads: int, num_workers: int):
  # Elements are whole batches: keep the prefetch buffer small.
  ds = ds.to_iter_dataset(grain.ReadOptions(
      num_threads=num_threads, prefetch_buffer_size=2 * num_threads))
  if num_workers:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  return ds


def train_dataset(
    data_dir: str,
    name: str,
    *,
    global_batch_size: int,
    seed: int,
    split: str = "train",
    image_size: int = 224,
    resize: int | None = None,
    small_images: str = "pad",
    format_alignment_quality: int | None = None,
    flip: bool = True,
    blur_prob: float = 0.1,
    blur_sigma: tuple[float, float] = (0.0, 3.0),
    jpeg_prob: float = 0.1,
    jpeg_quality: tuple[int, int] = (30, 100),
    num_threads: int = 4,
    num_workers: int = 0,
    shard_options: grain.sharding.ShardOptions | None = None,
) -> grain.IterDataset:
  """Balanced, shuffled, augmented, infinite training batches (module docstring).

  Args:
    data_dir, name, split: the data set (built by `builder`) and split to read.
    global_batch_size: images per step over all processes, half real, half fake;
      must be a multiple of 2 x process count.
    seed: in [0, 2**32); fixes shuffling and every augmentation draw.
    image_size: crop size S.
    resize: if set, resize every image to resize x resize before augmenting and
      cropping (off by default: resizing smears generation traces).
    small_images: "pad" or "upsample" for images smaller than the crop.
    format_alignment_quality: if set, JPEG re-encode all images at this quality.
    flip, blur_prob, blur_sigma, jpeg_prob, jpeg_quality: augmentations; blur
      sigma ~ U[blur_sigma], JPEG quality ~ U{jpeg_quality} (inclusive).
    num_threads: reader threads per process (each prepares whole batches).
    num_workers: grain worker processes (0: in-process); batches are identical.
    shard_options: default ShardByJaxProcess (this process's shard).

  Returns:
    A grain IterDataset; `iter()` gives a checkpointable DatasetIterator.
  """
  shard = _shard_options(shard_options)
  batch_size = per_process_batch_size(global_batch_size, shard.shard_count, 2)
  source = open_split(data_dir, name, split)
  num_real, num_fake = real_fake_counts(source, split)
  if min(num_real, num_fake) < shard.shard_count:
    raise ValueError(f"split {split!r} has {num_real} real and {num_fake} fake "
                     f"examples; need at least one of each per process")
  real_seed, fake_seed, map_seed = np.random.SeedSequence(seed).generate_state(3)
  records = grain.MapDataset.source(source)

  def shuffled_forever(part: grain.MapDataset, part_seed) -> grain.MapDataset:
    part = part[shard.shard_index::shard.shard_count]
    return part.shuffle(seed=int(part_seed)).repeat()

  # mix() of two equal-weight datasets alternates real, fake, real, ...; an even
  # batch size therefore gives exactly b/2 of each.
  ds = grain.MapDataset.mix([
      shuffled_forever(records[:num_real], real_seed),
      shuffled_forever(records[num_real:], fake_seed),
  ])
  transform = TrainTransform(
      options=ImageOptions(image_size, resize, small_images,
                           format_alignment_quality),
      flip=flip, blur_prob=blur_prob, blur_sigma=tuple(blur_sigma),
      jpeg_prob=jpeg_prob, jpeg_quality=tuple(jpeg_quality))
  ds = ds.random_map(transform, seed=int(map_seed))
  ds = ds.batch(batch_size, drop_remainder=True, batch_fn=_reals_first)
  return _read(ds, num_threads, num_workers)


@dataclasses.dataclass(frozen=True)
class EvalTransform(grain.transforms.Map):
  """Record index (or -1 for padding) -> one eval example (module docstring)."""

  source: Any
  options: ImageOptions

  def map(self, index: int):
    size = self.options.image_size
    if index < 0:
      return {"image": np.zeros((size, size, 3), np.uint8), "label": np.int32(0),
              "generator": np.int32(-1), "index": np.int32(-1), "path": "",
              "mask": False}
    record = self.source[index]
    image = self.options.fit(self.options.load(record["image"]))
    return {"image": transforms.center_crop(image, size),
            "label": np.int32(record["label"]),
            "generator": np.int32(record["generator"]),
            "index": np.int32(index),
            "path": record["path"].decode(),
            "mask": True}


def eval_dataset(
    data_dir: str,
    name: str,
    *,
    global_batch_size: int,
    split: str = "test",
    image_size: int = 224,
    resize: int | None = None,
    small_images: str = "pad",
    format_alignment_quality: int | None = None,
    num_threads: int = 4,
    num_workers: int = 0,
    shard_options: grain.sharding.ShardOptions | None = None,
) -> grain.IterDataset:
  """Deterministic, padded, masked eval batches (module docstring).

  Arguments as in `train_dataset`; `resize=image_size` resizes instead of
  centre-cropping. global_batch_size must be a multiple of the process count.
  """
  shard = _shard_options(shard_options)
  batch_size = per_process_batch_size(global_batch_size, shard.shard_count)
  source = open_split(data_dir, name, split)
  total = len(source)
  num_batches = math.ceil(math.ceil(total / shard.shard_count) / batch_size)
  indices = list(range(shard.shard_index, total, shard.shard_count))
  indices += [-1] * (num_batches * batch_size - len(indices))
  transform = EvalTransform(
      source, ImageOptions(image_size, resize, small_images,
                           format_alignment_quality))
  ds = grain.MapDataset.source(indices).map(transform)
  ds = ds.batch(batch_size, batch_fn=_collate)
  return _read(ds, num_threads, num_workers)
