"""What every benchmark shares: timing in alternation, the device's name, one JSON record.

Each bench script times ours and a reference side by side in one process and
prints the ratio; with `--json=PATH` it also writes

    {"bench": NAME, "device": DEVICE, "results": [{...}, ...]}

which bench/run_all.sh gathers into one file. Timings are medians of
alternating repeats, so both sides see the same load on a shared machine.
"""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any, Callable, Sequence

import numpy as np


def device_name() -> str:
  """'NVIDIA H200 x1 (gpu)' for JAX's devices; on CPU, the processor and core count."""
  import jax  # pylint: disable=import-outside-toplevel
  device = jax.devices()[0]
  kind = device.device_kind
  if device.platform == "cpu":
    kind = f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"
  return f"{kind} x{jax.device_count()} ({device.platform})"


def median_seconds(fns: Sequence[Callable[[], Any]], repeats: int, warmup: int = 1) -> list[float]:
  """Median wall seconds of each blocking, argument-free callable, timed in alternation.

  Each callable must wait for its own result (jax.block_until_ready,
  torch.cuda.synchronize). The first `warmup` calls of each are untimed
  (compilation, autotuning, allocator growth).
  """
  for fn in fns:
    for _ in range(warmup):
      fn()
  seconds = [[] for _ in fns]
  for _ in range(repeats):
    for times, fn in zip(seconds, fns):
      start = time.perf_counter()
      fn()
      times.append(time.perf_counter() - start)
  return [float(np.median(times)) for times in seconds]


def write_json(path: str | None, bench: str, results: list[dict[str, Any]]) -> None:
  """Writes this bench's record to `path` (nothing when path is empty)."""
  if not path:
    return
  with open(path, "w") as f:
    json.dump({"bench": bench, "device": device_name(), "results": results}, f, indent=1)
