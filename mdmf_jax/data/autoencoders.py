"""Small convolutional autoencoders that differ only in how the decoder upsamples.

They are the "generators" of the offline demo benchmark: a fake is an
autoencoder's reconstruction of a real crop. Upsampling is where real generators
leave their best-known traces (checkerboards of transposed convolutions, blocky
or smooth interpolation, sub-pixel grids), so each decoder family leaves its own.

Adding a family with a new upsampler is one function of (x, features) -> 2x
larger x (it may create Flax modules) plus one line in UPSAMPLERS.
"""

from __future__ import annotations

import time
from typing import Sequence

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

_LOG_EVERY_S = 10.0


def _transposed_conv(x, features):
  return nn.ConvTranspose(features, (3, 3), strides=(2, 2))(x)


def _resize_then_conv(method: str):
  def upsample(x, features):
    n, h, w, c = x.shape
    x = jax.image.resize(x, (n, 2 * h, 2 * w, c), method)
    return nn.Conv(features, (3, 3))(x)
  return upsample


def _pixel_shuffle(x, features):
  """Sub-pixel convolution; channels unfold as (row, col, feature)."""
  x = nn.Conv(4 * features, (3, 3))(x)
  n, h, w, _ = x.shape
  x = x.reshape(n, h, w, 2, 2, features).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, 2 * h, 2 * w, features)


UPSAMPLERS = {
    "transposed_conv": _transposed_conv,
    "nearest": _resize_then_conv("nearest"),
    "bilinear": _resize_then_conv("bilinear"),
    "pixel_shuffle": _pixel_shuffle,
}


class Autoencoder(nn.Module):
  """(N, H, W, 3) in [0, 1] -> same shape; H, W divisible by 2**(len(features)-1).

  Encoder: 3x3 conv to features[0], then a 4x4 stride-2 conv per further entry,
  then a 1x1 conv to a `latent`-channel bottleneck. Decoder: 3x3 conv back to
  features[-1], one `upsample` step per stride-2 conv, 3x3 conv to RGB, sigmoid.
  """

  upsample: str  # a key of UPSAMPLERS
  features: Sequence[int]
  latent: int

  @nn.compact
  def __call__(self, x):
    up = UPSAMPLERS[self.upsample]
    x = nn.relu(nn.Conv(self.features[0], (3, 3))(x))
    for features in self.features[1:]:
      x = nn.relu(nn.Conv(features, (4, 4), strides=(2, 2))(x))
    x = nn.Conv(self.latent, (1, 1))(x)
    x = nn.relu(nn.Conv(self.features[-1], (3, 3))(x))
    for features in reversed(self.features[:-1]):
      x = nn.relu(up(x, features))
    return nn.sigmoid(nn.Conv(3, (3, 3))(x))


def train(
    model: Autoencoder,
    images: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    patch_size: int,
    learning_rate: float,
    seed: int,
    name: str = "autoencoder",
) -> tuple[dict, float]:
  """Fits `model` to random patches of `images` (uint8 NHWC) by MSE with Adam.

  Returns (params, mean loss of the last 10% of steps). Deterministic given seed.
  """
  if steps <= 0:
    raise ValueError(f"{name}: steps={steps} must be positive")
  rng = np.random.default_rng(seed)
  # RBG keys: XLA:CPU compiles threefry-based initialisers ~5x slower, and
  # compilation, not training, dominates small builds. Deterministic per backend.
  params = jax.jit(model.init)(jax.random.key(seed, impl="rbg"),
                               jnp.zeros((1, patch_size, patch_size, 3)))
  # Cosine decay to 0: the last iterate is well settled (no colour drift).
  optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, batch):
    def loss_fn(params):
      return jnp.mean((model.apply(params, batch) - batch) ** 2)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  n, height, width, _ = images.shape
  losses = []
  start = last_log = time.monotonic()
  for i in range(steps):
    which = rng.integers(n, size=batch_size)
    tops = rng.integers(height - patch_size, size=batch_size, endpoint=True)
    lefts = rng.integers(width - patch_size, size=batch_size, endpoint=True)
    # Random channel orders: the model must not learn a colour prior of its
    # training photos, or its fakes would differ from reals in mean colour.
    orders = rng.permuted(np.tile(np.arange(3), (batch_size, 1)), axis=1)
    batch = np.stack([images[k, t:t + patch_size, l:l + patch_size][..., order]
                      for k, t, l, order in zip(which, tops, lefts, orders)])
    params, opt_state, loss = step(params, opt_state,
                                   batch.astype(np.float32) / 255)
    losses.append(loss)
    now = time.monotonic()
    if now - last_log >= _LOG_EVERY_S or i + 1 == steps:
      last_log = now
      rate = (i + 1) / (now - start)
      logging.info("%s: step %d/%d, %.1f steps/s, ETA %.0f s, loss %.5f", name,
                   i + 1, steps, rate, (steps - i - 1) / rate, float(loss))
  tail = np.asarray(jax.device_get(losses[-max(1, steps // 10):]))
  return params, float(tail.mean())


def reconstruct(model: Autoencoder, params, images: np.ndarray,
                batch_size: int = 32) -> np.ndarray:
  """uint8 NHWC -> the model's reconstructions, rounded to uint8."""
  apply = jax.jit(model.apply)
  batch_size = min(batch_size, len(images))  # a short input is not padded up to a batch
  outputs = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size].astype(np.float32) / 255
    pad = batch_size - len(chunk)  # one compiled shape for every chunk
    chunk = np.pad(chunk, ((0, pad), (0, 0), (0, 0), (0, 0)))
    outputs.append(np.asarray(apply(params, chunk))[:batch_size - pad])
  return np.clip(np.rint(np.concatenate(outputs) * 255), 0, 255).astype(np.uint8)
