"""Decoding of every bad-file kind and pixel format; the pure image transforms."""

import io
import struct
import zlib

import numpy as np
from PIL import Image
from PIL import ImageFile
import pytest
import scipy.ndimage

from mdmf_jax.data import decode
from mdmf_jax.data import transforms

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, (24, 40, 3), dtype=np.uint8)


def encode(image: Image.Image, image_format: str, **params) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, format=image_format, **params)
  return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
  return (struct.pack(">I", len(payload)) + kind + payload
          + struct.pack(">I", zlib.crc32(kind + payload)))


def png_by_hand(width: int, height: int, bit_depth: int, rows: bytes) -> bytes:
  """An RGB PNG (colour type 2) with the given header and raw scanlines."""
  header = struct.pack(">IIBBBBB", width, height, bit_depth, 2, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
          + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b""))


def bomb_png(width=30000, height=30000) -> bytes:
  """A few hundred bytes whose header claims width x height pixels."""
  return png_by_hand(width, height, 8, b"\x00" * 64)


def corrupt_png() -> bytes:
  data = bytearray(encode(Image.fromarray(PIXELS), "PNG"))
  data[60:90] = b"\x00" * 30  # inside the compressed pixel data
  return bytes(data)


BAD_FILES = {
    "empty": (b"", decode.EMPTY),
    "text": (b"just some text\n", decode.NOT_AN_IMAGE),
    "truncated_jpeg": (encode(Image.fromarray(PIXELS), "JPEG")[:400],
                       decode.TRUNCATED),
    "truncated_png": (encode(Image.fromarray(PIXELS), "PNG")[:1500],
                      decode.TRUNCATED),
    "corrupt_png": (corrupt_png(), decode.CORRUPT),
    "float_tiff": (encode(Image.fromarray(PIXELS[..., 0].astype(np.float32)),
                          "TIFF"), decode.UNSUPPORTED_MODE),
    "bomb": (bomb_png(), decode.DECOMPRESSION_BOMB),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_files_are_refused_with_their_reason(kind):
  data, code = BAD_FILES[kind]
  with pytest.raises(decode.UnreadableImageError) as error:
    decode.decode_rgb8(data)
  assert error.value.code == code
  assert error.value.reason


def test_bomb_is_refused_from_the_header_without_decoding(monkeypatch):
  decoded, load = [], ImageFile.ImageFile.load
  with monkeypatch.context() as patch:
    patch.setattr(ImageFile.ImageFile, "load",
                  lambda image: decoded.append(image.size) or load(image))
    decode.decode_rgb8(encode(Image.fromarray(PIXELS), "PNG"))
    assert (40, 24) in decoded  # the spy sees a real decode
    decoded.clear()
    for size in (30000, 9000):  # above Pillow's own limit, and only above ours
      with pytest.raises(decode.UnreadableImageError) as error:
        decode.decode_rgb8(bomb_png(size, size))
      assert error.value.code == decode.DECOMPRESSION_BOMB
  assert not decoded  # refused from the header: the pixels were never decoded
  assert "max_pixels" in str(error.value)
  small = encode(Image.fromarray(PIXELS), "PNG")
  with pytest.raises(decode.UnreadableImageError, match="24 = 960 pixels"):
    decode.decode_rgb8(small, max_pixels=959)
  assert decode.decode_rgb8(small, max_pixels=960).shape == (24, 40, 3)


def test_lossless_formats_decode_exactly():
  for image_format in ("PNG", "BMP", "TIFF"):
    data = encode(Image.fromarray(PIXELS), image_format)
    np.testing.assert_array_equal(decode.decode_rgb8(data), PIXELS)


def test_grey_palette_and_binary_images_become_rgb():
  grey = PIXELS[..., 0]
  out = decode.decode_rgb8(encode(Image.fromarray(grey), "PNG"))
  np.testing.assert_array_equal(out, np.stack([grey] * 3, axis=-1))
  palette_image = Image.fromarray(PIXELS).convert("P")
  lut = np.asarray(palette_image.getpalette(), np.uint8).reshape(-1, 3)
  out = decode.decode_rgb8(encode(palette_image, "PNG"))
  np.testing.assert_array_equal(out, lut[np.asarray(palette_image)])
  binary = grey > 127
  out = decode.decode_rgb8(encode(Image.fromarray(binary), "PNG"))
  np.testing.assert_array_equal(out, np.stack([binary * 255] * 3, -1))


def test_alpha_is_dropped_and_colour_kept_as_stored():
  alpha = RNG.integers(0, 256, PIXELS.shape[:2], dtype=np.uint8)
  rgba = np.concatenate([PIXELS, alpha[..., None]], axis=-1)
  out = decode.decode_rgb8(encode(Image.fromarray(rgba), "PNG"))
  np.testing.assert_array_equal(out, PIXELS)
  grey_alpha = np.stack([PIXELS[..., 0], alpha], axis=-1)
  out = decode.decode_rgb8(encode(Image.fromarray(grey_alpha, "LA"), "PNG"))
  np.testing.assert_array_equal(out, np.stack([PIXELS[..., 0]] * 3, axis=-1))


def test_cmyk_uses_pillows_conversion():
  cmyk = Image.fromarray(PIXELS).convert("CMYK")
  data = encode(cmyk, "TIFF")  # lossless, stays CMYK
  np.testing.assert_array_equal(decode.decode_rgb8(data),
                                np.asarray(cmyk.convert("RGB")))


def test_sixteen_bit_grey_is_scaled_not_clipped():
  values = RNG.integers(0, 65536, (12, 10), dtype=np.uint16)
  values[0, :3] = [0, 65535, 128]
  for image_format in ("PNG", "TIFF"):
    out = decode.decode_rgb8(encode(Image.fromarray(values), image_format))
    expected = np.round(values.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(out, np.stack([expected] * 3, axis=-1))
  assert out[0, :3, 0].tolist() == [0, 255, 0]


def test_sixteen_bit_rgb_keeps_the_high_byte():
  values = RNG.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
  rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)
  out = decode.decode_rgb8(png_by_hand(5, 6, 16, rows))
  np.testing.assert_array_equal(out, (values >> 8).astype(np.uint8))


def test_gaussian_blur_matches_cnnspot_per_channel_scipy():
  for sigma in (0.5, 1.7, 3.0):
    expected = np.stack([
        scipy.ndimage.gaussian_filter(PIXELS[..., c].astype(np.float64), sigma)
        for c in range(3)], axis=-1)
    out = transforms.gaussian_blur(PIXELS, sigma)
    assert out.dtype == np.uint8
    assert np.abs(out.astype(np.float64) - expected).max() <= 0.5 + 1e-3
  assert transforms.gaussian_blur(PIXELS, 0.0) is PIXELS


def test_jpeg_roundtrip_is_pillows_jpeg():
  reference = np.asarray(Image.open(io.BytesIO(
      encode(Image.fromarray(PIXELS), "JPEG", quality=37))))
  np.testing.assert_array_equal(transforms.jpeg_roundtrip(PIXELS, 37), reference)
  assert np.abs(transforms.jpeg_roundtrip(PIXELS, 30).astype(int)
                - PIXELS).mean() > 5


def test_fit_to_crop_pad_and_upsample():
  image = PIXELS[:5, :8]
  padded = transforms.fit_to_crop(image, 10, "pad")
  assert padded.shape == (10, 10, 3)
  np.testing.assert_array_equal(padded[2:7, 1:9], image)
  assert padded.sum() == image.sum()  # only zeros were added
  upsampled = transforms.fit_to_crop(image, 10, "upsample")
  assert upsampled.shape == (10, 16, 3)
  assert transforms.fit_to_crop(PIXELS, 10, "pad") is PIXELS
  with pytest.raises(ValueError, match="small_images='skip'"):
    transforms.fit_to_crop(image, 10, "skip")


def test_center_crop_takes_the_middle():
  np.testing.assert_array_equal(transforms.center_crop(PIXELS, 8),
                                PIXELS[8:16, 16:24])
