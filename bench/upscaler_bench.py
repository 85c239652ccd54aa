"""Seconds per AI-upscaled fake, our JAX port against ncnn, and their parity, in one run.

  python -m bench.upscaler_bench [--models realesrgan-x4plus ...] [--images 16 --size 112]

For each model: `--images` real photo crops (`--size` px, from scikit-image's
photographs) are area-downscaled x4 (uint8) and restored. Timed:
  * JAX: `upscalers.upscale_with` (downscale + model + uint8, jitted) at
    `--batch_size`, after one untimed batch that compiles (its time is printed);
  * ncnn (needs `pip install ncnn`): the same .param/.bin on the CPU, one thread,
    fp16/bf16 storage off, one image at a time.
Parity: max |ours - ncnn| of the clipped float outputs in [0, 1], and the share of
uint8 pixels that differ. Also printed: the mean PSNR of the fakes against their
real crops (how much the generator changed). Timings: the fastest of `--repeats`
runs, wall-clock and CPU seconds of this process (all threads; on a loaded
machine the CPU time is closer to what the work costs on idle cores than the
wall time is).
"""

import argparse
import time

import jax
import numpy as np
import skimage.data

from bench import common
from mdmf_jax.data import upscalers
from mdmf_jax.models import ncnn_reader, rrdbnet

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def crops(count, size, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for i in range(count):
    photo = getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()
    top = rng.integers(photo.shape[0] - size + 1)
    left = rng.integers(photo.shape[1] - size + 1)
    out.append(photo[top:top + size, left:left + size])
  return np.stack(out)


def ncnn_net(name):
  """The model's files run by ncnn: (N, H, W, 3) in [0, 1] -> clipped outputs."""
  run = ncnn_reader.ncnn_runner(*upscalers.model_files(name))
  return lambda images: np.clip(run(images), 0, 1)


def best_time(fn, repeats):
  """(wall s, CPU s of this process, all threads) of the fastest of `repeats` runs."""
  times = []
  for _ in range(repeats):
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    times.append((time.perf_counter() - start, time.process_time() - start_cpu))
  return min(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", nargs="+", default=list(upscalers.MODELS))
  parser.add_argument("--images", type=int, default=16)
  parser.add_argument("--size", type=int, default=112)
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--json", default="", help="also write the results to this JSON file")
  args = parser.parse_args()
  results = []
  images = crops(args.images, args.size)
  low = np.asarray(upscalers.downscale_x4(images)) / np.float32(255)
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}; {args.images} crops "
        f"of {args.size} px from {args.size // 4} px, batch {args.batch_size}")
  for name in args.models:
    module, params = upscalers.load_model(name)
    start = time.perf_counter()
    upscalers.upscale_with(module, params, images[:args.batch_size], args.batch_size, name)
    compile_s = time.perf_counter() - start
    jax_s, jax_cpu = np.divide(best_time(
        lambda: upscalers.upscale_with(module, params, images, args.batch_size, name),
        args.repeats), len(images))
    fakes = upscalers.upscale_with(module, params, images, args.batch_size, name)
    mse = np.mean((fakes.astype(np.float64) - images) ** 2, axis=(1, 2, 3))
    psnr = np.mean(10 * np.log10(255 ** 2 / mse))
    row = {"name": name, "psnr_db": float(psnr), "jax_s_per_fake": float(jax_s)}
    results.append(row)
    line = (f"{name}: PSNR fake vs real {psnr:.2f} dB; JAX {jax_s:.3f} s/fake, {jax_cpu:.3f} "
            f"CPU-s/fake (first batch incl. compile {compile_s:.1f} s)")
    try:
      run = ncnn_net(name)
    except ImportError:
      print(line + "; ncnn not installed")
      continue
    ncnn_s, ncnn_cpu = np.divide(best_time(lambda: run(low), args.repeats), len(images))
    reference = run(low)
    ours = np.asarray(jax.jit(rrdbnet.super_resolve, static_argnums=0)(module, params, low))
    differ = np.mean(fakes != np.round(reference * 255).astype(np.uint8))
    row.update(ncnn_s_per_fake=float(ncnn_s), ratio=float(ncnn_s / jax_s),
               max_abs_diff=float(np.abs(ours - reference).max()))
    print(f"{line}; ncnn 1 thread {ncnn_s:.3f} s/fake, {ncnn_cpu:.3f} CPU-s/fake; "
          f"max |ours - ncnn| {np.abs(ours - reference).max():.2e}, uint8 pixels differing "
          f"{differ:.2e}")
  common.write_json(args.json, "upscaler", results)


if __name__ == "__main__":
  main()
