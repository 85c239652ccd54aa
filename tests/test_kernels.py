"""Kernel units against float64 NumPy: constraints, data initialisation, Gram matrices, checks."""

import jax
import ml_collections
import numpy as np
import pytest

from mdmf_jax import kernels, mmd
from tests.test_mmd import rand, ref_deep, ref_l1_dists, ref_sq_dists


def median_of(d):
  return np.median(d[np.triu_indices(len(d), k=1)])


def make(name, **params):
  return kernels.make(ml_collections.ConfigDict({"name": name, "params": params}))


def sample():
  """Pooled PFS signatures s (60, 5) and raw features z (60, 9)."""
  return rand(0, 60, 5), rand(1, 60, 9, shift=2.0)


def test_deep_init_constraints_and_gram():
  s, z = sample()
  unit = make("deep", eps_init=1e-3, sigma_phi_scale=0.25, sigma_q_scale=2.0)
  raw = unit.init(jax.random.key(0), s, z)
  params = unit.constrain(raw)
  np.testing.assert_allclose(params["eps"], 1e-3, rtol=1e-5)
  np.testing.assert_allclose(params["sigma_phi"], 0.25 * median_of(ref_sq_dists(s, s)), rtol=1e-5)
  np.testing.assert_allclose(params["sigma_q"], 2.0 * median_of(ref_sq_dists(z, z)), rtol=1e-5)
  raw = {"eps_raw": -1.5, "sigma_phi_raw": -2.0, "sigma_q_raw": 3.0}
  params = unit.constrain(raw)
  np.testing.assert_allclose([params[k] for k in ("eps", "sigma_phi", "sigma_q")],
                             [1 / (1 + np.exp(1.5)), 4.0, 9.0], rtol=1e-6)
  x, y = unit.points(s[:7], z[:7]), unit.points(s[7:12], z[7:12])
  expected = ref_deep(s[:7], s[7:12], z[:7], z[7:12], 1 / (1 + np.exp(1.5)), 4.0, 9.0)
  np.testing.assert_allclose(unit.bind(raw)(x, y), expected, rtol=2e-5, atol=1e-7)


def test_deep_defaults_are_mmd_d_start():
  s, z = sample()
  params = make("deep").constrain(make("deep").init(jax.random.key(0), s, z))
  assert float(params["eps"]) == 0.5
  np.testing.assert_allclose(params["sigma_phi"], median_of(ref_sq_dists(s, s)), rtol=1e-5)


def test_gaussian_learned_or_fixed():
  s, z = sample()
  unit = make("gaussian", bandwidth_scale=3.0)
  raw = unit.init(None, s, z)
  bandwidth = 3.0 * median_of(ref_sq_dists(s, s))
  np.testing.assert_allclose(unit.constrain(raw)["bandwidth"], bandwidth, rtol=1e-5)
  np.testing.assert_allclose(unit.bind(raw)(s[:6], s[6:9]),
                             np.exp(-ref_sq_dists(s[:6], s[6:9]) / bandwidth), rtol=2e-5)
  assert unit.points(s, z) is s
  fixed = make("gaussian", bandwidth=2.0)
  assert fixed.init(None, s, z) == {} and fixed.constrain({}) == {}
  np.testing.assert_allclose(fixed.bind({})(s[:6], s[6:9]),
                             np.exp(-ref_sq_dists(s[:6], s[6:9]) / 2.0), rtol=2e-5)


def test_laplace_starts_at_the_median_l1_distance():
  s, z = sample()
  unit = make("laplace")
  raw = unit.init(None, s, z)
  bandwidth = median_of(ref_l1_dists(s, s))
  np.testing.assert_allclose(unit.constrain(raw)["bandwidth"], bandwidth, rtol=1e-5)
  np.testing.assert_allclose(unit.bind(raw)(s[:6], s[6:9]),
                             np.exp(-ref_l1_dists(s[:6], s[6:9]) / bandwidth), rtol=2e-5)


def test_aggregate_starts_on_median_grids_and_mixes_with_learned_weights():
  s, z = sample()
  unit = make("aggregate", families=("laplace", "gaussian"), exponents=(-1, 0, 3))
  raw = unit.init(None, s, z)
  params = unit.constrain(raw)
  medians = [median_of(ref_l1_dists(s, s)), median_of(ref_sq_dists(s, s))]
  np.testing.assert_allclose(params["bandwidths"], np.outer(medians, [0.5, 1.0, 8.0]), rtol=1e-5)
  np.testing.assert_allclose(params["weights"], np.full((2, 3), 1 / 6), rtol=1e-6)
  logits = np.array([[0.3, -1.0, 2.0], [0.0, 0.5, -0.2]])
  bandwidths = np.array([[2.0, 5.0, 9.0], [0.5, 3.0, 30.0]])
  raw = {"weight_logits": logits, "bandwidths_raw": np.sqrt(bandwidths)}
  weights = np.exp(logits) / np.exp(logits).sum()
  x, y = s[:6], s[6:9]
  expected = sum(weights[0, j] * np.exp(-ref_l1_dists(x, y) / bandwidths[0, j])
                 + weights[1, j] * np.exp(-ref_sq_dists(x, y) / bandwidths[1, j]) for j in range(3))
  np.testing.assert_allclose(unit.bind(raw)(x, y), expected, rtol=2e-5)
  np.testing.assert_allclose(np.diagonal(unit.bind(raw)(x, x)), 1.0, rtol=1e-6)


def test_fixed_kernels_take_their_params():
  s, _ = sample()
  x, y = s[:6], s[6:9]
  np.testing.assert_allclose(make("imq", c=2.0, beta=-1.0).bind({})(x, y),
                             (4.0 + ref_sq_dists(x, y)) ** -1.0, rtol=2e-5)
  grid = (0.5, 8.0)
  np.testing.assert_allclose(
      make("multi_gaussian", bandwidths=grid).bind({})(x, y),
      np.mean([np.exp(-ref_sq_dists(x, y) / b) for b in grid], axis=0), rtol=2e-5)


@pytest.mark.parametrize("name", sorted(kernels.KERNELS))
def test_every_unit_trains(name):
  """Defaults build; init is finite; the raw params get finite gradients through an MMD."""
  s, z = sample()
  unit = make(name)
  raw = unit.init(jax.random.key(0), s, z)
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(raw))
  x, y = unit.points(s[:20], z[:20]), unit.points(s[20:40] + 0.5, z[20:40])
  loss = lambda r: mmd.set_mmd2(unit.bind(r), x, y)
  assert np.isfinite(loss(raw))
  grads = jax.grad(loss)(raw)
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(grads))
  for value in unit.constrain(raw).values():
    assert np.all(np.isfinite(value))
  assert hash(unit) == hash(make(name))  # a static (hashable) value under jit


@pytest.mark.parametrize("name,params,param,message", [
    ("deep", {"eps_init": 0.0}, "eps_init", r"in \(0, 1\)"),
    ("deep", {"sigma_q_scale": -1}, "sigma_q_scale", "> 0"),
    ("deep", {"bandwidth": 1.0}, "bandwidth", "kernel 'deep' has no parameter 'bandwidth'"),
    ("gaussian", {"bandwidth": "wide"}, "bandwidth", "> 0, got 'wide'"),
    ("imq", {"beta": 0.5}, "beta", "< 0"),
    ("aggregate", {"families": ("gaussian", "cauchy")}, "families", "distinct names"),
    ("aggregate", {"exponents": ()}, "exponents", "non-empty"),
    ("multi_gaussian", {"bandwidths": ()}, "bandwidths", "non-empty"),
    ("multi_gaussian", {"bandwidths": (1.0, 0.0)}, "bandwidths", "> 0"),
])
def test_bad_params_are_named(name, params, param, message):
  with pytest.raises(kernels.ParamError, match=message) as error:
    make(name, **params)
  assert error.value.param == param
