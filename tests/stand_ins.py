"""Stand-in parts for tests that need a detector without a real backbone."""

import dataclasses

import jax

from mdmf_jax import detector as detector_lib


def detector(config, featurize, sample):
  """(the config's PFS and kernel behind a stand-in featurizer, their fresh trained params,
  initialised from `sample` (N, K, D) features)."""
  det = dataclasses.replace(detector_lib.Detector.from_config(config), featurize=featurize)
  return det, jax.jit(det.init)(sample, jax.random.key(0), jax.random.key(1))
