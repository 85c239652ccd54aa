"""Images/s of the jitted Flax DINOv2 backbone vs transformers' PyTorch Dinov2Model.

Both run the same random weights (a 518 px checkpoint layout, so both resample
the 37 x 37 position grid for 224 px inputs) in one process, on the same
batch, timed in alternation; the script prints each median throughput, the
ratio, and the largest output difference as a sanity check.

    python bench/backbone_bench.py                       # S/14, 224 px, batch 16, float32
    python bench/backbone_bench.py --variant=B/14 --batch=32
"""

import time

from absl import app
from absl import flags
import jax
import numpy as np
import torch
import transformers

from mdmf_jax.models import vit
from mdmf_jax.models.weights import load_dinov2

_VARIANT = flags.DEFINE_string("variant", "S/14", "Backbone variant (see vit.VARIANTS).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Input height and width in pixels.")
_BATCH = flags.DEFINE_integer("batch", 16, "Images per forward pass.")
_ITERS = flags.DEFINE_integer("iters", 10, "Timed forward passes of each (after warm-up).")


def _median_images_per_second(forwards, inputs, iters):
  """Median images/s of each forward, timed in alternation so both see the same load."""
  seconds = [[] for _ in forwards]
  for forward, x in zip(forwards, inputs):
    forward(x)  # warm-up (compilation for JAX)
  for _ in range(iters):
    for times, forward, x in zip(seconds, forwards, inputs):
      start = time.perf_counter()
      forward(x)
      times.append(time.perf_counter() - start)
  return [inputs[0].shape[0] / np.median(times) for times in seconds]


def main(argv):
  del argv
  spec = {"swiglu": False, **vit.VARIANTS[_VARIANT.value]}
  config = transformers.Dinov2Config(
      hidden_size=spec["width"], num_hidden_layers=spec["depth"], num_attention_heads=spec["num_heads"],
      use_swiglu_ffn=spec["swiglu"], image_size=518, patch_size=14)
  torch_model = transformers.Dinov2Model(config).eval()
  model, params = load_dinov2({k: v.numpy() for k, v in torch_model.state_dict().items()})
  backbone = vit.FrozenViT(model, params)

  size = _IMAGE_SIZE.value
  images = np.random.default_rng(0).normal(size=(_BATCH.value, size, size, 3)).astype(np.float32)
  images_nchw = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()

  def torch_forward(x):
    with torch.inference_mode():
      return torch_model(x).last_hidden_state

  def jax_forward(x):
    return jax.block_until_ready(backbone(x)["patch_tokens"])

  diff = np.abs(np.asarray(jax_forward(images)) - torch_forward(images_nchw)[:, 1:].numpy()).max()
  ours, reference = _median_images_per_second(
      [jax_forward, torch_forward], [images, images_nchw], _ITERS.value)
  print(f"DINOv2 {_VARIANT.value}, {size} px, batch {_BATCH.value}, float32, "
        f"{jax.devices()[0].platform} / torch {torch.get_num_threads()} threads")
  print(f"  mdmf_jax (jit):        {ours:8.2f} images/s")
  print(f"  transformers (torch):  {reference:8.2f} images/s")
  print(f"  ratio jax / torch:     {ours / reference:8.2f}x   (max |diff| {diff:.1e})")


if __name__ == "__main__":
  app.run(main)
