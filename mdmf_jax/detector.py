"""The detector as one object: frozen backbone -> patcher -> PFS -> kernel.

Training (train_step.py), evaluation and detection (scoring.py, via
evaluate.load_scorer), selection and the study all take a `Detector`, so how
an image becomes patch features, how features become the kernel's points and
how the trained parameters {"pfs": ..., "kernel": ...} start live here once.

    detector = Detector.from_config(config, backbone_module)   # images in
    detector = Detector.from_config(config)                    # patch features in (a cache)
    z = detector.features(backbone_params, images)             # (N, K, D)
    trained = detector.init(z_sample, pfs_key, kernel_key)     # a fresh start
    points = detector.points(trained, z)                       # s, or (s, z) for the deep kernel
    kernel_fn = detector.kernel_fn(trained)                    # k(x, y) on those points

No optimiser here: inference restores the trained parameters alone, shaped by
`template`. Swapping a part is one config field: `backbone.name` (models/
backbones.py), `patches.mode`, `pfs.*`, `kernel.name` (kernels.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np

from mdmf_jax import kernels, patches
from mdmf_jax.models import pfs

Featurize = Callable[[Any, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True, eq=False)
class Detector:
  """featurize (backbone + patcher; None: the inputs are patch features already), the PFS
  module and the kernel unit. Pure: every parameter enters as an argument."""

  featurize: Featurize | None
  pfs: nn.Module
  kernel: kernels.Kernel

  @classmethod
  def from_config(cls, config, backbone: nn.Module | None = None) -> Detector:
    """The detector of `config`; `backbone` the frozen module (features.frozen_backbone),
    None when it is fed cached patch features."""
    featurize = None if backbone is None else patches.make_featurizer(backbone, config.patches)
    return cls(featurize, pfs.make(config.pfs), kernels.make(config.kernel))

  def features(self, backbone_params, inputs):
    """(N, K, D) patch features of images (N, H, W, 3), or the inputs when they are already."""
    return inputs if self.featurize is None else self.featurize(backbone_params, inputs)

  def init(self, features, pfs_key, kernel_key) -> dict:
    """{"pfs", "kernel"} params; the kernel's start from `features` (N, K, D) (kernels.py)."""
    pfs_params = self.pfs.init(pfs_key, features[:1])["params"]
    signatures = self.pfs.apply({"params": pfs_params}, features)
    pooled = lambda a: a.reshape(-1, a.shape[-1])
    kernel_params = self.kernel.init(kernel_key, pooled(signatures), pooled(features))
    return {"pfs": pfs_params, "kernel": kernel_params}

  def template(self, feature_dim: int):
    """Shapes and dtypes of the trained params for features of width `feature_dim` (no compute)."""
    sample = jax.ShapeDtypeStruct((2, 1, feature_dim), np.float32)
    key = jax.random.key(0)
    return jax.eval_shape(lambda z: self.init(z, key, key), sample)

  def points(self, trained, z, *, dropout_rng=None):
    """The kernel's points of patch features z (..., K, D); dropout on when `dropout_rng` is set."""
    train = dropout_rng is not None
    s = self.pfs.apply({"params": trained["pfs"]}, z, train=train,
                       rngs={"dropout": dropout_rng} if train else None)
    return self.kernel.points(s, z)

  def kernel_fn(self, trained):
    """The kernel bound to the trained parameters (`trained["kernel"]`): k(x, y) -> (m, n)."""
    return self.kernel.bind(trained["kernel"])
