"""Kernel functions, quadratic-time MMD estimators, the set-vs-bank score, permutation tests
and streaming means.

Pure `jax.numpy`: no Flax, no state. Everything here works under `jax.jit`,
`jax.vmap` over a leading batch of sets, and `jax.grad`.

Conventions
-----------
* A point set is an array of shape (m, d). The deep kernel's points are pairs
  `(s, z)` of PFS features s (m, d') and raw features z (m, D).
* A kernel is `kernel(x, y, **params) -> (m, n)` Gram matrix. Bind parameters
  with `functools.partial` to get a `kernel_fn(x, y)`; kernels.py binds the
  configured kernel with its learned parameters.
* Bandwidths divide the distance exactly as written (no hidden factor 2):
  gaussian is exp(-|x - y|^2 / bandwidth), so a median heuristic for it returns
  the median *squared* distance.
* Estimators take Gram matrices, so any kernel plugs in; their `set_`
  versions take point sets and a bound kernel and let XLA fuse every Gram
  matrix into the sums the estimator needs. Masks are boolean
  vectors marking the valid points of padded sets; a masked estimator equals the
  unmasked one on the valid points. Arithmetic is float32, or float64 when
  `jax_enable_x64` is on and the inputs are float64.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
KernelFn = Callable[[Any, Any], Array]

# Distances feed exponentials: TPU's default bf16 matmul passes (and TF32 on
# GPUs) would cost several significant digits, so the one matmul runs in full
# precision.
_DIST_PRECISION = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------
# Distances and kernels.
# --------------------------------------------------------------------------


def _compute_dtype(*arrays):
  return jnp.result_type(jnp.float32, *arrays)


def _num_points(points):
  return jax.tree.leaves(points)[0].shape[0]


def _centred(x, y):
  """x and y (compute dtype) less the mean of x: no cancellation from large common offsets."""
  dtype = _compute_dtype(x, y)
  x, y = x.astype(dtype), y.astype(dtype)
  centre = jax.lax.stop_gradient(jnp.mean(x, axis=0))
  return x - centre, y - centre


def pairwise_sq_dists(x: Array, y: Array | None = None) -> Array:
  """Squared Euclidean distances |x_i - y_j|^2, shape (m, n), clipped at 0.

  Computed as |x|^2 + |y|^2 - 2 x.y after centring both sets on the mean of x.
  When `y` is None or the same array object as `x`, the diagonal is exactly 0
  (the expansion alone leaves rounding residue there), and one point's
  distance to itself is the constant 0.
  """
  if not (y is None or y is x):
    return jnp.maximum(scaled_sq_dists(x, y, 1.0), 0.0)
  if x.shape[0] == 1:
    return jnp.zeros((1, 1), _compute_dtype(x))
  x, _ = _centred(x, x)
  sq = jnp.sum(x * x, axis=-1)
  d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * jnp.matmul(x, x.T, precision=_DIST_PRECISION),
                   0.0)
  return jnp.where(jnp.eye(d2.shape[0], dtype=bool), 0.0, d2)


def scaled_sq_dists(x: Array, y: Array | None, scale) -> Array:
  """scale * |x_i - y_j|^2, shape (m, n): what the kernels below exponentiate.

  For two sets it is one matrix product of augmented points (centred on the
  mean of x), with no clip:

    scale |x - y|^2 = [-2 scale x, scale |x|^2, 1] . [y, 1, scale |y|^2]

  so a Gram matrix exp(-scaled_sq_dists) that is only summed compiles to a
  product, an exponential and the sums in one XLA fusion, and the (m, n)
  matrix never round-trips memory. When `y` is None or `x` it is
  scale * pairwise_sq_dists(x), with the exact zero diagonal (a select that
  XLA does not fuse; the estimators' `kernel_sums` avoids it).
  """
  if y is None or y is x:
    return scale * pairwise_sq_dists(x)
  x, y = _centred(x, y)
  if min(x.shape[0], y.shape[0]) == 1:  # vmapped 1-row products run one by one on XLA:CPU
    return scale * jnp.sum(jnp.square(x[:, None, :] - y[None, :, :]), axis=-1)
  sq_x, sq_y = (jnp.sum(a * a, axis=-1, keepdims=True) for a in (x, y))
  a = jnp.concatenate([-2.0 * scale * x, scale * sq_x, jnp.ones_like(sq_x)], axis=-1)
  b = jnp.concatenate([y, jnp.ones_like(sq_y), scale * sq_y], axis=-1)
  return jnp.matmul(a, b.T, precision=_DIST_PRECISION)


def pairwise_l1_dists(x: Array, y: Array | None = None) -> Array:
  """L1 distances sum_k |x_ik - y_jk|, shape (m, n).

  Written as a broadcast-and-reduce; XLA fuses it, so the (m, n, d) difference
  tensor is not materialised. Exact (zero diagonal when x is y), and its
  gradient is finite everywhere (d|t|/dt = 0 at t = 0).
  """
  y = x if y is None else y
  dtype = _compute_dtype(x, y)
  diff = x.astype(dtype)[:, None, :] - y.astype(dtype)[None, :, :]
  return jnp.sum(jnp.abs(diff), axis=-1)


def _exp_neg_sq_dists(x: Array, y: Array | None, scale) -> Array:
  """exp(-scaled_sq_dists(x, y, scale)): `gaussian`, and each factor of `deep`.

  Between two sets of more than one point its gradient is the custom VJP
  below; the self Gram (exact diagonal, clip) and one-row sets (no products)
  keep plain autodiff.
  """
  if y is None or y is x or min(x.shape[0], y.shape[0]) == 1:
    return jnp.exp(-scaled_sq_dists(x, y, scale))
  dtype = _compute_dtype(x, y, scale)
  return _exp_neg_sq_dists_of_sets(x.astype(dtype), y.astype(dtype), jnp.asarray(scale, dtype))


@jax.custom_vjp
def _exp_neg_sq_dists_of_sets(x, y, scale):
  return jnp.exp(-scaled_sq_dists(x, y, scale))


def _exp_neg_sq_dists_fwd(x, y, scale):
  k = _exp_neg_sq_dists_of_sets(x, y, scale)
  return k, (x, y, scale, k)


def _exp_neg_sq_dists_bwd(residuals, dk):
  """Gradients of sum_ij dk_ij k_ij, as products of g = dk * k with the centred points:

    d/dx_i = 2 scale (sum_j g_ij y_j - x_i sum_j g_ij)   (y likewise, with g^T)
    d/dscale = -sum_ij g_ij |x_i - y_j|^2

  Plain autodiff of the augmented product gets the same through its
  concatenations and norms, in more passes over (m, d) and (m, n) arrays.
  Only the inputs and k are kept from the forward pass.
  """
  x, y, scale, k = residuals
  x, y = _centred(x, y)
  g = dk * k
  rows, cols = jnp.sum(g, axis=1), jnp.sum(g, axis=0)
  g_y = jnp.matmul(g, y, precision=_DIST_PRECISION)
  g_x = jnp.matmul(g.T, x, precision=_DIST_PRECISION)
  d_x = 2.0 * scale * (g_y - rows[:, None] * x)
  d_y = 2.0 * scale * (g_x - cols[:, None] * y)
  d_scale = -(rows @ jnp.sum(x * x, axis=-1) + cols @ jnp.sum(y * y, axis=-1)
              - 2.0 * jnp.sum(x * g_y))
  return d_x, d_y, d_scale


_exp_neg_sq_dists_of_sets.defvjp(_exp_neg_sq_dists_fwd, _exp_neg_sq_dists_bwd)


def gaussian(x: Array, y: Array, bandwidth) -> Array:
  """k(x, y) = exp(-|x - y|_2^2 / bandwidth)."""
  return _exp_neg_sq_dists(x, y, 1.0 / bandwidth)


def laplace(x: Array, y: Array, bandwidth) -> Array:
  """k(x, y) = exp(-|x - y|_1 / bandwidth), with the L1 norm.

  L1 (as in MMDAgg/MMD-FUSE) rather than L2: it is a product of 1-d Laplace
  kernels, and has no sqrt(0) in its gradient at x == y.
  """
  return jnp.exp(-pairwise_l1_dists(x, y) / bandwidth)


def imq(x: Array, y: Array, c, beta=-0.5) -> Array:
  """Inverse multiquadric k(x, y) = (c^2 + |x - y|_2^2)^beta, beta < 0."""
  return (c**2 + scaled_sq_dists(x, y, 1.0)) ** beta


def multi_gaussian(x: Array, y: Array, bandwidths) -> Array:
  """Mean over a bandwidth grid of exp(-|x - y|^2 / b); distances computed once."""
  d2 = pairwise_sq_dists(x, y)
  bandwidths = jnp.asarray(bandwidths, d2.dtype)
  return jnp.mean(jnp.exp(-d2[None] / bandwidths[:, None, None]), axis=0)


def deep(x, y, eps, sigma_phi, sigma_q) -> Array:
  """MMD-D's deep kernel (Liu et al., ICML 2020), on pairs x = (s_x, z_x).

    k(a, b) = [(1 - eps) exp(-|s_a - s_b|^2 / sigma_phi) + eps]
              * exp(-|z_a - z_b|^2 / sigma_q)

  s are PFS features, z raw backbone features. eps in (0, 1) and the sigmas
  > 0 are the constrained values (the raw, learnable parametrisation lives in
  kernels.Deep).
  """
  s_x, z_x = x
  s_y, z_y = (None, None) if y is x else y  # None: exact zero self-distances
  k_s = _exp_neg_sq_dists(s_x, s_y, 1.0 / sigma_phi)
  return ((1.0 - eps) * k_s + eps) * _exp_neg_sq_dists(z_x, z_y, 1.0 / sigma_q)


def gram_matrices(kernel_fn: KernelFn, x, y) -> tuple[Array, Array, Array]:
  """(Kxx, Kyy, Kxy) for a bound kernel; Kxx and Kyy get exact zero-distance diagonals."""
  return kernel_fn(x, x), kernel_fn(y, y), kernel_fn(x, y)


# --------------------------------------------------------------------------
# Bandwidth heuristics.
# --------------------------------------------------------------------------

_METRICS = {"sq_euclidean": pairwise_sq_dists, "l1": pairwise_l1_dists}


def _pooled_subsample(x, y, key, max_points):
  points = x if y is None else jnp.concatenate([x, y], axis=0)
  if points.shape[0] <= max_points:
    return points
  if key is None:
    raise ValueError(
        f"{points.shape[0]} points > max_points={max_points}: pass a PRNG `key` "
        "to subsample (a median over all pairs is slow under XLA)."
    )
  idx = jax.random.choice(key, points.shape[0], (max_points,), replace=False)
  return points[idx]


def _off_diagonal_distances(x, y, key, max_points, metric):
  if metric not in _METRICS:
    raise ValueError(f"metric={metric!r}; expected one of {sorted(_METRICS)}")
  points = _pooled_subsample(x, y, key, max_points)
  d = _METRICS[metric](points)
  rows, cols = jnp.triu_indices(points.shape[0], k=1)
  return d[rows, cols]


def median_heuristic(x, y=None, *, key=None, max_points=1024, metric="sq_euclidean"):
  """Median pairwise distance over the pooled points of x (and y).

  metric="sq_euclidean" gives the median *squared* distance (the bandwidth
  for `gaussian`/`deep`), "l1" the median L1 distance (for `laplace`). With
  more than `max_points` points a random subsample of that size is used
  (needs `key`).
  """
  return jnp.median(_off_diagonal_distances(x, y, key, max_points, metric))


def mean_heuristic(x, y=None, *, key=None, max_points=1024, metric="sq_euclidean"):
  """Mean pairwise distance over the pooled points (same conventions as `median_heuristic`)."""
  return jnp.mean(_off_diagonal_distances(x, y, key, max_points, metric))


# --------------------------------------------------------------------------
# Estimators. Each needs only the row sums, column sums and trace of the
# Gram matrices (`GramSums`): taken from given Gram matrices (masks allowed)
# or, by the `set_` functions, straight from the points (`kernel_sums`), where
# XLA fuses every Gram matrix into its sums.
# --------------------------------------------------------------------------


def _as_float(k):
  return jnp.asarray(k, _compute_dtype(k))


def _count(mask, n, dtype):
  return jnp.asarray(n, dtype) if mask is None else jnp.sum(mask, dtype=dtype)


def _masked_gram(k, mask_rows=None, mask_cols=None):
  """Float Gram matrix with the rows/columns of padded points set to 0."""
  k = _as_float(k)
  if mask_rows is None and mask_cols is None:
    return k
  rows = jnp.ones(k.shape[0], bool) if mask_rows is None else mask_rows.astype(bool)
  cols = jnp.ones(k.shape[1], bool) if mask_cols is None else mask_cols.astype(bool)
  # Select rather than multiply: padded points may hold anything, inf and NaN included.
  return jnp.where(rows[:, None] & cols[None, :], k, 0.0)


class GramSums(NamedTuple):
  """What the estimators need of a Gram matrix K (m, n)."""
  rows: Array  # (m,) sum_j K_ij
  cols: Array  # (n,) sum_i K_ij
  trace: Array  # sum_i K_ii over i < min(m, n)


def gram_sums(k, mask_rows=None, mask_cols=None) -> GramSums:
  """`GramSums` of a Gram matrix, padded rows and columns (masks) left out."""
  k = _masked_gram(k, mask_rows, mask_cols)
  return GramSums(jnp.sum(k, axis=1), jnp.sum(k, axis=0), jnp.trace(k))


def _paired_values(kernel_fn: KernelFn, x, y):
  """k(x_i, y_i) for i < min(m, n), one 1 x 1 Gram matrix each: the diagonal without the matrix.

  When y is x each is kernel_fn(x_i, x_i) of one and the same point: the
  self Gram's exact zero distance, for the squared-distance kernels a constant
  (`pairwise_sq_dists`) that XLA folds away, gradient included.
  """
  num = min(_num_points(x), _num_points(y))
  one_by_one = lambda points: jax.tree.map(lambda a: a[:num, None], points)
  if y is x:
    return jax.vmap(lambda a: kernel_fn(a, a)[0, 0])(one_by_one(x))
  return jax.vmap(lambda a, b: kernel_fn(a, b)[0, 0])(one_by_one(x), one_by_one(y))


def kernel_sums(kernel_fn: KernelFn, x, y) -> GramSums:
  """`GramSums` of kernel_fn(x, y) from the points; y may be x.

  The Gram matrix is only summed, so XLA fuses its product, exponential and
  sums (see `scaled_sq_dists`), and its trace comes from the points
  (`_paired_values`, exact zero-distance values when y is x). For y is x the
  matrix is evaluated against a copy of x: `kernel(x, x)` would make its
  diagonal exact with a select that XLA does not fuse.
  """
  k = _as_float(kernel_fn(x, jax.tree.map(jnp.copy, y) if y is x else y))
  trace = jnp.sum(_as_float(_paired_values(kernel_fn, x, y)))
  return GramSums(jnp.sum(k, axis=1), jnp.sum(k, axis=0), trace)


def _check_estimator(estimator):
  if estimator not in ("biased", "unbiased"):
    raise ValueError(f"estimator={estimator!r}; expected 'biased' or 'unbiased'")


def _mmd2_of_sums(xx: GramSums, yy: GramSums, xy: GramSums, m, n, estimator):
  sum_xx, sum_yy, cross = jnp.sum(xx.rows), jnp.sum(yy.rows), jnp.sum(xy.rows) / (m * n)
  if estimator == "biased":
    return sum_xx / m**2 + sum_yy / n**2 - 2.0 * cross
  return ((sum_xx - xx.trace) / (m * (m - 1)) + (sum_yy - yy.trace) / (n * (n - 1))
          - 2.0 * cross)


def mmd2(kxx, kyy, kxy, estimator="unbiased", mask_x=None, mask_y=None):
  """Two-sample MMD^2 between X (m points) and Y (n points), m != n allowed.

    biased (V):   mean(Kxx) + mean(Kyy) - 2 mean(Kxy)
    unbiased (U): sum_{i!=j} Kxx_ij / (m(m-1)) + sum_{i!=j} Kyy_ij / (n(n-1))
                  - 2 mean(Kxy)

  m, n count the valid points when masks are given.
  """
  _check_estimator(estimator)
  xx, yy = gram_sums(kxx, mask_x, mask_x), gram_sums(kyy, mask_y, mask_y)
  xy = gram_sums(kxy, mask_x, mask_y)
  dtype = xx.rows.dtype
  m, n = _count(mask_x, xx.rows.shape[0], dtype), _count(mask_y, yy.rows.shape[0], dtype)
  return _mmd2_of_sums(xx, yy, xy, m, n, estimator)


def _one_sample_u_and_variance(row_sums, trace, n):
  """U statistic sum_{i!=j} H_ij / (n(n-1)) and its H1 variance (MMD-D's estimate),
  from the row sums and trace of H:

    var = 4/n^3 sum_i (sum_j H_ij)^2 - 4/n^4 (sum_ij H_ij)^2

  The variance sums include the diagonal, as in MMD-D's reference code.
  """
  total = jnp.sum(row_sums)
  stat = (total - trace) / (n * (n - 1))
  var = 4.0 * jnp.sum(row_sums**2) / n**3 - 4.0 * total**2 / n**4
  return stat, var


def _paired_of_sums(xx: GramSums, yy: GramSums, xy: GramSums, n):
  # H = Kxx + Kyy - Kxy - Kxy^T, so H's row sums are these and H is never formed.
  return _one_sample_u_and_variance(xx.rows + yy.rows - xy.rows - xy.cols,
                                    xx.trace + yy.trace - 2.0 * xy.trace, n)


def _mpp_of_sums(xx: GramSums, xy: GramSums, n):
  return _one_sample_u_and_variance(xx.rows - xy.rows - xy.cols, xx.trace - 2.0 * xy.trace, n)


def paired_mmd2_and_variance(kxx, kyy, kxy, mask=None):
  """MMD-D's one-sample U statistic for paired sets (m = n) and its H1 variance.

    H_ij = Kxx_ij + Kyy_ij - Kxy_ij - Kxy_ji,  MMD2 = sum_{i!=j} H_ij / (n(n-1))

  `mask` marks valid pairs (point i of X with point i of Y).
  """
  xx, yy, xy = (gram_sums(k, mask, mask) for k in (kxx, kyy, kxy))
  return _paired_of_sums(xx, yy, xy, _count(mask, xx.rows.shape[0], xx.rows.dtype))


def mpp_and_variance(kxx, kxy, mask=None):
  """MMD-MP's multi-population proxy (Zhang et al., ICLR 2024): no Y-Y term.

    H_ij = Kxx_ij - Kxy_ij - Kxy_ji,  MPP = sum_{i!=j} H_ij / (n(n-1))
         = mean_{i!=j} Kxx - 2 mean_{i!=j} Kxy

  X is the single population (real), Y the mixture of generators (fake).
  """
  xx, xy = gram_sums(kxx, mask, mask), gram_sums(kxy, mask, mask)
  return _mpp_of_sums(xx, xy, _count(mask, xx.rows.shape[0], xx.rows.dtype))


def studentise(stat, var, reg=1e-8):
  """stat / sqrt(var + reg): the test-power proxy of MMD-D (reg keeps it finite)."""
  return stat / jnp.sqrt(jnp.maximum(var, 0.0) + reg)


def j_statistic(kxx, kyy, kxy, reg=1e-8, mask=None):
  """J = MMD2 / sqrt(var + reg) with the paired one-sample U statistic."""
  return studentise(*paired_mmd2_and_variance(kxx, kyy, kxy, mask), reg)


def set_mmd2(kernel_fn: KernelFn, x, y, estimator="unbiased", mask_x=None, mask_y=None):
  """`mmd2` between two point sets for a bound kernel (fused `kernel_sums` when unmasked)."""
  if mask_x is not None or mask_y is not None:
    return mmd2(*gram_matrices(kernel_fn, x, y), estimator, mask_x, mask_y)
  _check_estimator(estimator)
  xx, yy, xy = kernel_sums(kernel_fn, x, x), kernel_sums(kernel_fn, y, y), kernel_sums(
      kernel_fn, x, y)
  m, n = (jnp.asarray(_num_points(p), xx.rows.dtype) for p in (x, y))
  return _mmd2_of_sums(xx, yy, xy, m, n, estimator)


def set_paired_mmd2_and_variance(kernel_fn: KernelFn, x, y):
  """`paired_mmd2_and_variance` of two point sets of equal size (fused `kernel_sums`)."""
  xx, yy, xy = kernel_sums(kernel_fn, x, x), kernel_sums(kernel_fn, y, y), kernel_sums(
      kernel_fn, x, y)
  return _paired_of_sums(xx, yy, xy, jnp.asarray(_num_points(x), xx.rows.dtype))


def set_mpp_and_variance(kernel_fn: KernelFn, x, y):
  """`mpp_and_variance` of two point sets of equal size (fused `kernel_sums`)."""
  xx, xy = kernel_sums(kernel_fn, x, x), kernel_sums(kernel_fn, x, y)
  return _mpp_of_sums(xx, xy, jnp.asarray(_num_points(x), xx.rows.dtype))


def set_j_statistic(kernel_fn: KernelFn, x, y, reg=1e-8):
  """`j_statistic` of two point sets of equal size (fused `kernel_sums`)."""
  return studentise(*set_paired_mmd2_and_variance(kernel_fn, x, y), reg)


# --------------------------------------------------------------------------
# Permutation test.
# --------------------------------------------------------------------------


def _mmd2_for_assignments(k, in_x, estimator):
  """MMD^2 for a batch of X/Y splits of the pooled Gram matrix.

  k: (N, N) Gram matrix of the pooled sample; in_x: (P, N) 0/1 indicators of
  the X side. All P statistics come from two (P, N) x (N, N) products.
  """
  in_y = 1.0 - in_x
  m, n = jnp.sum(in_x, axis=1), jnp.sum(in_y, axis=1)
  kx = in_x @ k
  sum_xx = jnp.sum(kx * in_x, axis=1)
  sum_xy = jnp.sum(kx * in_y, axis=1)
  sum_yy = jnp.sum((in_y @ k) * in_y, axis=1)
  if estimator == "biased":
    return sum_xx / m**2 + sum_yy / n**2 - 2.0 * sum_xy / (m * n)
  diag = jnp.diagonal(k)
  sum_xx = sum_xx - in_x @ diag
  sum_yy = sum_yy - in_y @ diag
  return sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * sum_xy / (m * n)


@functools.partial(jax.jit, static_argnames=("kernel_fn", "num_permutations", "estimator"))
def permutation_test(x, y, kernel_fn: KernelFn, num_permutations: int, key,
                     estimator="unbiased"):
  """Permutation two-sample test of H0: X and Y have the same distribution.

  The pooled Gram matrix is computed once; every permutation reassigns its rows
  and columns to X and Y (batched matrix form, no Python loop). Returns the
  observed MMD^2 and the p-value (1 + #{perm stat >= observed}) / (P + 1).
  `kernel_fn` must be hashable (a module-level function or functools.partial
  of hashable values) since it is a static argument.
  """
  if estimator not in ("biased", "unbiased"):
    raise ValueError(f"estimator={estimator!r}; expected 'biased' or 'unbiased'")
  m, n = _num_points(x), _num_points(y)
  pooled = jax.tree.map(lambda a, b: jnp.concatenate([a, b], axis=0), x, y)
  k = _as_float(kernel_fn(pooled, pooled))
  base = jnp.concatenate([jnp.ones((m,), k.dtype), jnp.zeros((n,), k.dtype)])
  keys = jax.random.split(key, num_permutations)
  permuted = jax.vmap(lambda kk: jax.random.permutation(kk, base))(keys)
  stats = _mmd2_for_assignments(k, jnp.concatenate([base[None], permuted]), estimator)
  observed, null = stats[0], stats[1:]
  p_value = (1.0 + jnp.sum(null >= observed)) / (num_permutations + 1.0)
  return observed, p_value


# --------------------------------------------------------------------------
# Streaming over a large reference set.
# --------------------------------------------------------------------------


def streamed_mean_kernel(kernel_fn: KernelFn, t, r, block_size=4096, mask_r=None):
  """mean_r k(t_i, r) for every test point t_i, streaming R in blocks.

  R is padded to a multiple of `block_size` and scanned block by block, so
  memory is O(block_size * |T|) whatever |R| is. Equals the dense
  `mean(kernel_fn(t, r)[:, mask_r], axis=1)`.
  """
  num_ref = _num_points(r)
  block_size = min(block_size, num_ref)
  num_blocks = -(-num_ref // block_size)
  pad = num_blocks * block_size - num_ref

  def to_blocks(a):
    a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
    return a.reshape((num_blocks, block_size) + a.shape[1:])

  # Padding is always masked, so the blocks carry a mask whether or not R has one.
  valid_r = to_blocks(jnp.ones((num_ref,), bool) if mask_r is None else mask_r.astype(bool))

  def add_block(acc, block):
    r_block, valid_block = block
    return acc + jnp.sum(_masked_gram(kernel_fn(t, r_block), None, valid_block), axis=1), None

  init = jnp.zeros((_num_points(t),), _compute_dtype(*jax.tree.leaves(t)))
  total, _ = jax.lax.scan(add_block, init, (jax.tree.map(to_blocks, r), valid_r))
  return total / jnp.sum(valid_r, dtype=total.dtype)


# --------------------------------------------------------------------------
# Patch sets against a bank: the test-time score and its witness.
# --------------------------------------------------------------------------


def pool_patches(points):
  """Leaves (N, K, ...) -> (N * K, ...): the patches of N sets as one set."""
  return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), points)


def masked_mean(values, mask):
  """Mean over the last axis of the entries `mask` marks (all of them when mask is None)."""
  if mask is None:
    return jnp.mean(values, axis=-1)
  return jnp.sum(jnp.where(mask, values, 0.0), axis=-1) / jnp.sum(mask, -1, dtype=values.dtype)


def _zero_padding(points, mask):
  """Padded patches set to 0: finite in every kernel evaluation and its gradient."""
  if mask is None:
    return points
  expand = lambda a: mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim))
  return jax.tree.map(lambda a: jnp.where(expand(a), a, jnp.zeros((), a.dtype)), points)


def self_mean_kernels(kernel_fn: KernelFn, points, mask=None) -> Array:
  """(N, K): mean_k' k(x_nk, x_nk') over the valid patches k' of each set (leaves (N, K, ...))."""
  points = _zero_padding(points, mask)
  return jax.vmap(lambda x, valid: masked_mean(kernel_fn(x, x), valid))(points, mask)


def set_mmd2_from_means(self_means, bank_means, bank_mean, mask=None):
  """(MMD^2_b(X_n, R) (N,), witness (N, K)) of patch sets X_n against a bank R:

    MMD^2_b(X_n, R) = mean_k self_means[n, k] + bank_mean - 2 mean_k bank_means[n, k]
    witness[n, k]   = self_means[n, k] - bank_means[n, k]

  from self_means = `self_mean_kernels`, bank_means[n, k] = mean_r k(x_nk, r) and
  bank_mean = mean_rr' k(r, r') (a scalar, or (N,) when every set has its own
  bank). Means over k run over the valid patches of `mask` (N, K); padded
  patches get a NaN witness. The formula of the set score; `set_vs_bank` feeds it.
  """
  scores = masked_mean(self_means, mask) + bank_mean - 2.0 * masked_mean(bank_means, mask)
  witness = self_means - bank_means
  if mask is not None:
    witness = jnp.where(mask, witness, jnp.nan)
  return scores, witness


class BankMMD(NamedTuple):
  mmd2: Array  # (N,) biased MMD^2 of each set against the bank
  witness: Array  # (N, K) per-patch witness, the heat map (NaN at padded patches)
  bank_density: Array  # (N, K) mean_r k(x_nk, r), each patch's density under the bank


def set_vs_bank(kernel_fn: KernelFn, points, bank_density: Callable, bank_mean, *,
                mask=None) -> BankMMD:
  """Biased MMD^2 of each of N patch sets against a bank, and the witness of every patch:
  the one place that composes the set score (bank_mmd2, scoring.score_points and
  objectives.image_score all call it; they differ only in where the bank lives).

  points: leaves (N, K, ...), N sets of K patches, `mask` (N, K) marking the
  valid ones (None: all); bank_density(pooled points, leaves (N * K, ...)) ->
  (N * K,) mean_r k(x, r), each patch's mean kernel value against its set's bank;
  bank_mean: mean_rr' k(r, r'), a scalar (or (N,), one bank per set). A set
  padded with masked patches scores exactly as the unpadded set.
  """
  points = _zero_padding(points, mask)
  num, patches = jax.tree.leaves(points)[0].shape[:2]
  density = bank_density(pool_patches(points)).reshape(num, patches)
  scores, witness = set_mmd2_from_means(self_mean_kernels(kernel_fn, points, mask), density,
                                        bank_mean, mask)
  return BankMMD(scores, witness, density)


def bank_mmd2(kernel_fn: KernelFn, points, bank, bank_mean, *, mask=None,
              block_size=4096) -> BankMMD:
  """`set_vs_bank` against a bank of points (leaves (R, ...)) held by one device.

  bank_mean: mean_rr' k(r, r'), computed once per bank. The bank streams in
  blocks of `block_size` (`streamed_mean_kernel`), so memory is
  O(block_size * N * K) for any R.
  """
  density = lambda queries: streamed_mean_kernel(kernel_fn, queries, bank, block_size)
  return set_vs_bank(kernel_fn, points, density, bank_mean, mask=mask)
