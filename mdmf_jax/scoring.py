"""Scoring images against a reference bank of real patches (DESIGN.md 1.7-1.9).

For a test image x with PFS patch set X = {x_1..x_K} and the bank R:

    score(x) = MMD^2_b(X, R) = mean_kk' k(x_k, x_k') + mean_rr' k(r, r')
                               - 2 mean_k mean_r k(x_k, r)

The R-R term is a constant computed once when the bank is built; the cross
term streams R in blocks (mmd.streamed_mean_kernel), so memory is bounded for
any bank size. The per-patch witness w(x_k) = mean_k' k(x_k, x_k') -
mean_r k(x_k, r) comes out of the same two terms: it is the heat map.

Methods (same featurisation, same kernel, `config.eval.methods`):
* "mdmf": the score above.
* "global": one point per image, the PFS of its mean-pooled tokens, scored
  the same way against the bank images' global points (the paper's baseline
  that pools first).
* "patch_vote": hard voting: patch k votes "fake" when its density under the
  bank, mean_r k(x_k, r), is below the `vote_quantile` quantile of the bank
  patches' own densities; the score is the fraction of votes.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mdmf_jax import mmd, objectives, train_step

METHODS = ("mdmf", "global", "patch_vote")


@dataclasses.dataclass
class Bank:
  """Reference points of one method: `points` (s, or (s, z) for the deep kernel),
  `rr_mean` = mean_rr' k(r, r'), and for patch_vote the density threshold."""

  points: Any
  rr_mean: float
  vote_threshold: float | None = None


class Scorer:
  """Featurises images once and scores them by every method against its bank.

  `featurize(backbone_params, images) -> (N, K, D)` is the frozen backbone's
  patch set (features.make_featurizer); `pfs_params` the trained PFS.
  """

  def __init__(self, config, featurize, backbone_params, pfs_params, *, block_size=4096):
    self.config = config
    self.kernel_fn, self.uses_raw = objectives.bind_kernel(config.kernel, pfs_params)
    model = train_step.pfs_model(config.pfs)
    self._embed = lambda z: model.apply({"params": pfs_params}, z)
    self._featurize = functools.partial(featurize, backbone_params)
    self.block_size = block_size

  def _to_points(self, z):
    s = self._embed(z)
    return (s, z) if self.uses_raw else s

  def points(self, images):
    """{"mdmf": (N, K, ...) patch points, "global": (N, 1, ...) pooled points}."""
    z = self._featurize(images)
    return {"mdmf": self._to_points(z),
            "global": self._to_points(jnp.mean(z, axis=1, keepdims=True))}

  def _flat(self, points):
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), points)

  def bank_from_points(self, points, method, vote_quantile=0.95):
    """The Bank of `method` from (N, K, ...) points of clean real images."""
    flat = self._flat(points)
    densities = mmd.streamed_mean_kernel(self.kernel_fn, flat, flat, self.block_size)
    threshold = None
    if method == "patch_vote":
      # Low density = unlike real patches; votes below the (1 - q) quantile.
      threshold = float(jnp.quantile(densities, 1.0 - vote_quantile))
    return Bank(points=jax.device_get(flat), rr_mean=float(jnp.mean(densities)),
                vote_threshold=threshold)

  def patch_terms(self, points, bank: Bank):
    """(self_means, cross_means), each (N, K): mean_k' k(x_k, x_k') and mean_r k(x_k, r)."""
    self_means = jax.vmap(lambda x: jnp.mean(self.kernel_fn(x, x), axis=1))(points)
    num, patches = jax.tree.leaves(points)[0].shape[:2]
    cross = mmd.streamed_mean_kernel(self.kernel_fn, self._flat(points), bank.points,
                                     self.block_size)
    return self_means, cross.reshape(num, patches)

  def score_points(self, points, bank: Bank, method: str):
    """(scores (N,), witness heat (N, K)) of points against `bank`."""
    self_means, cross = self.patch_terms(points, bank)
    if method == "patch_vote":
      return jnp.mean(cross < bank.vote_threshold, axis=1), self_means - cross
    scores = jnp.mean(self_means, axis=1) + bank.rr_mean - 2.0 * jnp.mean(cross, axis=1)
    return scores, self_means - cross


class Detector:
  """A trained model + bank + calibration, scoring S x S images (detect.py's interface).

  `score(images)` and `heatmaps(images)` take float32 (N, S, S, 3) in [0, 1]
  and are jitted once per batch shape.
  """

  def __init__(self, scorer: Scorer, bank: Bank, *, image_size, grid, calibration=None,
               method="mdmf"):
    self.image_size, self.grid, self.calibration = image_size, grid, calibration
    self.method = method

    def run(images):
      points = scorer.points(images)["global" if method == "global" else "mdmf"]
      return scorer.score_points(points, bank, method)

    self._run = jax.jit(run)

  def score(self, images) -> np.ndarray:
    return np.asarray(self._run(images)[0])

  def heatmaps(self, images) -> np.ndarray:
    heat = np.asarray(self._run(images)[1])
    return heat.reshape((heat.shape[0],) + tuple(self.grid))
