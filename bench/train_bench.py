"""Train-step throughput of config.parallel = "jit" vs "pmap", in one run.

  python bench/train_bench.py [--devices 8] [--variant tiny/14 --image_size 56 --batch 32]

On a CPU, --devices fakes that many XLA devices (set before JAX starts); on a
GPU/TPU host it is ignored and every local device is used. Both modes run the
same config, the same initial state and the same batches of random images
(backbone forward inside the step, as in training from images); the ratio is
pmap time / jit time (> 1: jit is faster).
"""

import argparse
import os
import sys
import time


def parse():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--devices", type=int, default=8)
  parser.add_argument("--variant", default="tiny/14")
  parser.add_argument("--image_size", type=int, default=56)
  parser.add_argument("--batch", type=int, default=32, help="global images per step")
  parser.add_argument("--steps", type=int, default=20)
  return parser.parse_args()


ARGS = parse()
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={ARGS.devices}")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import functools  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from mdmf_jax import config_lib, features, parallel, train_step  # noqa: E402


def bench_mode(mode, config, state, backbone_params, featurize, batches):
  dp = parallel.DataParallel(mode, groups=config.objective.groups)
  step = dp.step(functools.partial(train_step.train_step, config=config, featurize=featurize))
  state, frozen = dp.put_state(jax.device_get(state)), dp.put_state(backbone_params)
  device_batches = [dp.put_batch(b) for b in batches]
  state, metrics = step(state, device_batches[0], frozen)  # compile
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for batch in device_batches[1:]:
    state, metrics = step(state, batch, frozen)
  jax.block_until_ready((state, metrics))
  return (len(device_batches) - 1) / (time.perf_counter() - start)


def main():
  config = config_lib.base()
  config.backbone.variant = ARGS.variant
  config.data.image_size, config.data.batch_size = ARGS.image_size, ARGS.batch
  config.data.data_dir, config.data.name = ".", "random_images"
  groups = config.objective.groups = jax.device_count()  # one MMD group per device
  config_lib.validate(config, device_count=groups)
  model, backbone_params = features.frozen_backbone(config)
  featurize = features.make_featurizer(model, config.patches)
  rng = np.random.default_rng(0)
  per_side = ARGS.batch // (2 * groups)
  shape = (groups * per_side, ARGS.image_size, ARGS.image_size, 3)  # group-major images
  batches = [{"real": rng.random(shape, np.float32), "fake": rng.random(shape, np.float32)}
             for _ in range(ARGS.steps + 1)]
  sample = np.asarray(jax.jit(featurize)(backbone_params, batches[0]["real"][:per_side]))
  state = train_step.init_state(config, sample, jax.random.key(0))
  print(f"{jax.device_count()} x {jax.devices()[0].device_kind}; ViT {ARGS.variant} at "
        f"{ARGS.image_size} px, {ARGS.batch} images/step ({per_side} real + {per_side} fake "
        f"per device)")
  speeds = {}
  for mode in parallel.MODES:
    speeds[mode] = bench_mode(mode, config, state, backbone_params, featurize, batches)
    print(f"{mode:5s} {speeds[mode]:8.2f} steps/s {speeds[mode] * ARGS.batch:9.1f} images/s")
  print(f"jit / pmap throughput ratio: {speeds['jit'] / speeds['pmap']:.2f}")


if __name__ == "__main__":
  main()
