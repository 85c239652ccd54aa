"""Scoring images against a reference bank of real patches (docs/method.md, sections 6-8).

For a test image x with PFS patch set X = {x_1..x_K} and the bank R:

    score(x) = MMD^2_b(X, R) = mean_kk' k(x_k, x_k') + mean_rr' k(r, r')
                               - 2 mean_k mean_r k(x_k, r)

The R-R term is a constant computed once when the bank is built; the rest,
and the per-patch witness w(x_k) = mean_k' k(x_k, x_k') - mean_r k(x_k, r)
(the heat map), is mmd.bank_mmd2, which streams R in blocks, so memory is
bounded for any bank size. Nothing here imports training code.

Methods (same featurisation, same kernel, `config.eval.methods`):
* "mdmf": the score above.
* "global": one point per image, the PFS of its mean-pooled tokens, scored
  the same way against the bank images' global points (the paper's baseline
  that pools first).
* "patch_vote": hard voting: patch k votes "fake" when its density under the
  bank, mean_r k(x_k, r), is below the `vote_quantile` quantile of the bank
  patches' own densities; the score is the fraction of votes.
* "linear_probe": the UnivFD-style baseline (linear_probe.py), a logistic
  regression on the frozen backbone's global feature; its "bank" is the fitted
  `linear_probe.Probe`, and it has no heat map (NaN).
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

from mdmf_jax import mmd, pfs_kernel

METHODS = ("mdmf", "linear_probe", "global", "patch_vote")  # the order of the tables


@flax.struct.dataclass
class Bank:
  """Reference points of one method: `points` (the kernel's points: s, or (s, z)),
  `rr_mean` = mean_rr' k(r, r'), and for patch_vote the density threshold (else NaN)."""

  points: Any
  rr_mean: jax.Array
  vote_threshold: jax.Array


def score_points(kernel_fn, points, bank: Bank, method: str, block_size: int):
  """(scores (N,), witness heat (N, K)) of (N, K, ...) points against `bank`."""
  result = mmd.bank_mmd2(kernel_fn, points, bank.points, bank.rr_mean, block_size=block_size)
  if method == "patch_vote":
    return jnp.mean(result.bank_density < bank.vote_threshold, axis=1), result.witness
  return result.mmd2, result.witness


class Scorer:
  """The frozen backbone + trained PFS + kernel of a run, scoring images by every method.

  `featurize(backbone_params, images) -> (N, K, D)` is the backbone's patch
  set (features.make_featurizer); `global_featurize(backbone_params, images)
  -> (N, D)` the linear probe's feature (linear_probe.make_global_featurizer),
  needed only to score "linear_probe". All parameters and banks enter the jitted
  functions as arguments, never as compile-time constants.
  """

  def __init__(self, config, featurize, backbone_params, params, *, block_size=4096,
               global_featurize=None):
    """`params`: the trained {"pfs": ..., "kernel": ...} of a train state."""
    self.config, self.block_size = config, block_size
    self.params = {"backbone": backbone_params, "trained": params}
    self._featurize, self._global_featurize = featurize, global_featurize
    self._points = jax.jit(self._points_fn)
    self._scores = jax.jit(self._scores_fn, static_argnames="methods")
    self._global = jax.jit(global_featurize) if global_featurize else None

  def kernel_fn(self, trained=None):
    """The kernel bound to its trained parameters (`trained`: default, this Scorer's)."""
    return pfs_kernel.kernel_fn(self.config, trained or self.params["trained"])

  def to_points(self, trained, z):
    """The kernel's points of patch features z: PFS signatures s, or (s, z)."""
    return pfs_kernel.points(self.config, trained, z)

  def _points_fn(self, params, images):
    z = self._featurize(params["backbone"], images)
    return {"mdmf": self.to_points(params["trained"], z),
            "global": self.to_points(params["trained"], jnp.mean(z, axis=1, keepdims=True))}

  def points(self, images):
    """{"mdmf": (N, K, ...) patch points, "global": (N, 1, ...) mean-pooled points}."""
    return self._points(self.params, images)

  def bank_from_points(self, points, method, vote_quantile=0.95) -> Bank:
    """The Bank of `method` from (N, K, ...) points of clean real images."""
    flat = mmd.pool_patches(points)
    densities = mmd.streamed_mean_kernel(self.kernel_fn(), flat, flat, self.block_size)
    # patch_vote: a patch is "fake" when its density is below that of all but
    # the lowest (1 - q) of the bank's own patches.
    threshold = jnp.quantile(densities, 1.0 - vote_quantile) if method == "patch_vote" else jnp.nan
    return Bank(points=jax.device_get(flat), rr_mean=jnp.mean(densities),
                vote_threshold=jnp.asarray(threshold, jnp.float32))

  def global_features(self, images):
    """(N, D) linear-probe features of float32 (N, S, S, 3) images."""
    if self._global is None:
      raise ValueError("this Scorer was built without global_featurize (linear_probe)")
    return self._global(self.params["backbone"], images)

  def _scores_fn(self, params, banks, images, methods):
    points = self._points_fn(params, images)  # unused outputs are compiled away
    kernel_fn = self.kernel_fn(params["trained"])
    out = {}
    for m in methods:
      if m == "linear_probe":
        num, patches = jax.tree.leaves(points["mdmf"])[0].shape[:2]
        features = self._global_featurize(params["backbone"], images)
        out[m] = (banks[m].decision_function(features).astype(jnp.float32),
                  jnp.full((num, patches), jnp.nan, jnp.float32))
      else:
        out[m] = score_points(kernel_fn, points["global" if m == "global" else "mdmf"],
                              banks[m], m, self.block_size)
    return out

  def scores(self, images, banks: dict) -> dict:
    """{method: (scores (N,), heat (N, K))} for every method in `banks` (a Bank, or a
    linear_probe.Probe for "linear_probe"); one jitted call."""
    if "linear_probe" in banks and self._global_featurize is None:
      raise ValueError("scoring linear_probe needs a Scorer with global_featurize")
    return self._scores(self.params, banks, images, tuple(sorted(banks)))


class Detector:
  """A trained model + bank + calibration, scoring S x S images (detect.py's interface).

  `score(images)` and `heatmaps(images)` take float32 (N, S, S, 3) in [0, 1]
  and are jitted once per batch shape. Both come from one pass; asking for the
  scores and then the heat maps of the same batch array computes it once.
  """

  def __init__(self, scorer: Scorer, bank: Bank, *, image_size, grid, calibration=None,
               method="mdmf"):
    self.image_size, self.grid, self.calibration = image_size, grid, calibration
    self.method, self._scorer, self._banks = method, scorer, {method: bank}
    self._last = (None, None)  # (batch array, its (scores, heat))

  def _run(self, images):
    if self._last[0] is not images:
      scores, heat = self._scorer.scores(images, self._banks)[self.method]
      self._last = (images, (np.asarray(scores), np.asarray(heat)))
    return self._last[1]

  def score(self, images) -> np.ndarray:
    return self._run(images)[0]

  def heatmaps(self, images) -> np.ndarray:
    heat = self._run(images)[1]
    return heat.reshape((heat.shape[0],) + tuple(self.grid))
