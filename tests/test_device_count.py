"""The device count does not change the trained model.

The tiny demo config, with objective.groups = 2 and patch subsampling (so the
objective's random keys matter), is trained from images for 6 steps on 1, 2,
4 and 8 fake CPU devices. The count is fixed per process, so 1, 2 and 4 run in
subprocesses of this module and 8 in the test's own process (conftest.py).
The counts alternate the parallel modes and cover both layouts of groups on
devices:

  devices  mode  layout
  1        jit   2 groups on one device
  2        pmap  1 group per device
  4        jit   each group over 2 devices (XLA gathers)
  8        pmap  each group over 4 devices (lax.all_gather within the group)

Every run must log the same losses (rtol 1e-4) and end with the same
parameters (atol 1e-5) as the 1-device run. A run checkpointed at step 3 on 8
devices and resumed on 2 must end there too.

    python -m tests.test_device_count DATA_DIR OUT_DIR   # one count's run (worker)
"""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np

from configs import demo as demo_config
from mdmf_jax import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = {1: "jit", 2: "pmap", 4: "jit", 8: "pmap"}


def train_here(data_dir, out_dir):
  """Trains the tiny config on this process's devices; writes OUT_DIR/result.npz."""
  c = demo_config.get_config("tiny")
  c.data.data_dir, c.data.name = data_dir, "tiny_set"
  c.parallel = MODES[jax.device_count()]
  c.objective.groups = 2  # 4 real + 4 fake images of 4 patches per group
  c.objective.patches_per_side = 12  # of a group's 16 pooled patches per side
  c.train.log_every, c.train.checkpoint_every = 1, 3
  state = train.train(c, out_dir)
  with open(os.path.join(out_dir, "metrics.jsonl")) as f:
    losses = [json.loads(line)["loss"] for line in f]
  np.savez(os.path.join(out_dir, "result.npz"), losses=np.asarray(losses),
           **{f"param_{i}": np.asarray(p) for i, p in enumerate(jax.tree.leaves(state.params))})


def load(out_dir):
  with np.load(os.path.join(out_dir, "result.npz")) as f:
    return {k: f[k] for k in f.files}


def _worker(devices, data_dir, out_dir):
  return subprocess.Popen(
      [sys.executable, "-m", "tests.test_device_count", data_dir, out_dir], cwd=REPO,
      env={**os.environ, "PYTHONPATH": REPO,
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"},
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(worker, what):
  output = worker.communicate(timeout=600)[0]
  assert worker.returncode == 0, f"{what}:\n{output[-3000:]}"
  return output


def test_losses_and_parameters_do_not_depend_on_the_device_count(tiny_data, tmp_path):
  outs = {n: str(tmp_path / f"devices{n}") for n in MODES}
  workers = {n: _worker(n, tiny_data, outs[n]) for n in (1, 2, 4)}
  assert jax.device_count() == 8
  train_here(tiny_data, outs[8])
  # The 8-device run, cut back to its step-3 checkpoint, resumes on 2 devices.
  resumed = str(tmp_path / "devices8_resumed_on_2")
  shutil.copytree(outs[8], resumed)
  shutil.rmtree(os.path.join(resumed, "checkpoints", "6"))
  resume_worker = _worker(2, tiny_data, resumed)
  for n, worker in workers.items():
    _finish(worker, f"{n} devices")
  _finish(resume_worker, "resume on 2 devices")
  reference = load(outs[1])
  assert len(reference["losses"]) == 6
  assert len(set(reference["losses"])) == 6  # it trains: every step's loss differs
  for n in (2, 4, 8):
    result = load(outs[n])
    np.testing.assert_allclose(result["losses"], reference["losses"], rtol=1e-4,
                               err_msg=f"{n} devices ({MODES[n]})")
    for key in reference:
      if key.startswith("param_"):
        np.testing.assert_allclose(result[key], reference[key], rtol=0, atol=1e-5,
                                   err_msg=f"{n} devices ({MODES[n]}), {key}")
  result = load(resumed)
  assert len(result["losses"]) == 9  # steps 1-6 of the first run, then 4-6: it resumed at 3
  np.testing.assert_allclose(result["losses"][6:], reference["losses"][3:], rtol=1e-4)
  for key in reference:
    if key.startswith("param_"):
      np.testing.assert_allclose(result[key], reference[key], rtol=0, atol=1e-5,
                                 err_msg=f"resumed on 2 devices, {key}")


if __name__ == "__main__":
  train_here(*sys.argv[1:])
