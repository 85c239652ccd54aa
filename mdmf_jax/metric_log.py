"""Training logs: a console line with speed and ETA, TensorBoard events, metrics.jsonl.

Only process 0 writes; the other processes get a logger that does nothing.
The workdir may be a cloud URI (gs://, s3://): files go through etils.epath.

    log = MetricLog(workdir, total_steps=1000, images_per_step=32, start_step=0)
    log.write(step, {"loss": ..., "grad_norm": ..., "j": ..., "kernel/eps": ...})
    log.close()

Any keys are logged under their own names; an array metric of n values is
logged as name/0 .. name/(n-1).
"""

from __future__ import annotations

import json
import time

from absl import logging
from etils import epath
import jax
import numpy as np
import tensorboardX
from tensorboardX import record_writer


class _EpathEventFiles:
  """tensorboardX event files through epath, for URIs its own writers do not cover."""

  def directory_check(self, path):
    epath.Path(path).mkdir(parents=True, exist_ok=True)

  def open(self, path):
    return _EventFile(epath.Path(path).open("wb"))


class _EventFile:
  """write/flush/close only: tensorboardX fsyncs any file that has a fileno()."""

  def __init__(self, file):
    self.write, self.flush, self.close = file.write, file.flush, file.close


for _scheme in ("gs", "s3"):  # tensorboardX's own need google-cloud-storage / boto3
  record_writer.register_writer_factory(_scheme, _EpathEventFiles())


class _AppendOnlyText:
  """A text file appended to and flushed line by line; object stores (no append) get rewritten."""

  def __init__(self, path: epath.Path):
    self.path, self._rewrite = path, "://" in str(path)
    if self._rewrite:
      self._text = path.read_text() if path.exists() else ""
    else:
      self._file = path.open("a")

  def write_line(self, line: str):
    if self._rewrite:
      self._text += line + "\n"
      self.path.write_text(self._text)
    else:
      self._file.write(line + "\n")
      self._file.flush()

  def close(self):
    if not self._rewrite:
      self._file.close()


class MetricLog:

  def __init__(self, workdir: str, *, total_steps: int, images_per_step: int, start_step: int):
    self.active = jax.process_index() == 0
    self.total_steps, self.images_per_step = total_steps, images_per_step
    self._last_step, self._last_time = start_step, time.perf_counter()
    if self.active:
      self.writer = tensorboardX.SummaryWriter(str(epath.Path(workdir) / "tensorboard"))
      self.jsonl = _AppendOnlyText(epath.Path(workdir) / "metrics.jsonl")

  def write(self, step: int, metrics: dict):
    """Logs `metrics` (scalars) at `step` with steps/s, images/s and ETA since the last call."""
    if not self.active:
      return
    now = time.perf_counter()
    steps_per_s = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    scalars = _scalars(metrics)
    logged = ", ".join(f"{name} {value:.4g}" for name, value in scalars.items())
    scalars.update(steps_per_s=steps_per_s, images_per_s=steps_per_s * self.images_per_step)
    for name, value in scalars.items():
      self.writer.add_scalar(name, value, step)
    self.jsonl.write_line(json.dumps({"step": step, **scalars}))
    eta = (self.total_steps - step) / steps_per_s if steps_per_s > 0 else float("inf")
    logging.info("step %d/%d  %s  %.2f steps/s  %.1f images/s  ETA %s", step,
                 self.total_steps, logged, steps_per_s, scalars["images_per_s"], _duration(eta))

  def close(self):
    if self.active:
      self.writer.close()
      self.jsonl.close()


def _scalars(metrics: dict) -> dict:
  """{name: float}, sorted by name; an array of n values becomes name/0 .. name/(n-1)."""
  scalars = {}
  for name, value in sorted(metrics.items()):
    value = np.asarray(value, np.float64)
    if value.ndim == 0:
      scalars[name] = float(value)
    else:
      scalars.update((f"{name}/{i}", float(v)) for i, v in enumerate(value.ravel()))
  return scalars


def _duration(seconds: float) -> str:
  if not np.isfinite(seconds):
    return "?"
  minutes, secs = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}"
