"""Robust image decoding: file bytes -> 8-bit RGB array, or a named reason why not.

One function, `to_rgb8`, defines how every pixel format becomes 8-bit RGB; the
builder (validation at build time) and the input pipelines (decoding at read time)
both go through `decode_rgb8`, so train, eval and build see identical pixels.

Conventions of `to_rgb8` (pixels as stored, no colour management):
  * RGB: unchanged.
  * 1, L, P, CMYK, YCbCr, LAB, HSV, RGBX: Pillow's `convert("RGB")` (grey is
    replicated to three channels, palettes are looked up, CMYK uses Pillow's
    naive inversion).
  * alpha (RGBA, LA, PA, P with transparency): the alpha channel is dropped and
    the colour channels are kept as stored (no compositing: that would change the
    generator's pixel values).
  * 16-bit grey (I;16, I;16B, I;16L, and I holding 16-bit data): v8 = round(v16 *
    255 / 65535), clipped to [0, 65535] first, then replicated. (Pillow's own
    conversion clips at 255 instead of scaling.) 16-bit RGB PNGs are reduced to
    8-bit by Pillow when opened (high byte).
  * F (32-bit float) has no defined range: refused as `unsupported_mode`.
  * EXIF orientation is ignored: pixels are used as stored in the file.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

# 8192 x 8192. Larger files are refused before any pixel is decoded.
DEFAULT_MAX_PIXELS = 1 << 26

# Reason codes a file can be refused with (the builder reports them by path).
EMPTY = "empty"
NOT_AN_IMAGE = "not_an_image"
TRUNCATED = "truncated"
CORRUPT = "corrupt"
UNSUPPORTED_MODE = "unsupported_mode"
DECOMPRESSION_BOMB = "decompression_bomb"

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class UnreadableImageError(ValueError):
  """An image file that cannot be used.

  Attributes:
    code: one of the reason codes above (machine readable).
    reason: a human-readable explanation.
  """

  def __init__(self, code: str, reason: str):
    super().__init__(f"{code}: {reason}")
    self.code = code
    self.reason = reason


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
  """Opens and fully decodes `data`; raises UnreadableImageError with a reason.

  The size is checked against `max_pixels` from the header, before any pixel is
  decoded, so a decompression bomb costs neither time nor memory. Pillow's own
  limit (2 * Image.MAX_IMAGE_PIXELS) also refuses at open time, with the same
  reason code.
  """
  if not data:
    raise UnreadableImageError(EMPTY, "file is empty (0 bytes)")
  try:
    with warnings.catch_warnings():
      # Our own max_pixels check below replaces Pillow's warning.
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      image = Image.open(io.BytesIO(data))
  except Image.DecompressionBombError as e:
    raise UnreadableImageError(DECOMPRESSION_BOMB, str(e)) from None
  except Image.UnidentifiedImageError:
    raise UnreadableImageError(
        NOT_AN_IMAGE, "not an image, or a format Pillow cannot identify"
    ) from None
  except (OSError, SyntaxError, ValueError, EOFError) as e:
    raise _classify(e) from None
  width, height = image.size
  if width * height > max_pixels:
    raise UnreadableImageError(
        DECOMPRESSION_BOMB,
        f"{width}x{height} = {width * height} pixels exceeds max_pixels="
        f"{max_pixels}; refused without decoding",
    )
  try:
    image.load()
  except Exception as e:  # pylint: disable=broad-except
    # Decoders raise many types (OSError, SyntaxError, zlib.error, ...).
    raise _classify(e) from None
  return image


def _classify(error: Exception) -> UnreadableImageError:
  message = f"{type(error).__name__}: {error}"
  code = TRUNCATED if "truncated" in str(error).lower() else CORRUPT
  return UnreadableImageError(code, message)


def to_rgb8(image: Image.Image) -> np.ndarray:
  """Converts a decoded Pillow image to a (H, W, 3) uint8 array (module docstring)."""
  mode = image.mode
  if mode == "RGB":
    return np.asarray(image, dtype=np.uint8)
  if mode in _SIXTEEN_BIT_MODES:
    values = np.clip(np.asarray(image, dtype=np.int64), 0, 65535)
    grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)
  if mode == "F":
    raise UnreadableImageError(
        UNSUPPORTED_MODE, "32-bit float pixels (mode F) have no defined range"
    )
  try:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)
  except ValueError as e:
    raise UnreadableImageError(UNSUPPORTED_MODE, f"mode {mode}: {e}") from None


def decode_rgb8(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
  """File bytes -> (H, W, 3) uint8 RGB; raises UnreadableImageError."""
  return to_rgb8(open_image(data, max_pixels=max_pixels))
