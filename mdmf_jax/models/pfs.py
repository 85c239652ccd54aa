"""Patch Forensic Signature (PFS) and the deep kernel's learnable parameters.

PFS (docs/method.md, section 3) maps every patch embedding z (D) independently to a
forensic signature s (out_dim):

    s = Dense_out(Dropout(LayerNorm(GELU(Dense_hidden(z)))))      (exact GELU)

Dense_out has no bias: every kernel in mmd.py depends on s only through
differences s_a - s_b, so an output bias gets an exactly-zero gradient, and
Adam would turn its round-off into steps of size lr (a random walk that makes
runs differ with the device layout).

so it is permutation-equivariant over the patches of a set. Its params also
hold the raw parameters of MMD-D's deep kernel (mmd.deep), trained with it:

    eps = sigmoid(eps_raw),  sigma_phi = sigma_phi_raw ** 2,  sigma_q = sigma_q_raw ** 2

Initialisation: eps = eps_init (0.5, MMD-D's start: eps_raw = 0); the sigmas
start at 1 and are meant to be set from a first batch by `init_bandwidths`
(median heuristic: sigma = median pairwise squared distance, the natural
bandwidth for exp(-d^2 / sigma)).

    pfs = PFS(hidden_dim=512, out_dim=128, dropout_rate=0.1)
    params = pfs.init(key, z)["params"]
    params = init_bandwidths(params, pfs.apply({"params": params}, z), z, key=key)
    k = functools.partial(mmd.deep, **kernel_params(params))
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mdmf_jax.mmd import median_heuristic


class PFS(nn.Module):
  """Per-patch MLP D -> hidden_dim -> out_dim, plus the deep kernel's raw params.

  `__call__(patches, train=False)`: patches (..., K, D) -> (..., K, out_dim).
  Dropout is active when train=True (needs a "dropout" PRNG stream).
  """

  hidden_dim: int = 512
  out_dim: int = 128
  dropout_rate: float = 0.1
  eps_init: float = 0.5

  @nn.compact
  def __call__(self, patches, train: bool = False):
    # Declared here so that one params tree (one optimizer) holds all that is trained.
    self.param("eps_raw", nn.initializers.constant(jax.scipy.special.logit(self.eps_init)), ())
    self.param("sigma_phi_raw", nn.initializers.ones, ())
    self.param("sigma_q_raw", nn.initializers.ones, ())
    x = nn.Dense(self.hidden_dim, name="fc1")(patches)
    x = nn.LayerNorm(name="norm")(nn.gelu(x, approximate=False))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.out_dim, use_bias=False, name="fc2")(x)


def kernel_params(params) -> dict:
  """{eps, sigma_phi, sigma_q}, constrained, from PFS params: `mmd.deep(x, y, **kernel_params(p))`."""
  return {
      "eps": jax.nn.sigmoid(params["eps_raw"]),
      "sigma_phi": jnp.square(params["sigma_phi_raw"]),
      "sigma_q": jnp.square(params["sigma_q_raw"]),
  }


def init_bandwidths(params, signatures, patches, *, key=None, max_points=1024):
  """PFS params with sigma_phi and sigma_q set by the median heuristic.

  sigma_phi = median |s_i - s_j|^2 over the PFS signatures, sigma_q = median
  |z_i - z_j|^2 over the raw patch embeddings (mmd.median_heuristic; all
  leading axes are pooled into one set, subsampled to `max_points` with `key`,
  the same subsample for both). The raw params are their square roots.
  """
  signatures = signatures.reshape(-1, signatures.shape[-1])
  patches = patches.reshape(-1, patches.shape[-1])
  sigma_phi = median_heuristic(signatures, key=key, max_points=max_points)
  sigma_q = median_heuristic(patches, key=key, max_points=max_points)
  return {**params, "sigma_phi_raw": jnp.sqrt(sigma_phi), "sigma_q_raw": jnp.sqrt(sigma_q)}
