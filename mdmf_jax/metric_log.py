"""Training logs: a console line with speed and ETA, TensorBoard events, metrics.jsonl.

Only process 0 writes; the other processes get a logger that does nothing.
"""

from __future__ import annotations

import json
import os
import time

from absl import logging
import jax
import numpy as np
import tensorboardX


class MetricLog:

  def __init__(self, workdir: str, *, total_steps: int, images_per_step: int, start_step: int):
    self.active = jax.process_index() == 0
    self.total_steps, self.images_per_step = total_steps, images_per_step
    self._last_step, self._last_time = start_step, time.perf_counter()
    if self.active:
      self.writer = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"))
      self.jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")

  def write(self, step: int, metrics: dict):
    """Logs `metrics` (scalars) at `step` with steps/s, images/s and ETA since the last call."""
    if not self.active:
      return
    now = time.perf_counter()
    steps_per_s = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    scalars = {k: float(np.asarray(v)) for k, v in metrics.items()}
    scalars.update(steps_per_s=steps_per_s, images_per_s=steps_per_s * self.images_per_step)
    for name, value in scalars.items():
      self.writer.add_scalar(name, value, step)
    self.jsonl.write(json.dumps({"step": step, **scalars}) + "\n")
    self.jsonl.flush()
    eta = (self.total_steps - step) / steps_per_s if steps_per_s > 0 else float("inf")
    logging.info("step %d/%d  loss %.4f  J %.3f  mmd2 %.3g  |g| %.3g  %.2f steps/s  "
                 "%.1f images/s  ETA %s", step, self.total_steps, scalars["loss"], scalars["j"],
                 scalars["mmd2"], scalars["grad_norm"], steps_per_s, scalars["images_per_s"],
                 _duration(eta))

  def close(self):
    if self.active:
      self.writer.close()
      self.jsonl.close()


def _duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return "?"
  minutes, secs = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}"
