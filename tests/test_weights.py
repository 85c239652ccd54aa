"""DINOv2 weight import: parity with transformers' PyTorch models, strict key map, formats.

References are randomly initialised transformers `Dinov2Model` /
`Dinov2WithRegistersModel`s (no download), every parameter perturbed so that a
swapped or dropped tensor shows. The transformers 4.x and official namings are
built from the 5.x state dict with the published key maps (transformers'
conversion_mapping.py; DINOv2's `Block` / `SwiGLUFFNFused` modules).
"""

import math
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
import safetensors.numpy

from mdmf_jax.models import weights
from mdmf_jax.models.weights import CheckpointError, load_dinov2

from tests import references

torch = references.optional("torch")
transformers = references.optional("transformers")
# The references are PyTorch models: without torch and transformers these tests
# are skipped with the install command as reason (CI fails instead, test_vit.py).
pytestmark = references.needs("torch", "transformers")

WIDTH = 128  # two 64-dimensional heads
NATIVE = 56  # a 4 x 4 position grid
SIZES = [(56, 56), (84, 98), (28, 42)]  # native, larger and non-square, smaller


def _hf_model(registers=0, swiglu=False):
  kwargs = dict(hidden_size=WIDTH, num_hidden_layers=2, num_attention_heads=2,
                image_size=NATIVE, patch_size=14, use_swiglu_ffn=swiglu)
  torch.manual_seed(registers + 2 * swiglu)
  if registers:
    config = transformers.Dinov2WithRegistersConfig(num_register_tokens=registers, **kwargs)
    model = transformers.Dinov2WithRegistersModel(config)
  else:
    model = transformers.Dinov2Model(transformers.Dinov2Config(**kwargs))
  with torch.no_grad():
    for param in model.parameters():  # non-trivial LayerNorms, biases, LayerScales
      param.add_(0.05 * torch.randn_like(param))
  return model.eval()


def _hf5_state(model):
  return {key: value.numpy().copy() for key, value in model.state_dict().items()}


def _renamed(hf5, renames, fused):
  """hf5 with substrings renamed; `fused` joins split projections along the output axis."""
  joined = [part for _, rest in fused.values() for part in rest]
  state = {}
  for key, value in hf5.items():
    if any(part in key for part in joined):
      continue  # concatenated onto the first part below
    for first, (name, rest) in fused.items():
      if first in key:
        value = np.concatenate([value] + [hf5[key.replace(first, part)] for part in rest])
        key = key.replace(first, name)
    for old, new in renames:
      key = key.replace(old, new)
    state[key] = value
  return state


def _hf4_state(hf5):
  """transformers 4.x names: the inverse of transformers' Dinov2 conversion mapping."""
  renames = [("attention.q_proj", "attention.attention.query"),
             ("attention.k_proj", "attention.attention.key"),
             ("attention.v_proj", "attention.attention.value"),
             ("attention.o_proj", "attention.output.dense"),
             ("mlp.down_proj", "mlp.weights_out")]
  return _renamed(hf5, renames, {"mlp.gate_proj": ("mlp.weights_in", ["mlp.up_proj"])})


def _official_state(hf5):
  """Official DINOv2 names, with the fused qkv and SwiGLU w12 projections."""
  renames = [("embeddings.patch_embeddings.projection", "patch_embed.proj"),
             ("embeddings.position_embeddings", "pos_embed"),
             ("embeddings.", ""),
             ("encoder.layer.", "blocks."),
             ("layernorm", "norm"),
             ("attention.o_proj", "attn.proj"),
             ("layer_scale1.lambda1", "ls1.gamma"),
             ("layer_scale2.lambda1", "ls2.gamma"),
             ("mlp.down_proj", "mlp.w3")]
  fused = {"attention.q_proj": ("attn.qkv", ["attention.k_proj", "attention.v_proj"]),
           "mlp.gate_proj": ("mlp.w12", ["mlp.up_proj"])}
  return _renamed(hf5, renames, fused)


def _official_interpolate(self, embeddings, height, width):
  """facebookresearch/dinov2 `DinoVisionTransformer.interpolate_pos_encoding`, no registers
  (interpolate_offset=0.1, antialias off), in place of transformers' version."""
  pos_embed = self.position_embeddings
  npatch, n = embeddings.shape[1] - 1, pos_embed.shape[1] - 1
  if npatch == n and height == width:
    return pos_embed
  h0, w0 = height // 14, width // 14
  m = int(math.sqrt(n))
  patch_pos_embed = torch.nn.functional.interpolate(
      pos_embed[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2),
      scale_factor=((h0 + 0.1) / m, (w0 + 0.1) / m), mode="bicubic", antialias=False)
  assert patch_pos_embed.shape[-2:] == (h0, w0)
  patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).reshape(1, h0 * w0, -1)
  return torch.cat((pos_embed[:, :1], patch_pos_embed), dim=1)


@pytest.fixture(scope="module", params=[(0, False), (4, False), (0, True)],
                ids=["plain", "registers", "swiglu"])
def hf_model(request):
  return _hf_model(*request.param)


def _images(hw, batch=2):
  return np.random.default_rng(sum(hw)).normal(size=(batch, *hw, 3)).astype(np.float32)


def _reference(model, images, official, monkeypatch):
  if official and not getattr(model.config, "num_register_tokens", 0):
    monkeypatch.setattr(type(model.embeddings), "interpolate_pos_encoding", _official_interpolate)
  with torch.no_grad():
    out = model(torch.from_numpy(images).permute(0, 3, 1, 2), output_hidden_states=True)
    blocks = [model.layernorm(h).numpy() for h in out.hidden_states[1:]]
  return out.last_hidden_state.numpy(), out.pooler_output.numpy(), blocks


@pytest.mark.parametrize("naming", ["hf5", "hf4", "official"])
def test_parity_with_transformers(hf_model, naming, monkeypatch):
  hf5 = _hf5_state(hf_model)
  state = {"hf5": hf5, "hf4": _hf4_state(hf5), "official": _official_state(hf5)}[naming]
  assert weights.detect_naming(state) == naming
  model, params = load_dinov2(state)
  forward = jax.jit(model.apply, static_argnames="blocks")
  for hw in SIZES:
    images = _images(hw)
    last, pooled, blocks = _reference(hf_model, images, naming == "official", monkeypatch)
    ours = forward({"params": params}, images, blocks=(0,))
    tokens = [ours["cls"][:, None], ours.get("registers", last[:, 1:1]), ours["patch_tokens"]]
    np.testing.assert_allclose(np.concatenate(tokens, axis=1), last, atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours["cls"], pooled, atol=1e-4, rtol=0)
    first_patch = 1 + model.num_registers
    np.testing.assert_allclose(ours["blocks"][0], blocks[0][:, first_patch:], atol=1e-4, rtol=0)


def test_variant_inferred_from_keys():
  state = _hf5_state(_hf_model(registers=4, swiglu=True))
  model, _ = load_dinov2(state)
  assert (model.width, model.depth, model.num_heads) == (WIDTH, 2, 2)
  assert model.swiglu and model.num_registers == 4 and model.pos_grid == (4, 4)
  assert (model.pos_offset, model.pos_antialias) == (0.0, True)
  official, _ = load_dinov2(_official_state(_hf5_state(_hf_model())), variant="tiny/14")
  assert (official.pos_offset, official.pos_antialias, official.swiglu) == (0.1, False, False)


@pytest.fixture(scope="module")
def hf5():
  return _hf5_state(_hf_model())


def test_wrong_shape_names_key_and_shapes(hf5):
  state = dict(hf5)
  state["encoder.layer.1.attention.k_proj.weight"] = np.zeros((WIDTH, WIDTH + 1), np.float32)
  with pytest.raises(CheckpointError, match=r"'encoder.layer.1.attention.k_proj.weight' has shape "
                     r"\(128, 129\), the model expects \(128, 128\)"):
    load_dinov2(state)


def test_missing_key_is_named(hf5):
  state = {k: v for k, v in hf5.items() if k != "encoder.layer.0.norm2.bias"}
  with pytest.raises(CheckpointError, match="no key 'encoder.layer.0.norm2.bias'"):
    load_dinov2(state)


def test_unused_key_is_named(hf5):
  with pytest.raises(CheckpointError, match="not used by the model: \\['head.weight'\\]"):
    load_dinov2({**hf5, "head.weight": np.zeros((10, WIDTH), np.float32)})


def test_variant_mismatch_is_named(hf5):
  with pytest.raises(CheckpointError, match="variant 'S/14' has width=384, the checkpoint width=128"):
    load_dinov2(hf5, variant="S/14")


def test_bad_image_size_is_named(hf5):
  with pytest.raises(ValueError, match=r"image size \(100, 100\) is not a multiple of the patch size 14"):
    load_dinov2(hf5, image_size=100)


def _assert_same_params(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_file_formats_load_identically(hf5, tmp_path):
  _, expected = load_dinov2(hf5)
  official = _official_state(hf5)
  torch.save({k: torch.from_numpy(v) for k, v in official.items()}, tmp_path / "official.pth")
  torch.save({k: torch.from_numpy(v) for k, v in hf5.items()}, tmp_path / "pytorch_model.bin")
  (tmp_path / "folder").mkdir()
  safetensors.numpy.save_file(hf5, tmp_path / "folder" / "model.safetensors")
  np.savez(tmp_path / "weights.npz", **hf5)
  for source in ["official.pth", "pytorch_model.bin", "folder", "folder/model.safetensors",
                 "weights.npz"]:
    _, params = load_dinov2(tmp_path / source)
    _assert_same_params(params, expected)


def test_bfloat16_safetensors_load_as_float32(hf5, tmp_path):
  bf16 = {k: torch.from_numpy(v).to(torch.bfloat16) for k, v in hf5.items()}
  import safetensors.torch  # pylint: disable=g-import-not-at-top  (needs torch)
  safetensors.torch.save_file(bf16, tmp_path / "model.safetensors")
  _, params = load_dinov2(tmp_path / "model.safetensors")
  _, expected = load_dinov2({k: v.float().numpy() for k, v in bf16.items()})
  _assert_same_params(params, expected)


def test_safetensors_and_npz_load_without_torch(hf5, tmp_path, monkeypatch):
  safetensors.numpy.save_file(hf5, tmp_path / "model.safetensors")
  np.savez(tmp_path / "weights.npz", **hf5)
  torch.save({k: torch.from_numpy(v) for k, v in hf5.items()}, tmp_path / "model.pth")
  monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
  load_dinov2(tmp_path / "model.safetensors")
  load_dinov2(tmp_path / "weights.npz")
  with pytest.raises(ImportError, match="model.pth needs PyTorch"):
    load_dinov2(tmp_path / "model.pth")


def test_missing_file_and_unknown_format_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="no checkpoint at .*absent.pth"):
    load_dinov2(tmp_path / "absent.pth")
  (tmp_path / "weights.ckpt").write_bytes(b"")
  with pytest.raises(ValueError, match="weights.ckpt: unsupported checkpoint format '.ckpt'"):
    load_dinov2(tmp_path / "weights.ckpt")


def test_command_line_converter(hf5, tmp_path):
  official = _official_state(hf5)
  torch.save({k: torch.from_numpy(v) for k, v in official.items()}, tmp_path / "official.pth")
  root = pathlib.Path(__file__).resolve().parents[1]
  subprocess.run([sys.executable, "-m", "mdmf_jax.models.weights", "--input",
                  str(tmp_path / "official.pth"), "--output", str(tmp_path / "out.npz")],
                 check=True, cwd=root, capture_output=True)
  model, params = load_dinov2(tmp_path / "out.npz")
  reference_model, reference = load_dinov2(official)
  assert model == reference_model
  _assert_same_params(params, reference)
