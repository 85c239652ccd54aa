"""Scoring against a large bank, streamed and sharded: throughput, peak memory, device scaling.

  python -m bench.bank_bench                      # accelerator: a 1M-patch bank
  python -m bench.bank_bench --bank_patches=65536 # CPU-sized (the default on CPU)
  XLA_FLAGS=--xla_force_host_platform_device_count=4 python -m bench.bank_bench --json=b.json

A random bank of `bank_patches` deep-kernel points (s, z) of widths
(pfs_dim, feature_dim) is generated on the devices, sharded along its patches as
scoring.Scorer places one (each device holds R / D patches; nothing on the host).
A batch of `images` x `patches` points is scored against it by
scoring.score_points, the path evaluation and detection take: the bank streams
in blocks of `block` patches, one psum joins the devices' partial sums.

Printed per device count D (1, 2, 4, ... up to all devices):
  throughput   patch pairs (N * K * R) per second, and the ratio to an
               equal-FLOP matmul: the same queries times each device's bank
               shard, block by block, summed (2 (d' + D) FLOPs per pair as the
               kernel's distances need), on the same devices;
  memory       the bank's bytes per device; XLA's temporary buffers of the compiled
               scoring program (memory_analysis: what scoring needs beyond its
               inputs); the host's peak RSS while scoring (Linux: the peak is
               reset once the bank exists, so generating the random bank does
               not count; the JAX runtime and, on CPU, the bank itself do), and
               the process's lifetime peak; on GPU/TPU the device peak bytes
               (memory_stats).
The bank's R x R pass (Scorer.bank_from_points) is timed too, on `build_patches`
(it is quadratic in R: 1M patches is ~1e15 FLOPs).

Fake CPU devices (--xla_force_host_platform_device_count) share the same cores: their
"scaling" shows the overheads of sharding, not a speed-up.
"""

from __future__ import annotations

import argparse
import re
import resource

import jax
import jax.numpy as jnp

from bench import common
from mdmf_jax import kernels, scoring


def host_peak_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def reset_host_peak() -> bool:
  """Resets the process's peak RSS (Linux's VmHWM); False where that is not possible."""
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


def host_peak_since_reset_mib() -> float:
  with open("/proc/self/status") as f:
    return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 1024


def device_peak_mib():
  stats = jax.devices()[0].memory_stats()  # None on CPU
  return stats["peak_bytes_in_use"] / 2**20 if stats and "peak_bytes_in_use" in stats else None


def random_bank(num_points, widths, mesh, block, key) -> scoring.DeviceBank:
  """A DeviceBank of Gaussian points generated on the devices, each device its shard only."""
  valid = scoring.bank_mask(num_points, mesh, block)
  generate = jax.jit(lambda key: tuple(
      jax.random.normal(jax.random.fold_in(key, i), (valid.shape[0], w))
      for i, w in enumerate(widths)), out_shardings=valid.sharding)
  nan = jnp.float32(jnp.nan)  # rr_mean only shifts every score by a constant
  return scoring.DeviceBank(generate(key), valid, jnp.float32(0.5), nan)


def streamed_matmul(mesh, block):
  """Equal-FLOP reference: queries (M, d' + D) times each device's shard of the bank's
  (s, z) in blocks, summed; the bank's own arrays, so it costs no device memory."""
  def per_device(queries, shard):
    blocks = jax.tree.map(lambda a: a.reshape((-1, min(block, a.shape[0]), a.shape[1])), shard)

    def add(acc, block_parts):
      products = [jnp.matmul(q, b.T, precision=jax.lax.Precision.HIGHEST)
                  for q, b in zip(queries, block_parts)]
      return acc + jnp.sum(sum(products), axis=1), None

    total, _ = jax.lax.scan(add, jnp.zeros(queries[0].shape[0]), blocks)
    return jax.lax.psum(total, scoring.AXIS)
  P = jax.sharding.PartitionSpec
  return jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P(), P(scoring.AXIS)),
                               out_specs=P(), check_vma=False))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  on_cpu = jax.default_backend() == "cpu"
  parser.add_argument("--bank_patches", type=int, default=65_536 if on_cpu else 1_000_000)
  parser.add_argument("--build_patches", type=int, default=4096 if on_cpu else 65_536)
  parser.add_argument("--images", type=int, default=4 if on_cpu else 16)
  parser.add_argument("--patches", type=int, default=256)
  parser.add_argument("--pfs_dim", type=int, default=128)
  parser.add_argument("--feature_dim", type=int, default=384)  # ViT-S/14
  parser.add_argument("--block", type=int, default=4096)
  parser.add_argument("--repeats", type=int, default=3 if on_cpu else 5)
  parser.add_argument("--json", default="")
  args = parser.parse_args()

  rss_baseline = host_peak_mib()
  unit = kernels.Deep()
  make_kernel = unit.bind
  key = jax.random.key(0)
  widths = (args.pfs_dim, args.feature_dim)
  num_queries = args.images * args.patches
  queries = tuple(jax.random.normal(jax.random.fold_in(key, 10 + i), (num_queries, w)) + 0.1
                  for i, w in enumerate(widths))
  kernel_params = unit.init(key, *queries)
  sets = jax.tree.map(lambda a: a.reshape(args.images, args.patches, -1), queries)
  flops_per_pair = 2 * sum(widths)
  print(f"device: {common.device_name()}; bank {args.bank_patches} patches of (s, z) widths "
        f"{widths}, batch {args.images} x {args.patches} patches, block {args.block}")
  if on_cpu and jax.device_count() > 1:
    print("(fake CPU devices share the same cores: no speed-up is expected)")
  print(f"{'devices':>7s} {'ms':>9s} {'matmul ms':>10s} {'Gpairs/s':>9s} {'ratio':>6s} "
        f"{'bank MiB/dev':>12s} {'temp MiB':>8s} {'RSS MiB':>8s}")
  results, counts = [], [d for d in (1, 2, 4, 8, 16, 32, 64) if d <= jax.device_count()]
  for count in counts:
    mesh = scoring.eval_mesh(jax.devices()[:count])
    bank = jax.block_until_ready(random_bank(args.bank_patches, widths, mesh, args.block, key))
    score = jax.jit(lambda params, points, bank, mesh=mesh: scoring.score_points(
        make_kernel, params, points, bank, "mdmf", mesh=mesh, block_size=args.block))
    reference = streamed_matmul(mesh, args.block)
    analysis = score.lower(kernel_params, sets, bank).compile().memory_analysis()
    temp_mib = analysis.temp_size_in_bytes / 2**20 if analysis else float("nan")
    resettable = reset_host_peak()
    ours_s, matmul_s = common.median_seconds(
        [lambda: jax.block_until_ready(score(kernel_params, sets, bank)),
         lambda: jax.block_until_ready(reference(queries, bank.points))], args.repeats)
    pairs = num_queries * args.bank_patches
    bank_mib = sum(a.addressable_shards[0].data.nbytes for a in bank.points) / 2**20
    scoring_rss = host_peak_since_reset_mib() if resettable else float("nan")
    row = {"devices": count, "bank_patches": args.bank_patches, "query_patches": num_queries,
           "ms": 1e3 * ours_s, "matmul_ms": 1e3 * matmul_s,
           "pairs_per_s": pairs / ours_s, "gflops": pairs * flops_per_pair / ours_s / 1e9,
           "ratio_to_matmul": matmul_s / ours_s, "bank_mib_per_device": bank_mib,
           "scoring_temp_mib": temp_mib, "scoring_peak_rss_mib": scoring_rss}
    results.append(row)
    print(f"{count:7d} {row['ms']:9.1f} {row['matmul_ms']:10.1f} {pairs / ours_s / 1e9:9.2f} "
          f"{row['ratio_to_matmul']:6.2f} {bank_mib:12.0f} {temp_mib:8.0f} {scoring_rss:8.0f}")
    del bank
  if len(results) > 1:
    print("scaling (time on 1 device / time on D): " + ", ".join(
        f"D={r['devices']}: {results[0]['ms'] / r['ms']:.2f}x" for r in results))
  memory = {"host_peak_rss_mib": host_peak_mib(), "host_rss_before_bank_mib": rss_baseline,
            "device_peak_mib": device_peak_mib()}
  print(f"lifetime peak host RSS {memory['host_peak_rss_mib']:.0f} MiB, generating the random "
        f"bank included (before it: {rss_baseline:.0f} MiB); device peak "
        + ("n/a (CPU)" if memory["device_peak_mib"] is None
           else f"{memory['device_peak_mib']:.0f} MiB (bank: {results[0]['bank_mib_per_device']:.0f}"
                " MiB of it on one device)"))

  # The R x R pass of a bank build, on all devices, at `build_patches`.
  mesh = scoring.eval_mesh()
  bank = random_bank(args.build_patches, widths, mesh, args.block, key)
  build = jax.jit(lambda params, points, valid: scoring.bank_self_density(
      make_kernel, params, points, valid, mesh=mesh, block_size=args.block))
  (build_s,) = common.median_seconds(
      [lambda: jax.block_until_ready(build(kernel_params, bank.points, bank.valid))],
      args.repeats)
  pairs = args.build_patches ** 2
  print(f"bank build (R x R pass), R={args.build_patches} on {mesh.size} device(s): "
        f"{1e3 * build_s:.1f} ms, {pairs / build_s / 1e9:.2f} Gpairs/s")
  results.append({"build_patches": args.build_patches, "build_ms": 1e3 * build_s,
                  "build_pairs_per_s": pairs / build_s, **memory})
  common.write_json(args.json, "bank_bench", results)


if __name__ == "__main__":
  main()
