"""Images/s and MFU of the jitted Flax DINOv2 backbone vs transformers' PyTorch Dinov2Model.

Both run the same random weights (a 518 px checkpoint layout, so both resample
the 37 x 37 position grid) on the same batch, in one process, timed in
alternation (bench/common.py). Per compute dtype it prints images/s of ours
(`vit.FrozenViT`), of transformers in eager mode and, on GPU, of
`torch.compile` of it (skipped with the reason if compiling fails); the
ratios; which attention kernel our compiled forward holds (cuDNN's fused one
or XLA's); our MFU where the chip's peak is in `PEAK_FLOPS`; and the relative
RMS difference of each output from transformers' float32 one.

float32 runs both sides at full float32 matmul precision (JAX's default may
use TF32 or bf16 passes on accelerators); bfloat16 runs our model with
`dtype=bfloat16` (float32 params) and transformers' model cast to bfloat16.

    python -m bench.backbone_bench                 # CPU: S/14, 224 px, batch 16, float32
    python -m bench.backbone_bench                 # GPU: B/14, 224 px, batch 256, float32 and bfloat16
    python -m bench.backbone_bench --variant=L/14 --batch=128 --dtype=bfloat16
    python -m bench.backbone_bench --json=backbone.json
"""

import os

# Both frameworks share the accelerator: JAX must not take 75% of its memory up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
import jax
import numpy as np
import torch
import transformers

from bench import common
from mdmf_jax.models import vit
from mdmf_jax.models.weights import load_dinov2

_VARIANT = flags.DEFINE_string("variant", None, "Backbone variant (vit.VARIANTS); default S/14 on CPU, B/14 else.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Input height and width in pixels.")
_BATCH = flags.DEFINE_integer("batch", None, "Images per forward pass; default 16 on CPU, 256 else.")
_DTYPE = flags.DEFINE_list("dtype", None, "Compute dtypes; default float32 on CPU, float32,bfloat16 else.")
_ITERS = flags.DEFINE_integer("iters", 10, "Timed forward passes of each (after one warm-up).")
_TORCH_COMPILE = flags.DEFINE_bool("torch_compile", None, "Also time torch.compile; default on GPU only.")
_JSON = flags.DEFINE_string("json", None, "Write the results as JSON to this path.")

# Datasheet dense peaks (FLOP/s) by a substring of jax's device_kind, first match wins.
PEAK_FLOPS = (
    ("H100 PCIe", {"bfloat16": 756e12, "float32": 51e12}),
    ("H100", {"bfloat16": 989e12, "float32": 67e12}),
    ("H200", {"bfloat16": 989e12, "float32": 67e12}),
    ("A100", {"bfloat16": 312e12, "float32": 19.5e12}),
    ("TPU v4", {"bfloat16": 275e12}),
    ("TPU v5 lite", {"bfloat16": 197e12}),
    ("TPU v5", {"bfloat16": 459e12}),
    ("TPU v6 lite", {"bfloat16": 918e12}),
)
TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
# Relative RMS difference from transformers' float32 output above which a row is flagged.
TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2}


def peak_flops(device_kind: str, dtype: str) -> float | None:
  """The chip's dense peak for `dtype`, None when it is not in PEAK_FLOPS."""
  for name, peaks in PEAK_FLOPS:
    if name in device_kind:
      return peaks.get(dtype)
  return None


def relative_rms(ours, reference) -> float:
  """RMS of ours - reference over the RMS of reference (arrays or torch tensors)."""
  if isinstance(ours, torch.Tensor):
    ours = ours.float().cpu().numpy()
  ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
  return float(np.sqrt(np.mean((ours - reference)**2) / np.mean(reference**2)))


def main(argv):
  del argv
  on_cpu = jax.default_backend() == "cpu"
  variant = _VARIANT.value or ("S/14" if on_cpu else "B/14")
  batch = _BATCH.value or (16 if on_cpu else 256)
  dtypes = _DTYPE.value or (["float32"] if on_cpu else ["float32", "bfloat16"])
  if unknown := set(dtypes) - set(TORCH_DTYPES):
    raise app.UsageError(f"--dtype: {sorted(unknown)} not in {sorted(TORCH_DTYPES)}")
  size = _IMAGE_SIZE.value
  torch_device = "cuda" if torch.cuda.is_available() else "cpu"
  # float32 rows are float32 on both sides: torch's cuDNN convolutions default to TF32.
  torch.backends.cudnn.allow_tf32 = False
  compile_torch = _TORCH_COMPILE.value if _TORCH_COMPILE.value is not None else torch_device == "cuda"

  spec = {"swiglu": False, **vit.VARIANTS[variant]}
  config = transformers.Dinov2Config(
      hidden_size=spec["width"], num_hidden_layers=spec["depth"], num_attention_heads=spec["num_heads"],
      use_swiglu_ffn=spec["swiglu"], image_size=518, patch_size=14)
  torch_model = transformers.Dinov2Model(config).eval()
  state = {k: v.numpy() for k, v in torch_model.state_dict().items()}
  torch_model.to(torch_device)

  images = np.random.default_rng(0).normal(size=(batch, size, size, 3)).astype(np.float32)
  images_jax = jax.device_put(images)
  images_torch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(torch_device)

  def torch_timed(model, dtype=torch.float32):
    inputs = images_torch.to(dtype)

    def forward():
      with torch.inference_mode():
        out = model(inputs).last_hidden_state
      if torch_device == "cuda":
        torch.cuda.synchronize()
      return out
    return forward

  reference = torch_timed(torch_model)()[:, 1:].float().cpu().numpy()
  device_kind = jax.devices()[0].device_kind
  print(f"DINOv2 {variant}, {size} px, batch {batch}, {common.device_name()}, "
        f"torch on {torch_device} ({torch.get_num_threads()} threads), "
        f"transformers attention {torch_model.config._attn_implementation}")
  results = []
  for dtype in dtypes:
    model, params = load_dinov2(state, dtype=dtype)
    backbone = vit.FrozenViT(model, params)

    precision = "float32" if dtype == "float32" else None

    def ours():
      with jax.default_matmul_precision(precision):
        return jax.block_until_ready(backbone(images_jax)["patch_tokens"])

    with jax.default_matmul_precision(precision):
      compiled = backbone.lower(images_jax).compile()
    attention = "cudnn" if "__cudnn$fmha" in compiled.as_text() else "xla"
    # XLA:GPU's cost analysis leaves out its library calls (cuBLAS, cuDNN): a check on CPU only.
    cost = compiled.cost_analysis()
    xla_flops = (cost[0] if isinstance(cost, list) else cost).get("flops") if on_cpu else None
    model_flops = vit.forward_flops(model, (size, size)) * batch

    torch_dtype = TORCH_DTYPES[dtype]
    torch_model.to(torch_dtype)
    timed = {"mdmf_jax": ours, "transformers eager": torch_timed(torch_model, torch_dtype)}
    if compile_torch:
      try:
        compiled_torch = torch_timed(torch.compile(torch_model), torch_dtype)
        compiled_torch()  # compiles here, so that a failure is caught
        timed["torch.compile"] = compiled_torch
      except Exception as error:  # pylint: disable=broad-except
        print(f"  torch.compile skipped: {type(error).__name__}: {str(error)[:200]}")
    outputs = {"mdmf_jax": ours()}
    outputs.update({name: forward()[:, 1:] for name, forward in timed.items() if name != "mdmf_jax"})
    seconds = dict(zip(timed, common.median_seconds(list(timed.values()), _ITERS.value)))

    flops_check = f", {model_flops / xla_flops:.3f} x XLA's cost analysis" if xla_flops else ""
    print(f" {dtype}: attention {attention} (vit.attention_implementation: "
          f"{vit.attention_implementation(dtype)}); model FLOPs {model_flops / batch / 1e9:.1f} G "
          f"per image{flops_check}")
    peak = peak_flops(device_kind, dtype)
    for name, secs in seconds.items():
      images_per_s = batch / secs
      error = relative_rms(outputs[name][:8], reference[:8])
      row = {"name": name, "variant": variant, "image_size": size, "batch": batch, "dtype": dtype,
             "images_per_s": images_per_s, "relative_rms_vs_torch_float32": error}
      line = f"   {name:20s} {images_per_s:10.1f} images/s   rel. diff {error:.1e}"
      if error > TOLERANCE[dtype]:
        line += "  (MISMATCH)"
      if name == "mdmf_jax":
        row.update(attention=attention, model_flops=model_flops, xla_flops=xla_flops)
        if peak:
          row["mfu"] = model_flops / secs / peak
          line += f"   MFU {row['mfu']:.1%} of {peak / 1e12:.0f} TFLOP/s"
      else:
        row["ratio_ours"] = seconds[name] / seconds["mdmf_jax"]
        line += f"   ours / this {row['ratio_ours']:.2f}x"
      print(line)
      results.append(row)
  common.write_json(_JSON.value, "backbone", results)


if __name__ == "__main__":
  app.run(main)
