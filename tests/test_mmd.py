"""mmd.py against float64 NumPy references written from the formulas."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
import ml_collections

from mdmf_jax import mmd, objectives

# --------------------------------------------------------------------------
# float64 NumPy references, straight from the formulas (loops where clearer).
# --------------------------------------------------------------------------


def ref_sq_dists(x, y):
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def ref_l1_dists(x, y):
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  return np.abs(x[:, None, :] - y[None, :, :]).sum(-1)


def ref_deep(sx, sy, zx, zy, eps, sigma_phi, sigma_q):
  return ((1 - eps) * np.exp(-ref_sq_dists(sx, sy) / sigma_phi) + eps) * np.exp(
      -ref_sq_dists(zx, zy) / sigma_q)


def ref_mmd2(kxx, kyy, kxy, estimator):
  kxx, kyy, kxy = (np.asarray(k, np.float64) for k in (kxx, kyy, kxy))
  m, n = len(kxx), len(kyy)
  if estimator == "biased":
    return kxx.sum() / m**2 + kyy.sum() / n**2 - 2 * kxy.sum() / (m * n)
  xx = sum(kxx[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  yy = sum(kyy[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  return xx + yy - 2 * kxy.mean()


def ref_one_sample(h):
  h = np.asarray(h, np.float64)
  n = len(h)
  stat = sum(h[i, j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
  var = 4 / n**3 * sum(h[i].sum() ** 2 for i in range(n)) - 4 / n**4 * h.sum() ** 2
  return stat, var


def ref_paired(kxx, kyy, kxy):
  kxx, kyy, kxy = (np.asarray(k, np.float64) for k in (kxx, kyy, kxy))
  return ref_one_sample(kxx + kyy - kxy - kxy.T)


def ref_mpp(kxx, kxy):
  kxx, kxy = np.asarray(kxx, np.float64), np.asarray(kxy, np.float64)
  return ref_one_sample(kxx - kxy - kxy.T)


def rand(seed, *shape, shift=0.0):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32) + shift


def gram_triplet(seed, m, n, d=5, bandwidth=4.0):
  x, y = rand(seed, m, d), rand(seed + 1, n, d, shift=0.3)
  k = functools.partial(mmd.gaussian, bandwidth=bandwidth)
  return mmd.gram_matrices(k, jnp.asarray(x), jnp.asarray(y))


# --------------------------------------------------------------------------
# Distances and kernels.
# --------------------------------------------------------------------------

KERNEL_CASES = {
    "gaussian": (dict(bandwidth=3.0), lambda x, y: np.exp(-ref_sq_dists(x, y) / 3.0)),
    "laplace": (dict(bandwidth=2.5), lambda x, y: np.exp(-ref_l1_dists(x, y) / 2.5)),
    "imq": (dict(c=1.5, beta=-0.7), lambda x, y: (1.5**2 + ref_sq_dists(x, y)) ** -0.7),
    "multi_gaussian": (
        dict(bandwidths=(0.5, 2.0, 8.0)),
        lambda x, y: np.mean([np.exp(-ref_sq_dists(x, y) / b) for b in (0.5, 2.0, 8.0)], 0),
    ),
}


@pytest.mark.parametrize("name", sorted(KERNEL_CASES))
def test_kernels_match_reference(name):
  params, ref = KERNEL_CASES[name]
  x, y = rand(0, 13, 6), rand(1, 9, 6)
  kernel = getattr(mmd, name)
  np.testing.assert_allclose(kernel(x, y, **params), ref(x, y), rtol=2e-5, atol=1e-6)
  with jax.enable_x64(True):
    x64, y64 = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
    out = kernel(x64, y64, **params)
    assert out.dtype == jnp.float64
    np.testing.assert_allclose(out, ref(x, y), rtol=1e-12)


def test_deep_kernel_matches_formula():
  sx, sy, zx, zy = rand(0, 7, 4), rand(1, 5, 4), rand(2, 7, 10), rand(3, 5, 10)
  params = dict(eps=0.1, sigma_phi=2.0, sigma_q=15.0)
  np.testing.assert_allclose(
      mmd.deep((sx, zx), (sy, zy), **params),
      ref_deep(sx, sy, zx, zy, **params), rtol=2e-5, atol=1e-7)
  # Self Gram: exact ones on the diagonal, symmetric; swapping the sets transposes.
  k_xx = np.asarray(mmd.deep((sx, zx), (sx, zx), **params))
  np.testing.assert_array_equal(np.diagonal(k_xx), 1.0)
  np.testing.assert_allclose(k_xx, k_xx.T, rtol=1e-6)
  np.testing.assert_allclose(mmd.deep((sy, zy), (sx, zx), **params),
                             np.asarray(mmd.deep((sx, zx), (sy, zy), **params)).T, rtol=1e-6)


def test_scaled_sq_dists_one_product_and_exact_self_diagonal():
  x, y = rand(0, 9, 5, shift=3.0), rand(1, 6, 5)
  np.testing.assert_allclose(mmd.scaled_sq_dists(x, y, 0.25), 0.25 * ref_sq_dists(x, y),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(np.diagonal(mmd.scaled_sq_dists(x, x, 0.25)), 0.0)
  with jax.enable_x64(True):
    out = mmd.scaled_sq_dists(jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64), 0.25)
    assert out.dtype == jnp.float64
    np.testing.assert_allclose(out, 0.25 * ref_sq_dists(x, y), rtol=1e-12)


def test_sq_dists_exact_diagonal_and_stable_under_offset():
  x = rand(0, 50, 32) * 1e-2 + 1e3  # large common offset, small spread
  d2 = mmd.pairwise_sq_dists(jnp.asarray(x))
  np.testing.assert_array_equal(np.diagonal(d2), 0.0)
  # The centred expansion keeps float32 accuracy relative to the spread.
  np.testing.assert_allclose(d2, ref_sq_dists(x, x), rtol=1e-3, atol=1e-6)
  y = rand(1, 20, 32) * 1e-2 + 1e3
  np.testing.assert_allclose(mmd.pairwise_sq_dists(x, y), ref_sq_dists(x, y), rtol=1e-3)
  assert float(jnp.min(mmd.pairwise_sq_dists(x, x.copy()))) >= 0.0


# --------------------------------------------------------------------------
# Estimators.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("m,n", [(2, 2), (2, 5), (17, 9), (30, 30)])
@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_mmd2_matches_reference(m, n, estimator):
  kxx, kyy, kxy = gram_triplet(m * 100 + n, m, n)
  np.testing.assert_allclose(
      mmd.mmd2(kxx, kyy, kxy, estimator), ref_mmd2(kxx, kyy, kxy, estimator), rtol=1e-4, atol=1e-6)


def test_mmd2_float64():
  with jax.enable_x64(True):
    x, y = jnp.asarray(rand(0, 11, 3), jnp.float64), jnp.asarray(rand(1, 8, 3), jnp.float64)
    grams = mmd.gram_matrices(functools.partial(mmd.gaussian, bandwidth=2.0), x, y)
    for est in ("biased", "unbiased"):
      out = mmd.mmd2(*grams, est)
      assert out.dtype == jnp.float64
      np.testing.assert_allclose(out, ref_mmd2(*grams, est), rtol=1e-12)


def pad_gram(k, rows_valid, cols_valid, rng):
  """Scatter k into a larger matrix at the valid positions; padding is garbage."""
  out = rng.normal(size=(len(rows_valid), len(cols_valid))).astype(np.float32)
  out[np.ix_(np.flatnonzero(rows_valid), np.flatnonzero(cols_valid))] = k
  out[~rows_valid, 0] = np.nan  # padding must never leak, not even as NaN
  out[0, ~cols_valid] = np.inf
  return out


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_masked_mmd2_equals_unmasked_on_valid_points(estimator):
  rng = np.random.default_rng(0)
  kxx, kyy, kxy = (np.asarray(k) for k in gram_triplet(5, 6, 4))
  vx = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0], bool)  # 6 valid of 9
  vy = np.array([0, 1, 1, 0, 1, 1, 0], bool)  # 4 valid of 7
  padded = (pad_gram(kxx, vx, vx, rng), pad_gram(kyy, vy, vy, rng), pad_gram(kxy, vx, vy, rng))
  np.testing.assert_allclose(
      mmd.mmd2(*padded, estimator, mask_x=vx, mask_y=vy),
      ref_mmd2(kxx, kyy, kxy, estimator), rtol=1e-5, atol=1e-7)


def test_identical_point_sets():
  x = jnp.asarray(rand(0, 20, 4))
  kxx, _, _ = mmd.gram_matrices(functools.partial(mmd.gaussian, bandwidth=4.0), x, x)
  # V statistic of a set against itself is exactly 0; the U statistic is the
  # (negative) diagonal correction, matching the reference.
  assert abs(float(mmd.mmd2(kxx, kxx, kxx, "biased"))) < 1e-6
  np.testing.assert_allclose(
      mmd.mmd2(kxx, kxx, kxx, "unbiased"), ref_mmd2(kxx, kxx, kxx, "unbiased"), rtol=1e-5)


def test_same_distribution_unbiased_centred_biased_positive():
  kernel = functools.partial(mmd.gaussian, bandwidth=8.0)
  keys = jax.random.split(jax.random.key(0), 200)

  def stats(key):
    kx, ky = jax.random.split(key)
    x, y = jax.random.normal(kx, (40, 4)), jax.random.normal(ky, (40, 4))
    grams = mmd.gram_matrices(kernel, x, y)
    return mmd.mmd2(*grams, "unbiased"), mmd.mmd2(*grams, "biased")

  unbiased, biased = jax.vmap(stats)(keys)
  standard_error = np.std(unbiased) / np.sqrt(len(unbiased))
  assert abs(np.mean(unbiased)) < 4 * standard_error
  assert np.all(biased > 0)
  # Concentrates at 0 as the sets grow.
  big = jax.vmap(lambda k: mmd.set_mmd2(kernel, *jnp.split(jax.random.normal(k, (800, 4)), 2)))(
      keys[:10])
  assert np.std(big) < np.std(unbiased) / 4


def test_biased_gaussian_mmd_matches_closed_form():
  # X ~ N(0, I_d), Y ~ N(mu, I_d), k = exp(-|a-b|^2 / b). With c = (1 + 4/b)^(-d/2):
  #   MMD^2 = 2 c (1 - exp(-|mu|^2 / (b + 4)))
  #   E[V statistic] = MMD^2 + (1 - c)/m + (1 - c)/n   (the diagonal terms).
  d, m, n, bandwidth = 3, 150, 120, 5.0
  mu = np.array([0.8, -0.4, 0.3])
  c = (1 + 4 / bandwidth) ** (-d / 2)
  population = 2 * c * (1 - np.exp(-mu @ mu / (bandwidth + 4)))
  expected = population + (1 - c) / m + (1 - c) / n
  kernel = functools.partial(mmd.gaussian, bandwidth=bandwidth)

  def one(key):
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (m, d))
    y = jax.random.normal(ky, (n, d)) + mu
    return mmd.set_mmd2(kernel, x, y, "biased")

  values = np.asarray(jax.vmap(one)(jax.random.split(jax.random.key(1), 100)))
  standard_error = values.std() / np.sqrt(len(values))
  assert abs(values.mean() - expected) < 4 * standard_error
  assert standard_error < 0.05 * population  # the check has teeth


@pytest.mark.parametrize("n", [2, 3, 25])
def test_paired_mmd2_and_variance(n):
  kxx, kyy, kxy = gram_triplet(n, n, n)
  stat, var = mmd.paired_mmd2_and_variance(kxx, kyy, kxy)
  ref_stat, ref_var = ref_paired(kxx, kyy, kxy)
  np.testing.assert_allclose(stat, ref_stat, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(var, ref_var, rtol=1e-3, atol=1e-6)
  np.testing.assert_allclose(
      mmd.j_statistic(kxx, kyy, kxy, reg=1e-3), ref_stat / np.sqrt(ref_var + 1e-3),
      rtol=1e-3, atol=1e-6)


def test_paired_equals_one_sample_u_of_mmd_d():
  # MMD-D's U statistic: xx, yy off-diagonal means, xy without the diagonal.
  kxx, kyy, kxy = (np.asarray(k, np.float64) for k in gram_triplet(3, 12, 12))
  n = 12
  off = ~np.eye(n, dtype=bool)
  expected = (kxx[off].mean() + kyy[off].mean() - 2 * kxy[off].mean())
  np.testing.assert_allclose(mmd.paired_mmd2_and_variance(kxx, kyy, kxy)[0], expected, rtol=1e-5)


@pytest.mark.parametrize("n", [2, 16])
def test_mpp_and_variance(n):
  kxx, _, kxy = gram_triplet(n + 7, n, n)
  stat, var = mmd.mpp_and_variance(kxx, kxy)
  ref_stat, ref_var = ref_mpp(kxx, kxy)
  np.testing.assert_allclose(stat, ref_stat, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(var, ref_var, rtol=1e-3, atol=1e-6)


def test_masked_paired_and_mpp():
  rng = np.random.default_rng(1)
  kxx, kyy, kxy = (np.asarray(k) for k in gram_triplet(9, 10, 10))
  valid = np.ones(13, bool)
  valid[[2, 7, 12]] = False
  pk = lambda k: pad_gram(k, valid, valid, rng)
  stat, var = mmd.paired_mmd2_and_variance(pk(kxx), pk(kyy), pk(kxy), mask=valid)
  np.testing.assert_allclose((stat, var), ref_paired(kxx, kyy, kxy), rtol=1e-3, atol=1e-6)
  stat, var = mmd.mpp_and_variance(pk(kxx), pk(kxy), mask=valid)
  np.testing.assert_allclose((stat, var), ref_mpp(kxx, kxy), rtol=1e-3, atol=1e-6)


DEEP = dict(eps=0.3, sigma_phi=2.0, sigma_q=12.0)


def deep_sets(n_x, n_y, dtype=np.float32):
  x = (rand(0, n_x, 3, shift=0.4), rand(1, n_x, 6))
  y = (rand(2, n_y, 3), rand(3, n_y, 6, shift=0.2))
  cast = lambda points: tuple(jnp.asarray(a, dtype) for a in points)
  return cast(x), cast(y)


def ref_deep_grams(x, y):
  """float64 (Kxx, Kyy, Kxy) of the deep kernel from the formula."""
  k = lambda a, b: ref_deep(a[0], b[0], a[1], b[1], **DEEP)
  return k(x, x), k(y, y), k(x, y)


@pytest.mark.parametrize("x64", [False, True])
def test_kernel_sums_match_reference(x64):
  kernel = functools.partial(mmd.deep, **DEEP)
  with jax.enable_x64(x64):
    x, y = deep_sets(8, 5, np.float64 if x64 else np.float32)
    rtol = 1e-12 if x64 else 2e-5
    k_xx, _, k_xy = ref_deep_grams(x, y)
    for (a, b), k in (((x, x), k_xx), ((x, y), k_xy)):
      sums = mmd.kernel_sums(kernel, a, b)
      assert sums.rows.dtype == (jnp.float64 if x64 else jnp.float32)
      np.testing.assert_allclose(sums.rows, k.sum(1), rtol=rtol)
      np.testing.assert_allclose(sums.cols, k.sum(0), rtol=rtol)
      np.testing.assert_allclose(sums.trace, np.trace(k), rtol=rtol)
    # Self: the trace is the exact zero-distance value, k(x, x) = 1 for the deep kernel.
    assert float(mmd.kernel_sums(kernel, x, x).trace) == 8.0


@pytest.mark.parametrize("x64", [False, True])
def test_set_estimators_match_reference(x64):
  """The fused set_ estimators against float64 NumPy Gram matrices of the deep kernel."""
  kernel = functools.partial(mmd.deep, **DEEP)
  with jax.enable_x64(x64):
    rtol, atol = (1e-10, 1e-13) if x64 else (1e-3, 1e-6)
    x, y = deep_sets(11, 7, np.float64 if x64 else np.float32)
    for estimator in ("biased", "unbiased"):
      np.testing.assert_allclose(mmd.set_mmd2(kernel, x, y, estimator),
                                 ref_mmd2(*ref_deep_grams(x, y), estimator), rtol=rtol, atol=atol)
    x, y = deep_sets(9, 9, np.float64 if x64 else np.float32)
    k_xx, k_yy, k_xy = ref_deep_grams(x, y)
    ref_stat, ref_var = ref_paired(k_xx, k_yy, k_xy)
    np.testing.assert_allclose(mmd.set_paired_mmd2_and_variance(kernel, x, y),
                               (ref_stat, ref_var), rtol=rtol, atol=atol)
    np.testing.assert_allclose(mmd.set_j_statistic(kernel, x, y, reg=1e-3),
                               ref_stat / np.sqrt(ref_var + 1e-3), rtol=rtol, atol=atol)
    np.testing.assert_allclose(mmd.set_mpp_and_variance(kernel, x, y), ref_mpp(k_xx, k_xy),
                               rtol=rtol, atol=atol)


def test_mmd_d_and_mmd_mp_objectives_match_reference():
  """The training objectives (fused set_ estimators) against float64 NumPy on the pooled patches."""
  kernel = functools.partial(mmd.deep, **DEEP)
  x, y = deep_sets(12, 12)
  real, fake = (tuple(a.reshape(3, 4, -1) for a in points) for points in (x, y))
  cfg = ml_collections.ConfigDict({"patches_per_side": None, "reg": 1e-3})
  k_xx, k_yy, k_xy = ref_deep_grams(x, y)
  expected = {"mmd_d": ref_paired(k_xx, k_yy, k_xy), "mmd_mp": ref_mpp(k_xx, k_xy)}
  for name, (stat, var) in expected.items():
    loss, metrics = objectives.OBJECTIVES[name](kernel, real, fake, jax.random.key(0), cfg)
    np.testing.assert_allclose(metrics["variance"], var, rtol=1e-3, atol=1e-7)
    np.testing.assert_allclose(loss, -stat / np.sqrt(var + 1e-3), rtol=1e-3, atol=1e-6)


def ref_bank_mmd2(ref_kernel, sets, bank):
  """float64 biased MMD^2 of each set against the bank, and its witness, from the definitions."""
  k_rr = ref_kernel(bank, bank)
  scores, witnesses = [], []
  for x in sets:
    k_xx, k_xr = ref_kernel(x, x), ref_kernel(x, bank)
    scores.append(ref_mmd2(k_xx, k_rr, k_xr, "biased"))
    witnesses.append([np.mean(k_xx[k]) - np.mean(k_xr[k]) for k in range(len(k_xx))])
  return np.array(scores), np.array(witnesses), np.mean(k_rr)


@pytest.mark.parametrize("block", [4, 64])
def test_bank_mmd2_is_the_biased_mmd_and_its_witness(block):
  kernel = functools.partial(mmd.gaussian, bandwidth=6.0)
  ref_kernel = lambda x, y: np.exp(-ref_sq_dists(x, y) / 6.0)
  sets, bank = rand(0, 3, 7, 4, shift=0.5), rand(1, 29, 4)
  ref_scores, ref_witness, bank_mean = ref_bank_mmd2(ref_kernel, sets, bank)
  result = mmd.bank_mmd2(kernel, sets, bank, bank_mean, block_size=block)
  np.testing.assert_allclose(result.mmd2, ref_scores, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(result.witness, ref_witness, rtol=1e-5, atol=1e-6)
  density = [ref_kernel(x, bank).mean(axis=1) for x in sets]
  np.testing.assert_allclose(result.bank_density, density, rtol=1e-5)


def test_bank_mmd2_padding_never_leaks():
  """Sets of 5, 7 and 3 patches padded to 7 (padding inf, NaN, huge) score as the unpadded sets."""
  kernel = functools.partial(mmd.deep, eps=0.2, sigma_phi=3.0, sigma_q=12.0)
  ref_kernel = lambda a, b: ref_deep(a[0], b[0], a[1], b[1], 0.2, 3.0, 12.0)
  sizes, bank = (5, 7, 3), (rand(0, 20, 3), rand(1, 20, 6))
  bank_mean = ref_bank_mmd2(ref_kernel, [], bank)[2]
  s, z = rand(2, 3, 7, 3, shift=0.7), rand(3, 3, 7, 6)
  mask = np.arange(7)[None, :] < np.array(sizes)[:, None]
  s[~mask], z[~mask] = np.inf, np.nan
  s[2, 6] = 1e30
  result = mmd.bank_mmd2(kernel, (s, z), bank, bank_mean, mask=mask, block_size=8)
  for n, size in enumerate(sizes):
    alone = mmd.bank_mmd2(kernel, (s[n:n + 1, :size], z[n:n + 1, :size]), bank, bank_mean)
    np.testing.assert_allclose(result.mmd2[n], alone.mmd2[0], rtol=1e-6)
    np.testing.assert_allclose(result.witness[n, :size], alone.witness[0], rtol=1e-6, atol=1e-7)
    assert np.all(np.isnan(result.witness[n, size:]))
    ref_score, ref_witness, _ = ref_bank_mmd2(ref_kernel, [(s[n, :size], z[n, :size])], bank)
    np.testing.assert_allclose(result.mmd2[n], ref_score[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.witness[n, :size], ref_witness[0], rtol=1e-5, atol=1e-6)
  grads = jax.grad(lambda a: jnp.sum(mmd.bank_mmd2(kernel, (a, z), bank, bank_mean,
                                                   mask=mask).mmd2))(jnp.asarray(s))
  assert np.all(np.isfinite(grads)) and np.all(np.asarray(grads)[~mask] == 0)


# --------------------------------------------------------------------------
# Bandwidth heuristics.
# --------------------------------------------------------------------------


def test_median_and_mean_heuristics():
  x, y = rand(0, 30, 4), rand(1, 20, 4)
  pooled = np.concatenate([x, y])
  iu = np.triu_indices(len(pooled), 1)
  np.testing.assert_allclose(
      mmd.median_heuristic(x, y), np.median(ref_sq_dists(pooled, pooled)[iu]), rtol=1e-5)
  np.testing.assert_allclose(
      mmd.mean_heuristic(x, y, metric="l1"), np.mean(ref_l1_dists(pooled, pooled)[iu]), rtol=1e-5)
  np.testing.assert_allclose(
      mmd.median_heuristic(x), np.median(ref_sq_dists(x, x)[np.triu_indices(30, 1)]), rtol=1e-5)


def test_median_heuristic_subsample():
  x = rand(0, 3000, 4)
  with pytest.raises(ValueError, match="key"):
    mmd.median_heuristic(x, max_points=256)
  approx = mmd.median_heuristic(x, key=jax.random.key(0), max_points=256)
  full = np.median(ref_sq_dists(x[:1000], x[:1000])[np.triu_indices(1000, 1)])
  assert abs(float(approx) - full) < 0.1 * full
  assert jnp.isfinite(jax.jit(functools.partial(mmd.median_heuristic, max_points=256))(
      x, key=jax.random.key(1)))


# --------------------------------------------------------------------------
# Permutation test.
# --------------------------------------------------------------------------


def test_permutation_statistics_match_direct_split():
  x, y = rand(0, 9, 3), rand(1, 6, 3, shift=0.5)
  pooled = np.concatenate([x, y])
  k = np.asarray(mmd.gaussian(pooled, pooled, bandwidth=3.0))
  rng = np.random.default_rng(0)
  assignments = np.stack([rng.permutation(np.r_[np.ones(9), np.zeros(6)]) for _ in range(5)])
  for estimator in ("biased", "unbiased"):
    stats = mmd._mmd2_for_assignments(jnp.asarray(k), jnp.asarray(assignments), estimator)
    for a, stat in zip(assignments.astype(bool), stats):
      expected = ref_mmd2(k[np.ix_(a, a)], k[np.ix_(~a, ~a)], k[np.ix_(a, ~a)], estimator)
      np.testing.assert_allclose(stat, expected, rtol=1e-4, atol=1e-6)


def test_permutation_test_calibrated_under_h0_and_powerful_under_shift():
  kernel = functools.partial(mmd.gaussian, bandwidth=4.0)

  def trial(key, shift):
    kx, ky, kp = jax.random.split(key, 3)
    x = jax.random.normal(kx, (30, 3))
    y = jax.random.normal(ky, (25, 3)) + shift
    return mmd.permutation_test(x, y, kernel, 199, kp)[1]

  keys = jax.random.split(jax.random.key(0), 200)
  p_null = np.asarray(jax.vmap(lambda k: trial(k, 0.0))(keys))
  # Under H0, #{p < 0.05} ~ Binomial(200, 0.05): mean 10, sd 3.1.
  assert np.sum(p_null < 0.05) <= 10 + 3 * 3.1
  assert 0.35 < np.mean(p_null < 0.5) < 0.65  # roughly uniform, not just conservative
  # p = (1 + #{null >= observed}) / (P + 1): never below 1 / (P + 1).
  assert np.all(p_null >= 1 / 200)
  np.testing.assert_allclose(p_null * 200, np.round(p_null * 200), atol=1e-3)
  p_alt = np.asarray(jax.vmap(lambda k: trial(k, 1.0))(keys[:20]))
  np.testing.assert_allclose(p_alt, 1 / 200)


def test_permutation_test_deep_kernel_and_observed_statistic():
  kernel = functools.partial(mmd.deep, eps=0.1, sigma_phi=2.0, sigma_q=20.0)
  x = (jnp.asarray(rand(0, 20, 3)), jnp.asarray(rand(1, 20, 6)))
  y = (jnp.asarray(rand(2, 15, 3, shift=1.0)), jnp.asarray(rand(3, 15, 6)))
  stat, p = mmd.permutation_test(x, y, kernel, 99, jax.random.key(0), estimator="biased")
  np.testing.assert_allclose(stat, mmd.set_mmd2(kernel, x, y, "biased"), rtol=1e-5)
  assert p <= 0.02


# --------------------------------------------------------------------------
# Transformations: vmap, jit, grad.
# --------------------------------------------------------------------------

BOUND_KERNELS = {
    "gaussian": functools.partial(mmd.gaussian, bandwidth=3.0),
    "laplace": functools.partial(mmd.laplace, bandwidth=3.0),
    "imq": functools.partial(mmd.imq, c=1.0),
    "multi_gaussian": functools.partial(mmd.multi_gaussian, bandwidths=(1.0, 4.0)),
}


def test_vmap_equals_loop_and_jit_equals_eager():
  xs, ys = rand(0, 6, 12, 4), rand(1, 6, 10, 4, shift=0.2)
  for name, kernel in BOUND_KERNELS.items():
    for est in ("biased", "unbiased"):
      f = functools.partial(mmd.set_mmd2, kernel, estimator=est)
      looped = np.array([f(x, y) for x, y in zip(xs, ys)])
      np.testing.assert_allclose(jax.vmap(f)(xs, ys), looped, rtol=1e-5, atol=1e-7, err_msg=name)
      np.testing.assert_allclose(jax.jit(f)(xs[0], ys[0]), looped[0], rtol=1e-5, atol=1e-7)
  ys_paired = rand(2, 6, 12, 4)
  j = lambda x, y: mmd.j_statistic(*mmd.gram_matrices(BOUND_KERNELS["gaussian"], x, y))
  looped = np.array([j(x, y) for x, y in zip(xs, ys_paired)])
  np.testing.assert_allclose(jax.vmap(j)(xs, ys_paired), looped, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(j)(xs[1], ys_paired[1]), looped[1], rtol=1e-5)


def deep_j(params, x, z_x, y, z_y):
  kernel = functools.partial(mmd.deep, eps=jax.nn.sigmoid(params[0]),
                             sigma_phi=params[1] ** 2, sigma_q=params[2] ** 2)
  s_x, s_y = jnp.tanh(x), jnp.tanh(y)  # stand-in for the PFS network
  return mmd.j_statistic(*mmd.gram_matrices(kernel, (s_x, z_x), (s_y, z_y)))


def set_deep_j(params, x, z_x, y, z_y):
  """deep_j through the fused set_j_statistic, as objectives.mmd_d trains it."""
  kernel = functools.partial(mmd.deep, eps=jax.nn.sigmoid(params[0]),
                             sigma_phi=params[1] ** 2, sigma_q=params[2] ** 2)
  return mmd.set_j_statistic(kernel, (jnp.tanh(x), z_x), (jnp.tanh(y), z_y))


def test_grad_finite_at_identical_sets():
  x = jnp.asarray(rand(0, 8, 3))
  for name, kernel in BOUND_KERNELS.items():
    for est in ("biased", "unbiased"):
      g = jax.grad(lambda a, b: mmd.set_mmd2(kernel, a, b, est), argnums=(0, 1))(x, x)
      assert all(np.all(np.isfinite(gi)) for gi in g), (name, est)
  g = jax.grad(lambda a: mmd.j_statistic(*mmd.gram_matrices(BOUND_KERNELS["laplace"], a, x)))(x)
  assert np.all(np.isfinite(g))
  params = jnp.array([0.0, 1.5, 3.0])
  z = jnp.asarray(rand(1, 8, 5))
  for j in (deep_j, set_deep_j):
    grads = jax.grad(j, argnums=(0, 1, 3))(params, x, z, x, z)
    assert all(np.all(np.isfinite(gi)) for gi in grads)


def test_grad_matches_finite_differences():
  # Each function is jitted: check_grads evaluates it many times at one shape, and
  # op-by-op that recompiles every small op.
  with jax.enable_x64(True):
    x = jnp.asarray(rand(0, 7, 3), jnp.float64)
    y = jnp.asarray(rand(1, 7, 3, shift=0.4), jnp.float64)
    for name, kernel in BOUND_KERNELS.items():
      if name == "laplace":  # |t| is not differentiable at 0; checked below off the kinks
        continue
      for est in ("biased", "unbiased"):
        check_grads(jax.jit(lambda a, b: mmd.set_mmd2(kernel, a, b, est)), (x, y), order=1,
                    modes=["rev"], atol=1e-6, rtol=1e-6)
    check_grads(jax.jit(lambda a: mmd.set_mmd2(BOUND_KERNELS["laplace"], a, y)), (x,), order=1,
                modes=["rev"], eps=1e-7, atol=1e-5, rtol=1e-5)
    check_grads(jax.jit(lambda a, b: mmd.mpp_and_variance(
        *mmd.gram_matrices(BOUND_KERNELS["gaussian"], a, b)[::2])[0]), (x, y), order=1,
                modes=["rev"], atol=1e-6, rtol=1e-6)
    params = jnp.array([0.3, 1.5, 3.0], jnp.float64)
    z_x, z_y = (jnp.asarray(rand(s, 7, 5), jnp.float64) for s in (2, 3))
    check_grads(jax.jit(lambda p, a: deep_j(p, a, z_x, y, z_y)), (params, x), order=1,
                modes=["rev"], atol=1e-6, rtol=1e-6)
    check_grads(jax.jit(lambda p, a, b: set_deep_j(p, a, z_x, b, z_y)), (params, x, y), order=1,
                modes=["rev"], atol=1e-6, rtol=1e-6)
    check_grads(jax.jit(lambda bandwidth, a: mmd.set_mmd2(
        functools.partial(mmd.gaussian, bandwidth=bandwidth), a, y)), (2.5, x), order=1,
                modes=["rev"], atol=1e-6, rtol=1e-6)


def plain_gaussian(x, y, bandwidth):
  """The Gaussian kernel as broadcast differences: plain autodiff, no products, no custom VJP."""
  return jnp.exp(-jnp.sum(jnp.square(x[:, None, :] - y[None, :, :]), axis=-1) / bandwidth)


def plain_deep(x, y, eps, sigma_phi, sigma_q):
  (s_x, z_x), (s_y, z_y) = x, y
  return ((1.0 - eps) * plain_gaussian(s_x, s_y, sigma_phi) + eps) * plain_gaussian(
      z_x, z_y, sigma_q)


def test_custom_vjp_matches_float64_autodiff_of_the_plain_formula():
  """gaussian and deep between two sets (their custom VJP): value and gradient of a weighted
  sum of the Gram matrix, bandwidths included, against float64 autodiff of the broadcast
  formula, to float64 rounding, and in float32 (with a common offset) to float32's."""
  weights = rand(9, 9, 7)
  gaussian_sum = lambda kernel: lambda x, y, b: jnp.sum(weights * kernel(x, y, b))
  deep_sum = lambda kernel: lambda sx, zx, sy, zy, p: jnp.sum(
      weights * kernel((sx, zx), (sy, zy), jax.nn.sigmoid(p[0]), p[1] ** 2, p[2] ** 2))
  cases = [  # (ours, plain, float32 arguments)
      (gaussian_sum(mmd.gaussian), gaussian_sum(plain_gaussian),
       (rand(0, 9, 4, shift=50.0), rand(1, 7, 4, shift=50.3), np.float32(2.5))),
      (deep_sum(mmd.deep), deep_sum(plain_deep),
       (rand(2, 9, 3), rand(3, 9, 6), rand(4, 7, 3, shift=0.2), rand(5, 7, 6),
        np.array([0.3, 1.2, 2.5], np.float32))),
  ]
  for ours, plain, args in cases:
    argnums = tuple(range(len(args)))
    with jax.enable_x64(True):
      args64 = [jnp.asarray(a, jnp.float64) for a in args]
      ref_value, ref_grads = jax.value_and_grad(plain, argnums)(*args64)
      value, grads = jax.jit(jax.value_and_grad(ours, argnums))(*args64)
      np.testing.assert_allclose(value, ref_value, rtol=1e-12)
      for g, r in zip(grads, ref_grads):
        assert g.dtype == jnp.float64
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12 * np.max(np.abs(r)))
    value, grads = jax.jit(jax.value_and_grad(ours, argnums))(*args)
    np.testing.assert_allclose(value, ref_value, rtol=1e-6)
    for g, r in zip(grads, ref_grads):
      assert g.dtype == jnp.float32
      np.testing.assert_allclose(g, r, rtol=1e-5, atol=2e-6 * np.max(np.abs(r)))


def test_set_estimator_gradients_vmapped_with_a_learned_bandwidth():
  """The fused set_ estimators vmapped over pairs, as training runs them, one bandwidth shared
  by every pair: gradients in x, y and the bandwidth equal float64 autodiff of the estimators
  on plain Gram matrices."""
  xs, ys = rand(0, 3, 8, 4), rand(1, 3, 8, 4, shift=0.3)

  def ours(x, y, bandwidth):
    kernel = functools.partial(mmd.gaussian, bandwidth=bandwidth)
    return (mmd.set_mmd2(kernel, x, y) + mmd.set_j_statistic(kernel, x, y)
            + mmd.set_mpp_and_variance(kernel, x, y)[1])

  def plain(x, y, bandwidth):
    kxx, kyy, kxy = (plain_gaussian(a, b, bandwidth) for a, b in ((x, x), (y, y), (x, y)))
    return (mmd.mmd2(kxx, kyy, kxy) + mmd.j_statistic(kxx, kyy, kxy)
            + mmd.mpp_and_variance(kxx, kxy)[1])

  with jax.enable_x64(True):
    xs, ys = jnp.asarray(xs, jnp.float64), jnp.asarray(ys, jnp.float64)
    total = lambda f: lambda x, y, b: jnp.sum(jax.vmap(f, (0, 0, None))(x, y, b))
    grads = jax.jit(jax.grad(total(ours), (0, 1, 2)))(xs, ys, 2.0)
    ref_grads = jax.grad(total(plain), (0, 1, 2))(xs, ys, 2.0)
    for g, r in zip(grads, ref_grads):
      np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------
# Streaming.
# --------------------------------------------------------------------------


def test_streaming_equals_dense():
  t, r = jnp.asarray(rand(0, 11, 4)), jnp.asarray(rand(1, 103, 4))
  for name, kernel in BOUND_KERNELS.items():
    dense = np.asarray(kernel(t, r)).mean(axis=1)
    for block in (1, 16, 103, 500):
      np.testing.assert_allclose(mmd.streamed_mean_kernel(kernel, t, r, block), dense,
                                 rtol=1e-5, atol=1e-7, err_msg=f"{name} block={block}")
  valid = np.random.default_rng(0).random(103) < 0.7
  np.testing.assert_allclose(
      mmd.streamed_mean_kernel(BOUND_KERNELS["gaussian"], t, r, 16, mask_r=valid),
      np.asarray(BOUND_KERNELS["gaussian"](t, r))[:, valid].mean(axis=1), rtol=1e-5)
  deep = functools.partial(mmd.deep, eps=0.2, sigma_phi=1.0, sigma_q=9.0)
  td, rd = (t, t * 2), (r, r * 2)
  np.testing.assert_allclose(mmd.streamed_mean_kernel(deep, td, rd, 32),
                             np.asarray(deep(td, rd)).mean(axis=1), rtol=1e-5)
  jitted = jax.jit(functools.partial(mmd.streamed_mean_kernel, BOUND_KERNELS["gaussian"],
                                     block_size=16))
  np.testing.assert_allclose(jitted(t, r), np.asarray(BOUND_KERNELS["gaussian"](t, r)).mean(1),
                             rtol=1e-5)


def test_estimator_name_is_checked():
  kxx, kyy, kxy = gram_triplet(0, 3, 3)
  with pytest.raises(ValueError, match="estimator"):
    mmd.mmd2(kxx, kyy, kxy, "unbiassed")
  with pytest.raises(ValueError, match="metric"):
    mmd.median_heuristic(rand(0, 5, 2), metric="cosine")
