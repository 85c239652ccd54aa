"""jit and pmap data parallelism on 8 fake CPU devices equal a single-device run, for any groups.

`objective.groups` = G below, at or above the 8 devices (whole groups per
device) and below them (each group's patches gathered from 8 / G devices).
tests/test_device_count.py runs the whole training loop on 1 to 8 devices.
"""

import functools

import jax
import numpy as np
import pytest

from mdmf_jax import config_lib, detector, features, parallel, train_step


def tiny_config(data_dir, objective="mmd_d", kernel="deep", groups=1):
  c = config_lib.base()
  c.data.data_dir, c.data.name = str(data_dir), "features_given_directly"
  c.pfs.hidden_dim, c.pfs.out_dim, c.pfs.dropout = 16, 8, 0.1
  c.objective.name, c.objective.groups = objective, groups
  c.objective.patches_per_side = 20  # fewer than a group's patches for G <= 2: keys matter
  c.kernel.name = kernel
  c.optim.lr, c.optim.warmup_steps = 1e-2, 1  # adamw, the default
  c.train.total_steps = 10
  c.data.batch_size = 32  # 16 real + 16 fake
  return c


def random_batch(seed, groups, per_side, patches=6, dim=12):
  """{"real", "fake"}: (groups, per_side, patches, dim), the fakes shifted."""
  rng = np.random.default_rng(seed)
  real = rng.normal(size=(groups, per_side, patches, dim)).astype(np.float32)
  fake = rng.normal(size=(groups, per_side, patches, dim)).astype(np.float32) + 0.3
  return {"real": real, "fake": fake}


def run_single_device(config, state, batches):
  step = jax.jit(functools.partial(train_step.train_step, config=config,
                                   detector=detector.Detector.from_config(config)))
  for batch in batches:
    state, metrics = step(state, batch)
  return jax.device_get(state), metrics


def run_parallel(mode, config, state, batches):
  dp = parallel.DataParallel(mode, groups=config.objective.groups)
  step = dp.step(functools.partial(train_step.train_step, config=config,
                                   detector=detector.Detector.from_config(config)))
  state = dp.put_state(jax.device_get(state))  # a host copy: the step donates its input
  for batch in batches:
    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in batch.items()}  # group-major images
    state, metrics = step(state, dp.put_batch(flat), None)
  return dp.get_state(state), metrics


@pytest.mark.parametrize("objective,kernel,groups", [
    ("mmd_d", "deep", 1),  # one group over all 8 devices
    ("image_score", "deep", 2),  # 2 groups of 4 devices each
    ("mmd_mp", "gaussian", 16),  # 2 whole groups per device
])
def test_jit_and_pmap_match_single_device(objective, kernel, groups, tmp_path):
  assert jax.device_count() == 8
  config = config_lib.validate(tiny_config(tmp_path, objective, kernel, groups), device_count=8)
  batches = [random_batch(s, groups, 16 // groups) for s in range(3)]
  sample = np.concatenate([batches[0]["real"][0], batches[0]["fake"][0]])
  state = train_step.init_state(config, detector.Detector.from_config(config), sample,
                                jax.random.key(0))
  single, single_metrics = run_single_device(config, state, batches)
  assert int(single.step) == 3
  for mode in parallel.MODES:
    result, metrics = run_parallel(mode, config, state, batches)
    jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=2e-5, atol=1e-6),
                 result.params, single.params)
    np.testing.assert_allclose(metrics["loss"], single_metrics["loss"], rtol=2e-5)
    assert int(result.step) == 3
  # The updates did something.
  moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(),
                       single.params, state.params)
  assert max(jax.tree.leaves(moved)) > 1e-4


def test_groups_draw_distinct_randomness(tmp_path):
  # Dropout and patch subsets depend on the group index: identical groups give
  # different per-group losses, so a device does not replay its neighbour's draws.
  config = tiny_config(tmp_path)
  config.objective.patches_per_side = 8
  batch = random_batch(0, groups=1, per_side=2)
  features_in = detector.Detector.from_config(config)
  state = train_step.init_state(config, features_in, batch["real"][0], jax.random.key(0))
  losses = []
  for offset in (0, 1):
    _, metrics = train_step.train_step(state, batch, config=config, detector=features_in,
                                       group_offset=offset)
    losses.append(float(metrics["loss"]))
  assert losses[0] != losses[1]


def test_cached_batches_do_not_depend_on_the_grouping(tmp_path):
  # The same global images in the same order whatever G (and so whatever the
  # device count, which no longer enters); one epoch sees each image once.
  for name in ("real", "fake"):
    features_ = np.arange(24 * 2 * 3, dtype=np.float32).reshape(24, 2, 3) + (name == "fake")
    np.save(tmp_path / f"{name}-0-of-1.npy", features_)
  flat = {}
  for groups, per_side in ((1, 8), (4, 2), (8, 1)):
    cached = features.CachedBatches(str(tmp_path), groups=groups, per_side=per_side, seed=3)
    flat[groups] = [cached.batch(step)["real"] for step in range(4)]
    assert flat[groups][0].shape == (8, 2, 3)
  for groups in (4, 8):
    np.testing.assert_array_equal(np.stack(flat[groups]), np.stack(flat[1]))
  epoch = np.concatenate(flat[1][:3])[:, 0, 0]
  assert sorted(epoch) == list(range(0, 24 * 6, 6))


@pytest.mark.parametrize("batch_size,groups,objective,message", [
    (32, 3, "mmd_d", "config.objective.groups: 3 groups do not split the 32 images"),
    (48, 3, "mmd_d", "config.objective.groups: 3 groups on 8 devices"),
    (32, 16, "image_score", "config.objective.groups: image_score needs >= 2"),
    (24, 4, "mmd_d", r"config.data.batch_size: 24 images .*multiple of 16"),
])
def test_groups_that_do_not_fit_are_refused(tmp_path, batch_size, groups, objective, message):
  config = tiny_config(tmp_path, objective, groups=groups)
  config.data.batch_size = batch_size
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(config, device_count=8)


def test_unknown_mode_or_layout_is_refused():
  with pytest.raises(ValueError, match="config.parallel"):
    parallel.DataParallel("shard_map")
  with pytest.raises(ValueError, match="config.objective.groups=3 does not fit 8 devices"):
    parallel.DataParallel("jit", groups=3)
  # A device list is checked by its own length, not the process's device count.
  with pytest.raises(ValueError, match="config.objective.groups=4 does not fit 3 devices"):
    parallel.DataParallel("jit", groups=4, devices=jax.devices()[:3])
  assert parallel.DataParallel("pmap", groups=4, devices=jax.devices()[:2]).groups_per_device == 2
