"""MMD throughput against a matrix product of the same FLOPs, and the deep-kernel J against PyTorch.

    python -m bench.mmd_bench                          # sizes for the platform JAX runs on
    python -m bench.mmd_bench --pairs=32 --points=256  # any sizes
    python -m bench.mmd_bench --json=mmd.json          # also one JSON record (bench/common.py)

Defaults: 32 pairs of 256-point sets on CPU, 256 pairs of 1024 points on an
accelerator; raw features of `--dim` 128, PFS features of `--pfs_dim` 64.

Each MMD^2 between two sets of `points` x `dim` needs three Gram matrices,
3 * 2 * points^2 * dim FLOPs in matrix products. The reference is a jitted
batched matrix product of exactly those shapes (3 * pairs products), so
ratio = matmul time / our time = our throughput / matmul throughput (1.0 =
matmul speed); forward+grad is compared with the matmul's forward+grad (3x
the FLOPs for both). TFLOP/s counts those matmul-equivalent FLOPs.

The deep-kernel J (mmd.set_j_statistic with mmd.deep, as objectives.mmd_d
trains it) forward+grad is also timed against the same computation written in
PyTorch eager (on cuda when available; and torch.compile'd on cuda when that
works), after checking that both give the same J and gradients.
All timings: medians of alternating repeats (bench/common.py).
"""

import argparse
import functools
import os

# JAX would otherwise take most of an accelerator's memory up front and leave PyTorch none.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from bench import common  # pylint: disable=wrong-import-position
from mdmf_jax import mmd  # pylint: disable=wrong-import-position

_HIGHEST = jax.lax.Precision.HIGHEST
_REG = 1e-8


def _blocking(fn, *args):
  return lambda: jax.block_until_ready(fn(*args))


def matmul_reference(num_products, points, dim, key):
  """(forward, forward+grad, operands) of a batched matmul with the Gram matrices' shapes."""
  a = jax.random.normal(key, (num_products, points, dim))
  b = jax.random.normal(jax.random.fold_in(key, 1), (num_products, points, dim))
  forward = jax.jit(lambda a, b: jnp.einsum("bmd,bnd->bmn", a, b, precision=_HIGHEST))
  loss = lambda a, b: jnp.sum(forward(a, b))
  return forward, jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), (a, b)


def deep_kernel(params):
  """mmd.deep bound to raw parameters, constrained as kernels.Deep does."""
  return functools.partial(mmd.deep, eps=jax.nn.sigmoid(params[0]),
                           sigma_phi=params[1] ** 2, sigma_q=params[2] ** 2)


def deep_loss(params, s_x, s_y, z_x, z_y):
  """Sum over pairs of -J, the mmd_d objective (set_j_statistic with the deep kernel)."""
  def neg_j(s_x, s_y, z_x, z_y):
    return -mmd.set_j_statistic(deep_kernel(params), (s_x, z_x), (s_y, z_y), _REG)
  return jnp.sum(jax.vmap(neg_j)(s_x, s_y, z_x, z_y))


def make_torch_deep_loss(torch):
  """`deep_loss` in PyTorch, batched over pairs, written as MMD-D's reference code does."""

  def sq_dists(a, b):
    d2 = (a * a).sum(-1)[:, :, None] + (b * b).sum(-1)[:, None, :] - 2 * a @ b.transpose(1, 2)
    return d2.clamp_min(0)

  def loss(params, s_x, s_y, z_x, z_y):
    eps, sigma_phi, sigma_q = torch.sigmoid(params[0]), params[1] ** 2, params[2] ** 2

    def gram(s_a, s_b, z_a, z_b):
      return (((1 - eps) * torch.exp(-sq_dists(s_a, s_b) / sigma_phi) + eps)
              * torch.exp(-sq_dists(z_a, z_b) / sigma_q))

    k_xx, k_yy = gram(s_x, s_x, z_x, z_x), gram(s_y, s_y, z_y, z_y)
    k_xy = gram(s_x, s_y, z_x, z_y)
    h = k_xx + k_yy - k_xy - k_xy.transpose(1, 2)
    n = h.shape[1]
    rows = h.sum(2)
    total = rows.sum(1)
    stat = (total - torch.diagonal(h, dim1=1, dim2=2).sum(1)) / (n * (n - 1))
    var = 4 * (rows**2).sum(1) / n**3 - 4 * total**2 / n**4
    return -(stat / torch.sqrt(var.clamp_min(0) + _REG)).sum()

  return loss


def torch_references(args_np, ours_value, ours_grads):
  """{name: blocking callable} of the PyTorch deep J forward+grad, after checking it against ours.

  Empty (with the reason printed) when PyTorch is missing.
  """
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    print(f"PyTorch reference skipped: {error}")
    return {}
  device = "cuda" if torch.cuda.is_available() else "cpu"
  torch.backends.cuda.matmul.allow_tf32 = False  # fp32 products, as ours (Precision.HIGHEST)
  tensors = [torch.tensor(a, device=device, requires_grad=i < 3) for i, a in enumerate(args_np)]

  def step(loss_fn):
    def run():
      for t in tensors[:3]:
        t.grad = None
      value = loss_fn(*tensors)
      value.backward()
      if device == "cuda":
        torch.cuda.synchronize()
      return value
    return run

  torch_deep_loss = make_torch_deep_loss(torch)
  eager = step(torch_deep_loss)
  value = eager().item()
  grads = [t.grad.detach().cpu().numpy() for t in tensors[:3]]
  diff = max([abs(value - float(ours_value)) / abs(float(ours_value))]
             + [float(np.max(np.abs(g - np.asarray(o))) / np.max(np.abs(g)))
                for g, o in zip(grads, ours_grads)])
  print(f"PyTorch deep J on {device}: largest relative difference from ours "
        f"(J, gradients) {diff:.1e}")
  references = {f"torch eager ({device})": eager}
  if device == "cuda":
    try:
      compiled = step(torch.compile(torch_deep_loss))
      compiled()
      references[f"torch.compile ({device})"] = compiled
    except Exception as error:  # pylint: disable=broad-except
      print(f"torch.compile reference skipped: {type(error).__name__}: {error}")
  return references


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pairs", type=int, default=None, help="default: 32 on CPU, else 256")
  parser.add_argument("--points", type=int, default=None, help="default: 256 on CPU, else 1024")
  parser.add_argument("--dim", type=int, default=128)
  parser.add_argument("--pfs_dim", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=15)
  parser.add_argument("--json", default="", help="write the results here (bench/common.py)")
  args = parser.parse_args()
  on_cpu = jax.devices()[0].platform == "cpu"
  p = args.pairs or (32 if on_cpu else 256)
  n = args.points or (256 if on_cpu else 1024)
  d, d_pfs = args.dim, args.pfs_dim
  key = jax.random.key(0)
  x = jax.random.normal(key, (p, n, d))
  y = jax.random.normal(jax.random.fold_in(key, 1), (p, n, d)) + 0.1
  s_x, s_y = x[..., :d_pfs], y[..., :d_pfs]
  print(f"device: {common.device_name()}; {p} pairs of {n}-point sets, dim {d}, pfs_dim {d_pfs}")

  gaussian = functools.partial(mmd.gaussian, bandwidth=2.0 * d)
  mmd_fwd = jax.jit(jax.vmap(functools.partial(mmd.set_mmd2, gaussian)))
  mmd_loss = lambda x, y: jnp.sum(mmd_fwd(x, y))
  mmd_grad = jax.jit(jax.value_and_grad(mmd_loss, argnums=(0, 1)))
  mm_fwd, mm_grad, mm_args = matmul_reference(3 * p, n, d, key)
  deep_grad = jax.jit(jax.value_and_grad(deep_loss, argnums=(0, 1, 2)))
  deep_params = jnp.array([0.0, np.sqrt(2.0 * d_pfs), np.sqrt(2.0 * d)])
  deep_args = (deep_params, s_x, s_y, x, y)
  _, deep_mm_grad, deep_mm_args = matmul_reference(3 * p, n, d + d_pfs, key)

  matmul_flops = lambda dim: 2 * 3 * p * n * n * dim
  rows = [  # (name, ours, matmul reference, FLOPs)
      ("gaussian MMD2 (unbiased), forward", _blocking(mmd_fwd, x, y),
       _blocking(mm_fwd, *mm_args), matmul_flops(d)),
      ("gaussian MMD2 (unbiased), forward+grad", _blocking(mmd_grad, x, y),
       _blocking(mm_grad, *mm_args), 3 * matmul_flops(d)),
      ("deep-kernel J, forward+grad", _blocking(deep_grad, *deep_args),
       _blocking(deep_mm_grad, *deep_mm_args), 3 * matmul_flops(d + d_pfs)),
  ]
  results = []
  print(f"{'computation':42s} {'ours ms':>9s} {'matmul ms':>10s} {'TFLOP/s':>8s} {'ratio':>6s}")
  for name, ours_fn, reference_fn, flops in rows:
    ours, reference = common.median_seconds([ours_fn, reference_fn], args.repeats)
    results.append({"name": name, "ours_s": ours, "matmul_s": reference,
                    "tflops": flops / ours / 1e12, "ratio_vs_matmul": reference / ours})
    print(f"{name:42s} {1e3 * ours:9.2f} {1e3 * reference:10.2f} {flops / ours / 1e12:8.3f} "
          f"{reference / ours:6.2f}")
  print("ratio = matmul time / ours (MMD throughput / matmul throughput; 1.0 = matmul speed)")

  value, grads = deep_grad(*deep_args)
  references = torch_references([np.asarray(a) for a in deep_args], value, grads)
  if references:
    ours_fn = rows[2][1]
    times = common.median_seconds([ours_fn, *references.values()], args.repeats)
    print(f"deep-kernel J forward+grad: ours {1e3 * times[0]:.2f} ms")
    for (name, _), seconds in zip(references.items(), times[1:]):
      results.append({"name": f"deep-kernel J, forward+grad, vs {name}", "ours_s": times[0],
                      "reference_s": seconds, "speedup": seconds / times[0]})
      print(f"  {name:26s} {1e3 * seconds:9.2f} ms   ours is {seconds / times[0]:.2f}x faster")
  common.write_json(args.json, "mmd_bench", results)


if __name__ == "__main__":
  main()
