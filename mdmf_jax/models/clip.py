"""The CLIP ViT image tower (UnivFD's backbone) as a backbone unit (models/backbones.py).

Reproduces transformers' `CLIPVisionModel` (float32 parity <= 1e-4 in
tests/test_clip.py):

  x   = pre_norm([class_embedding, patch_embed(images)] + pos_embed)
  x  += attn(norm1(x)); x += mlp(norm2(x))        (each block; no layer scale)
  cls = post_norm(x[:, 0])                        (LayerNorms with eps 1e-5)

The MLP is fc1 -> quick_gelu (x * sigmoid(1.702 x)) -> fc2; attention is
models/vit.py's (the key map fuses q, k, v). Outputs: "cls" is the pooled
output (post_layernorm of the class token); "patch_tokens" and "blocks" are the
residual stream as transformers returns it (last_hidden_state, hidden_states),
without a norm: CLIP applies post_layernorm to the class token only. UnivFD's
feature is visual_projection(cls), a linear map of "cls"; the projection is
not loaded.

Inputs are normalised with CLIP's own mean and std (`normalize`). At the
checkpoint's grid (224 px: 14 x 14 for B/16, 16 x 16 for L/14) the position
embeddings are used as they are; any other multiple of the patch size resamples
them bicubically, as transformers does with interpolate_pos_encoding=True
(vit.resample_pos_embed, size=, no antialias).

Weights: a local Hugging Face checkpoint of CLIPModel, CLIPVisionModel or
CLIPVisionModelWithProjection (`.safetensors`, `.bin`, a folder or an `.npz`
of its state dict), e.g. openai/clip-vit-large-patch14's: the image tower's keys
(`vision_model.` prefixed, as CLIPModel and transformers 4.x save them, or not,
as transformers 5.x's CLIPVisionModel does) are loaded strictly; the text
tower, the projections and logit_scale are left out. CLIP's heads are not visible in
the shapes: `variant` sets them and is checked against width, depth, patch and
MLP sizes.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mdmf_jax.models import vit, weights

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

VARIANTS = {
    # openai/clip-vit-base-patch16 and openai/clip-vit-large-patch14 (UnivFD's).
    "B/16": dict(width=768, depth=12, num_heads=12, mlp_dim=3072, patch_size=16),
    "L/14": dict(width=1024, depth=24, num_heads=16, mlp_dim=4096, patch_size=14),
    # Tiny variants for tests and laptop runs (random weights only).
    "tiny/16": dict(width=64, depth=2, num_heads=4, mlp_dim=128, patch_size=16),
    "tiny/14": dict(width=64, depth=2, num_heads=4, mlp_dim=128, patch_size=14),
}


def quick_gelu(x):
  return x * jax.nn.sigmoid(1.702 * x)


class Block(nn.Module):
  """Pre-norm transformer block without layer scale."""

  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    norm = functools.partial(nn.LayerNorm, epsilon=1e-5, dtype=self.dtype)
    x = x + vit.Attention(self.num_heads, self.dtype, name="attn")(norm(name="norm1")(x))
    mlp = vit.Mlp(self.mlp_dim, self.dtype, activation=quick_gelu, name="mlp")
    return x + mlp(norm(name="norm2")(x))


class VisionTransformer(nn.Module):
  """CLIP's image tower; outputs per models/backbones.py (see the module docstring)."""

  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  patch_size: int
  pos_grid: tuple[int, int] = (14, 14)
  dtype: Any = jnp.float32

  def normalize(self, images):
    """Images NHWC in [0, 1] -> this backbone's input (CLIP's mean and std)."""
    return vit.normalize(images, CLIP_MEAN, CLIP_STD)

  @nn.compact
  def __call__(self, images, blocks: Sequence[int] = ()):
    grid = vit.check_inputs(images, blocks, depth=self.depth, patch_size=self.patch_size)
    batch, p = images.shape[0], self.patch_size
    x = nn.Conv(self.width, (p, p), strides=(p, p), padding="VALID", use_bias=False,
                dtype=self.dtype, name="patch_embed")(images)
    x = x.reshape(batch, -1, self.width)
    cls = self.param("class_embedding", nn.initializers.normal(0.02), (self.width,))
    pos = self.param("pos_embed", nn.initializers.normal(0.02),
                     (1 + self.pos_grid[0] * self.pos_grid[1], self.width))
    pos = vit.resample_pos_embed(pos[None], self.pos_grid, grid).astype(self.dtype)
    cls = jnp.broadcast_to(cls.astype(self.dtype), (batch, 1, self.width))
    x = jnp.concatenate([cls, x], axis=1) + pos
    x = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name="pre_norm")(x)
    intermediate = {}
    for i in range(self.depth):
      x = Block(self.num_heads, self.mlp_dim, self.dtype, name=f"blocks_{i}")(x)
      if i in blocks:
        intermediate[i] = x[:, 1:]
    cls = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name="post_norm")(x[:, 0])
    outputs = {"cls": cls, "patch_tokens": x[:, 1:]}
    if blocks:
      outputs["blocks"] = intermediate
    return outputs


def _spec(variant: str) -> dict:
  if variant not in VARIANTS:
    raise ValueError(f"unknown CLIP variant {variant!r}; expected one of {sorted(VARIANTS)}")
  return VARIANTS[variant]


def build(variant: str, image_size: int = 224, dtype=jnp.float32) -> VisionTransformer:
  """The backbone registry's `build`: `variant` with its native grid at `image_size`."""
  spec = _spec(variant)
  grid = vit.grid_shape((image_size, image_size), spec["patch_size"])
  return VisionTransformer(**spec, pos_grid=grid, dtype=jnp.dtype(dtype))


# --------------------------------------------------------------------------
# Weights: transformers' names (unchanged from 4.x to 5.x).
# --------------------------------------------------------------------------

_PREFIX = "vision_model."
# CLIPModel / ...WithProjection keys outside the image tower, deliberately not loaded.
_OTHER_KEYS = ("text_model.", "text_projection.", "visual_projection.", "logit_scale")
# A buffer that older checkpoints saved.
IGNORED_KEYS = ("embeddings.position_ids",)


def _image_tower(state):
  """The image tower's keys of a checkpoint, without their `vision_model.` prefix."""
  tower = {key: value for key, value in state.items() if not key.startswith(_OTHER_KEYS)}
  if any(key.startswith(_PREFIX) for key in tower):
    tower = {key.removeprefix(_PREFIX): value for key, value in tower.items()}
  return tower


def _rules(depth: int) -> dict[str, tuple[str, tuple[str, ...]]]:
  """Flax module path -> (kind, transformers names); see weights.convert_state_dict."""
  top = {"patch_embed": ("conv", "embeddings.patch_embedding"),
         "class_embedding": ("param", "embeddings.class_embedding"),
         "pos_embed": ("param", "embeddings.position_embedding.weight"),
         "pre_norm": ("layernorm", "pre_layrnorm"),  # sic
         "post_norm": ("layernorm", "post_layernorm")}
  rules = {module: (kind, (name,)) for module, (kind, name) in top.items()}
  for i in range(depth):
    layer = f"encoder.layers.{i}."
    rules.update({
        f"blocks_{i}/norm1": ("layernorm", (layer + "layer_norm1",)),
        f"blocks_{i}/attn/qkv": ("linear", tuple(layer + f"self_attn.{n}_proj" for n in "qkv")),
        f"blocks_{i}/attn/proj": ("linear", (layer + "self_attn.out_proj",)),
        f"blocks_{i}/norm2": ("layernorm", (layer + "layer_norm2",)),
        f"blocks_{i}/mlp/fc1": ("linear", (layer + "mlp.fc1",)),
        f"blocks_{i}/mlp/fc2": ("linear", (layer + "mlp.fc2",)),
    })
  return rules


def _architecture(state, variant: str) -> dict:
  """VisionTransformer keyword arguments: `variant`, checked against the checkpoint."""
  spec = _spec(variant)
  found = dict(
      width=weights.require(state, "embeddings.class_embedding", "the width").shape[-1],
      depth=weights.count_blocks(state, "encoder.layers."),
      patch_size=weights.require(state, "embeddings.patch_embedding.weight",
                                 "the patch size").shape[-1],
      mlp_dim=weights.require(state, "encoder.layers.0.mlp.fc1.weight",
                              "the MLP width").shape[0])
  for field, value in found.items():
    if spec[field] != value:
      raise weights.CheckpointError(f"variant {variant!r} has {field}={spec[field]}, "
                                    f"the checkpoint {field}={value}")
  return dict(spec,
              pos_grid=weights.square_grid(state, "embeddings.position_embedding.weight"))


def checkpoint_shapes(model: VisionTransformer, image_size: int = 224) -> dict:
  """{key: shape} of the image-tower checkpoint (unprefixed names) that `model` loads."""
  return weights.source_shapes(_rules(model.depth), weights.param_shapes(model, image_size))


def load(source, variant: str, image_size: int = 224, dtype=jnp.float32):
  """(VisionTransformer, params) from a transformers CLIP checkpoint; see the module docstring.

  `image_size` (int or (height, width)) is only where the params are checked;
  the model accepts any multiple of the patch size.
  """
  state = _image_tower(weights.read_state_dict(source))
  model = VisionTransformer(**_architecture(state, variant), dtype=jnp.dtype(dtype))
  return model, weights.load_params(model, state, _rules(model.depth), IGNORED_KEYS, image_size)
