"""What one global MMD costs against one MMD group per device (`objective.groups`).

  python -m bench.groups_bench [--devices 8] [--batch 32 --patches 64 --dim 384]

Trains from cached-feature-sized inputs (the demo's shapes: ViT-S/14 tokens,
64 patches of 384 floats per image, 16 real + 16 fake images per step, PFS
256 -> 64, mmd_d with every patch), so the step is the PFS and the MMD alone.
For groups = 1 (one global set: every device needs the whole batch's patches)
and groups = devices (each device estimates its own group, nothing gathered),
under jit and pmap, it prints the time per step and the bytes the compiled
step moves in collectives per device, read from the compiled HLO (all-gather
outputs; all-reduce and other collectives listed too). On a CPU, --devices
fakes that many XLA devices (set before JAX starts).
"""

import argparse
import collections
import os
import re
import time


def parse():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--devices", type=int, default=8)
  parser.add_argument("--batch", type=int, default=32, help="global images per step")
  parser.add_argument("--patches", type=int, default=64, help="patches per image")
  parser.add_argument("--dim", type=int, default=384, help="floats per patch feature")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--json", default="", help="also write the results to this JSON file")
  return parser.parse_args()


ARGS = parse()
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={ARGS.devices}")

import functools  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from mdmf_jax import config_lib, detector, parallel, train_step  # noqa: E402

_COLLECTIVE = re.compile(r"= (.*?) (all-gather|all-reduce|all-to-all|collective-permute|"
                         r"reduce-scatter)(?:-start)?\(")
_ARRAY = re.compile(r"(pred|[a-z]+\d+)\[([\d,]*)\]")
_DTYPES = {"pred": "bool", "bf16": "bfloat16"}


def collective_bytes(hlo_text: str) -> dict[str, int]:
  """Output bytes per device of each kind of collective in a compiled HLO module."""
  totals = collections.Counter()
  for outputs, kind in _COLLECTIVE.findall(hlo_text):
    for dtype, dims in _ARRAY.findall(outputs):  # one array or a tuple of them
      name = _DTYPES.get(dtype, dtype.replace("f", "float").replace("s", "int").replace(
          "u", "uint"))
      totals[kind] += int(np.prod([int(d) for d in dims.split(",") if d])) * np.dtype(
          name).itemsize
  return dict(totals)


def bench(mode, groups, config, state, batches):
  config.objective.groups = groups
  config_lib.validate(config, device_count=jax.device_count())
  dp = parallel.DataParallel(mode, groups=groups)
  step = dp.step(functools.partial(train_step.train_step, config=config,
                                   detector=detector.Detector.from_config(config)))
  device_batches = [dp.put_batch(b) for b in batches]
  text = step.lower(dp.put_state(jax.device_get(state)), device_batches[0], None).compile().as_text()
  state = dp.put_state(jax.device_get(state))
  state, metrics = step(state, device_batches[0], None)  # compile
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for batch in device_batches[1:]:
    state, metrics = step(state, batch, None)
  jax.block_until_ready((state, metrics))
  return (time.perf_counter() - start) / (len(device_batches) - 1), collective_bytes(text)


def main():
  config = config_lib.base()
  config.data.data_dir, config.data.name = ".", "random_features"
  config.data.batch_size = ARGS.batch
  config.pfs.hidden_dim, config.pfs.out_dim = 256, 64
  devices = jax.device_count()
  per_side = ARGS.batch // 2
  rng = np.random.default_rng(0)
  shape = (per_side, ARGS.patches, ARGS.dim)
  batches = [{"real": rng.normal(size=shape).astype(np.float32),
              "fake": rng.normal(size=shape).astype(np.float32) + 0.1}
             for _ in range(ARGS.steps + 1)]
  sample = np.concatenate([batches[0]["real"][:2], batches[0]["fake"][:2]])
  state = train_step.init_state(config, detector.Detector.from_config(config), sample,
                                jax.random.key(0))
  side_bytes = per_side * ARGS.patches * ARGS.dim * 4
  print(f"{devices} x {jax.devices()[0].device_kind}; {ARGS.batch} images/step "
        f"({per_side} real + {per_side} fake), {ARGS.patches} patches x {ARGS.dim} floats; "
        f"one side's features: {side_bytes / 2**20:.2f} MiB")
  print(f"{'mode':5s} {'groups':>6s} {'ms/step':>8s}  collectives per device per step (MiB)")
  results = []
  for mode in parallel.MODES:
    for groups in sorted({1, devices}):
      seconds, moved = bench(mode, groups, config, state, batches)
      listed = ", ".join(f"{k} {v / 2**20:.2f}" for k, v in sorted(moved.items())) or "none"
      print(f"{mode:5s} {groups:6d} {seconds * 1e3:8.1f}  {listed}")
      results.append({"name": f"{mode}, groups {groups}", "ms_per_step": seconds * 1e3,
                      **{f"{k}_mib": v / 2**20 for k, v in moved.items()}})
  common.write_json(ARGS.json, "groups", results)


if __name__ == "__main__":
  main()
