"""The one module that talks to Orbax, and the workdir's config guard.

A checkpoint of step N holds the train state after N updates and, when
training reads images through grain, that iterator's state, so a rerun of the
same command continues with the same batches. Saves are asynchronous; a run
killed mid-save leaves an uncommitted directory that Orbax ignores.

Workdirs are `etils.epath` paths, so a local folder and a cloud URI
(gs://bucket/run) both work and every process of a pod sees the same files.
"""

from __future__ import annotations

import hashlib
import json

from etils import epath
import grain
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"
# Fields that may change between a run and its resumption: they do not change
# what training computes (evaluation and detection settings included). The
# distributed.* fields differ between the processes of one run (process_id)
# and between reruns (coordinator port, process count): how processes meet,
# not what they compute (the MMD groups do not depend on the device count).
RESUMABLE_FIELDS = ("train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
                    "data.num_threads", "data.num_workers")
RESUMABLE_SECTIONS = ("eval.", "detect.", "distributed.")


class Checkpoints:
  """Orbax CheckpointManager over `workdir/checkpoints`.

    ckpt = Checkpoints(workdir, save_every=500, keep=3)
    state, step = ckpt.restore_or(state, data_iterator)   # `state` if none saved
    ckpt.save(step, state, data_iterator)                 # every `save_every` steps
    ckpt.save(step, state, data_iterator, force=True)     # at the end / on SIGTERM
    ckpt.close()
  """

  def __init__(self, workdir, *, save_every: int, keep: int, async_save: bool = True):
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=save_every, max_to_keep=keep, create=True,
        enable_async_checkpointing=async_save)
    self.manager = ocp.CheckpointManager(workdir_path(workdir) / "checkpoints", options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state, data_iterator=None, *, force=False) -> bool:
    items = {"state": ocp.args.StandardSave(state)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    return self.manager.save(step, args=ocp.args.Composite(**items), force=force)

  def restore_or(self, state, data_iterator=None):
    """(state, step) from the latest checkpoint, or (`state`, 0) if there is none.

    `state` is the template: restored arrays get its shapes, dtypes and
    shardings (so a replicated or sharded state comes back as such).
    `data_iterator`, if given, is set to its saved position in place.
    """
    step = self.latest_step()
    if step is None:
      return state, 0
    template = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    items = {"state": ocp.args.StandardRestore(template)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    return restored["state"], step

  def restore_params(self, template):
    """(params, step) of the latest checkpoint's `params` alone, or (None, None) if none.

    For inference: the optimiser state is never read, so no optimiser is built.
    `template`: the params' shapes and dtypes (ShapeDtypeStructs); restored on
    this process's first device.
    """
    step = self.latest_step()
    if step is None:
      return None, None
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    item = {"params": jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), template)}
    restore = ocp.args.PyTreeRestore(
        item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
        partial_restore=True)
    restored = self.manager.restore(step, args=ocp.args.Composite(state=restore))
    return restored["state"]["params"], step

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def workdir_path(workdir) -> epath.Path:
  """`workdir` as an epath.Path: local paths made absolute, URIs (gs://...) kept as they are."""
  path = epath.Path(workdir)
  return path if path.is_absolute() else path.resolve()


def _flatten(config: dict, prefix=""):
  for key, value in config.items():
    if isinstance(value, dict):
      yield from _flatten(value, f"{prefix}{key}.")
    else:
      yield prefix + key, value


def guard_workdir(workdir, config: ml_collections.ConfigDict):
  """Saves the resolved config in a new workdir; refuses a workdir of another config.

  Raises ValueError listing the differing fields (outside RESUMABLE_*), so
  two experiments are never silently mixed in one workdir.
  """
  path = epath.Path(workdir) / CONFIG_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  current = json.loads(config.to_json_best_effort())
  if path.exists():
    saved = dict(_flatten(json.loads(path.read_text())))
    now = dict(_flatten(current))
    differing = sorted(k for k in saved.keys() | now.keys()
                       if k not in RESUMABLE_FIELDS and not k.startswith(RESUMABLE_SECTIONS)
                       and saved.get(k) != now.get(k))
    if differing:
      details = "; ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in differing[:8])
      raise ValueError(
          f"workdir {workdir} holds a run of a different config ({details}). "
          "Use a new --workdir, or the same config to resume.")
  # Every process has read the old file before process 0 replaces it.
  multihost_utils.sync_global_devices("workdir config checked")
  if jax.process_index() == 0:
    path.write_text(json.dumps(current, indent=2, sort_keys=True))


def params_digest(params) -> str:
  """SHA-256 of the parameters' bytes in tree order: equal digests, equal runs."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(params):
    digest.update(np.ascontiguousarray(leaf).tobytes())
  return digest.hexdigest()
