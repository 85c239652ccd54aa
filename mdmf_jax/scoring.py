"""Scoring images against a reference bank of real patches (docs/method.md, sections 6-8).

For a test image x with PFS patch set X = {x_1..x_K} and the bank R:

    score(x) = MMD^2_b(X, R) = mean_kk' k(x_k, x_k') + mean_rr' k(r, r')
                               - 2 mean_k mean_r k(x_k, r)

The R-R term is a constant computed once when the bank is built; the rest,
and the per-patch witness w(x_k) = mean_k' k(x_k, x_k') - mean_r k(x_k, r)
(the heat map), is mmd.set_vs_bank, the one composition of the set score, given
the bank densities mean_r k(x_k, r) of the sharded bank (`bank_density`).
Nothing here imports training code.

Data parallelism (docs/evaluation.md, "Devices"). A Scorer works on a 1-d mesh
of this process's devices (or the `devices` it is given):

* the bank is placed once (`Scorer.place`, a DeviceBank), SHARDED along its
  patches: each device holds R / D of them, padded to a multiple of the
  streaming block and masked, so no device holds the whole bank;
* the image batch is sharded over the devices for the backbone and the PFS (a
  batch the device count does not divide is zero-padded, and the padding's
  scores dropped); the patch points, small, are then gathered, every device
  streams them against its bank shard in blocks of `block_size`
  (mmd.streamed_mean_kernel), and one psum of the (N * K,) partial sums gives
  the densities;
* building a bank, each device streams its own patches against every shard,
  the shards passed round the devices in a ring, so the R x R density pass
  holds two shards and one block x block Gram matrix per device.

Across hosts every process scores its own share of a split on its own devices
with its own copy of the bank (evaluate.score_split gathers the scores), so
processes never wait on one another while scoring.

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

import copy
import functools
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from mdmf_jax import mmd, parallel
from mdmf_jax.parallel import AXIS

METHODS = ("mdmf", "linear_probe", "global", "patch_vote")  # the order of the tables


@flax.struct.dataclass
class Bank:
  """Reference points of one method: `points` (the kernel's points: s, or (s, z); leaves
  (R, ...)), `rr_mean` = mean_rr' k(r, r'), and for patch_vote the density threshold (else
  NaN). What is saved and loaded; `Scorer.place` puts it on the devices."""

  points: Any
  rr_mean: jax.Array
  vote_threshold: jax.Array


@flax.struct.dataclass
class DeviceBank:
  """A Bank on a Scorer's devices: `points` leaves (D * rows, ...) sharded along the patches,
  device d holding rows [d * rows, (d + 1) * rows); `valid` (D * rows,) marks the bank's
  patches, the rest being zero padding."""

  points: Any
  valid: jax.Array
  rr_mean: jax.Array
  vote_threshold: jax.Array


def eval_mesh(devices=None) -> Mesh:
  """The 1-d (AXIS,) mesh of `devices` (default: this process's devices)."""
  return parallel.mesh(jax.local_devices() if devices is None else devices)


def shard_rows(num_points: int, num_devices: int, block_size: int) -> int:
  """Rows of the bank each device holds: its ceil(R / D) patches, padded to a multiple of
  the streaming block when longer than one (so streaming never copies the shard to pad it)."""
  share = -(-num_points // num_devices)
  return share if share <= block_size else -(-share // block_size) * block_size


def _shard_patches(num_points: int, mesh: Mesh, block_size: int):
  """(rows held per device, index -> the slice of the bank's patches that device holds)."""
  share = -(-num_points // mesh.size)
  rows = shard_rows(num_points, mesh.size, block_size)

  def patches_of(index):  # index[0]: the rows [d * rows, (d + 1) * rows) of device d
    first = (index[0].start or 0) // rows * share
    return slice(first, min(first + share, num_points))

  return rows, patches_of


def bank_mask(num_points: int, mesh: Mesh, block_size: int) -> jax.Array:
  """(D * rows,) bool, sharded over `mesh`: the rows of a placed bank of `num_points`
  patches that hold one (DeviceBank.valid)."""
  rows, patches_of = _shard_patches(num_points, mesh, block_size)

  def held(index):
    patches = patches_of(index)
    return np.arange(rows) < patches.stop - patches.start

  return jax.make_array_from_callback((mesh.size * rows,), NamedSharding(mesh, P(AXIS)), held)


def place_points(flat, mesh: Mesh, block_size: int):
  """(points, valid) of leaves (R, ...) laid out as DeviceBank says; each device's shard is
  cut from `flat` (host or device arrays) and sent alone, so no padded copy of the bank is
  ever made."""
  num = jax.tree.leaves(flat)[0].shape[0]
  rows, patches_of = _shard_patches(num, mesh, block_size)

  def place(leaf):
    def data(index):
      part = np.asarray(leaf[patches_of(index)])
      return np.pad(part, [(0, rows - len(part))] + [(0, 0)] * (part.ndim - 1))
    return jax.make_array_from_callback((mesh.size * rows,) + leaf.shape[1:],
                                        NamedSharding(mesh, P(AXIS)), data)

  return jax.tree.map(place, flat), bank_mask(num, mesh, block_size)


# The shard_maps below run with check_vma=False: mmd.streamed_mean_kernel's scan starts
# from a fresh (device-invariant) zero and adds shard-dependent blocks, which the varying-
# axis checker refuses; every cross-device value is an explicit psum or ppermute.


def _partial_sums(kernel_fn, queries, points, valid, block_size):
  """sum_r k(q, r) over the valid rows of one device's shard, for every query q."""
  count = jnp.sum(valid)
  mean = mmd.streamed_mean_kernel(kernel_fn, queries, points, block_size, mask_r=valid)
  return jnp.where(count > 0, mean * count, 0.0)  # a shard of padding alone adds nothing


def bank_density(make_kernel: Callable, kernel_params, queries, bank: DeviceBank, *,
                 mesh: Mesh, block_size: int):
  """(M,) mean_r k(q_m, r) of queries (leaves (M, ...), replicated) over the sharded bank.

  `make_kernel(kernel_params) -> kernel_fn`: the kernel enters as parameters, so it is
  built inside each device's program.
  """
  def per_device(kernel_params, queries, points, valid):
    sums = _partial_sums(make_kernel(kernel_params), queries, points, valid, block_size)
    return jax.lax.psum(sums, AXIS), jax.lax.psum(jnp.sum(valid), AXIS)

  sums, count = jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(), P(AXIS), P(AXIS)),
                              out_specs=(P(), P()), check_vma=False)(
                                  kernel_params, queries, bank.points, bank.valid)
  return sums / count


def bank_self_density(make_kernel: Callable, kernel_params, points, valid, *, mesh: Mesh,
                      block_size: int):
  """(D * rows,) mean_r' k(r, r') of every row r of a placed bank (padding rows: meaningless).

  Each device streams its own rows, `block_size` at a time, against every shard, the
  shards going round the devices in a ring (ppermute): two shards and one block x block
  Gram matrix per device, whatever R is.
  """
  devices = mesh.size
  ring = [(d, (d + 1) % devices) for d in range(devices)]

  def per_device(kernel_params, points, valid):
    kernel_fn = make_kernel(kernel_params)
    rows = valid.shape[0]
    chunk = min(block_size, rows)  # rows is a multiple of it (shard_rows)
    own = jax.tree.map(lambda a: a.reshape((rows // chunk, chunk) + a.shape[1:]), points)

    def visit(carry, _):
      sums, visiting, visiting_valid = carry
      sums += jax.lax.map(lambda q: _partial_sums(kernel_fn, q, visiting, visiting_valid,
                                                  block_size), own).reshape(-1)
      visiting, visiting_valid = jax.lax.ppermute((visiting, visiting_valid), AXIS, ring)
      return (sums, visiting, visiting_valid), None

    init = (jnp.zeros((rows,), jnp.result_type(jnp.float32, *jax.tree.leaves(points))),
            points, valid)
    (sums, _, _), _ = jax.lax.scan(visit, init, None, length=devices)
    return sums / jax.lax.psum(jnp.sum(valid), AXIS)

  return jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(AXIS), P(AXIS)),
                       out_specs=P(AXIS), check_vma=False)(kernel_params, points, valid)


def score_points(make_kernel: Callable, kernel_params, points, bank: DeviceBank, method: str,
                 *, mesh: Mesh, block_size: int, mask=None):
  """(scores (N,), witness heat (N, K)) of (N, K, ...) points against a placed bank.

  `mask` (N, K) marks the valid patches of padded sets (None: all); a padded set scores
  exactly as the unpadded one, and its padding gets a NaN witness.
  """
  density = functools.partial(bank_density, make_kernel, kernel_params, bank=bank, mesh=mesh,
                              block_size=block_size)
  scores, witness, densities = mmd.set_vs_bank(make_kernel(kernel_params), points, density,
                                               bank.rr_mean, mask=mask)
  if method == "patch_vote":  # the fraction of valid patches voting "fake"
    return mmd.masked_mean((densities < bank.vote_threshold).astype(jnp.float32), mask), witness
  return scores, witness


def _pad_to(images, multiple: int):
  """Images zero-padded to a multiple of `multiple` along the batch (device counts)."""
  pad = -len(images) % multiple
  return images if not pad else np.pad(np.asarray(images),
                                       [(0, pad)] + [(0, 0)] * (np.ndim(images) - 1))


class Scorer:
  """A run's detector (detector.Detector) with its frozen backbone's and trained params,
  scoring images by every method.

  A detector built without a backbone scores patch features (caches);
  `global_featurize(backbone_params, images) -> (N, D)` is the linear probe's
  feature (linear_probe.make_global_featurizer), needed only to score
  "linear_probe". `devices`: the mesh's devices (default: this process's). All
  parameters and banks enter the jitted functions as arguments, never as
  compile-time constants, and sit on the devices: parameters replicated, banks
  sharded (module docstring).
  """

  def __init__(self, detector, backbone_params, trained, *, block_size=4096,
               global_featurize=None, devices=None):
    """`trained`: the detector's trained {"pfs": ..., "kernel": ...} params."""
    self.detector, self.block_size = detector, block_size
    self.mesh = eval_mesh(devices)
    self._replicated = NamedSharding(self.mesh, P())
    self._sharded = NamedSharding(self.mesh, P(AXIS))
    self.params = jax.device_put({"backbone": backbone_params, "trained": trained},
                                 self._replicated)
    self._global_featurize = global_featurize
    self._points = jax.jit(self._points_fn, static_argnames="num")
    self._scores = jax.jit(self._scores_fn, static_argnames=("methods", "num"))
    self._score_points = jax.jit(self._score_points_fn, static_argnames="method")
    self._bank_statistics = jax.jit(self._bank_statistics_fn, static_argnames="quantile")
    self._global = global_featurize and jax.jit(
        lambda backbone, images, num: global_featurize(backbone, images)[:num],
        static_argnames="num")

  def with_trained(self, trained) -> Scorer:
    """This Scorer with other trained params, sharing its compiled functions."""
    other = copy.copy(self)
    other.params = {**self.params, "trained": jax.device_put(trained, self._replicated)}
    return other

  def kernel_fn(self, trained=None):
    """The kernel bound to its trained parameters (`trained`: default, this Scorer's)."""
    return self.detector.kernel_fn(trained or self.params["trained"])

  def _put_batch(self, images):
    """(device array of `images` padded to the device count, sharded; the real count)."""
    return jax.device_put(_pad_to(images, self.mesh.size), self._sharded), len(images)

  def _points_fn(self, params, images, num):
    z = self.detector.features(params["backbone"], images)[:num]
    return {"mdmf": self.detector.points(params["trained"], z),
            "global": self.detector.points(params["trained"], jnp.mean(z, axis=1, keepdims=True))}

  def points(self, images):
    """{"mdmf": (N, K, ...) patch points, "global": (N, 1, ...) mean-pooled points}."""
    return self._points(self.params, *self._put_batch(images))

  def place(self, models):
    """Banks and probes (one, or a dict of them) on this Scorer's devices: a Bank becomes a
    DeviceBank sharded along its patches, a linear_probe.Probe is replicated; a DeviceBank
    is already placed. Place once, then score any number of batches."""
    def place_one(model):
      if isinstance(model, DeviceBank):
        return model
      if isinstance(model, Bank):
        points, valid = place_points(model.points, self.mesh, self.block_size)
        scalars = jax.device_put((jnp.asarray(model.rr_mean, jnp.float32),
                                  jnp.asarray(model.vote_threshold, jnp.float32)),
                                 self._replicated)
        return DeviceBank(points, valid, *scalars)
      return jax.device_put(model, self._replicated)
    return jax.tree.map(place_one, models, is_leaf=lambda x: not isinstance(x, dict))

  def _bank_statistics_fn(self, trained, points, valid, quantile):
    densities = bank_self_density(self.detector.kernel.bind, trained["kernel"], points, valid,
                                  mesh=self.mesh, block_size=self.block_size)
    rr_mean = jnp.sum(jnp.where(valid, densities, 0.0)) / jnp.sum(valid)
    if quantile is None:
      return rr_mean, jnp.float32(jnp.nan)
    return rr_mean, jnp.nanquantile(jnp.where(valid, densities, jnp.nan), quantile)

  def bank_from_points(self, points, method, vote_quantile=0.95) -> Bank:
    """The Bank of `method` from (N, K, ...) points of clean real images (host or device);
    its points are `points` pooled, as given (not copied to the host)."""
    flat = mmd.pool_patches(points)
    # patch_vote: a patch is "fake" when its density is below that of all but
    # the lowest (1 - q) of the bank's own patches.
    quantile = 1.0 - vote_quantile if method == "patch_vote" else None
    rr_mean, threshold = self._bank_statistics(
        self.params["trained"], *place_points(flat, self.mesh, self.block_size), quantile)
    return Bank(points=flat, rr_mean=rr_mean, vote_threshold=threshold.astype(jnp.float32))

  def global_features(self, images):
    """(N, D) linear-probe features of float32 (N, S, S, 3) images."""
    if self._global is None:
      raise ValueError("this Scorer was built without global_featurize (linear_probe)")
    return self._global(self.params["backbone"], *self._put_batch(images))

  def _score_points_fn(self, trained, points, bank, mask, method):
    return score_points(self.detector.kernel.bind, trained["kernel"], points, bank, method,
                        mesh=self.mesh, block_size=self.block_size, mask=mask)

  def score_points(self, points, bank, *, mask=None, method="mdmf"):
    """(scores (N,), heat (N, K)) of (N, K, ...) points (e.g. `points(images)["mdmf"]`)
    against a bank, `mask` (N, K) marking the valid patches of padded sets."""
    return self._score_points(self.params["trained"], points, self.place(bank), mask, method)

  def _scores_fn(self, params, banks, images, num, methods):
    points = self._points_fn(params, images, num)  # unused outputs are compiled away
    out = {}
    for m in methods:
      if m == "linear_probe":
        patches = jax.tree.leaves(points["mdmf"])[0].shape[1]
        features = self._global_featurize(params["backbone"], images)[:num]
        out[m] = (banks[m].decision_function(features).astype(jnp.float32),
                  jnp.full((num, patches), jnp.nan, jnp.float32))
      else:
        out[m] = self._score_points_fn(params["trained"],
                                       points["global" if m == "global" else "mdmf"],
                                       banks[m], None, m)
    return out

  def scores(self, images, banks: dict) -> dict:
    """{method: (scores (N,), heat (N, K))} for every method in `banks` (Banks, or a
    linear_probe.Probe for "linear_probe"; placed by `place`, else placed here, at every
    call); one jitted call."""
    if "linear_probe" in banks and self._global_featurize is None:
      raise ValueError("scoring linear_probe needs a Scorer with global_featurize")
    return self._scores(self.params, self.place(banks), *self._put_batch(images),
                        tuple(sorted(banks)))


class CropDetector:
  """A trained model + bank + calibration, scoring S x S images (detect.py's interface).

  `score(images)` and `heatmaps(images)` take float32 (N, S, S, 3) in [0, 1]
  and are jitted once per batch shape. Both come from one pass; asking for the
  scores and then the heat maps of the same batch array computes it once. The
  bank is placed on the devices once, here.
  """

  def __init__(self, scorer: Scorer, bank, *, image_size, grid, calibration=None,
               method="mdmf"):
    self.image_size, self.grid, self.calibration = image_size, grid, calibration
    self.method, self._scorer, self._banks = method, scorer, scorer.place({method: bank})
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
