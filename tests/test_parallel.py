"""jit and pmap data parallelism on 8 fake CPU devices equal a single-device run."""

import functools

import jax
import numpy as np
import pytest

from mdmf_jax import config_lib, parallel, train_step


def tiny_config(data_dir, objective="mmd_d", kernel="deep"):
  c = config_lib.base()
  c.data.data_dir, c.data.name = str(data_dir), "features_given_directly"
  c.pfs.hidden_dim, c.pfs.out_dim, c.pfs.dropout = 16, 8, 0.1
  c.objective.name = objective
  c.kernel.name = kernel
  c.optim.lr, c.optim.warmup_steps = 1e-2, 1  # adamw, the default
  c.train.total_steps = 10
  c.data.batch_size = 32  # 8 devices x (2 real + 2 fake)
  return c


def random_batch(seed, groups=8, per_side=2, patches=6, dim=12):
  rng = np.random.default_rng(seed)
  real = rng.normal(size=(groups, per_side, patches, dim)).astype(np.float32)
  fake = rng.normal(size=(groups, per_side, patches, dim)).astype(np.float32) + 0.3
  return {"real": real, "fake": fake}


def run_single_device(config, state, batches):
  step = jax.jit(functools.partial(train_step.train_step, config=config))
  for batch in batches:
    state, metrics = step(state, batch)
  return jax.device_get(state), metrics


def run_parallel(mode, config, state, batches):
  dp = parallel.DataParallel(mode)
  step = dp.step(functools.partial(train_step.train_step, config=config))
  state = dp.put_state(jax.device_get(state))  # a host copy: the step donates its input
  for batch in batches:
    state, metrics = step(state, dp.put_batch(batch), None)
  return dp.get_state(state), metrics


@pytest.mark.parametrize("objective,kernel", [("mmd_d", "deep"), ("mmd_mp", "gaussian"),
                                              ("image_score", "deep")])
def test_jit_and_pmap_match_single_device(objective, kernel, tmp_path):
  assert jax.device_count() == 8
  config = config_lib.validate(tiny_config(tmp_path, objective, kernel), device_count=8)
  batches = [random_batch(s) for s in range(3)]
  sample = np.concatenate([batches[0]["real"][0], batches[0]["fake"][0]])
  state = train_step.init_state(config, sample, jax.random.key(0))
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
  one = random_batch(0, groups=1)
  batch = {k: np.repeat(v, 2, axis=0) for k, v in one.items()}
  state = train_step.init_state(config, one["real"][0], jax.random.key(0))
  losses = []
  for offset in (0, 1):
    _, metrics = train_step.train_step(
        state, {k: v[:1] for k, v in batch.items()}, config=config, group_offset=offset)
    losses.append(float(metrics["loss"]))
  assert losses[0] != losses[1]


def test_unknown_mode_is_refused():
  with pytest.raises(ValueError, match="config.parallel"):
    parallel.DataParallel("shard_map")
