"""Import DINOv2 weights into models/vit.py's ViT, through an explicit key map.

The generic half (reading checkpoint files, `convert_state_dict` over a key map,
`load_params`) is shared with the other backbones' loaders (models/clip.py).

    model, params = load_dinov2(source, variant=None, image_size=224)
    outputs = model.apply({"params": params}, imagenet_normalize(images))

`source` is any of
* an official checkpoint (`dinov2_vits14_pretrain.pth`, `..._reg4_pretrain.pth`;
  keys `blocks.0.attn.qkv.weight`, `blocks.0.ls1.gamma`, `pos_embed`, ...);
* a Hugging Face checkpoint, transformers 4.x names (`attention.attention.query`,
  `mlp.weights_in`) or 5.x names (`attention.q_proj`, `mlp.gate_proj`), as a
  `.safetensors` or `.bin` file or a folder holding them;
* an `.npz` of any of these (what the converter below writes);
* an in-memory dict of NumPy arrays in any of these namings.

The architecture is read off the checkpoint: depth from the block keys, width
and patch size from the shapes, heads = width / 64 (DINOv2's heads are
64-dimensional), SwiGLU and registers from the keys present; `variant` ("L/14")
is then checked against it. Every checkpoint key is consumed by a rule of the
key map or listed in IGNORED_KEYS, and every shape is checked: a missing,
unexpected or mis-shaped key raises CheckpointError naming it.

Position embeddings are resampled, for inputs other than the checkpoint's grid,
as the checkpoint's reference implementation does (see vit.resample_pos_embed):
official names -> DINOv2's own code (scale_factor with the +0.1 offset; with
antialias and no offset for register models), Hugging Face names -> transformers.

`.pth` / `.bin` need PyTorch (`pip install "mdmf_jax[torch]"`); `.safetensors`
and `.npz` do not. Convert once where PyTorch is installed, so cluster jobs
never import it:

    python -m mdmf_jax.models.weights --input dinov2_vitl14_pretrain.pth \
        --output dinov2_vitl14.npz
"""

from __future__ import annotations

import math
import os
import pathlib
import re
from typing import Any, Mapping, NamedTuple

from absl import app
from absl import flags
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from mdmf_jax.models.vit import VARIANTS, ViT


class CheckpointError(ValueError):
  """A checkpoint does not match the model: names the key and the shapes."""


class _Rule(NamedTuple):
  """Source names of one Flax module in each naming.

  kind: "linear" (torch weight (out, in) -> kernel (in, out), bias), "conv"
  (weight (out, in, kh, kw) -> kernel (kh, kw, in, out), bias), "layernorm"
  (weight -> scale, bias) or "param" (copied as is). Several names are
  concatenated along the output axis: Hugging Face splits DINOv2's fused qkv and
  SwiGLU w12 projections.
  """

  kind: str
  official: tuple[str, ...]
  hf4: tuple[str, ...]
  hf5: tuple[str, ...]


_TOP_LEVEL_RULES = {
    "patch_embed": _Rule("conv", ("patch_embed.proj",),
                         ("embeddings.patch_embeddings.projection",),
                         ("embeddings.patch_embeddings.projection",)),
    "cls_token": _Rule("param", ("cls_token",), ("embeddings.cls_token",), ("embeddings.cls_token",)),
    "pos_embed": _Rule("param", ("pos_embed",), ("embeddings.position_embeddings",),
                       ("embeddings.position_embeddings",)),
    "register_tokens": _Rule("param", ("register_tokens",), ("embeddings.register_tokens",),
                             ("embeddings.register_tokens",)),
    "norm": _Rule("layernorm", ("norm",), ("layernorm",), ("layernorm",)),
}

# Per block, relative to _BLOCK_PREFIX (Flax module "blocks_{i}/...").
_BLOCK_RULES = {
    "norm1": _Rule("layernorm", ("norm1",), ("norm1",), ("norm1",)),
    "attn/qkv": _Rule("linear", ("attn.qkv",),
                      ("attention.attention.query", "attention.attention.key",
                       "attention.attention.value"),
                      ("attention.q_proj", "attention.k_proj", "attention.v_proj")),
    "attn/proj": _Rule("linear", ("attn.proj",), ("attention.output.dense",), ("attention.o_proj",)),
    "ls1/gamma": _Rule("param", ("ls1.gamma",), ("layer_scale1.lambda1",), ("layer_scale1.lambda1",)),
    "norm2": _Rule("layernorm", ("norm2",), ("norm2",), ("norm2",)),
    "mlp/fc1": _Rule("linear", ("mlp.fc1",), ("mlp.fc1",), ("mlp.fc1",)),
    "mlp/fc2": _Rule("linear", ("mlp.fc2",), ("mlp.fc2",), ("mlp.fc2",)),
    "mlp/w12": _Rule("linear", ("mlp.w12",), ("mlp.weights_in",), ("mlp.gate_proj", "mlp.up_proj")),
    "mlp/w3": _Rule("linear", ("mlp.w3",), ("mlp.weights_out",), ("mlp.down_proj",)),
    "ls2/gamma": _Rule("param", ("ls2.gamma",), ("layer_scale2.lambda1",), ("layer_scale2.lambda1",)),
}
_BLOCK_PREFIX = {"official": "blocks.", "hf4": "encoder.layer.", "hf5": "encoder.layer."}

# Keys deliberately not loaded: the masked-image-modelling token of pretraining.
IGNORED_KEYS = {
    "official": ("mask_token",),
    "hf4": ("embeddings.mask_token",),
    "hf5": ("embeddings.mask_token",),
}

# (Flax leaf, source-name suffix) of each rule kind; None: the module is the leaf.
_LEAVES = {
    "linear": (("kernel", ".weight"), ("bias", ".bias")),
    "conv": (("kernel", ".weight"), ("bias", ".bias")),
    "layernorm": (("scale", ".weight"), ("bias", ".bias")),
    "param": ((None, ""),),
}


# --------------------------------------------------------------------------
# Reading checkpoints into {name: np.ndarray}.
# --------------------------------------------------------------------------


def _read_torch(path: pathlib.Path) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f"reading {path} needs PyTorch: pip install 'mdmf_jax[torch]', or convert it once "
        f"where PyTorch is installed: python -m mdmf_jax.models.weights --input {path} "
        "--output weights.npz"
    ) from e
  state = torch.load(path, map_location="cpu", weights_only=True)
  arrays = {}
  for key, value in state.items():
    if not isinstance(value, torch.Tensor):
      raise CheckpointError(f"{path}: key {key!r} holds a {type(value).__name__}, not a tensor; "
                            "expected a flat state dict")
    arrays[key] = (value.float() if value.is_floating_point() else value).numpy()
  return arrays


def _read_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
  # The Flax reader, as NumPy has no bfloat16; floats come back as float32.
  from safetensors.flax import load_file  # pylint: disable=g-import-not-at-top
  return {key: np.asarray(value.astype(jnp.float32) if jnp.issubdtype(value.dtype, jnp.floating)
                          else value)
          for key, value in load_file(path).items()}


def _read_npz(path: pathlib.Path) -> dict[str, np.ndarray]:
  with np.load(path) as archive:
    return {key: archive[key] for key in archive.files}


_READERS = {".pth": _read_torch, ".pt": _read_torch, ".bin": _read_torch,
            ".safetensors": _read_safetensors, ".npz": _read_npz}


def read_state_dict(source) -> dict[str, np.ndarray]:
  """{name: array} of a checkpoint file, a Hugging Face folder or a dict."""
  if isinstance(source, Mapping):
    return {str(key): np.asarray(value) for key, value in source.items()}
  path = pathlib.Path(source)
  if path.is_dir():
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    if not files:
      raise FileNotFoundError(f"{path} holds no *.safetensors or *.bin checkpoint")
    return {key: value for file in files for key, value in read_state_dict(file).items()}
  if not path.is_file():
    raise FileNotFoundError(f"no checkpoint at {path}")
  if path.suffix not in _READERS:
    raise ValueError(f"{path}: unsupported checkpoint format {path.suffix!r}; "
                     f"expected one of {sorted(_READERS)} or a folder")
  return _READERS[path.suffix](path)


# --------------------------------------------------------------------------
# Naming and architecture.
# --------------------------------------------------------------------------


def detect_naming(state: Mapping[str, Any]) -> str:
  """"official", "hf4" (transformers 4.x) or "hf5" (transformers 5.x)."""
  if "pos_embed" in state:
    return "official"
  if "embeddings.position_embeddings" in state:
    hf4 = any(".attention.attention." in key or ".mlp.weights_in." in key for key in state)
    return "hf4" if hf4 else "hf5"
  raise CheckpointError("not a DINOv2 checkpoint: no 'pos_embed' (official) or "
                        f"'embeddings.position_embeddings' (Hugging Face) key; keys: {sorted(state)[:8]}")


def require(state, key, purpose):
  """state[key]; CheckpointError naming the key and what it is `purpose`d for if absent."""
  if key not in state:
    raise CheckpointError(f"checkpoint has no key {key!r} (needed for {purpose})")
  return state[key]


def square_grid(state, key) -> tuple[int, int]:
  """(side, side): the grid of the (..., 1 + side**2, D) class + patch position embeddings."""
  num_positions = require(state, key, "the position grid").shape[-2] - 1
  side = math.isqrt(num_positions)
  if side * side != num_positions:
    raise CheckpointError(f"{key!r} holds {num_positions} patch positions, not a square grid")
  return side, side


def count_blocks(state, prefix: str) -> int:
  """How many blocks `{prefix}{i}.` the keys hold; their indices must be 0..n-1."""
  block = re.compile(re.escape(prefix) + r"(\d+)\.")
  indices = {int(m.group(1)) for m in map(block.match, state) if m}
  if indices != set(range(len(indices))):
    raise CheckpointError(f"block indices {sorted(indices)} are not 0..{len(indices) - 1}")
  return len(indices)


def _architecture(state, naming: str, variant: str | None) -> dict:
  """ViT keyword arguments read off the checkpoint, checked against `variant`."""
  top = {module: getattr(rule, naming)[0] for module, rule in _TOP_LEVEL_RULES.items()}
  width = require(state, top["cls_token"], "the width").shape[-1]
  patch_size = require(state, top["patch_embed"] + ".weight", "the patch size").shape[-1]
  swiglu_key = _BLOCK_PREFIX[naming] + "0." + getattr(_BLOCK_RULES["mlp/w12"], naming)[0] + ".weight"
  num_registers = state[top["register_tokens"]].shape[1] if top["register_tokens"] in state else 0
  arch = dict(width=width, depth=count_blocks(state, _BLOCK_PREFIX[naming]), num_heads=width // 64,
              swiglu=swiglu_key in state, num_registers=num_registers, patch_size=patch_size,
              pos_grid=square_grid(state, top["pos_embed"]))
  if variant is not None:
    if variant not in VARIANTS:
      raise ValueError(f"unknown ViT variant {variant!r}; expected one of {sorted(VARIANTS)}")
    spec = {"swiglu": False, **VARIANTS[variant]}
    for field in ("width", "depth", "swiglu"):
      if spec[field] != arch[field]:
        raise CheckpointError(f"variant {variant!r} has {field}={spec[field]}, "
                              f"the checkpoint {field}={arch[field]}")
    arch["num_heads"] = spec["num_heads"]
  elif width % 64:
    raise CheckpointError(f"width {width} is not a multiple of DINOv2's 64-dimensional heads; "
                          "pass `variant` to set the head count")
  # Each reference implementation's position-embedding resampling.
  official_plain = naming == "official" and not num_registers
  arch.update(pos_offset=0.1 if official_plain else 0.0, pos_antialias=num_registers > 0)
  return arch


# --------------------------------------------------------------------------
# The key map.
# --------------------------------------------------------------------------


def _rules(naming: str, depth: int) -> dict[str, tuple[str, tuple[str, ...]]]:
  """Flax module path -> (kind, source names) for a `depth`-block model."""
  rules = {module: (rule.kind, getattr(rule, naming)) for module, rule in _TOP_LEVEL_RULES.items()}
  for i in range(depth):
    prefix = f"{_BLOCK_PREFIX[naming]}{i}."
    for module, rule in _BLOCK_RULES.items():
      rules[f"blocks_{i}/{module}"] = (rule.kind, tuple(prefix + n for n in getattr(rule, naming)))
  return rules


def _source_shape(kind, leaf, shape, num_parts):
  """Torch-layout shape of each of `num_parts` sources of a Flax param of `shape`."""
  if leaf == "kernel" and kind == "linear":
    fan_in, fan_out = shape
    return (fan_out // num_parts, fan_in)
  if leaf == "kernel" and kind == "conv":
    kh, kw, fan_in, fan_out = shape
    return (fan_out, fan_in, kh, kw)
  if leaf == "bias":
    return (shape[0] // num_parts,)
  return tuple(shape)


def _to_flax(kind, leaf, parts):
  value = np.concatenate(parts, axis=0).astype(np.float32)
  if leaf == "kernel":
    value = value.T if kind == "linear" else value.transpose(2, 3, 1, 0)
  return value


def _sources(rules, expected):
  """(Flax param, kind, leaf, source keys, torch-layout shape of each) of every mapped param."""
  for module, (kind, names) in rules.items():
    for leaf, suffix in _LEAVES[kind]:
      target = module if leaf is None else f"{module}/{leaf}"
      if target not in expected:  # e.g. registers, or fc1 of a SwiGLU model
        continue
      keys = [name + suffix for name in names]
      yield target, kind, leaf, keys, _source_shape(kind, leaf, expected[target], len(keys))


def source_shapes(rules, expected: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
  """{checkpoint key: shape} that a model of Flax param shapes `expected` loads through `rules`."""
  return {key: shape for _, _, _, keys, shape in _sources(rules, expected) for key in keys}


def convert_state_dict(state, rules, expected: Mapping[str, tuple[int, ...]], ignored=()):
  """Flat {"a/b/c": array} Flax params from a state dict, strictly.

  `rules` maps Flax module paths to (kind, source names) (see _Rule); `expected`
  maps every Flax param path of the model to its shape; `ignored` lists the
  checkpoint keys deliberately left out.
  """
  params, used = {}, set()
  for target, kind, leaf, keys, shape in _sources(rules, expected):
    parts = []
    for key in keys:
      value = require(state, key, f"model param {target!r}")
      if value.shape != shape:
        raise CheckpointError(f"checkpoint key {key!r} has shape {value.shape}, the model "
                              f"expects {shape} (for param {target!r})")
      parts.append(value)
    used.update(keys)
    params[target] = _to_flax(kind, leaf, parts)
  unmapped = sorted(set(expected) - set(params))
  if unmapped:  # a model param that no rule fills: the key map is out of date
    raise CheckpointError(f"no key-map rule for model params {unmapped}")
  unused = sorted(set(state) - used - set(ignored))
  if unused:
    raise CheckpointError(f"checkpoint keys not used by the model: {unused[:10]}"
                          + (f" and {len(unused) - 10} more" if len(unused) > 10 else ""))
  return params


def load_dinov2(source, variant: str | None = None, image_size=224, dtype=jnp.float32):
  """(ViT, params) from a DINOv2 checkpoint; see the module docstring.

  Args:
    source: checkpoint path, Hugging Face folder, or dict of NumPy arrays.
    variant: expected variant name ("S/14", ..., see vit.VARIANTS), checked
      against the checkpoint; None infers it.
    image_size: int or (height, width) the model is traced at to check the
      params; the model then accepts any multiple of the patch size.
    dtype: compute dtype (params stay float32).
  """
  state = read_state_dict(source)
  naming = detect_naming(state)
  model = ViT(**_architecture(state, naming, variant), dtype=jnp.dtype(dtype))
  return model, load_params(model, state, _rules(naming, model.depth), IGNORED_KEYS[naming],
                            image_size)


def param_shapes(model, image_size=224) -> dict[str, tuple[int, ...]]:
  """{"a/b/c": shape} of `model`'s params, traced abstractly (nothing is allocated)."""
  hw = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
  images = jax.ShapeDtypeStruct((1, *hw, 3), jnp.float32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), images)["params"]
  return {path: leaf.shape for path, leaf in traverse_util.flatten_dict(shapes, sep="/").items()}


def load_params(model, state, rules, ignored, image_size=224):
  """`model`'s params from `state` through the key map `rules`, traced at `image_size`."""
  flat = convert_state_dict(state, rules, param_shapes(model, image_size), ignored)
  return traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in flat.items()}, sep="/")


# --------------------------------------------------------------------------
# Command-line converter.
# --------------------------------------------------------------------------


def convert(source, output, variant: str | None = None) -> ViT:
  """Checks that `source` loads, then writes its state dict to `output` (.npz).

  Keys keep their original naming (so the same resampling convention applies
  after conversion); floats are stored as float32. Returns the model.
  """
  if not os.fspath(output).endswith(".npz"):
    raise ValueError(f"--output {output!r}: expected a path ending in .npz")
  state = read_state_dict(source)
  model, _ = load_dinov2(state, variant)
  np.savez(output, **{k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in state.items()})
  return model


def main(argv):
  del argv
  args = flags.FLAGS
  model = convert(args.input, args.output, args.variant)
  print(f"wrote {args.output}: width {model.width}, depth {model.depth}, "
        f"{model.num_registers} registers, swiglu={model.swiglu}, "
        f"position grid {model.pos_grid}")


if __name__ == "__main__":
  # Defined here, not at import: importers of this module keep their own flags.
  flags.DEFINE_string("input", None, "DINOv2 checkpoint: .pth, .bin, .safetensors, .npz "
                      "or a Hugging Face folder.")
  flags.DEFINE_string("output", None, "Where to write the .npz.")
  flags.DEFINE_string("variant", None, "Expected variant, e.g. L/14; inferred if unset.")
  flags.mark_flags_as_required(["input", "output"])
  app.run(main)
