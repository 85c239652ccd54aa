"""The Flax ViT: PyTorch-exact position-embedding resampling, the frozen wrapper, dtypes.

End-to-end parity with transformers' PyTorch DINOv2 is in test_weights.py.
"""

import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from mdmf_jax.models import vit
from tests import references

torch = references.optional("torch")

GRIDS = [(4, 4), (37, 37)]
TARGETS = [(16, 16), (6, 9), (2, 3), (40, 40)]


@references.needs("torch")
@pytest.mark.parametrize("from_grid,to_grid,antialias,offset",
                         list(itertools.product(GRIDS, TARGETS, [False, True], [0.0, 0.1])))
def test_resample_matches_torch_bicubic(from_grid, to_grid, antialias, offset):
  grid = np.random.default_rng(0).normal(size=(*from_grid, 5)).astype(np.float32)
  pos_embed = np.concatenate([np.ones((1, 5), np.float32), grid.reshape(-1, 5)])[None]
  # The calls the references make: size= (transformers, official with offset 0),
  # scale_factor= (official DINOv2 with interpolate_offset=0.1).
  size_or_scale = ({"scale_factor": tuple((t + offset) / f for f, t in zip(from_grid, to_grid))}
                   if offset else {"size": to_grid})
  expected = torch.nn.functional.interpolate(
      torch.from_numpy(grid).permute(2, 0, 1)[None], mode="bicubic", align_corners=False,
      antialias=antialias, **size_or_scale)[0].permute(1, 2, 0).numpy()
  ours = vit.resample_pos_embed(jnp.asarray(pos_embed), from_grid, to_grid, offset=offset,
                                antialias=antialias)
  np.testing.assert_array_equal(ours[0, 0], pos_embed[0, 0])
  np.testing.assert_allclose(ours[0, 1:].reshape(*to_grid, 5), expected, atol=2e-5, rtol=0)


@references.needs("torch")
def test_jax_image_bicubic_is_not_torch_bicubic():
  """Why bicubic_matrix exists: jax.image's kernel (a = -0.5) is off by ~1e-2."""
  grid = np.random.default_rng(0).normal(size=(37, 37, 1)).astype(np.float32)
  torch_out = torch.nn.functional.interpolate(
      torch.from_numpy(grid).permute(2, 0, 1)[None], size=(16, 16), mode="bicubic",
      align_corners=False)[0, 0].numpy()
  jax_out = jax.image.resize(grid, (16, 16, 1), "bicubic", antialias=False)[..., 0]
  assert np.abs(jax_out - torch_out).max() > 1e-2


def _tiny(**overrides):
  model = vit.vit("tiny/14", pos_grid=(4, 4), **overrides)
  images = jnp.asarray(np.random.default_rng(1).normal(size=(2, 56, 56, 3)), jnp.float32)
  params = model.init(jax.random.key(0), images)["params"]
  # Non-zero registers and a non-constant pos-embed, so that both matter.
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(p.size), p.shape), params)
  return model, params


def test_outputs_and_shapes():
  model, params = _tiny(num_registers=3)
  images = jnp.zeros((2, 42, 70, 3))
  out = model.apply({"params": params}, images, blocks=(0, 1))
  assert out["cls"].shape == (2, 128)
  assert out["patch_tokens"].shape == (2, 3 * 5, 128)
  assert out["registers"].shape == (2, 3, 128)
  assert sorted(out["blocks"]) == [0, 1]
  np.testing.assert_array_equal(out["blocks"][1], out["patch_tokens"])  # last block = final output


def test_frozen_vit_matches_apply_and_resamples_once_per_size(monkeypatch):
  model, params = _tiny(num_registers=2, pos_antialias=True)
  sizes = [(84, 98), (84, 98), (28, 28), (84, 98), (56, 56)]
  inputs = [jnp.asarray(np.random.default_rng(i).normal(size=(2, *hw, 3)), jnp.float32)
            for i, hw in enumerate(sizes)]
  expected = [model.apply({"params": params}, images, blocks=(0,)) for images in inputs]
  resampled_to = []
  real = vit.resample_pos_embed

  def counting(pos_embed, from_grid, to_grid, **kwargs):
    if tuple(from_grid) != tuple(to_grid):
      resampled_to.append(tuple(to_grid))
    return real(pos_embed, from_grid, to_grid, **kwargs)

  monkeypatch.setattr(vit, "resample_pos_embed", counting)
  backbone = vit.FrozenViT(model, params)
  for images, reference in zip(inputs, expected):
    ours = backbone(images, blocks=(0,))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=0), ours, reference)
  assert resampled_to == [(6, 7), (2, 2)]  # once per new size; the native 4 x 4 grid needs none


def test_bfloat16_compute_stays_close_to_float32():
  model, params = _tiny()
  images = jnp.asarray(np.random.default_rng(2).normal(size=(2, 56, 56, 3)), jnp.float32)
  f32 = model.apply({"params": params}, images)["patch_tokens"]
  bf16 = model.clone(dtype=jnp.bfloat16).apply({"params": params}, images)["patch_tokens"]
  assert bf16.dtype == jnp.bfloat16
  assert jax.tree.leaves(params)[0].dtype == jnp.float32
  # bfloat16 keeps 8 mantissa bits (0.4% per rounding): over 2 blocks the error
  # stays ~1% of the tokens' RMS (0.9% measured); a wrong op would be ~100%.
  error = np.asarray(bf16, np.float32) - np.asarray(f32)
  assert np.sqrt(np.mean(error**2)) < 0.02 * np.sqrt(np.mean(np.asarray(f32)**2))
  assert np.abs(error).max() < 0.1


def _attention_inputs(dtype=jnp.float32):
  q, k, v = np.random.default_rng(4).normal(size=(3, 2, 3, 17, 64)).astype(np.float32)
  return [jnp.asarray(a, dtype) for a in (q, k, v)]


def _float64_attention(q, k, v):
  q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
  logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  return (probs / probs.sum(-1, keepdims=True)) @ v


def test_attend_matches_float64_softmax_attention():
  q, k, v = _attention_inputs()
  np.testing.assert_allclose(vit.attend(q, k, v), _float64_attention(q, k, v), atol=2e-6, rtol=0)


def test_attend_in_bfloat16_keeps_logits_and_softmax_in_float32():
  q, k, v = _attention_inputs(jnp.bfloat16)
  jaxpr = jax.make_jaxpr(vit.attend)(q, k, v).jaxpr
  dots = [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]
  assert [d.invars[0].aval.dtype for d in dots] == [jnp.bfloat16, jnp.bfloat16]
  assert dots[0].outvars[0].aval.dtype == jnp.float32  # logits
  assert all(e.invars[0].aval.dtype == jnp.float32 for e in jaxpr.eqns
             if e.primitive.name in ("exp", "reduce_max", "reduce_sum"))
  out = vit.attend(q, k, v)
  assert out.dtype == jnp.bfloat16
  # Only the probabilities' and the output's roundings to bfloat16 (2^-9 relative each).
  np.testing.assert_allclose(np.asarray(out, np.float32), _float64_attention(q, k, v), atol=2e-2, rtol=0)


def test_attention_implementation_is_cudnn_only_for_half_precision_on_gpu():
  assert vit.attention_implementation(jnp.bfloat16, "gpu") == "cudnn"
  assert vit.attention_implementation("float16", "gpu") == "cudnn"
  assert vit.attention_implementation(jnp.float32, "gpu") == "xla"
  assert vit.attention_implementation(jnp.bfloat16, "cpu") == "xla"
  assert vit.attention_implementation(jnp.bfloat16, "tpu") == "xla"


def test_exact_gelu_matches_float64_erf():
  x = np.linspace(-8, 8, 2001).astype(np.float32)
  expected = x / 2 * (1 + scipy.special.erf(np.float64(x) / np.sqrt(2)))
  np.testing.assert_allclose(vit.exact_gelu(jnp.asarray(x)), expected, atol=1e-6, rtol=1e-6)


def test_bfloat16_model_computes_in_bfloat16_with_float32_statistics():
  model, params = _tiny()
  jaxpr = jax.make_jaxpr(model.clone(dtype=jnp.bfloat16).apply)({"params": params}, jnp.zeros((2, 56, 56, 3)))
  eqns = jaxpr.jaxpr.eqns
  # Params come in as float32 and are cast; every matmul takes bfloat16 operands.
  assert all(v.aval.dtype == jnp.float32 for v in jaxpr.jaxpr.invars)
  dots = [e for e in eqns if e.primitive.name == "dot_general"]
  assert len(dots) >= 1 + 2 * 6  # patch embedding, then qkv, q k^T, p v, proj, fc1, fc2 per block
  assert all(v.aval.dtype == jnp.bfloat16 for d in dots for v in d.invars)
  # LayerNorm statistics and softmax (mean, variance, max, sum) are reduced in float32.
  reductions = [e for e in eqns if e.primitive.name in ("reduce_sum", "reduce_max")]
  assert reductions and all(e.invars[0].aval.dtype == jnp.float32 for e in reductions)


@pytest.mark.parametrize("overrides", [{}, {"num_registers": 2}, {"swiglu": True}])
def test_forward_flops_matches_xla_cost_analysis(overrides):
  """The analytic count vs XLA:CPU's, which adds the elementwise ops (norms, softmax, GELU).

  Those are 1.6% here; leaving out the attention matmuls (2.2%) would fail.
  """
  model, params = _tiny(**overrides)
  images = jnp.zeros((2, 56, 70, 3))
  cost = vit.FrozenViT(model, params).lower(images).compile().cost_analysis()
  xla_flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
  ours = vit.forward_flops(model, images.shape[1:3]) * images.shape[0]
  assert 0.975 * xla_flops < ours <= xla_flops


def test_bad_inputs_are_named():
  model, params = _tiny()
  with pytest.raises(ValueError, match=r"image size \(50, 56\) is not a multiple of the patch size 14"):
    model.apply({"params": params}, jnp.zeros((1, 50, 56, 3)))
  with pytest.raises(ValueError, match=r"NHWC with 3 channels; got shape \(1, 3, 56, 56\)"):
    model.apply({"params": params}, jnp.zeros((1, 3, 56, 56)))
  with pytest.raises(ValueError, match="block 2 out of range for a 2-block ViT"):
    model.apply({"params": params}, jnp.zeros((1, 56, 56, 3)), blocks=(2,))
  with pytest.raises(ValueError, match="unknown ViT variant 'XL/14'"):
    vit.vit("XL/14")


@references.needs("torch")
def test_imagenet_normalize():
  images = np.random.default_rng(3).uniform(size=(2, 4, 4, 3)).astype(np.float32)
  expected = (torch.from_numpy(images).permute(0, 3, 1, 2)
              - torch.tensor(vit.IMAGENET_MEAN)[:, None, None]) / torch.tensor(vit.IMAGENET_STD)[:, None, None]
  np.testing.assert_allclose(vit.imagenet_normalize(images), expected.permute(0, 2, 3, 1).numpy(),
                             rtol=1e-6)


@pytest.mark.skipif(not os.environ.get("CI"), reason="CI only")
def test_ci_has_the_reference_libraries():
  """CI must run the reference-parity tests: their libraries must be installed there."""
  missing = [name for name in references.REFERENCE_LIBRARIES if references.optional(name) is None]
  assert not missing, f"{missing} missing: pip install -r requirements-test.txt"
