"""Inference never imports training code (docs/architecture.md)."""

import subprocess
import sys

from tests.test_train import REPO

INFERENCE = ("mdmf_jax.evaluate", "mdmf_jax.detect", "mdmf_jax.scoring", "mdmf_jax.selection",
             "mdmf_jax.whole_image", "mdmf_jax.evaluate_whole")
TRAINING = ("mdmf_jax.train", "mdmf_jax.train_step", "optax")


def test_inference_modules_do_not_import_training_code():
  probe = (f"import sys\nfor m in {INFERENCE!r}: __import__(m)\n"
           f"print(sorted(m for m in {TRAINING!r} if m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip() == "[]"
