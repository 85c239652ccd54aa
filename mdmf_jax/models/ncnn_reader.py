"""Reads an ncnn model: the `.param` graph (text) and the `.bin` weights.

    model = read_model("realesrgan-x4plus.param", "realesrgan-x4plus.bin")
    conv = model.layers_of("Convolution")[0]
    conv.params[0], conv.weights["weight"].shape  # num_output, (O, I, kH, kW)

`.param` (text): the magic line `7767517`, a line `layer_count blob_count`, then
one line per layer, `Type name n_bottoms n_tops bottom... top... k=v ...`.
Keys are ncnn's integer parameter ids; a value with a '.' or an exponent is a
float, else an int; a key -23300-k holds array k, written `count,v1,v2,...`.

`.bin` (raw, no header): each layer's weights in `.param` order. A tagged array
starts with a 4-byte tag: 0x01306B47 (fp16 values, padded to 4 bytes) or 0
(fp32 values). Untagged arrays are fp32. Layers read here:
  Convolution: weight (tagged, num_output x in x kH x kW), then bias (untagged,
               num_output) when 5=1; the fused activation is 9= / 10= in params.
  PReLU:       slope (untagged, 0=num_slope values).
  Input, Split, Concat, Eltwise, BinaryOp, Interp, PixelShuffle: no weights.
Any other layer type, an int8 or quantised weight tag, a `.bin` that ends inside
a layer or has bytes left after the last one raise NcnnFormatError naming the
file and the layer.

`ncnn_runner(param, bin)` runs the same files with the `ncnn` package (a test
extra), the reference the ports are checked against.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Union

import numpy as np

MAGIC = 7767517
FP16_TAG = 0x01306B47
_ARRAY_KEY_BASE = -23300
_WEIGHTLESS = ("Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp", "PixelShuffle")

ParamValue = Union[int, float, tuple]


class NcnnFormatError(ValueError):
  """A `.param` / `.bin` file is malformed or uses a feature not read here."""


@dataclasses.dataclass
class Layer:
  """One layer of the graph: ncnn parameter ids -> values, weights by name."""

  type: str
  name: str
  bottoms: tuple[str, ...]
  tops: tuple[str, ...]
  params: dict[int, ParamValue]
  weights: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def param(self, key: int, default: ParamValue = 0) -> ParamValue:
    return self.params.get(key, default)


@dataclasses.dataclass
class NcnnModel:
  """The layers of a model, in `.param` order (a topological order of the graph)."""

  layers: list[Layer]
  param_path: str
  bin_path: str

  def layers_of(self, layer_type: str) -> list[Layer]:
    return [layer for layer in self.layers if layer.type == layer_type]


def _value(text: str, where: str) -> int | float:
  try:
    return float(text) if re.search(r"[.eE]", text) else int(text)
  except ValueError:
    raise NcnnFormatError(f"{where}: bad value {text!r}") from None


def _parse_params(fields: list[str], where: str) -> dict[int, ParamValue]:
  params = {}
  for field in fields:
    key_text, sep, value_text = field.partition("=")
    if not sep:
      raise NcnnFormatError(f"{where}: expected key=value, got {field!r}")
    key = int(_value(key_text, where))
    if key <= _ARRAY_KEY_BASE:
      count, *values = value_text.split(",")
      if int(count) != len(values):
        raise NcnnFormatError(f"{where}: array {key} declares {count} values, has {len(values)}")
      params[_ARRAY_KEY_BASE - key] = tuple(_value(v, where) for v in values)
    else:
      params[key] = _value(value_text, where)
  return params


def read_param(path: str) -> list[Layer]:
  """The layers of an ncnn `.param` text file (weights not loaded)."""
  with open(path, encoding="ascii") as f:
    lines = [line.split() for line in f if line.strip()]
  if not lines or lines[0] != [str(MAGIC)]:
    raise NcnnFormatError(f"{path}: first line is not the ncnn magic {MAGIC}")
  if len(lines) < 2 or len(lines[1]) != 2:
    raise NcnnFormatError(f"{path}: second line must be 'layer_count blob_count'")
  layer_count = int(lines[1][0])
  if len(lines) - 2 != layer_count:
    raise NcnnFormatError(f"{path}: header says {layer_count} layers, file has {len(lines) - 2}")
  layers = []
  for number, fields in enumerate(lines[2:], start=3):
    where = f"{path}:{number}"
    if len(fields) < 4:
      raise NcnnFormatError(f"{where}: a layer line needs type, name and blob counts")
    layer_type, name = fields[0], fields[1]
    n_bottoms, n_tops = int(fields[2]), int(fields[3])
    blobs = fields[4:4 + n_bottoms + n_tops]
    if len(blobs) != n_bottoms + n_tops:
      raise NcnnFormatError(f"{where} ({name}): fewer blob names than declared")
    layers.append(Layer(layer_type, name, tuple(blobs[:n_bottoms]), tuple(blobs[n_bottoms:]),
                        _parse_params(fields[4 + n_bottoms + n_tops:], f"{where} ({name})")))
  return layers


class _BinReader:
  """Reads arrays off a `.bin` in order, naming the layer when the file runs out."""

  def __init__(self, path: str):
    self.path = path
    with open(path, "rb") as f:
      self.data = f.read()
    self.offset = 0

  def _take(self, size: int, layer: Layer) -> bytes:
    if self.offset + size > len(self.data):
      raise NcnnFormatError(
          f"{self.path}: ends inside layer {layer.name} ({layer.type}): needs {size} bytes at "
          f"offset {self.offset}, {len(self.data) - self.offset} left")
    chunk = self.data[self.offset:self.offset + size]
    self.offset += size
    return chunk

  def untagged(self, count: int, layer: Layer) -> np.ndarray:
    return np.frombuffer(self._take(4 * count, layer), "<f4").copy()

  def tagged(self, count: int, layer: Layer) -> np.ndarray:
    tag = int.from_bytes(self._take(4, layer), "little")
    if tag == FP16_TAG:
      padded = -(-2 * count // 4) * 4
      return np.frombuffer(self._take(padded, layer)[:2 * count], "<f2").astype(np.float32)
    if tag == 0:
      return self.untagged(count, layer)
    raise NcnnFormatError(
        f"{self.path}: layer {layer.name} ({layer.type}) has weight tag {tag:#010x} at offset "
        f"{self.offset - 4}; only fp16 ({FP16_TAG:#010x}) and fp32 (0) weights are read "
        "(int8 and quantised tables are not)")


def _load_convolution(layer: Layer, reader: _BinReader) -> None:
  num_output = layer.param(0)
  kernel_w = layer.param(1)
  kernel_h = layer.param(11, kernel_w)
  size = layer.param(6)
  if layer.param(8):
    raise NcnnFormatError(f"{reader.path}: layer {layer.name} is int8-quantised; not read")
  if not num_output or size % (num_output * kernel_h * kernel_w):
    raise NcnnFormatError(
        f"{layer.name}: weight_data_size {size} is not a multiple of "
        f"num_output x kernel = {num_output} x {kernel_h} x {kernel_w}")
  in_channels = size // (num_output * kernel_h * kernel_w)
  layer.weights["weight"] = reader.tagged(size, layer).reshape(
      num_output, in_channels, kernel_h, kernel_w)
  if layer.param(5):
    layer.weights["bias"] = reader.untagged(num_output, layer)


def _load_prelu(layer: Layer, reader: _BinReader) -> None:
  layer.weights["slope"] = reader.untagged(layer.param(0, 1), layer)


_WEIGHT_LOADERS = {"Convolution": _load_convolution, "PReLU": _load_prelu}


def read_model(param_path: str, bin_path: str) -> NcnnModel:
  """The graph of `param_path` with the weights of `bin_path`; the `.bin` is consumed exactly."""
  layers = read_param(param_path)
  reader = _BinReader(bin_path)
  for layer in layers:
    if layer.type in _WEIGHT_LOADERS:
      _WEIGHT_LOADERS[layer.type](layer, reader)
    elif layer.type not in _WEIGHTLESS:
      raise NcnnFormatError(
          f"{param_path}: layer {layer.name} has type {layer.type}, which is not read here "
          f"(supported: {', '.join(sorted(_WEIGHTLESS + tuple(_WEIGHT_LOADERS)))})")
  left = len(reader.data) - reader.offset
  if left:
    raise NcnnFormatError(
        f"{bin_path}: {left} bytes left after the last layer ({layers[-1].name}); "
        f"{param_path} does not describe this .bin")
  return NcnnModel(layers, param_path, bin_path)


def ncnn_runner(param_path: str, bin_path: str, input_blob: str = "data",
                output_blob: str = "output") -> Callable[[np.ndarray], np.ndarray]:
  """A function (N, H, W, C) float32 -> the ncnn net's raw output, NHWC.

  ncnn's CPU path, one thread, fp16/bf16 storage and arithmetic off, so that it
  computes in float32 like the ports. Needs `pip install ncnn`.
  """
  import ncnn  # pylint: disable=g-import-not-at-top  (a test extra)
  net = ncnn.Net()
  net.opt.use_vulkan_compute = False
  net.opt.num_threads = 1
  for option in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                 "use_bf16_storage"):
    setattr(net.opt, option, False)
  if net.load_param(param_path) or net.load_model(bin_path):
    raise NcnnFormatError(f"ncnn could not load {param_path} / {bin_path}")

  def run(images: np.ndarray) -> np.ndarray:
    outputs = []
    for image in images:
      chw = np.ascontiguousarray(image.transpose(2, 0, 1), np.float32)  # the Mat borrows it
      extractor = net.create_extractor()
      extractor.input(input_blob, ncnn.Mat(chw))
      status, out = extractor.extract(output_blob)
      if status:
        raise RuntimeError(f"ncnn failed to compute {output_blob} of {param_path}: {status}")
      outputs.append(np.array(out).transpose(1, 2, 0))
    return np.stack(outputs)
  return run
