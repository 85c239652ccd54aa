"""detector.Detector: one object from images to the kernel's points, for training and scoring."""

import jax
import numpy as np
import pytest

from mdmf_jax import config_lib, detector, features


def tiny_config(kernel):
  config = config_lib.base()
  config.backbone.variant, config.backbone.weights = "tiny/14", None
  config.data.image_size = 28
  config.pfs.hidden_dim, config.pfs.out_dim = 16, 8
  config.kernel.name = kernel
  return config


@pytest.mark.parametrize("kernel,raw_features", [("deep", True), ("gaussian", False)])
def test_images_and_features_give_the_same_points_of_the_kernels_kind(kernel, raw_features):
  config = tiny_config(kernel)
  module, backbone_params = features.frozen_backbone(config)
  images_in = detector.Detector.from_config(config, module)
  features_in = detector.Detector.from_config(config)
  images = np.random.default_rng(0).uniform(size=(3, 28, 28, 3)).astype(np.float32)
  z = images_in.features(backbone_params, images)
  assert z.shape == (3, 4, 128) and z.dtype == np.float32  # 2 x 2 tokens of width 128
  np.testing.assert_array_equal(features_in.features(None, z), z)

  trained = jax.jit(images_in.init)(z, jax.random.key(0), jax.random.key(1))
  shapes = jax.tree.map(lambda a: (a.shape, a.dtype), trained)
  assert jax.tree.map(lambda a: (a.shape, a.dtype), images_in.template(128)) == shapes
  points = images_in.points(trained, z)
  # The deep kernel takes (s, z) pairs, the others the signatures s alone.
  s = points[0] if raw_features else points
  assert s.shape == (3, 4, 8)
  if raw_features:
    np.testing.assert_array_equal(points[1], z)
  # Detectors built from the same config compute the same points and kernel values.
  again = features_in.points(trained, z)
  jax.tree.map(np.testing.assert_array_equal, points, again)
  flat = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), points)
  np.testing.assert_array_equal(images_in.kernel_fn(trained)(flat, flat),
                                features_in.kernel_fn(trained)(flat, flat))


def test_dropout_only_with_a_dropout_key():
  config = tiny_config("gaussian")
  config.pfs.dropout = 0.5
  det = detector.Detector.from_config(config)
  z = np.random.default_rng(1).normal(size=(2, 6, 12)).astype(np.float32)
  trained = det.init(z, jax.random.key(0), jax.random.key(1))
  np.testing.assert_array_equal(det.points(trained, z), det.points(trained, z))
  dropped = det.points(trained, z, dropout_rng=jax.random.key(2))
  assert not np.allclose(dropped, det.points(trained, z))
