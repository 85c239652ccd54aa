"""Image transforms on (H, W, 3) uint8 arrays: crops, resizing, CNNSpot augmentations.

Pure functions of (image, parameters); random ones take their parameters already
drawn, so that the pipeline owns every random draw (grain's `random_map`).

Small images: a crop larger than the image first needs the image enlarged, by
`fit_to_crop` with a policy:
  "pad":      zero-pad symmetrically (extra pixel at the bottom/right) to the crop
              size; pixel values are untouched (default).
  "upsample": bilinear upsampling so the shorter side equals the crop size,
              aspect ratio kept. Resampling smears generation traces; use with care.
To drop such images instead, build with `min_size` (the builder reports them).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
import scipy.ndimage

SMALL_IMAGE_POLICIES = ("pad", "upsample")


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
  """Encodes as JPEG with Pillow at `quality` (1..100, 4:2:0) and decodes."""
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
  return np.asarray(Image.open(buffer).convert("RGB"))


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
  """Per-channel Gaussian blur (scipy.ndimage, 'reflect' borders, 4-sigma support).

  As CNNSpot's `gaussian_blur` (scipy.ndimage.gaussian_filter per channel), but
  computed in float32 and rounded to nearest instead of truncated.
  """
  if sigma <= 0:
    return image
  blurred = scipy.ndimage.gaussian_filter(
      image.astype(np.float32), sigma=(sigma, sigma, 0))
  return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Pillow bilinear resize (antialiased when shrinking) to (height, width)."""
  return np.asarray(Image.fromarray(image).resize((width, height),
                                                  Image.Resampling.BILINEAR))


def fit_to_crop(image: np.ndarray, size: int, policy: str) -> np.ndarray:
  """Enlarges `image` so both sides are >= size (module docstring); else unchanged."""
  height, width, _ = image.shape
  if min(height, width) >= size:
    return image
  if policy == "pad":
    pad_h, pad_w = max(size - height, 0), max(size - width, 0)
    return np.pad(image, ((pad_h // 2, pad_h - pad_h // 2),
                          (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
  if policy == "upsample":
    scale = size / min(height, width)
    return resize(image, max(size, round(height * scale)),
                  max(size, round(width * scale)))
  raise ValueError(f"small_images={policy!r}; choose one of {SMALL_IMAGE_POLICIES}")


def crop(image: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
  return image[top:top + size, left:left + size]


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """Central size x size crop (the extra pixel of an odd margin goes bottom/right)."""
  height, width, _ = image.shape
  return crop(image, (height - size) // 2, (width - size) // 2, size)
