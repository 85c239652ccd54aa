"""Flax ports of Real-ESRGAN's generators, loaded from their ncnn models.

    model = ncnn_reader.read_model("realesrgan-x4plus.param", "realesrgan-x4plus.bin")
    module, params = from_ncnn(model)
    high = jax.jit(functools.partial(super_resolve, module))(params, low)  # NHWC in [0, 1]

Two architectures (Wang et al., "Real-ESRGAN", 2021; basicsr's `RRDBNet` and
`SRVGGNetCompact`):
  RRDBNet:          conv_first; num_block residual-in-residual dense blocks (3
                    dense blocks of 5 convs each, residuals scaled by 0.2);
                    conv_body + trunk skip; two nearest x2 upsamplings, each
                    followed by a conv; conv_hr; conv_last. LeakyReLU(0.2) after
                    the dense blocks' conv1-4, conv_up1/2 and conv_hr.
                    `realesrgan-x4plus` has 23 blocks, `-anime` 6.
  SRVGGNetCompact:  num_conv + 1 convs each followed by a per-channel PReLU, a
                    conv to out x upscale^2 channels, pixel shuffle, plus the
                    nearest-upsampled input (`realesr-animevideov3`).
Layout is NHWC, RGB in [0, 1]; every conv is 3x3, stride 1, zero padding 1.

`from_ncnn` reads the architecture off the graph (block count, widths, scale),
checks every non-weight layer's parameters against what the Flax module computes
(Eltwise coefficients, Interp mode and scale, BinaryOp kind, fused activation),
and maps each Convolution / PReLU of the `.param`, in order, to one Flax
parameter with equal shape. Anything left over, missing or different raises
ArchitectureError naming the ncnn layer.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mdmf_jax.models.ncnn_reader import Layer, NcnnModel

LEAKY_SLOPE = 0.2
RESIDUAL_SCALE = 0.2
# ncnn ids: Convolution 9 = activation type (2: LeakyReLU), Eltwise 0 = op (1: sum),
# BinaryOp 0 = op (0: add), Interp 0 = resize type (1: nearest).
_LEAKY_RELU, _ELTWISE_SUM, _BINARY_ADD, _INTERP_NEAREST = 2, 1, 0, 1


class ArchitectureError(ValueError):
  """An ncnn graph is not one of the architectures ported here: names the layer."""


def _conv(features: int, name: str) -> nn.Conv:
  # Full float32 on every backend (TPU/GPU defaults use bf16/TF32 passes), so a
  # fake is the same image wherever it is generated.
  return nn.Conv(features, (3, 3), padding=1, precision=jax.lax.Precision.HIGHEST, name=name)


def _lrelu(x):
  return nn.leaky_relu(x, LEAKY_SLOPE)


def upsample_nearest(x, factor: int):
  """NHWC nearest-neighbour upsampling by an integer factor (ncnn Interp type 1)."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def pixel_shuffle(x, factor: int):
  """NHWC depth-to-space; channel c * f^2 + i * f + j -> channel c at offset (i, j)."""
  n, h, w, channels = x.shape
  c = channels // (factor * factor)
  x = x.reshape(n, h, w, c, factor, factor).transpose(0, 1, 4, 2, 5, 3)
  return x.reshape(n, h * factor, w * factor, c)


class ResidualDenseBlock(nn.Module):
  """Five convs, each seeing the concatenation of the input and all earlier outputs."""

  num_feat: int
  num_grow_ch: int

  @nn.compact
  def __call__(self, x):
    features = [x]
    for i in range(1, 5):
      features.append(_lrelu(_conv(self.num_grow_ch, f"conv{i}")(jnp.concatenate(features, -1))))
    return RESIDUAL_SCALE * _conv(self.num_feat, "conv5")(jnp.concatenate(features, -1)) + x


class RRDB(nn.Module):
  """Residual in residual dense block: three dense blocks and a 0.2-scaled skip."""

  num_feat: int
  num_grow_ch: int

  @nn.compact
  def __call__(self, x):
    out = x
    for i in range(1, 4):
      out = ResidualDenseBlock(self.num_feat, self.num_grow_ch, name=f"rdb{i}")(out)
    return RESIDUAL_SCALE * out + x


class _RRDBStep(nn.Module):
  """RRDB as a scan step: (carry, unused) -> (next carry, None)."""

  num_feat: int
  num_grow_ch: int

  @nn.compact
  def __call__(self, x, _):
    return RRDB(self.num_feat, self.num_grow_ch, name="rrdb")(x), None


class RRDBNet(nn.Module):
  """ESRGAN's x4 generator: (N, H, W, in) -> (N, 4H, 4W, out), unclipped."""

  num_block: int = 23
  num_feat: int = 64
  num_grow_ch: int = 32
  num_in_ch: int = 3
  num_out_ch: int = 3
  scale = 4

  @nn.compact
  def __call__(self, x):
    feat = _conv(self.num_feat, "conv_first")(x)
    # One traced block scanned over stacked weights: compiling 23 unrolled blocks
    # takes minutes on CPU, the scan seconds, at the same run time.
    blocks = nn.scan(_RRDBStep, variable_axes={"params": 0}, split_rngs={"params": True},
                     length=self.num_block)
    body, _ = blocks(self.num_feat, self.num_grow_ch, name="body")(feat, None)
    feat = feat + _conv(self.num_feat, "conv_body")(body)
    feat = _lrelu(_conv(self.num_feat, "conv_up1")(upsample_nearest(feat, 2)))
    feat = _lrelu(_conv(self.num_feat, "conv_up2")(upsample_nearest(feat, 2)))
    return _conv(self.num_out_ch, "conv_last")(_lrelu(_conv(self.num_feat, "conv_hr")(feat)))


class PReLU(nn.Module):
  """Per-channel PReLU: x if x >= 0 else slope[c] * x."""

  features: int

  @nn.compact
  def __call__(self, x):
    slope = self.param("slope", nn.initializers.constant(0.25), (self.features,))
    return jnp.where(x >= 0, x, slope * x)


class SRVGGNetCompact(nn.Module):
  """Real-ESRGAN's compact net: a plain conv/PReLU stack, pixel shuffle, input skip."""

  num_feat: int = 64
  num_conv: int = 16
  scale: int = 4
  num_in_ch: int = 3
  num_out_ch: int = 3

  @nn.compact
  def __call__(self, x):
    out = x
    for i in range(self.num_conv + 1):
      out = PReLU(self.num_feat, name=f"prelu_{i}")(_conv(self.num_feat, f"conv_{i}")(out))
    out = _conv(self.num_out_ch * self.scale ** 2, "conv_last")(out)
    return pixel_shuffle(out, self.scale) + upsample_nearest(x, self.scale)


def super_resolve(module: nn.Module, params, images):
  """NHWC in [0, 1] -> the module's output clipped to [0, 1] (jit with `module` bound)."""
  return jnp.clip(module.apply({"params": params}, images), 0.0, 1.0)


class _Slot(NamedTuple):
  """One weight layer the Flax module expects: its parameter path and ncnn form."""

  path: tuple[str, ...]
  layer_type: str  # "Convolution" or "PReLU"
  leaky: bool = False  # LeakyReLU(0.2) fused into the Convolution
  block: int | None = None  # index along the stacked (scanned) RRDB axis

  def __str__(self):
    return "/".join(self.path) + ("" if self.block is None else f"[block {self.block}]")


def _slots(module: nn.Module) -> list[_Slot]:
  """The module's weight layers in the order of its forward pass (= ncnn's order)."""
  if isinstance(module, RRDBNet):
    slots = [_Slot(("conv_first",), "Convolution")]
    for b in range(module.num_block):
      for r in range(1, 4):
        slots += [_Slot(("body", "rrdb", f"rdb{r}", f"conv{c}"), "Convolution", c < 5, b)
                  for c in range(1, 6)]
    return slots + [_Slot(("conv_body",), "Convolution"),
                    _Slot(("conv_up1",), "Convolution", True),
                    _Slot(("conv_up2",), "Convolution", True),
                    _Slot(("conv_hr",), "Convolution", True),
                    _Slot(("conv_last",), "Convolution")]
  slots = []
  for i in range(module.num_conv + 1):
    slots += [_Slot((f"conv_{i}",), "Convolution"), _Slot((f"prelu_{i}",), "PReLU")]
  return slots + [_Slot(("conv_last",), "Convolution")]


def _expect(condition: bool, layer: Layer, message: str) -> None:
  if not condition:
    raise ArchitectureError(f"layer {layer.name} ({layer.type}): {message}")


def _architecture(model: NcnnModel) -> nn.Module:
  convs = model.layers_of("Convolution")
  if len(convs) < 2:
    raise ArchitectureError(f"{model.param_path}: {len(convs)} convolutions; not a ported net")
  first, last = convs[0], convs[-1]
  num_in_ch = first.weights["weight"].shape[1]
  if model.layers_of("Concat"):
    num_block, rest = divmod(len(convs) - 6, 15)
    _expect(rest == 0 and num_block > 0, last,
            f"{len(convs)} convolutions is not 15 per block + 6 (RRDBNet)")
    return RRDBNet(num_block=num_block, num_feat=first.param(0), num_grow_ch=convs[1].param(0),
                   num_in_ch=num_in_ch, num_out_ch=last.param(0))
  shuffles = model.layers_of("PixelShuffle")
  if len(shuffles) == 1 and model.layers_of("PReLU"):
    scale = shuffles[0].param(0)
    return SRVGGNetCompact(num_feat=first.param(0), num_conv=len(convs) - 2, scale=scale,
                           num_in_ch=num_in_ch, num_out_ch=last.param(0) // scale ** 2)
  raise ArchitectureError(f"{model.param_path}: neither RRDBNet (Concat layers) nor "
                          "SRVGGNetCompact (PReLU and one PixelShuffle)")


def _check_conv(layer: Layer, slot: _Slot) -> None:
  pad = layer.param(4)
  pads = (pad, layer.param(14, pad), layer.param(15, pad), layer.param(16, layer.param(14, pad)))
  kernel = (layer.param(1), layer.param(11, layer.param(1)))
  _expect(kernel == (3, 3), layer, f"kernel {kernel}, expected 3x3")
  _expect(pads == (1, 1, 1, 1), layer, f"padding {pads}, expected 1 on every side")
  for key, what in ((2, "dilation"), (12, "dilation_h"), (3, "stride"), (13, "stride_h")):
    _expect(layer.param(key, 1) == 1, layer, f"{what} {layer.param(key)}, expected 1")
  _expect(layer.param(5) == 1, layer, "no bias term")
  activation = (layer.param(9), tuple(np.float32(layer.param(10, ()))))
  expected = (_LEAKY_RELU, (np.float32(LEAKY_SLOPE),)) if slot.leaky else (0, ())
  _expect(activation == expected, layer,
          f"fused activation {activation}, the port applies {expected} at {slot}")


def _layers(model: NcnnModel, layer_type: str, count: int, note: str = "") -> list[Layer]:
  layers = model.layers_of(layer_type)
  if len(layers) != count:
    raise ArchitectureError(f"{model.param_path}: {len(layers)} {layer_type} layers, the port "
                            f"has {count}{note}")
  return layers


def _check_weightless(model: NcnnModel, module: nn.Module) -> None:
  """The layers without weights compute what the Flax module computes."""
  is_rrdb = isinstance(module, RRDBNet)
  interp_scales = [2, 2] if is_rrdb else [module.scale]
  interps = _layers(model, "Interp", len(interp_scales),
                    "" if is_rrdb else " (the x2/x3 animevideov3 files end with a resize "
                    "and are not ported)")
  for layer, scale in zip(interps, interp_scales):
    _expect(layer.param(0) == _INTERP_NEAREST and layer.param(1) == layer.param(2) == scale,
            layer, f"expected nearest x{scale}, got params {layer.params}")
  (add,) = _layers(model, "BinaryOp", 1)
  _expect(add.param(0) == _BINARY_ADD and len(add.bottoms) == 2, add,
          "expected the addition of two blobs")
  eltwise_coeffs = (np.float32(RESIDUAL_SCALE), np.float32(1.0))
  for layer in _layers(model, "Eltwise", 4 * module.num_block if is_rrdb else 0):
    _expect(layer.param(0) == _ELTWISE_SUM
            and tuple(np.float32(layer.param(1, ()))) == eltwise_coeffs, layer,
            f"expected {RESIDUAL_SCALE} * residual + 1.0 * input, got params {layer.params}")
  for layer in model.layers_of("Concat"):
    _expect(layer.param(0) == 0, layer, "concatenation not along channels")


def from_ncnn(model: NcnnModel) -> tuple[nn.Module, dict]:
  """(Flax module, params) of an ncnn Real-ESRGAN model; strict, see the module doc."""
  module = _architecture(model)
  _check_weightless(model, module)
  dummy = jnp.zeros((1, 8, 8, module.num_in_ch))
  shapes = jax.eval_shape(module.init, jax.random.key(0), dummy)["params"]
  weighted = [layer for layer in model.layers if layer.weights]
  slots = _slots(module)
  if len(weighted) != len(slots):
    raise ArchitectureError(f"{model.param_path}: {len(weighted)} layers with weights, the "
                            f"{type(module).__name__} port has {len(slots)}")
  params = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  written = 0
  for layer, slot in zip(weighted, slots):
    _expect(layer.type == slot.layer_type, layer, f"expected {slot.layer_type} at {slot}")
    target = params
    for key in slot.path:
      target = target[key]
    if slot.layer_type == "PReLU":
      values = {"slope": layer.weights["slope"]}
    else:
      _check_conv(layer, slot)
      values = {"kernel": layer.weights["weight"].transpose(2, 3, 1, 0),  # OIHW -> HWIO
                "bias": layer.weights["bias"]}
    for name, value in values.items():
      destination = target[name] if slot.block is None else target[name][slot.block]
      _expect(value.shape == destination.shape, layer,
              f"{name} shape {value.shape}, the port has {destination.shape} at {slot}")
      destination[...] = value
      written += value.size
  total = sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))
  if written != total:  # a Flax parameter that no slot maps
    raise ArchitectureError(f"{model.param_path}: {written} weights read, the port has {total}")
  return module, jax.tree_util.tree_map(jnp.asarray, params)
