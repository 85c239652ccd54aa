"""Two processes on localhost (jax.distributed, CPU) train together."""

import json
import os
import re
import socket
import subprocess

import pytest

from tests.test_train import REPO, main_command


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["jit", "pmap"])
def test_two_processes_end_identical_and_only_process_0_logs(tiny_data, tmp_path, mode):
  workdir = str(tmp_path / "run")
  port = free_port()
  env = {**os.environ, "PYTHONPATH": REPO,
         "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}  # 2 x 2 = 4 devices
  processes = [
      subprocess.Popen(
          main_command(workdir, tiny_data, f"--config.parallel={mode}",
                       "--config.distributed.enabled=True",
                       f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                       "--config.distributed.num_processes=2",
                       f"--config.distributed.process_id={i}"),
          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(2)
  ]
  outputs = [p.communicate(timeout=300)[0] for p in processes]
  for p, out in zip(processes, outputs):
    assert p.returncode == 0, out[-3000:]
  digests = [re.search(r"process (\d): step 6, params sha256 ([0-9a-f]+)", out) for out in outputs]
  assert all(digests), outputs[0][-2000:]
  assert [d.group(1) for d in digests] == ["0", "1"]
  assert digests[0].group(2) == digests[1].group(2)
  lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [l["step"] for l in lines] == [2, 4, 6]  # written once, by process 0
  assert len(os.listdir(os.path.join(workdir, "tensorboard"))) == 1
  assert "6" in os.listdir(os.path.join(workdir, "checkpoints"))
