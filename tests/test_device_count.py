"""The device count does not change the trained model.

The tiny demo config, with objective.groups = 2 and patch subsampling (so the
objective's random keys matter), is trained from images for 6 steps on the
first 1, 2, 4 and 8 of this process's 8 fake CPU devices (conftest.py;
`train.train(..., devices=...)`), one after the other. The counts alternate
the parallel modes and cover both layouts of groups on devices:

  devices  mode  layout
  1        jit   2 groups on one device
  2        pmap  1 group per device
  4        jit   each group over 2 devices (XLA gathers)
  8        pmap  each group over 4 devices (lax.all_gather within the group)

Every run's batches must land on its N devices only, and every run must log
the same losses (rtol 1e-4) and end with the same parameters (atol 1e-5) as
the 1-device run. A run checkpointed at step 3 on 8
devices and resumed on 2 must end there too.
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from configs import demo as demo_config
from mdmf_jax import parallel, train

MODES = {1: "jit", 2: "pmap", 4: "jit", 8: "pmap"}


def train_on(count, data_dir, out_dir):
  """Trains the tiny config on the first `count` devices: (losses, parameter leaves).

  Checks that every batch went to exactly those devices.
  """
  put_batch = parallel.DataParallel.put_batch

  def checked_put_batch(self, local_batch):
    batch = put_batch(self, local_batch)
    used = {d for leaf in jax.tree.leaves(batch) for d in leaf.devices()}
    assert used == set(jax.devices()[:count]), f"{count} devices asked, {len(used)} used"
    return batch

  c = demo_config.get_config("tiny")
  c.data.data_dir, c.data.name = data_dir, "tiny_set"
  c.parallel = MODES[count]
  c.objective.groups = 2  # 4 real + 4 fake images of 4 patches per group
  c.objective.patches_per_side = 12  # of a group's 16 pooled patches per side
  c.train.log_every, c.train.checkpoint_every = 1, 3
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(parallel.DataParallel, "put_batch", checked_put_batch)
    state = train.train(c, out_dir, devices=jax.devices()[:count])
  with open(os.path.join(out_dir, "metrics.jsonl")) as f:
    losses = np.asarray([json.loads(line)["loss"] for line in f])
  return losses, [np.asarray(p) for p in jax.tree.leaves(state.params)]


def _assert_same_params(params, reference, what):
  assert len(params) == len(reference)
  for i, (p, r) in enumerate(zip(params, reference)):
    np.testing.assert_allclose(p, r, rtol=0, atol=1e-5, err_msg=f"{what}, param {i}")


def test_losses_and_parameters_do_not_depend_on_the_device_count(tiny_data, tmp_path):
  assert jax.device_count() == 8
  outs = {n: str(tmp_path / f"devices{n}") for n in MODES}
  results = {n: train_on(n, tiny_data, outs[n]) for n in MODES}
  reference_losses, reference_params = results[1]
  assert len(reference_losses) == 6
  assert len(set(reference_losses)) == 6  # it trains: every step's loss differs
  for n in (2, 4, 8):
    losses, params = results[n]
    np.testing.assert_allclose(losses, reference_losses, rtol=1e-4,
                               err_msg=f"{n} devices ({MODES[n]})")
    _assert_same_params(params, reference_params, f"{n} devices ({MODES[n]})")
  # The 8-device run, cut back to its step-3 checkpoint, resumes on 2 devices.
  resumed = str(tmp_path / "devices8_resumed_on_2")
  shutil.copytree(outs[8], resumed)
  shutil.rmtree(os.path.join(resumed, "checkpoints", "6"))
  losses, params = train_on(2, tiny_data, resumed)
  assert len(losses) == 9  # steps 1-6 of the first run, then 4-6: it resumed at 3
  np.testing.assert_allclose(losses[6:], reference_losses[3:], rtol=1e-4)
  _assert_same_params(params, reference_params, "resumed on 2 devices")
