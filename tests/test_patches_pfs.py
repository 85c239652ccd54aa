"""Patch sets for every mode, and the PFS module."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mdmf_jax.models import pfs as pfs_lib
from mdmf_jax.models import vit
from mdmf_jax.patches import patch_set

WIDTH = 128


@pytest.fixture(scope="module")
def backbone():
  model = vit.vit("tiny/14", pos_grid=(4, 4), num_registers=2)
  params = model.init(jax.random.key(0), jnp.zeros((1, 56, 56, 3)))["params"]
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(p.size), p.shape), params)
  return vit.FrozenViT(model, params)


def _images(batch=2, height=56, width=84, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(batch, height, width, 3)), jnp.float32)


def test_tokens_are_the_backbone_patch_tokens(backbone):
  images = _images()
  patches, grid = patch_set(images, backbone, "tokens")
  assert patches.shape == (2, 4 * 6, WIDTH) and grid == (4, 6)
  expected = backbone(vit.imagenet_normalize(images))["patch_tokens"]
  np.testing.assert_array_equal(patches, expected)


def test_tokens_of_an_intermediate_block(backbone):
  images = _images()
  patches, _ = patch_set(images, backbone, "tokens", block=0)
  expected = backbone(vit.imagenet_normalize(images), blocks=(0,))["blocks"][0]
  np.testing.assert_array_equal(patches, expected)
  assert np.abs(patches - patch_set(images, backbone, "tokens")[0]).max() > 1e-3


def test_pooled_tokens_average_windows(backbone):
  images = _images()
  patches, grid = patch_set(images, backbone, "pooled_tokens", pool=2)
  assert patches.shape == (2, 2 * 3, WIDTH) and grid == (2, 3)
  tokens = np.asarray(patch_set(images, backbone, "tokens")[0]).reshape(2, 4, 6, WIDTH)
  expected = tokens.reshape(2, 2, 2, 3, 2, WIDTH).mean(axis=(2, 4)).reshape(2, 6, WIDTH)
  np.testing.assert_allclose(patches, expected, atol=1e-6, rtol=0)


def test_crops_equal_the_backbone_run_crop_by_crop(backbone):
  images = _images(height=56, width=84)
  patches, grid = patch_set(images, backbone, "crops", crop_size=28, crop_resolution=42)
  assert patches.shape == (2, 2 * 3, WIDTH) and grid == (2, 3)
  normalised = vit.imagenet_normalize(images)
  for b in range(2):
    for i in range(2):
      for j in range(3):
        crop = normalised[b:b + 1, 28 * i:28 * (i + 1), 28 * j:28 * (j + 1)]
        crop = jax.image.resize(crop, (1, 42, 42, 3), "bilinear")
        expected = backbone(crop)["cls"][0]
        np.testing.assert_allclose(patches[b, 3 * i + j], expected, atol=1e-5, rtol=0)


def test_bad_patch_arguments_are_named(backbone):
  with pytest.raises(ValueError, match="patch mode 'pixels'"):
    patch_set(_images(), backbone, "pixels")
  with pytest.raises(ValueError, match=r"\(56, 84\) is not a multiple of the crop size 32"):
    patch_set(_images(), backbone, "crops", crop_size=32)
  with pytest.raises(ValueError, match=r"\(56, 84\) is not a multiple of the token window \(4 x 14 px\) 56"):
    patch_set(_images(), backbone, "pooled_tokens", pool=4)
  with pytest.raises(ValueError, match=r"NHWC with 3 channels; got shape \(2, 3, 56, 56\)"):
    patch_set(jnp.zeros((2, 3, 56, 56)), backbone, "tokens")
  with pytest.raises(ValueError, match="crops use the final CLS token"):
    patch_set(_images(), backbone, "crops", crop_size=28, block=0)


def _pfs_and_params(dropout_rate=0.1):
  model = pfs_lib.PFS(hidden_dim=32, out_dim=8, dropout_rate=dropout_rate)
  patches = jax.random.normal(jax.random.key(1), (3, 10, WIDTH))
  return model, model.init(jax.random.key(2), patches)["params"], patches


def test_pfs_is_permutation_equivariant_over_patches():
  model, params, patches = _pfs_and_params()
  perm = np.random.default_rng(0).permutation(patches.shape[1])
  out = model.apply({"params": params}, patches)
  assert out.shape == (3, 10, 8)
  np.testing.assert_allclose(model.apply({"params": params}, patches[:, perm]), out[:, perm],
                             atol=1e-6, rtol=0)


def test_pfs_dropout_only_in_training():
  model, params, patches = _pfs_and_params(dropout_rate=0.5)
  apply = functools.partial(model.apply, {"params": params}, patches)
  np.testing.assert_array_equal(apply(), apply())
  a = apply(train=True, rngs={"dropout": jax.random.key(0)})
  b = apply(train=True, rngs={"dropout": jax.random.key(1)})
  assert np.abs(a - b).max() > 1e-3
