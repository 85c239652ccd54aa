"""Patch Forensic Signature (PFS): the per-patch MLP trained to separate real from fake.

PFS (docs/method.md, section 3) maps every patch embedding z (D) independently to a
forensic signature s (out_dim):

    s = Dense_out(Dropout(LayerNorm(GELU(Dense_hidden(z)))))      (exact GELU)

so it is permutation-equivariant over the patches of a set. Dense_out has no
bias: every kernel in mmd.py depends on s only through differences s_a - s_b,
so an output bias gets an exactly-zero gradient, and Adam would turn its
round-off into steps of size lr (a random walk that makes runs differ with the
device layout). The kernel's own learnable parameters live in its unit
(kernels.py), next to the PFS params in the train state.

    model = make(config.pfs)
    params = model.init(key, z)["params"]
    s = model.apply({"params": params}, z)
"""

from __future__ import annotations

import flax.linen as nn


class PFS(nn.Module):
  """Per-patch MLP D -> hidden_dim -> out_dim.

  `__call__(patches, train=False)`: patches (..., K, D) -> (..., K, out_dim).
  Dropout is active when train=True (needs a "dropout" PRNG stream).
  """

  hidden_dim: int = 512
  out_dim: int = 128
  dropout_rate: float = 0.1

  @nn.compact
  def __call__(self, patches, train: bool = False):
    x = nn.Dense(self.hidden_dim, name="fc1")(patches)
    x = nn.LayerNorm(name="norm")(nn.gelu(x, approximate=False))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.out_dim, use_bias=False, name="fc2")(x)


def make(pfs_cfg) -> PFS:
  """The PFS of a config's `pfs` block."""
  return PFS(hidden_dim=pfs_cfg.hidden_dim, out_dim=pfs_cfg.out_dim,
             dropout_rate=pfs_cfg.dropout)
