"""DINOv2-compatible Vision Transformer (Flax linen).

Reproduces the forward pass of facebookresearch/dinov2's `DinoVisionTransformer`
and of transformers' `Dinov2Model` / `Dinov2WithRegistersModel` (float32 parity
<= 1e-4 in tests/test_weights.py):

  x   = [cls + pos_cls, patch_embed(images) + resample(pos_patches)]
  x   = [x_cls, registers, x_patches]         (registers get no pos-embed)
  x  += ls1 * attn(norm1(x)); x += ls2 * mlp(norm2(x))     (each block)
  out = norm(x)                               (LayerNorms with eps 1e-6)

Attention is softmax(q k^T / sqrt(head_dim)) v (64-dimensional heads) with a
fused qkv projection, run by cuDNN's fused kernel on a GPU in half precision and
by `attend` elsewhere (`attention_implementation`; docs/backbone.md, Speed);
the MLP is fc1 -> exact (erf) GELU -> fc2, or SwiGLU for g/14:
w3(silu(x1) * x2) with [x1, x2] = w12(x). Parameter names follow the
official checkpoints (`blocks_{i}/attn/qkv`, `ls1/gamma`, ...); models/weights.py
holds the key map.

Inputs are NHWC images normalised once with `ViT.normalize` (ImageNet's mean
and std); height and width must be multiples of the patch size (14). Parameters
are float32; `dtype` sets the compute dtype (float32 or bfloat16). The generic
pieces (`normalize`, `check_inputs`, `resample_pos_embed`, `Attention`, `Mlp`)
are shared with the other backbones (models/backbones.py).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# DINOv2 backbones by name. Heads are always 64-dimensional.
VARIANTS = {
    "S/14": dict(width=384, depth=12, num_heads=6),
    "B/14": dict(width=768, depth=12, num_heads=12),
    "L/14": dict(width=1024, depth=24, num_heads=16),
    "g/14": dict(width=1536, depth=40, num_heads=24, swiglu=True),
    # Tiny variants for tests and laptop runs (random weights only).
    "tiny/14": dict(width=128, depth=2, num_heads=2),
    "tiny-swiglu/14": dict(width=128, depth=2, num_heads=2, swiglu=True),
}


def normalize(images, mean, std):
  """(images - mean) / std per channel: torchvision's ToTensor, then Normalize(mean, std).

  `images`: NHWC floats in [0, 1].
  """
  images = jnp.asarray(images, jnp.float32)
  return (images - jnp.asarray(mean)) / jnp.asarray(std)


def imagenet_normalize(images):
  """DINOv2's input normalisation: ImageNet's mean and std."""
  return normalize(images, IMAGENET_MEAN, IMAGENET_STD)


def grid_shape(image_hw: Sequence[int], patch_size: int) -> tuple[int, int]:
  """Patch grid (h, w) of an image of size `image_hw`; both must divide evenly."""
  if any(n % patch_size for n in image_hw):
    raise ValueError(
        f"image size {tuple(image_hw)} is not a multiple of the patch size {patch_size}"
    )
  return tuple(n // patch_size for n in image_hw)


def check_inputs(images, blocks: Sequence[int], *, depth: int, patch_size: int):
  """The patch grid of NHWC `images`; raises ValueError on a bad shape or block index."""
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"images must be NHWC with 3 channels; got shape {images.shape}")
  for i in blocks:
    if not 0 <= i < depth:
      raise ValueError(f"block {i} out of range for a {depth}-block ViT")
  return grid_shape(images.shape[1:3], patch_size)


# --------------------------------------------------------------------------
# Position-embedding resampling, identical to PyTorch's bicubic interpolate.
# --------------------------------------------------------------------------


def _keys_cubic(x, a):
  """Keys' cubic convolution kernel W(x) with parameter a, zero for |x| >= 2."""
  x = np.abs(x)
  near = ((a + 2) * x - (a + 3)) * x * x + 1
  far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  return np.where(x < 1, near, np.where(x < 2, far, 0.0))


@functools.lru_cache(maxsize=None)
def bicubic_matrix(in_size: int, out_size: int, scale: float, antialias: bool) -> np.ndarray:
  """(out_size, in_size) weights of `torch.nn.functional.interpolate` along one axis.

  Mode "bicubic", align_corners=False. Output pixel i samples the input at
  c_i = (i + 0.5) * scale - 0.5, where `scale` is in_size / out_size when torch
  is given `size=` and 1 / scale_factor when given `scale_factor=`.
  * antialias=False: 4 taps at floor(c_i) - 1 .. floor(c_i) + 2, weights
    W(c_i - tap) with a = -0.75; taps past the border are clamped onto it.
  * antialias=True (PIL-style): W((tap - c_i) / s) with a = -0.5, s = max(scale, 1),
    over all in-range taps, normalised to sum to 1.
  (jax.image's "bicubic" is the a = -0.5 kernel renormalised at the borders:
  it differs from the antialias=False case by ~1e-2.) Cached: computed once
  per (sizes, scale).
  """
  centre = (np.arange(out_size) + 0.5) * scale - 0.5
  if antialias:
    stretch = max(scale, 1.0)
    weights = _keys_cubic((np.arange(in_size)[None, :] - centre[:, None]) / stretch, -0.5)
    return weights / weights.sum(axis=1, keepdims=True)
  base = np.minimum(np.floor(centre), in_size - 1)
  frac = np.clip(centre - base, 0.0, 1.0)
  offsets = np.arange(-1, 3)
  taps = np.clip(base[:, None] + offsets, 0, in_size - 1).astype(np.int64)
  matrix = np.zeros((out_size, in_size))
  rows = np.repeat(np.arange(out_size), offsets.size)
  np.add.at(matrix, (rows, taps.ravel()), _keys_cubic(frac[:, None] - offsets, -0.75).ravel())
  return matrix


def resample_pos_embed(pos_embed, from_grid, to_grid, *, offset=0.0, antialias=False):
  """Position embeddings (1, 1 + h*w, D) of grid `from_grid` -> grid `to_grid`.

  The class position is kept; the patch positions are resampled bicubically in
  float32, as the PyTorch references do:
  * transformers' Dinov2: size=to_grid, antialias=False (offset=0);
  * transformers' Dinov2WithRegisters and official "_reg" models: size=to_grid,
    antialias=True (offset=0);
  * official DINOv2 without registers: scale_factor=(to + 0.1) / from, no
    antialias (offset=0.1), i.e. sampling scale from / (to + 0.1).
  Both references return the embeddings untouched when the grids are equal;
  so does this function.
  """
  if tuple(from_grid) == tuple(to_grid):
    return pos_embed
  width = pos_embed.shape[-1]
  patches = pos_embed[0, 1:].astype(jnp.float32).reshape(*from_grid, width)
  rows, cols = (
      jnp.asarray(bicubic_matrix(n_in, n_out, n_in / (n_out + offset), antialias), jnp.float32)
      for n_in, n_out in zip(from_grid, to_grid)
  )
  patches = jnp.einsum("ah,bw,hwd->abd", rows, cols, patches, precision=jax.lax.Precision.HIGHEST)
  patches = patches.reshape(1, -1, width).astype(pos_embed.dtype)
  return jnp.concatenate([pos_embed[:, :1], patches], axis=1)


# --------------------------------------------------------------------------
# The network.
# --------------------------------------------------------------------------


def attention_implementation(dtype, platform: str | None = None) -> str:
  """Which attention kernel `Attention` uses: "cudnn" or "xla".

  cuDNN's fused kernel on a GPU in half precision (it takes no float32);
  elsewhere XLA's einsums, whose logits and softmax are float32.
  `platform` defaults to JAX's default backend, where a jitted forward runs.
  """
  platform = platform or jax.default_backend()
  half = jnp.dtype(dtype) in (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
  return "cudnn" if platform == "gpu" and half else "xla"


def attend(q, k, v):
  """softmax(q k^T / sqrt(head_dim)) v for q, k, v of shape (B, H, L, head_dim).

  Heads ahead of tokens: XLA:CPU's batched dots then read their operands
  without the transposes that (B, L, H, head_dim) needs (about 2x faster on
  CPU than jax.nn.dot_product_attention's einsums). Logits and softmax in
  float32, the probabilities cast back to the compute dtype.
  """
  logits = jnp.einsum("bhqd,bhkd->bhqk", q, k, preferred_element_type=jnp.float32)
  probs = jax.nn.softmax(logits * q.shape[-1] ** -0.5)
  return jnp.einsum("bhqk,bhkd->bhqd", probs.astype(v.dtype), v)


class Attention(nn.Module):
  """Multi-head self-attention with a fused qkv projection (DINOv2 layout).

  The kernel is `attention_implementation(dtype)`'s: cuDNN's fused attention
  through jax.nn.dot_product_attention, or `attend`.
  """

  num_heads: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    batch, length, width = x.shape
    qkv = nn.Dense(3 * width, dtype=self.dtype, name="qkv")(x)
    qkv = qkv.reshape(batch, length, 3, self.num_heads, width // self.num_heads)
    if attention_implementation(self.dtype) == "cudnn":
      q, k, v = jnp.moveaxis(qkv, 2, 0)
      y = jax.nn.dot_product_attention(q, k, v, implementation="cudnn")
    else:
      q, k, v = jnp.transpose(qkv, (2, 0, 3, 1, 4))
      y = jnp.swapaxes(attend(q, k, v), 1, 2)
    return nn.Dense(width, dtype=self.dtype, name="proj")(y.reshape(batch, length, width))


def exact_gelu(x):
  """The exact GELU of torch.nn.GELU, x / 2 * (1 + erf(x / sqrt(2))), written as torch does.

  (jax.nn.gelu's erfc form evaluates both of erfc's branches: 2x slower on
  XLA:CPU, and it keeps the fc1 matmul from absorbing the activation.)
  """
  return x * 0.5 * (1 + jax.lax.erf(x * 0.7071067811865476))


class Mlp(nn.Module):
  """fc2(activation(fc1(x))), DINOv2's with the exact GELU."""

  hidden: int
  dtype: Any = jnp.float32
  activation: Callable[[jax.Array], jax.Array] = exact_gelu

  @nn.compact
  def __call__(self, x):
    y = self.activation(nn.Dense(self.hidden, dtype=self.dtype, name="fc1")(x))
    return nn.Dense(x.shape[-1], dtype=self.dtype, name="fc2")(y)


class SwiGLU(nn.Module):
  """w3(silu(x1) * x2), [x1, x2] = w12(x) (DINOv2's SwiGLUFFNFused)."""

  hidden: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x1, x2 = jnp.split(nn.Dense(2 * self.hidden, dtype=self.dtype, name="w12")(x), 2, axis=-1)
    return nn.Dense(x.shape[-1], dtype=self.dtype, name="w3")(nn.silu(x1) * x2)


class LayerScale(nn.Module):
  """x * gamma, a learned per-channel scale on each residual branch."""

  init_value: float = 1.0

  @nn.compact
  def __call__(self, x):
    gamma = self.param("gamma", nn.initializers.constant(self.init_value), (x.shape[-1],))
    return x * gamma.astype(x.dtype)


class Block(nn.Module):
  """Pre-norm transformer block with LayerScale."""

  num_heads: int
  mlp_hidden: int
  swiglu: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    norm = functools.partial(nn.LayerNorm, epsilon=1e-6, dtype=self.dtype)
    mlp = SwiGLU if self.swiglu else Mlp
    x = x + LayerScale(name="ls1")(Attention(self.num_heads, self.dtype, name="attn")(norm(name="norm1")(x)))
    return x + LayerScale(name="ls2")(mlp(self.mlp_hidden, self.dtype, name="mlp")(norm(name="norm2")(x)))


class PatchEmbed(nn.Module):
  """Non-overlapping p x p patches of NHWC images -> (B, h * w, width), row-major.

  nn.Conv's parameters (kernel (p, p, C, width), bias) and sums, as one
  matmul over the flattened patches: XLA:GPU's convolution with 3 input
  channels and stride = window took 2.0 ms of a 31 ms B/14 forward (bf16,
  batch 256, H200).
  """

  width: int
  patch_size: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images):
    batch, rows, cols, channels = images.shape
    p = self.patch_size
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (p, p, channels, self.width))
    bias = self.param("bias", nn.initializers.zeros, (self.width,))
    patches = images.reshape(batch, rows // p, p, cols // p, p, channels).transpose(0, 1, 3, 2, 4, 5)
    patches = patches.reshape(batch, -1, p * p * channels).astype(self.dtype)
    return patches @ kernel.reshape(-1, self.width).astype(self.dtype) + bias.astype(self.dtype)


class ViT(nn.Module):
  """DINOv2 ViT. `apply({'params': p}, images, blocks=())` returns a dict:

  cls (B, D), patch_tokens (B, N, D) (row-major over the h x w patch grid, after
  the final norm), registers (B, R, D) when num_registers > 0, and, when
  `blocks` names 0-based block indices, blocks = {i: (B, N, D) patch tokens
  after block i and the final norm} (DINOv2's get_intermediate_layers(norm=True)).
  Outputs are in the compute dtype.

  pos_grid is the checkpoint's position-embedding grid (37 x 37 for the released
  518 px models); other input grids resample it per `resample_pos_embed` with
  pos_offset / pos_antialias (set by the weight loader to match the checkpoint's
  reference implementation).
  """

  width: int
  depth: int
  num_heads: int
  mlp_ratio: float = 4.0
  swiglu: bool = False
  num_registers: int = 0
  patch_size: int = 14
  pos_grid: tuple[int, int] = (37, 37)
  pos_offset: float = 0.0
  pos_antialias: bool = False
  dtype: Any = jnp.float32

  @property
  def mlp_hidden(self) -> int:
    hidden = int(self.width * self.mlp_ratio)
    # SwiGLU keeps 2/3 of the hidden width, rounded up to a multiple of 8.
    return (int(hidden * 2 / 3) + 7) // 8 * 8 if self.swiglu else hidden

  def grid_shape(self, image_hw: Sequence[int]) -> tuple[int, int]:
    """Patch grid (h, w) of an image of size `image_hw`; both must divide evenly."""
    return grid_shape(image_hw, self.patch_size)

  def normalize(self, images):
    """Images NHWC in [0, 1] -> this backbone's input (ImageNet normalisation)."""
    return imagenet_normalize(images)

  @nn.compact
  def __call__(self, images, blocks: Sequence[int] = ()):
    grid = check_inputs(images, blocks, depth=self.depth, patch_size=self.patch_size)
    batch = images.shape[0]
    x = PatchEmbed(self.width, self.patch_size, self.dtype, name="patch_embed")(images)
    cls = self.param("cls_token", nn.initializers.normal(1e-6), (1, 1, self.width))
    pos = self.param("pos_embed", nn.initializers.truncated_normal(0.02),
                     (1, 1 + self.pos_grid[0] * self.pos_grid[1], self.width))
    pos = resample_pos_embed(pos, self.pos_grid, grid, offset=self.pos_offset,
                             antialias=self.pos_antialias).astype(self.dtype)
    cls = jnp.broadcast_to(cls.astype(self.dtype), (batch, 1, self.width))
    x = jnp.concatenate([cls, x], axis=1) + pos
    if self.num_registers:
      registers = self.param("register_tokens", nn.initializers.zeros,
                             (1, self.num_registers, self.width))
      registers = jnp.broadcast_to(registers.astype(self.dtype), (batch, self.num_registers, self.width))
      x = jnp.concatenate([x[:, :1], registers, x[:, 1:]], axis=1)

    norm = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm")
    first_patch = 1 + self.num_registers
    intermediate = {}
    for i in range(self.depth):
      x = Block(self.num_heads, self.mlp_hidden, self.swiglu, self.dtype, name=f"blocks_{i}")(x)
      if i in blocks:
        intermediate[i] = norm(x)[:, first_patch:]
    x = norm(x)
    outputs = {"cls": x[:, 0], "patch_tokens": x[:, first_patch:]}
    if self.num_registers:
      outputs["registers"] = x[:, 1:first_patch]
    if blocks:
      outputs["blocks"] = intermediate
    return outputs


def vit(variant: str, **overrides) -> ViT:
  """ViT of a named variant ("S/14", "B/14", "L/14", "g/14", "tiny/14", ...)."""
  if variant not in VARIANTS:
    raise ValueError(f"unknown ViT variant {variant!r}; expected one of {sorted(VARIANTS)}")
  return ViT(**{**VARIANTS[variant], **overrides})


def build(variant: str, image_size: int = 224, dtype=jnp.float32) -> ViT:
  """The backbone registry's `build`: `variant` with its native grid at `image_size`."""
  model = vit(variant, dtype=jnp.dtype(dtype))
  return model.clone(pos_grid=grid_shape((image_size, image_size), model.patch_size))


def forward_flops(model: ViT, image_hw: Sequence[int]) -> int:
  """Model FLOPs of one image's forward pass: 2 per multiply-add of every matmul.

  The patch embedding, each block's qkv, q k^T, probabilities x v, proj and MLP
  (SwiGLU: w12 and w3); LayerNorms, softmax and activations are left out (about
  1% more at S/14). The count MFU divides by: tests/test_vit.py checks it
  against XLA's cost analysis.
  """
  h, w = model.grid_shape(image_hw)
  tokens, width, hidden = 1 + model.num_registers + h * w, model.width, model.mlp_hidden
  patch_embed = h * w * model.patch_size**2 * 3 * width
  mlp = 3 * width * hidden if model.swiglu else 2 * width * hidden
  block = tokens * (3 * width * width + width * width + mlp) + 2 * tokens * tokens * width
  return 2 * (patch_embed + model.depth * block)


class FrozenViT:
  """A ViT with fixed parameters, called as a function: `backbone(images, blocks=())`.

  For a frozen backbone the resampled position embeddings depend only on the
  input size, so they are computed once per size and cached (with one jitted
  forward per size) instead of being resampled inside every forward pass.
  Call it outside `jax.jit`: inside a traced function the parameters would be
  baked into the compiled program as constants.
  """

  def __init__(self, model: ViT, params):
    self.model = model
    self.params = params
    self._forwards = {}

  @property
  def patch_size(self) -> int:
    return self.model.patch_size

  def normalize(self, images):
    return self.model.normalize(images)

  def __call__(self, images, blocks: Sequence[int] = ()) -> dict:
    return self._forward(images)(images, blocks=tuple(blocks))

  def lower(self, images, blocks: Sequence[int] = ()):
    """The jitted forward for `images`, lowered (`.compile()` gives its HLO and cost analysis)."""
    forward = self._forward(images)
    return forward.func.lower(*forward.args, images, blocks=tuple(blocks))

  def _forward(self, images):
    """The jitted forward (params bound) for `images`' size, made once per size."""
    grid = self.model.grid_shape(images.shape[1:3])
    if grid not in self._forwards:
      self._forwards[grid] = self._forward_for(grid)
    return self._forwards[grid]

  def _forward_for(self, grid):
    model = self.model
    with jax.ensure_compile_time_eval():  # a concrete array even when first called under a trace
      pos = resample_pos_embed(self.params["pos_embed"], model.pos_grid, grid,
                               offset=model.pos_offset, antialias=model.pos_antialias)
    sized = model.clone(pos_grid=grid)  # its pos-embed already matches: no resampling
    params = {**self.params, "pos_embed": pos}
    return functools.partial(jax.jit(sized.apply, static_argnames="blocks"), {"params": params})
