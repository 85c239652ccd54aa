"""Data parallelism: one train step, two wrappers (`config.parallel`).

* "jit": the step under `jax.jit` on a 1-d ('data',) mesh over every device of
  every host; batches are global arrays sharded along the group axis, built
  from each process's local groups with `jax.make_array_from_process_local_data`.
  The state is replicated; XLA inserts the gradient all-reduce.
* "pmap": the same step under `jax.pmap` over the local devices, with
  `lax.pmean` of gradients and metrics across all devices.

In both modes a device holds one group of the batch (see train_step.py), so
the two modes, and a single device given the same G groups, compute the same
update.
"""

from __future__ import annotations

import functools

import flax.jax_utils
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MODES = ("jit", "pmap")
AXIS = "data"


def initialize_distributed(cfg):
  """`jax.distributed.initialize` when `config.distributed.enabled` (before any JAX call).

  Empty fields are auto-detected by JAX (TPU pods, SLURM, Open MPI).
  """
  if not cfg.enabled:
    return
  kwargs = {k: cfg[k] for k in ("coordinator_address", "num_processes", "process_id")
            if cfg[k] is not None}
  jax.distributed.initialize(**kwargs)


class DataParallel:
  """Wraps a step `fn(state, batch, frozen, *, group_offset, axis_name)` for one mode.

    dp = DataParallel("jit")
    state, frozen = dp.put_state(state), dp.put_state(frozen_backbone_params)
    state, metrics = dp.step(step_fn)(state, dp.put_batch(local_batch), frozen)
    plain = dp.get_state(state)      # host-replicated pytree, e.g. for checkpoints

  `local_batch` leaves have this process's groups on axis 0, one per local
  device.
  """

  def __init__(self, mode: str):
    if mode not in MODES:
      raise ValueError(f"config.parallel={mode!r}; expected one of {MODES}")
    self.mode = mode
    self.mesh = Mesh(np.asarray(jax.devices()), (AXIS,))
    self.replicated = NamedSharding(self.mesh, P())
    self.sharded = NamedSharding(self.mesh, P(AXIS))
    # pmap's per-device arrays: leading axis over the local devices, in the same
    # sharding pmap gives its outputs, so feeding a step's output back in does
    # not trigger a recompilation.
    self.local_sharded = NamedSharding(Mesh(np.asarray(jax.local_devices()), (AXIS,)), P(AXIS))

  @property
  def num_groups(self) -> int:
    return jax.device_count()

  @property
  def local_groups(self) -> int:
    return jax.local_device_count()

  def step(self, step_fn):
    if self.mode == "jit":
      return jax.jit(functools.partial(step_fn, group_offset=0),
                     in_shardings=(self.replicated, self.sharded, self.replicated),
                     out_shardings=(self.replicated, self.replicated), donate_argnums=0)

    def per_device(state, batch, frozen):
      group = jax.lax.axis_index(AXIS)  # global device index under multi-host pmap
      return step_fn(state, batch, frozen, group_offset=group, axis_name=AXIS)

    mapped = jax.pmap(per_device, axis_name=AXIS, donate_argnums=0)

    def step(state, batch, frozen):
      state, metrics = mapped(state, batch, frozen)
      return state, jax.tree.map(lambda m: m[0], metrics)  # pmean'd: equal on every device

    return step

  def put_state(self, state):
    # The result may share buffers with `state`, and `step` donates it.
    if self.mode == "jit":
      return jax.device_put(state, self.replicated)
    copies = self.local_groups
    return jax.tree.map(
        lambda a: jax.device_put(np.stack([np.asarray(a)] * copies), self.local_sharded), state)

  def get_state(self, state):
    if self.mode == "pmap":
      state = flax.jax_utils.unreplicate(state)
    return jax.device_get(state)

  def put_batch(self, local_batch):
    if self.mode == "jit":
      return jax.tree.map(
          lambda a: jax.make_array_from_process_local_data(self.sharded, np.asarray(a)),
          local_batch)
    # One group per local device, keeping a group axis of 1 so the step's code is the same.
    return jax.tree.map(lambda a: jax.device_put(np.asarray(a)[:, None], self.local_sharded),
                        local_batch)
