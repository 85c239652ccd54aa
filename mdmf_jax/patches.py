"""Images -> patch sets Z(x) = {z_1 .. z_K} (docs/method.md, section 2).

    patches, (h, w) = patch_set(images, backbone, mode="tokens")
    featurize = make_featurizer(module, config.patches)   # (params, images) -> patches

`images` are NHWC floats in [0, 1]; they are normalised here, once, with the
backbone's own `normalize`. `backbone` is a callable `backbone(images,
blocks=()) -> outputs` with a `patch_size` P and a `normalize` (the module
contract of models/backbones.py), such as `vit.FrozenViT(*load_dinov2(path))`.
The result is (B, K, D) with K = h * w patches in row-major order over an h x w
grid:

* "tokens": the backbone's patch tokens, W = P px; (h, w) = (H, W) / P.
* "pooled_tokens": tokens averaged over non-overlapping pool x pool windows,
  W = P * pool px; (h, w) = (H, W) / (P * pool).
* "crops": the image cut into non-overlapping crop_size x crop_size crops, each
  resized (bilinear, antialiased when shrinking) to crop_resolution and embedded
  by the backbone on its own; z_k is the crop's CLS token; (h, w) = (H, W) /
  crop_size. All B * K crops run as one batch.

`block` picks the patch tokens of an intermediate block (0-based, after the
final norm) in the token modes; None uses the last block.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

MODES = ("tokens", "pooled_tokens", "crops")


def patch_window(patch_cfg, patch_size: int) -> int:
  """Side W in pixels of one patch of `config.patches` over a backbone of `patch_size`:
  patch_size, patch_size * pool, or crop_size."""
  return {"tokens": patch_size, "pooled_tokens": patch_size * patch_cfg.pool,
          "crops": patch_cfg.crop_size}[patch_cfg.mode]


def _check_divisible(images, size, what):
  if images.shape[1] % size or images.shape[2] % size:
    raise ValueError(f"image size {images.shape[1:3]} is not a multiple of the {what} {size}")


def _tokens(images, backbone, pool, block):
  window = backbone.patch_size * pool
  _check_divisible(images, window, f"token window ({pool} x {backbone.patch_size} px)")
  batch = images.shape[0]
  h, w = (n // backbone.patch_size for n in images.shape[1:3])
  outputs = backbone(images, blocks=() if block is None else (block,))
  tokens = outputs["patch_tokens"] if block is None else outputs["blocks"][block]
  grid = tokens.reshape(batch, h, w, -1)
  if pool > 1:
    grid = nn.avg_pool(grid, (pool, pool), strides=(pool, pool))
  return grid.reshape(batch, -1, grid.shape[-1]), grid.shape[1:3]


def _crops(images, backbone, crop_size, crop_resolution):
  _check_divisible(images, crop_size, "crop size")
  batch, height, width, channels = images.shape
  h, w = height // crop_size, width // crop_size
  crops = images.reshape(batch, h, crop_size, w, crop_size, channels).transpose(0, 1, 3, 2, 4, 5)
  crops = crops.reshape(batch * h * w, crop_size, crop_size, channels)
  crops = jax.image.resize(crops, (crops.shape[0], crop_resolution, crop_resolution, channels),
                           method="bilinear")
  cls = backbone(crops)["cls"]
  return cls.reshape(batch, h * w, -1), (h, w)


def patch_set(images, backbone, mode: str = "tokens", *, pool: int = 2, crop_size: int = 32,
              crop_resolution: int = 224, block: int | None = None):
  """(B, K, D) patch embeddings and the (h, w) patch grid; see the module docstring.

  `pool` is used by "pooled_tokens" only; `crop_size` and `crop_resolution` by
  "crops" only (which takes the final CLS token, so `block` must be None).
  """
  if mode not in MODES:
    raise ValueError(f"patch mode {mode!r}; expected one of {MODES}")
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must be NHWC with 3 channels; got shape {images.shape}")
  # Per-channel affine, and resize weights sum to 1: normalising before the
  # crops' resize equals normalising after it.
  images = backbone.normalize(images)
  if mode == "crops":
    if block is not None:
      raise ValueError("block applies to the token modes; crops use the final CLS token")
    return _crops(images, backbone, crop_size, crop_resolution)
  if mode == "pooled_tokens" and pool < 1:
    raise ValueError(f"pool={pool}; expected an integer >= 1")
  return _tokens(images, backbone, pool if mode == "pooled_tokens" else 1, block)


@dataclasses.dataclass(frozen=True)
class _Bound:
  """A backbone module with given params as the `backbone` callable that `patch_set` takes."""

  model: Any
  params: Any

  @property
  def patch_size(self) -> int:
    return self.model.patch_size

  def normalize(self, images):
    return self.model.normalize(images)

  def __call__(self, images, blocks=()):
    return self.model.apply({"params": self.params}, images, blocks=tuple(blocks))


def make_featurizer(model, patch_cfg):
  """featurize(backbone_params, images (N, H, W, 3) in [0, 1]) -> (N, K, D) float32: the
  patch set of `config.patches` over a backbone module (models/backbones.py) and its params."""

  def featurize(params, images):
    z, _ = patch_set(images, _Bound(model, params), patch_cfg.mode, pool=patch_cfg.pool,
                     crop_size=patch_cfg.crop_size, crop_resolution=patch_cfg.crop_resolution,
                     block=patch_cfg.block)
    return z.astype(jnp.float32)

  return featurize
