"""Eight fake CPU devices for the data-parallel tests and a shared compilation cache (both set
before JAX starts), and shared fixtures."""

import atexit
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
# One persistent compilation cache for the session, read and written by this process and by
# the subprocesses tests start (they inherit the environment): many tests train or score the
# same tiny models, and compiling the same programs again was most of a training
# subprocess's CPU time. Every small program counts, so no minimum compile time.
_COMPILATION_CACHE = tempfile.mkdtemp(prefix="jax_compilation_cache_")
atexit.register(shutil.rmtree, _COMPILATION_CACHE, ignore_errors=True)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _COMPILATION_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import numpy as np  # noqa: E402  (after XLA_FLAGS)
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from mdmf_jax.data import builder  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
  """A 16 real + 16 fake image-folder data set (cnnspot layout), built with TFDS."""
  root = tmp_path_factory.mktemp("images")
  data_dir = tmp_path_factory.mktemp("tfds")
  rng = np.random.default_rng(0)
  for i in range(16):
    smooth = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    real = Image.fromarray(smooth).resize((32, 32), Image.BILINEAR)
    fake = Image.fromarray(smooth).resize((32, 32), Image.NEAREST)  # blocky upsampling traces
    for label, image in (("0_real", real), ("1_fake", fake)):
      os.makedirs(root / "toys" / label, exist_ok=True)
      image.save(root / "toys" / label / f"{i}.png")
  builder.build_image_folder(name="tiny_set", layout="cnnspot", roots={"train": str(root)},
                             data_dir=str(data_dir), generator="toy")
  return str(data_dir)
