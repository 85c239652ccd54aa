"""MMD throughput against a plain matrix product of the same FLOPs, in one run.

  python bench/mmd_bench.py [--pairs 32 --points 256 --dim 128 --pfs_dim 64]

Each MMD^2 between two sets of `points` x `dim` needs three Gram matrices,
3 * 2 * points^2 * dim FLOPs in matrix products; the reference is a jitted
batched matmul with exactly those shapes (3 * pairs products), so the ratio
(matmul time / MMD time = MMD throughput / matmul throughput) says how close
the estimator runs to the hardware's matmul speed. Forward+grad is compared
with the matmul's forward+grad (3x the FLOPs for both).
"""

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from mdmf_jax import mmd


def time_ms(fn, *args, repeats=20):
  jax.block_until_ready(fn(*args))  # compile and warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.min(times))  # best of N: robust to other load on the machine


def matmul_reference(num_products, points, dim, key):
  a = jax.random.normal(key, (num_products, points, dim))
  b = jax.random.normal(jax.random.fold_in(key, 1), (num_products, points, dim))
  forward = jax.jit(lambda a, b: jnp.einsum("bmd,bnd->bmn", a, b,
                                            precision=jax.lax.Precision.HIGHEST))
  loss = lambda a, b: jnp.sum(forward(a, b))
  return forward, jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), (a, b)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pairs", type=int, default=32)
  parser.add_argument("--points", type=int, default=256)
  parser.add_argument("--dim", type=int, default=128)
  parser.add_argument("--pfs_dim", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args()
  p, n, d = args.pairs, args.points, args.dim
  key = jax.random.key(0)
  x = jax.random.normal(key, (p, n, d))
  y = jax.random.normal(jax.random.fold_in(key, 1), (p, n, d)) + 0.1
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}; "
        f"{p} pairs of {n}x{d} sets")

  gaussian = functools.partial(mmd.gaussian, bandwidth=2.0 * d)
  mmd_loss = lambda x, y: jnp.sum(jax.vmap(functools.partial(mmd.set_mmd2, gaussian))(x, y))
  mmd_fwd = jax.jit(jax.vmap(functools.partial(mmd.set_mmd2, gaussian)))
  mmd_grad = jax.jit(jax.value_and_grad(mmd_loss, argnums=(0, 1)))
  mm_fwd, mm_grad, mm_args = matmul_reference(3 * p, n, d, key)

  s_x, s_y = x[..., : args.pfs_dim], y[..., : args.pfs_dim]

  def deep_loss(params, s_x, s_y, z_x, z_y):
    def neg_j(s_x, s_y, z_x, z_y):
      kernel = functools.partial(mmd.deep, eps=jax.nn.sigmoid(params[0]),
                                 sigma_phi=params[1] ** 2, sigma_q=params[2] ** 2)
      return -mmd.j_statistic(*mmd.gram_matrices(kernel, (s_x, z_x), (s_y, z_y)))
    return jnp.sum(jax.vmap(neg_j)(s_x, s_y, z_x, z_y))

  deep_grad = jax.jit(jax.value_and_grad(deep_loss, argnums=(0, 1, 2)))
  deep_params = jnp.array([0.0, np.sqrt(2.0 * args.pfs_dim), np.sqrt(2.0 * d)])
  _, deep_mm_grad, deep_mm_args = matmul_reference(3 * p, n, d + args.pfs_dim, key)

  rows = [
      ("unbiased gaussian MMD2, forward", mmd_fwd, (x, y), mm_fwd, mm_args, 1),
      ("unbiased gaussian MMD2, forward+grad", mmd_grad, (x, y), mm_grad, mm_args, 3),
      ("deep-kernel J, forward+grad", deep_grad, (deep_params, s_x, s_y, x, y),
       deep_mm_grad, deep_mm_args, 3),
  ]
  print(f"{'computation':40s} {'ours ms':>9s} {'matmul ms':>10s} {'GFLOP/s':>8s} {'ratio':>6s}")
  for name, fn, fn_args, ref, ref_args, flop_factor in rows:
    ours, reference = time_ms(fn, *fn_args, repeats=args.repeats), time_ms(
        ref, *ref_args, repeats=args.repeats)
    flops = flop_factor * 2 * ref_args[0].shape[0] * n * n * ref_args[0].shape[2]
    print(f"{name:40s} {ours:9.2f} {reference:10.2f} {flops / ours / 1e6:8.1f} "
          f"{reference / ours:6.2f}")
  print("ratio = matmul time / ours (MMD throughput / matmul throughput; 1.0 = matmul speed)")


if __name__ == "__main__":
  main()
