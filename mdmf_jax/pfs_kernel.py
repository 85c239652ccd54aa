"""The trained part of the detector: the PFS and the kernel unit, and their parameters.

Training (train_step.py), evaluation, selection and detection (scoring.py) all go
through these functions, so how patch features z become the kernel's points, and
how the trained parameters {"pfs": ..., "kernel": ...} start, live in one place.
No optimiser here: inference restores these parameters alone (`template`).

    trained = pfs_kernel.init(config, z_sample, pfs_key, kernel_key)   # a fresh start
    points = pfs_kernel.points(config, trained, z)         # s, or (s, z) for the deep kernel
    kernel_fn = pfs_kernel.kernel_fn(config, trained)      # k(x, y) on those points
"""

from __future__ import annotations

import jax
import numpy as np

from mdmf_jax import kernels
from mdmf_jax.models import pfs


def init(config, features, pfs_key, kernel_key) -> dict:
  """{"pfs", "kernel"} params; the kernel's start from `features` (N, K, D) (kernels.py)."""
  module = pfs.make(config.pfs)
  pfs_params = module.init(pfs_key, features[:1])["params"]
  signatures = module.apply({"params": pfs_params}, features)
  pooled = lambda a: a.reshape(-1, a.shape[-1])
  kernel_params = kernels.make(config.kernel).init(kernel_key, pooled(signatures),
                                                   pooled(features))
  return {"pfs": pfs_params, "kernel": kernel_params}


def template(config, feature_dim: int):
  """Shapes and dtypes of the trained params for features of width `feature_dim` (no compute)."""
  sample = jax.ShapeDtypeStruct((2, 1, feature_dim), np.float32)
  key = jax.random.key(0)
  return jax.eval_shape(lambda z: init(config, z, key, key), sample)


def points(config, trained, z, *, dropout_rng=None):
  """The kernel's points of patch features z (..., K, D); dropout on when `dropout_rng` is set."""
  train = dropout_rng is not None
  s = pfs.make(config.pfs).apply({"params": trained["pfs"]}, z, train=train,
                                 rngs={"dropout": dropout_rng} if train else None)
  return kernels.make(config.kernel).points(s, z)


def kernel_fn(config, trained):
  """The configured kernel bound to its trained parameters: k(x, y) -> (m, n)."""
  return kernels.make(config.kernel).bind(trained["kernel"])
