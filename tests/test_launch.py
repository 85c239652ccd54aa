"""The cluster launch scripts: syntax, shellcheck, what they run, and SLURM device binding.

gcloud, srun and the workers' python are stand-ins that record their
arguments, so the scripts run here as they would on a cluster.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
from jax._src import clusters

from tests.test_train import REPO

SCRIPTS = ("launch/local.sh", "launch/slurm_gpu.sbatch", "launch/tpu_pod.sh")
# Overrides a shell would split or expand if pasted unquoted.
OVERRIDES = ["--config.detect.inputs=/data/my photos/a b.png", "--config.eval.methods=('mdmf', 'global')",
             "--config.data.name=it's", "--config.detect.output=$HOME/*.csv"]
RECORD_ARGV = f"#!{sys.executable}\nimport json, os, sys\n" \
              "open(os.environ['ARGV_LOG'], 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"


def shellcheck():
  found = shutil.which("shellcheck") or os.path.join(os.path.dirname(sys.executable),
                                                     "shellcheck")
  assert os.path.exists(found), "shellcheck is missing: pip install -r requirements-test.txt"
  return found


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_passes_bash_n_and_shellcheck(script):
  subprocess.run(["bash", "-n", script], cwd=REPO, check=True)
  result = subprocess.run([shellcheck(), "--shell=bash", script], cwd=REPO, capture_output=True,
                          text=True)
  assert result.returncode == 0, result.stdout


def stand_in(folder, name):
  path = folder / name
  path.write_text(RECORD_ARGV)
  path.chmod(0o755)


def recorded(log):
  return [json.loads(line) for line in open(log)]


def test_slurm_script_runs_every_task_on_the_node_gpus(tmp_path):
  stand_in(tmp_path, "srun")
  log = tmp_path / "argv.jsonl"
  env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "ARGV_LOG": str(log),
         "SLURM_SUBMIT_DIR": REPO, "SLURM_CPUS_PER_TASK": "12", "VENV": str(tmp_path / "none")}
  subprocess.run(["bash", os.path.join(REPO, "launch/slurm_gpu.sbatch"),
                  "configs/progan_4class.py", "/shared/w",
                  *OVERRIDES], cwd=str(tmp_path), env=env, check=True)
  (argv,) = recorded(log)
  assert argv[:2] == ["--kill-on-bad-exit=1", "--cpus-per-task=12"]
  assert argv[2:] == ["python", "-m", "mdmf_jax.main", "--config=configs/progan_4class.py",
                      "--workdir=/shared/w", "--config.distributed.enabled=True", *OVERRIDES]
  directives = [line.split()[1] for line in open(os.path.join(REPO, "launch/slurm_gpu.sbatch"))
                if line.startswith("#SBATCH")]
  assert "--signal=TERM@300" in directives  # preemption saving gets 5 minutes
  assert "--gpus-per-node=8" in directives and "--ntasks-per-node=8" in directives
  assert not any(d.startswith(("--gpus-per-task", "--gpu-bind")) for d in directives)


def test_jax_binds_slurm_task_to_its_local_gpu(monkeypatch):
  """Why the script shows each task all GPUs: JAX asks for device SLURM_LOCALID."""
  for name, value in {"SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "gpu[07-08]",
                      "SLURM_NTASKS": "16", "SLURM_PROCID": "11", "SLURM_LOCALID": "3"}.items():
    monkeypatch.setenv(name, value)
  address, count, process, local_devices = (
      clusters.ClusterEnv.auto_detect_unset_distributed_params(None, None, None, None, None, None))
  assert (address.split(":")[0], count, process) == ("gpu07", 16, 11)
  assert local_devices == [3]


def test_tpu_script_passes_overrides_intact_to_every_worker(tmp_path):
  stand_in(tmp_path, "gcloud")
  log = tmp_path / "argv.jsonl"
  env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "ARGV_LOG": str(log),
         "TPU_NAME": "pod", "ZONE": "us-central2-b"}
  subprocess.run(["bash", "launch/tpu_pod.sh", "run", "configs/progan_4class.py",
                  "gs://bucket/run", *OVERRIDES], cwd=REPO, env=env, check=True)
  (argv,) = recorded(log)
  assert argv[:6] == ["compute", "tpus", "tpu-vm", "ssh", "pod", "--zone=us-central2-b"]
  assert argv[6] == "--worker=all" and argv[7].startswith("--command=")
  # Run the remote command as a worker's shell would, with a recording python.
  home = tmp_path / "home"
  os.makedirs(home / "mdmf_jax" / ".venv" / "bin")
  stand_in(home / "mdmf_jax" / ".venv" / "bin", "python")
  worker_log = tmp_path / "worker.jsonl"
  subprocess.run(["bash", "-c", argv[7][len("--command="):]], check=True,
                 env={**os.environ, "HOME": str(home), "ARGV_LOG": str(worker_log)})
  (worker_argv,) = recorded(worker_log)
  assert worker_argv == ["-m", "mdmf_jax.main", "--config=configs/progan_4class.py",
                         "--workdir=gs://bucket/run", "--config.distributed.enabled=True",
                         *OVERRIDES]


def test_tpu_setup_copies_the_checkout_and_installs_on_every_worker(tmp_path):
  stand_in(tmp_path, "gcloud")
  log = tmp_path / "argv.jsonl"
  env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "ARGV_LOG": str(log),
         "TPU_NAME": "pod", "ZONE": "z"}
  subprocess.run(["bash", "launch/tpu_pod.sh", "setup"], cwd=REPO, env=env, check=True)
  copy, install = recorded(log)
  assert copy[:3] == ["compute", "tpus", "tpu-vm"] and copy[3] == "scp"
  assert copy[5] == "pod:mdmf_jax.tar.gz" and "--worker=all" in copy
  assert "--worker=all" in install
  command = install[-1]
  assert "tar -xzf ~/mdmf_jax.tar.gz" in command
  assert "-r requirements.txt -r requirements-tpu.txt" in command
