"""Train-step throughput of config.parallel = "jit" vs "pmap", in one run.

  python -m bench.train_bench [--devices 8] [--variant tiny/14 --image_size 56 --batch 32]

On a CPU, --devices fakes that many XLA devices (set before JAX starts) and the
defaults are the tiny ViT at 56 px, 32 images per step; on a GPU/TPU host
--devices is ignored, every local device is used, and the defaults are S/14
at 224 px, 64 images per step per device. Both modes run the
same config, the same initial state and the same batches of random images
(backbone forward inside the step, as in training from images); the ratio is
pmap time / jit time (> 1: jit is faster).
"""

import argparse
import os
import time


def parse():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--devices", type=int, default=8)
  parser.add_argument("--variant", help="default: tiny/14 on CPU, S/14 on an accelerator")
  parser.add_argument("--image_size", type=int, help="default: 56 on CPU, 224 on an accelerator")
  parser.add_argument("--batch", type=int, help="global images per step (default: 32 on CPU, "
                      "64 per device on an accelerator)")
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--json", default="", help="also write the results to this JSON file")
  return parser.parse_args()


ARGS = parse()
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={ARGS.devices}")

import functools  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from mdmf_jax import config_lib, detector, features, parallel, train_step  # noqa: E402


def bench_mode(mode, config, state, backbone_params, images_in, batches):
  dp = parallel.DataParallel(mode, groups=config.objective.groups)
  step = dp.step(functools.partial(train_step.train_step, config=config, detector=images_in))
  state, frozen = dp.put_state(jax.device_get(state)), dp.put_state(backbone_params)
  device_batches = [dp.put_batch(b) for b in batches]
  state, metrics = step(state, device_batches[0], frozen)  # compile
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for batch in device_batches[1:]:
    state, metrics = step(state, batch, frozen)
  jax.block_until_ready((state, metrics))
  return (len(device_batches) - 1) / (time.perf_counter() - start)


def _platform_defaults():
  accelerator = jax.devices()[0].platform != "cpu"
  ARGS.variant = ARGS.variant or ("S/14" if accelerator else "tiny/14")
  ARGS.image_size = ARGS.image_size or (224 if accelerator else 56)
  ARGS.batch = ARGS.batch or (64 * jax.device_count() if accelerator else 32)


def main():
  _platform_defaults()
  config = config_lib.base()
  config.backbone.variant = ARGS.variant
  config.data.image_size, config.data.batch_size = ARGS.image_size, ARGS.batch
  config.data.data_dir, config.data.name = ".", "random_images"
  groups = config.objective.groups = jax.device_count()  # one MMD group per device
  config_lib.validate(config, device_count=groups)
  model, backbone_params = features.frozen_backbone(config)
  images_in = detector.Detector.from_config(config, model)
  rng = np.random.default_rng(0)
  per_side = ARGS.batch // (2 * groups)
  shape = (groups * per_side, ARGS.image_size, ARGS.image_size, 3)  # group-major images
  batches = [{"real": rng.random(shape, np.float32), "fake": rng.random(shape, np.float32)}
             for _ in range(ARGS.steps + 1)]
  sample = np.asarray(jax.jit(images_in.features)(backbone_params, batches[0]["real"][:per_side]))
  state = train_step.init_state(config, images_in, sample, jax.random.key(0))
  print(f"{jax.device_count()} x {jax.devices()[0].device_kind}; ViT {ARGS.variant} at "
        f"{ARGS.image_size} px, {ARGS.batch} images/step ({per_side} real + {per_side} fake "
        f"per device)")
  speeds = {}
  for mode in parallel.MODES:
    speeds[mode] = bench_mode(mode, config, state, backbone_params, images_in, batches)
    print(f"{mode:5s} {speeds[mode]:8.2f} steps/s {speeds[mode] * ARGS.batch:9.1f} images/s")
  print(f"jit / pmap throughput ratio: {speeds['jit'] / speeds['pmap']:.2f}")
  common.write_json(ARGS.json, "train", [
      {"name": f"{mode}, ViT {ARGS.variant} at {ARGS.image_size} px, batch {ARGS.batch}",
       "steps_per_s": speed, "images_per_s": speed * ARGS.batch} for mode, speed in speeds.items()]
      + [{"name": "jit / pmap", "ratio": speeds["jit"] / speeds["pmap"]}])


if __name__ == "__main__":
  main()
