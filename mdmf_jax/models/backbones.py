"""Frozen backbones as units, selected by name (`config.backbone.name`).

    backbone = backbones.get("dinov2")
    model = backbone.build("S/14", image_size=224)          # random weights
    model, params = backbone.load(path, variant="S/14", image_size=224)
    outputs = model.apply({"params": params}, model.normalize(images), blocks=(3,))

A unit gives a `Backbone`:
* `variants`: the names `config.backbone.variant` accepts (-> architecture);
* `build(variant, image_size=224, dtype=float32)`: the Flax module of a
  variant, its position grid native at `image_size` (random init: tests, demo);
* `load(source, variant, image_size=224, dtype=float32)`: (module, params) from
  a local weights file, checked key by key and against `variant`.
Its modules have
* `patch_size`: the side of one patch token in pixels;
* `normalize(images)`: NHWC floats in [0, 1] -> the input the weights were
  trained on (each family's own mean and std);
* `apply({"params": p}, images, blocks=())` -> {"cls": (N, D) the global
  token, "patch_tokens": (N, K, D) row-major over the (H, W) / patch_size grid,
  "blocks": {i: (N, K, D)} the patch tokens after each 0-based block i asked
  for}. Any input size that is a multiple of the patch size is accepted.
Nothing outside a unit and its line below knows which family it is.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax.linen as nn

from mdmf_jax.models import clip, vit, weights


@dataclasses.dataclass(frozen=True)
class Backbone:
  """One backbone family: its variants, a random-init builder and a weight loader."""

  variants: Mapping[str, Any]
  build: Callable[..., nn.Module]
  load: Callable[..., tuple[nn.Module, Any]]

  def patch_size(self, variant: str) -> int:
    return self.build(variant).patch_size


BACKBONES: dict[str, Backbone] = {
    "dinov2": Backbone(vit.VARIANTS, vit.build, weights.load_dinov2),
    "clip": Backbone(clip.VARIANTS, clip.build, clip.load),
}


def get(name: str) -> Backbone:
  if name not in BACKBONES:
    raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(BACKBONES)}")
  return BACKBONES[name]


def patch_size(backbone_cfg) -> int:
  """Patch size in pixels of `config.backbone` (its name and variant)."""
  return get(backbone_cfg.name).patch_size(backbone_cfg.variant)
