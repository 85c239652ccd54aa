"""Training objectives (docs/method.md, section 5).

An objective is `fn(kernel_fn, real, fake, key, cfg) -> (loss, metrics)`:
`real` and `fake` are point-set pytrees with leaves of shape (B, K, ...)
(B images of K patches), `kernel_fn(x, y)` the bound kernel (kernels.py), and
`cfg` the config's `objective` block. `metrics` is a flat dict of scalars,
logged under its own names. Adding one is a function plus a line in
`OBJECTIVES`.

* mmd_d (default): pool the real patches into X and the fake patches into Y,
  keep a random `patches_per_side` of each, and minimise -J(X, Y) with MMD-D's
  paired U statistic and its variance.
* mmd_mp: the same with MMD-MP's proxy `mpp`, which drops the fake-fake term
  (the fakes come from many generators, so their spread is not a signal).
* image_score: score every image against the batch's real patches with the
  biased set MMD used at test time (a real image never against its own
  patches) and maximise Welch's t between fake and real scores; logs that
  `welch_t`, the `score_gap` of mean scores and its `gap_variance`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mdmf_jax import mmd


def _subsample(points, key, size):
  num = jax.tree.leaves(points)[0].shape[0]
  if size is None or size >= num:
    return points
  idx = jax.random.choice(key, num, (size,), replace=False)
  return jax.tree.map(lambda a: a[idx], points)


def _pooled_pair(real, fake, key, cfg):
  key_real, key_fake = jax.random.split(key)
  x = _subsample(mmd.pool_patches(real), key_real, cfg.patches_per_side)
  y = _subsample(mmd.pool_patches(fake), key_fake, cfg.patches_per_side)
  return x, y


def mmd_d(kernel_fn, real, fake, key, cfg):
  x, y = _pooled_pair(real, fake, key, cfg)
  stat, var = mmd.set_paired_mmd2_and_variance(kernel_fn, x, y)
  j = mmd.studentise(stat, var, cfg.reg)
  return -j, {"mmd2": stat, "variance": var, "j": j}


def mmd_mp(kernel_fn, real, fake, key, cfg):
  x, y = _pooled_pair(real, fake, key, cfg)
  stat, var = mmd.set_mpp_and_variance(kernel_fn, x, y)
  j = mmd.studentise(stat, var, cfg.reg)
  return -j, {"mpp": stat, "variance": var, "j": j}


def _block_sums(k, rows, cols):
  """(rows, cols) sums of the K x K blocks of a (rows*K, cols*K) Gram matrix."""
  return k.reshape(rows, k.shape[0] // rows, cols, k.shape[1] // cols).sum(axis=(1, 3))


def image_scores(kernel_fn, images, reference, exclude):
  """Biased MMD^2 of each image's patch set against the pooled reference images.

  images: leaves (N, K, ...); reference: leaves (R, K, ...); exclude: (N, R)
  bool, reference images left out of image n's bank (a real image's own).
  The kernel means come from image-level block sums of two Gram matrices, so
  the N leave-out banks cost nothing extra; the score is mmd.set_vs_bank's.
  """
  n, r = exclude.shape
  patches = jax.tree.leaves(images)[0].shape[1]
  flat_ref = mmd.pool_patches(reference)
  ref_ref = _block_sums(kernel_fn(flat_ref, flat_ref), r, r)  # (R, R)
  keep = (~exclude).astype(ref_ref.dtype)
  bank_size = jnp.sum(keep, axis=1) * patches  # (N,) patches in image n's bank

  def bank_density(flat_images):  # (N * K,) mean over image n's bank, for its K patches
    # (N, K, R): sum_k' k(x_nk, r_ak') per reference image a.
    cross = kernel_fn(flat_images, flat_ref).reshape(n, patches, r, -1).sum(axis=3)
    return (jnp.einsum("nkr,nr->nk", cross, keep) / bank_size[:, None]).reshape(-1)

  bank_mean = jnp.einsum("na,ab,nb->n", keep, ref_ref, keep) / bank_size**2
  return mmd.set_vs_bank(kernel_fn, images, bank_density, bank_mean).mmd2


def image_score(kernel_fn, real, fake, key, cfg):
  del key  # every patch of the batch is used
  num_real = jax.tree.leaves(real)[0].shape[0]
  num_fake = jax.tree.leaves(fake)[0].shape[0]
  images = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), real, fake)
  exclude = jnp.concatenate(
      [jnp.eye(num_real, dtype=bool), jnp.zeros((num_fake, num_real), bool)])
  scores = image_scores(kernel_fn, images, real, exclude)
  real_scores, fake_scores = scores[:num_real], scores[num_real:]
  # Welch's t: gap of mean scores over sqrt(var_f / n_f + var_r / n_r).
  gap = jnp.mean(fake_scores) - jnp.mean(real_scores)
  var = jnp.var(fake_scores, ddof=1) / num_fake + jnp.var(real_scores, ddof=1) / num_real
  t = mmd.studentise(gap, var, cfg.reg)
  return -t, {"welch_t": t, "score_gap": gap, "gap_variance": var}


OBJECTIVES = {"mmd_d": mmd_d, "mmd_mp": mmd_mp, "image_score": image_score}
