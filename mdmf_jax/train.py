"""The training loop: data, the jitted/pmapped update, logs and checkpoints.

    python -m mdmf_jax.main --config=configs/demo.py --workdir=W

Rerunning the same command with the same workdir resumes from the latest
checkpoint (train state and data-iterator position, so the result equals an
uninterrupted run). With config.select.every, the step with the best
validation AUROC is kept apart as the selected checkpoint (selection.py).
SIGTERM (preemption) saves a checkpoint and returns; a non-finite loss or
gradient stops the run before anything bad is saved.
"""

from __future__ import annotations

import functools
import signal

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from mdmf_jax import (checkpoint, config_lib, detector, features, metric_log, parallel,
                      selection, train_step)
from mdmf_jax.data import demo, pipeline


class _Preemption:
  """Remembers a SIGTERM so the loop can stop at a step boundary.

  The flag is read once per step, before that step's save (`take`): a signal
  that lands later (during the save, say) is acted on at the next boundary,
  so the step the loop stops at is always the step it force-saved. In
  multi-process runs every process stops at the same step (the flag is
  or-ed over processes), since Orbax saves are collective.
  """

  def __init__(self):
    self._requested = False
    self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM: saving a checkpoint and stopping at the next step boundary")
    self._requested = True

  def take(self) -> bool:
    """Whether any process was asked to stop (read once, at a step boundary)."""
    requested = self._requested
    if jax.process_count() > 1:
      requested = bool(np.any(multihost_utils.process_allgather(np.int32(requested))))
    return requested

  def restore(self):
    signal.signal(signal.SIGTERM, self._previous)


def _image_batches(config):
  """(iterator, split): grain batches of images, split into this process's real and fake shares.

  Each process reads its own batch_size / processes images (its contiguous share
  of each side, parallel.py), whatever the device count.
  """
  data = config.data
  dataset = pipeline.train_dataset(
      data.data_dir, data.name, split=data.train_split, global_batch_size=data.batch_size,
      seed=config.seed, image_size=data.image_size, resize=data.resize,
      small_images=data.small_images, format_alignment_quality=data.format_alignment_quality,
      flip=data.flip, blur_prob=data.blur_prob, blur_sigma=tuple(data.blur_sigma),
      jpeg_prob=data.jpeg_prob, jpeg_quality=tuple(data.jpeg_quality),
      num_threads=data.num_threads, num_workers=data.num_workers)

  def split(batch):
    images = batch["image"]  # reals first, then fakes
    half = images.shape[0] // 2
    return {"real": images[:half], "fake": images[half:]}

  return iter(dataset), split


def train(config, workdir: str, *, devices=None):
  """Trains the PFS (and kernel) of `config` in `workdir`; returns the final host state.

  `devices`: the devices to train on (default: all of them; parallel.DataParallel).
  """
  config_lib.validate(config, device_count=jax.device_count() if devices is None else len(devices))
  groups = config.objective.groups
  dp = parallel.DataParallel(config.parallel, groups=groups, devices=devices)
  checkpoint.guard_workdir(workdir, config)
  if config.data.build_demo:
    demo.build_demo(config.data.data_dir, seed=config.seed)
  if config.select.every:
    selection.check_splits(config)
  model, backbone_params = features.frozen_backbone(config)
  images_in = detector.Detector.from_config(config, model)
  per_group = config.data.batch_size // (2 * groups)  # images per side in a group

  if config.data.feature_cache:
    folder = features.build_cache(config, config.data.train_split, images_in, backbone_params)
    cached = features.CachedBatches(folder, groups=groups, per_side=per_group, seed=config.seed)
    data_iterator, next_batch = None, cached.batch
    sample = cached.sample(per_group)
    trained_on = detector.Detector.from_config(config)  # the same PFS and kernel, features in
    frozen = None
  else:
    data_iterator, split = _image_batches(config)
    fresh = data_iterator.get_state()
    first = split(next(data_iterator))
    data_iterator.set_state(fresh)
    next_batch = lambda step: split(next(data_iterator))
    sample = np.asarray(jax.jit(images_in.features)(  # the first group (this process's part)
        backbone_params, np.concatenate([first["real"][:per_group], first["fake"][:per_group]])))
    trained_on = images_in
    frozen = backbone_params
  step_fn = functools.partial(train_step.train_step, config=config, detector=trained_on)

  # Process 0's sample and one seed everywhere: identical initial states.
  sample = multihost_utils.broadcast_one_to_all(sample)
  state = train_step.init_state(config, trained_on, sample, jax.random.key(config.seed))
  ckpt = checkpoint.Checkpoints(workdir, save_every=config.train.checkpoint_every,
                                keep=config.train.keep_checkpoints)
  state, start = ckpt.restore_or(jax.device_get(state), data_iterator)
  if start:
    logging.info("resumed from the checkpoint at step %d", start)
  total = config.train.total_steps
  log = metric_log.MetricLog(workdir, total_steps=total, images_per_step=config.data.batch_size,
                             start_step=start)
  selector = (selection.Selection(config, workdir, images_in, backbone_params)
              if config.select.every else None)
  update = dp.step(step_fn)
  state, frozen = dp.put_state(state), dp.put_state(frozen)
  preemption = _Preemption()
  try:
    for step in range(start, total):
      state, metrics = update(state, dp.put_batch(next_batch(step)), frozen)
      metrics = jax.device_get(metrics)
      checked = ("loss", "grad_norm", "update_norm")
      if not all(np.isfinite(metrics[k]) for k in checked):
        raise FloatingPointError(
            f"non-finite {', '.join(f'{k}={metrics[k]}' for k in checked)} at step {step + 1}; "
            f"stopping before saving it. The last good checkpoint (step "
            f"{ckpt.latest_step()}) is kept in {workdir}.")
      done = step + 1
      if done % config.train.log_every == 0 or done == total:
        log.write(done, metrics)
      preempted = preemption.take()
      ckpt.save(done, dp.get_state(state), data_iterator, force=preempted or done == total)
      if selector and selector.due(done) and not preempted:
        selector.update(done, dp.get_state(state))
      if preempted:
        _report_preemption(ckpt, done, workdir)
        break
  finally:
    preemption.restore()
    ckpt.wait()
    ckpt.close()
    log.close()
    if selector:
      selector.close()
  final = dp.get_state(state)
  logging.info("process %d: step %d, params sha256 %s", jax.process_index(), int(final.step),
               checkpoint.params_digest(final.params))
  return final


def _report_preemption(ckpt: checkpoint.Checkpoints, step: int, workdir: str):
  """Waits for the forced save of `step` and says whether it is on disk."""
  ckpt.wait()
  latest = ckpt.latest_step()
  if latest == step:
    logging.warning("preempted: checkpoint at step %d saved", step)
  else:
    logging.error("preempted: the checkpoint at step %d was NOT saved; the latest in %s is "
                  "step %s", step, workdir, latest)
    raise RuntimeError(f"preempted at step {step} without saving it (latest: {latest})")

