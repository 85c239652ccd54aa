"""Data parallelism: one train step, two wrappers (`config.parallel`), any device count.

The MMD is estimated on `config.objective.groups` = G independent groups of
the global batch (G = 1: one global set); the loss averages the G statistics.
G is part of the config, not of the hardware, so the same config trains the
same model on 1 or 64 devices (tests/test_device_count.py). G and the device
count D must divide one another:

* G a multiple of D: a device holds G / D whole groups and estimates their
  MMDs alone; only gradients are averaged.
* D a multiple of G: a group spans M = D / G devices (G = 1: all of them);
  each holds b / M of the group's images, runs the backbone on them, and the
  group's patch features are all-gathered so that its M devices all compute
  the group's statistic (bench/groups_bench.py measures what that costs).

The two modes:

* "jit": the step under `jax.jit` on a 1-d ('data',) mesh over every device of
  every host; a batch is a global (G * b, ...) array sharded over the images,
  built from each process's share with `jax.make_array_from_process_local_data`
  and reshaped to (G, b, ...) inside the step; XLA inserts the gathers and the
  gradient all-reduce.
* "pmap": the same step under `jax.pmap` over the local devices: each device
  gets (G / D or 1, b or b / M, ...), `lax.all_gather` completes the groups
  that span devices, and `lax.pmean` averages gradients and metrics.

Group g draws its randomness from (step, g) whichever device holds it, and a
batch's images are laid out group-major and split in contiguous, equal
shares over the devices (and so over the processes), so both modes and every
D compute the same update.
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


def mesh(devices) -> Mesh:
  """The 1-d (AXIS,) mesh over `devices`: every data-parallel layout here shards along it."""
  return Mesh(np.asarray(devices), (AXIS,))


def groups_fit_devices(groups: int, devices: int) -> bool:
  """Whether G groups can be laid out on D devices (one divides the other)."""
  return groups % devices == 0 or devices % groups == 0


def process_share(count: int) -> slice:
  """This process's contiguous share of a side's `count` global images (batch layout above)."""
  share = count // jax.process_count()
  return slice(jax.process_index() * share, (jax.process_index() + 1) * share)


class DataParallel:
  """Wraps a step `fn(state, batch, frozen, *, group_offset, axis_name, gather_group)`.

    dp = DataParallel("jit", groups=config.objective.groups)  # devices=None: all of them
    state, frozen = dp.put_state(state), dp.put_state(frozen_backbone_params)
    batch = {"real": x, "fake": y}   # leaves: this process's process_share(G * b) images
    state, metrics = dp.step(step_fn)(state, dp.put_batch(batch), frozen)
    plain = dp.get_state(state)      # host-replicated pytree, e.g. for checkpoints

  The global batch of a side is G * b images, group-major (group g is images
  [g * b, (g + 1) * b)); `process_share` says which of them this process feeds.
  """

  def __init__(self, mode: str, groups: int = 1, devices=None):
    if mode not in MODES:
      raise ValueError(f"config.parallel={mode!r}; expected one of {MODES}")
    # Default: every device of every host. A subset (e.g. the first N of 8 fake CPU devices)
    # lets one process compare device counts (tests/test_device_count.py).
    self.devices = list(jax.devices() if devices is None else devices)
    self.local_devices = [d for d in self.devices if d.process_index == jax.process_index()]
    self.pmap_devices = None if devices is None else self.devices  # None: pmap's own default
    count = len(self.devices)
    if groups < 1 or not groups_fit_devices(groups, count):
      raise ValueError(f"config.objective.groups={groups} does not fit {count} devices "
                       "(one must divide the other)")
    self.mode, self.groups = mode, groups
    self.devices_per_group = max(count // groups, 1)
    self.groups_per_device = max(groups // count, 1)
    self.mesh = mesh(self.devices)
    self.replicated = NamedSharding(self.mesh, P())
    self.sharded = NamedSharding(self.mesh, P(AXIS))
    # pmap's per-device arrays: leading axis over the local devices, in the same
    # sharding pmap gives its outputs, so feeding a step's output back in does
    # not trigger a recompilation.
    self.local_sharded = NamedSharding(mesh(self.local_devices), P(AXIS))

  def step(self, step_fn):
    if self.mode == "jit":
      def global_step(state, batch, frozen):
        batch = jax.tree.map(lambda a: a.reshape((self.groups, -1) + a.shape[1:]), batch)
        return step_fn(state, batch, frozen, group_offset=0)

      return jax.jit(global_step,
                     in_shardings=(self.replicated, self.sharded, self.replicated),
                     out_shardings=(self.replicated, self.replicated), donate_argnums=0)

    members = self.devices_per_group
    gather_group = None
    if members > 1:
      # The devices sharing group g are g * M ... (g + 1) * M - 1; None: all of them.
      sets = None if self.groups == 1 else [
          list(range(g * members, (g + 1) * members)) for g in range(self.groups)]
      gather_group = functools.partial(jax.lax.all_gather, axis_name=AXIS, axis=1, tiled=True,
                                       axis_index_groups=sets)

    def per_device(state, batch, frozen):
      device = jax.lax.axis_index(AXIS)  # global device index under multi-host pmap
      offset = device // members * self.groups_per_device
      return step_fn(state, batch, frozen, group_offset=offset, axis_name=AXIS,
                     gather_group=gather_group)

    mapped = jax.pmap(per_device, axis_name=AXIS, donate_argnums=0, devices=self.pmap_devices)

    def step(state, batch, frozen):
      state, metrics = mapped(state, batch, frozen)
      return state, jax.tree.map(lambda m: m[0], metrics)  # pmean'd: equal on every device

    step.lower = mapped.lower  # as a jitted step has (e.g. to read the compiled HLO)
    return step

  def put_state(self, state):
    # The result may share buffers with `state`, and `step` donates it.
    if self.mode == "jit":
      return jax.device_put(state, self.replicated)
    copies = len(self.local_devices)
    return jax.tree.map(
        lambda a: jax.device_put(np.stack([np.asarray(a)] * copies), self.local_sharded), state)

  def get_state(self, state):
    if self.mode == "pmap":
      state = flax.jax_utils.unreplicate(state)
    return jax.device_get(state)

  def put_batch(self, local_batch):
    """Device arrays from this process's share: leaves (process_share images, ...)."""
    if self.mode == "jit":
      return jax.tree.map(
          lambda a: jax.make_array_from_process_local_data(self.sharded, np.asarray(a)),
          local_batch)
    # (local devices, groups on the device, images of each of them on the device, ...)
    shape = (len(self.local_devices), self.groups_per_device, -1)
    return jax.tree.map(
        lambda a: jax.device_put(np.asarray(a).reshape(shape + a.shape[1:]), self.local_sharded),
        local_batch)
