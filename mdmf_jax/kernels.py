"""Kernel units: a kernel with its learnable parameters, their constraints, their
initialisation from data and the points it acts on (docs/mmd.md, "Kernels").

A unit is a frozen dataclass whose fields are its fixed parameters, set from
`config.kernel.params` and checked when it is built (`make`). It provides

  init(key, s, z) -> raw       learnable parameters (a pytree, possibly empty)
                               from a pooled sample of PFS signatures s (M, d')
                               and raw patch features z (M, D); trained next
                               to the PFS, in params["kernel"]
  constrain(raw) -> dict       the constrained values (positive bandwidths,
                               eps in (0, 1), ...); logged as kernel/<name>
  gram(params, x, y) -> (m, n) the Gram matrix, params = constrain(raw)
  points(s, z)                 what the kernel takes: s, or the pair (s, z)

`bind(raw)` turns a unit and its raw parameters into the `kernel_fn(x, y)`
every estimator in mmd.py takes. Adding a kernel is one unit and one line in
`KERNELS`.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from mdmf_jax import mmd


class ParamError(ValueError):
  """A bad fixed parameter; `param` names it (config_lib reports kernel.params.<param>)."""

  def __init__(self, param: str, message: str):
    super().__init__(message)
    self.param = param


def check_positive(name: str, value):
  if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
    raise ParamError(name, f"must be a number > 0, got {value!r}")


def check_positives(name: str, values):
  if not isinstance(values, (tuple, list)) or not values:
    raise ParamError(name, f"must be a non-empty tuple of numbers > 0, got {values!r}")
  for value in values:
    check_positive(name, value)


@dataclasses.dataclass(frozen=True)
class Kernel:
  """Base unit: no learnable parameters, acts on the PFS signatures s."""

  uses_raw_features: ClassVar[bool] = False

  def init(self, key, s, z) -> dict:
    del key, s, z
    return {}

  def constrain(self, raw) -> dict:
    del raw
    return {}

  def gram(self, params, x, y) -> jax.Array:
    raise NotImplementedError

  def points(self, s, z):
    return (s, z) if self.uses_raw_features else s

  def bind(self, raw) -> mmd.KernelFn:
    return functools.partial(self.gram, self.constrain(raw))


@dataclasses.dataclass(frozen=True)
class OneBandwidth(Kernel):
  """A kernel of s with one bandwidth, learned or fixed.

  bandwidth: None to learn it, starting at `bandwidth_scale` times the median
  pairwise distance in the kernel's own `metric` (mmd.median_heuristic); a
  number to fix it (nothing learned). Learned as bandwidth = raw ** 2.
  """

  bandwidth: float | None = None
  bandwidth_scale: float = 1.0
  metric: ClassVar[str]

  def __post_init__(self):
    if self.bandwidth is not None:
      check_positive("bandwidth", self.bandwidth)
    check_positive("bandwidth_scale", self.bandwidth_scale)

  def kernel(self, x, y, bandwidth) -> jax.Array:
    raise NotImplementedError

  def init(self, key, s, z):
    if self.bandwidth is not None:
      return {}
    median = mmd.median_heuristic(s, key=key, metric=self.metric)
    return {"bandwidth_raw": jnp.sqrt(self.bandwidth_scale * median)}

  def constrain(self, raw):
    return {} if self.bandwidth is not None else {"bandwidth": jnp.square(raw["bandwidth_raw"])}

  def gram(self, params, x, y):
    return self.kernel(x, y, params.get("bandwidth", self.bandwidth))


class Gaussian(OneBandwidth):
  """exp(-|s_a - s_b|_2^2 / bandwidth) (mmd.gaussian); starts at the median squared distance."""

  metric = "sq_euclidean"

  def kernel(self, x, y, bandwidth):
    return mmd.gaussian(x, y, bandwidth)


class Laplace(OneBandwidth):
  """exp(-|s_a - s_b|_1 / bandwidth) (mmd.laplace); starts at the median L1 distance, its scale."""

  metric = "l1"

  def kernel(self, x, y, bandwidth):
    return mmd.laplace(x, y, bandwidth)


@dataclasses.dataclass(frozen=True)
class IMQ(Kernel):
  """(c^2 + |s_a - s_b|^2)^beta (mmd.imq), fixed c > 0 and beta < 0."""

  c: float = 1.0
  beta: float = -0.5

  def __post_init__(self):
    check_positive("c", self.c)
    if isinstance(self.beta, bool) or not isinstance(self.beta, numbers.Real) or self.beta >= 0:
      raise ParamError("beta", f"must be a number < 0, got {self.beta!r}")

  def gram(self, params, x, y):
    return mmd.imq(x, y, self.c, self.beta)


@dataclasses.dataclass(frozen=True)
class MultiGaussian(Kernel):
  """Mean of exp(-|s_a - s_b|^2 / b) over a fixed grid (mmd.multi_gaussian).

  The default grid surrounds the unit scale of the LayerNorm'd PFS output.
  """

  bandwidths: tuple = (0.25, 1.0, 4.0, 16.0, 64.0)

  def __post_init__(self):
    check_positives("bandwidths", self.bandwidths)

  def gram(self, params, x, y):
    return mmd.multi_gaussian(x, y, self.bandwidths)


_FAMILIES = {  # family: (the metric its bandwidth divides, the pairwise distance)
    "gaussian": ("sq_euclidean", mmd.pairwise_sq_dists),
    "laplace": ("l1", mmd.pairwise_l1_dists),
}


@dataclasses.dataclass(frozen=True)
class Aggregate(Kernel):
  """A learned convex combination of Gaussian and Laplace kernels of s over bandwidth grids:

    k(a, b) = sum_{f, l} w_fl exp(-d_f(s_a, s_b) / b_fl),   w = softmax(weight_logits)

  d_f is the squared L2 distance for "gaussian" and the L1 distance for
  "laplace". Each family's bandwidths start at its own median distance times
  2^l for l in `exponents` (MMDAgg's collection, Schrab et al., JMLR 2023) and
  the weights start uniform; both are learned (b = raw ** 2), as in
  multiple-kernel MMD (Gretton et al., NeurIPS 2012). The aggregate is a kernel,
  not MMDAgg's or MMD-FUSE's aggregate of tests, so every estimator takes it.
  """

  families: tuple = ("gaussian", "laplace")
  exponents: tuple = (-2, -1, 0, 1, 2)

  def __post_init__(self):
    if (not isinstance(self.families, (tuple, list)) or not self.families
        or len(set(self.families)) < len(self.families)
        or not set(self.families) <= set(_FAMILIES)):
      raise ParamError("families", f"must be distinct names of {sorted(_FAMILIES)}, "
                       f"got {self.families!r}")
    if not isinstance(self.exponents, (tuple, list)) or not self.exponents or not all(
        isinstance(e, numbers.Real) and not isinstance(e, bool) for e in self.exponents):
      raise ParamError("exponents", f"must be a non-empty tuple of numbers, got {self.exponents!r}")

  def init(self, key, s, z):
    del z
    scales = jnp.exp2(jnp.asarray(self.exponents, jnp.float32))
    medians = jnp.stack([mmd.median_heuristic(s, key=key, metric=_FAMILIES[f][0])
                         for f in self.families])
    return {"bandwidths_raw": jnp.sqrt(medians[:, None] * scales[None, :]),
            "weight_logits": jnp.zeros((len(self.families), len(self.exponents)), jnp.float32)}

  def constrain(self, raw):
    logits = raw["weight_logits"]
    weights = jax.nn.softmax(logits.reshape(-1)).reshape(logits.shape)
    return {"bandwidths": jnp.square(raw["bandwidths_raw"]), "weights": weights}

  def gram(self, params, x, y):
    total = 0.0
    for family, bandwidths, weights in zip(self.families, params["bandwidths"],
                                           params["weights"]):
      d = _FAMILIES[family][1](x, y)
      total = total + jnp.tensordot(weights, jnp.exp(-d[None] / bandwidths[:, None, None]), 1)
    return total


@dataclasses.dataclass(frozen=True)
class Deep(Kernel):
  """MMD-D's deep kernel (mmd.deep) on pairs (s, z), every parameter learned:

    eps = sigmoid(eps_raw),  sigma_phi = sigma_phi_raw ** 2,  sigma_q = sigma_q_raw ** 2

  Starts at eps = eps_init (MMD-D's 0.5 by default; its DK-for-TST code uses
  eps near 1e-10) and sigma_phi, sigma_q at `sigma_phi_scale`, `sigma_q_scale`
  times the median squared distance of s, z (the same subsample for both).
  """

  eps_init: float = 0.5
  sigma_phi_scale: float = 1.0
  sigma_q_scale: float = 1.0
  uses_raw_features: ClassVar[bool] = True

  def __post_init__(self):
    if isinstance(self.eps_init, bool) or not isinstance(self.eps_init, numbers.Real) or not (
        0.0 < self.eps_init < 1.0):
      raise ParamError("eps_init", f"must be a number in (0, 1), got {self.eps_init!r}")
    check_positive("sigma_phi_scale", self.sigma_phi_scale)
    check_positive("sigma_q_scale", self.sigma_q_scale)

  def init(self, key, s, z):
    return {
        "eps_raw": jnp.asarray(jax.scipy.special.logit(self.eps_init), jnp.float32),
        "sigma_phi_raw": jnp.sqrt(self.sigma_phi_scale * mmd.median_heuristic(s, key=key)),
        "sigma_q_raw": jnp.sqrt(self.sigma_q_scale * mmd.median_heuristic(z, key=key)),
    }

  def constrain(self, raw):
    return {"eps": jax.nn.sigmoid(raw["eps_raw"]),
            "sigma_phi": jnp.square(raw["sigma_phi_raw"]),
            "sigma_q": jnp.square(raw["sigma_q_raw"])}

  def gram(self, params, x, y):
    return mmd.deep(x, y, **params)


KERNELS: dict[str, type[Kernel]] = {
    "aggregate": Aggregate,
    "deep": Deep,
    "gaussian": Gaussian,
    "laplace": Laplace,
    "imq": IMQ,
    "multi_gaussian": MultiGaussian,
}


def make(kernel_cfg) -> Kernel:
  """The unit `kernel_cfg.name` with the fixed parameters `kernel_cfg.params`.

  Raises ParamError naming an unknown or bad parameter; KeyError for an unknown name.
  """
  unit = KERNELS[kernel_cfg.name]
  params: dict[str, Any] = kernel_cfg.params.to_dict()
  fields = [f.name for f in dataclasses.fields(unit)]
  for name in params:
    if name not in fields:
      raise ParamError(name, f"kernel {kernel_cfg.name!r} has no parameter {name!r}; "
                       f"it takes {fields}")
  return unit(**params)
