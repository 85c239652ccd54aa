"""The training loop end to end: logs, checkpoints, resume after SIGKILL, bad configs."""

import importlib
import json
import os
import re
import signal
import subprocess
import sys
import time

from etils.epath import backend as epath_backend
import fsspec.implementations.memory
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import ml_collections

from configs import demo as demo_config
from mdmf_jax import (checkpoint, config_lib, detector, evaluate, features, linear_probe,
                      metric_log, reports, scoring, train, train_step)
from mdmf_jax.data import decode, pipeline, transforms

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def set_field(config, field, value):
  """Sets config.<section>.<key>, as a config file rebuilding the section could (any type)."""
  section, key = field.split(".")
  config[section] = ml_collections.ConfigDict({**config[section].to_dict(), key: value})


def tiny_config(data_dir, **overrides):
  c = demo_config.get_config("tiny")
  c.data.data_dir, c.data.name = data_dir, "tiny_set"
  for field, value in overrides.items():
    set_field(c, field, value)
  return c


def main_command(workdir, data_dir, *extra):
  return [sys.executable, "-m", "mdmf_jax.main", "--config=configs/demo.py:tiny",
          f"--workdir={workdir}", f"--config.data.data_dir={data_dir}",
          "--config.data.name=tiny_set", "--config.eval.after_training=False", *extra]


def restore_params(workdir, template):
  ckpt = checkpoint.Checkpoints(workdir, save_every=1, keep=10)
  state, step = ckpt.restore_or(template)
  ckpt.close()
  return state, step


def test_train_writes_logs_and_checkpoints(tiny_data, tmp_path):
  workdir = str(tmp_path / "run")
  state = train.train(tiny_config(tiny_data), workdir)
  assert int(state.step) == 6
  lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [l["step"] for l in lines] == [2, 4, 6]
  for key in ("loss", "mmd2", "variance", "j", "kernel/eps", "kernel/sigma_phi",
              "kernel/sigma_q", "grad_norm", "images_per_s"):
    assert np.isfinite(lines[-1][key]), key
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  assert json.load(open(os.path.join(workdir, "config.json")))["data"]["name"] == "tiny_set"
  restored, step = restore_params(workdir, state)
  assert step == 6
  jax.tree.map(np.testing.assert_array_equal, restored.params, state.params)


def test_workdir_of_another_config_is_refused(tiny_data, tmp_path):
  workdir = str(tmp_path / "run")
  train.train(tiny_config(tiny_data, **{"train.total_steps": 2}), workdir)
  with pytest.raises(ValueError, match="optim.lr"):
    train.train(tiny_config(tiny_data, **{"train.total_steps": 2, "optim.lr": 0.5}), workdir)


def test_sigkill_then_rerun_equals_uninterrupted(tiny_data, tmp_path):
  reference = train.train(tiny_config(tiny_data, **{"train.total_steps": 20}),
                          str(tmp_path / "reference"))
  workdir = str(tmp_path / "killed")
  command = main_command(workdir, tiny_data, "--config.train.total_steps=20")
  env = {**os.environ, "PYTHONPATH": REPO}
  process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  checkpoints = os.path.join(workdir, "checkpoints")
  while time.time() < deadline and process.poll() is None:
    steps = [int(d) for d in os.listdir(checkpoints) if d.isdigit()] if os.path.isdir(
        checkpoints) else []
    if steps and max(steps) >= 4:
      break
    time.sleep(0.05)
  assert process.poll() is None, "the run finished before it could be killed"
  process.send_signal(signal.SIGKILL)
  process.wait()
  rerun = subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True, text=True)
  # Evidence that the rerun continued mid-way (a from-scratch rerun would end equal too).
  resumed_at = re.search(r"resumed from the checkpoint at step (\d+)", rerun.stderr)
  assert resumed_at and 4 <= int(resumed_at.group(1)) < 20, rerun.stderr[-2000:]
  resumed, step = restore_params(workdir, reference)
  assert step == 20
  jax.tree.map(np.testing.assert_array_equal, resumed.params, reference.params)
  jax.tree.map(np.testing.assert_array_equal, resumed.opt_state, reference.opt_state)


def test_sigterm_saves_and_exits_cleanly(tiny_data, tmp_path):
  workdir = str(tmp_path / "preempted")
  command = main_command(workdir, tiny_data, "--config.train.total_steps=100000",
                         "--config.train.checkpoint_every=1000")
  process = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO},
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  metrics = os.path.join(workdir, "metrics.jsonl")
  while time.time() < deadline and not (os.path.exists(metrics) and os.path.getsize(metrics)):
    time.sleep(0.1)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 0, stderr[-2000:]
  said = re.search(r"preempted: checkpoint at step (\d+) saved", stderr)
  assert said, stderr[-2000:]
  steps = [int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()]
  assert max(steps) == int(said.group(1)) >= 2


def test_sigterm_inside_the_save_saves_the_step_it_stops_at(tiny_data, tmp_path, monkeypatch):
  """A SIGTERM that lands inside a (non-forced) save still ends on a saved step."""
  workdir = str(tmp_path / "preempted")
  config = tiny_config(tiny_data, **{"train.total_steps": 50, "train.checkpoint_every": 1000})
  original = checkpoint.Checkpoints.save

  def save(self, step, *args, **kwargs):
    if step == 3:
      os.kill(os.getpid(), signal.SIGTERM)  # after the loop read the flag for step 3
    return original(self, step, *args, **kwargs)

  monkeypatch.setattr(checkpoint.Checkpoints, "save", save)
  state = train.train(config, workdir)
  _, latest = restore_params(workdir, state)
  assert 2 <= int(state.step) < 50
  assert latest == int(state.step)


def test_non_finite_loss_stops_and_names_the_last_good_checkpoint(tiny_data, tmp_path,
                                                                   monkeypatch):
  workdir = str(tmp_path / "nan")
  config = tiny_config(tiny_data, **{"train.checkpoint_every": 2})
  original = train_step.train_step

  def poisoned(state, *args, **kwargs):  # the loss turns NaN on the 4th update
    new_state, metrics = original(state, *args, **kwargs)
    return new_state, {**metrics, "loss": jnp.where(state.step >= 3, jnp.nan, metrics["loss"])}

  monkeypatch.setattr(train_step, "train_step", poisoned)
  with pytest.raises(FloatingPointError,
                     match=r"non-finite loss=nan.* at step 4; .*checkpoint \(step 2\) is kept"):
    train.train(config, workdir)
  steps = [int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()]
  assert max(steps) == 2  # step 3 was not a checkpoint step; step 4 is never saved


@pytest.mark.parametrize("field,value,message", [
    ("objective.patches_per_sid", 4, "did you mean 'objective.patches_per_side'"),
    ("optim.lr", "fast", "config.optim.lr: expected float"),
    ("kernel.name", "rbf", "config.kernel.name: 'rbf' is not one of"),
    ("data.batch_size", 12, "multiple of 16"),
    ("data.image_size", 30, "not a multiple of the tokens patch size 14"),
    ("backbone.weights", "/nonexistent/dinov2.pth", "config.backbone.weights: no such file"),
    ("kernel.params", {"bandwidth": -1.0}, "config.kernel.params.bandwidth: must be a number > 0"),
])
def test_bad_config_fails_before_work_naming_the_field(tiny_data, field, value, message):
  config = tiny_config(tiny_data)
  if field == "kernel.params":
    config.kernel.name = "gaussian"
  set_field(config, field, value)
  with pytest.raises(config_lib.ConfigError, match=message.replace("(", r"\(")):
    config_lib.validate(config, device_count=8)


def test_command_line_override_of_unknown_field_fails(tiny_data, tmp_path):
  result = subprocess.run(main_command(str(tmp_path / "w"), tiny_data, "--config.optim.lrr=1"),
                          cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, capture_output=True,
                          text=True)
  assert result.returncode != 0
  assert "lrr" in result.stderr
  assert not os.path.exists(tmp_path / "w")


def test_feature_cache_training(tiny_data, tmp_path):
  config = tiny_config(tiny_data, **{"data.feature_cache": True})
  config.data.cache_dir = str(tmp_path / "cache")
  state = train.train(config, str(tmp_path / "cached"))
  assert int(state.step) == 6
  (folder,) = os.listdir(tmp_path / "cache")
  folder = os.path.join(tmp_path / "cache", folder)
  assert folder == features.cache_dir(config, "train")
  assert json.load(open(os.path.join(folder, "done.json")))["images"] == 32
  real = np.load(os.path.join(folder, "real-0-of-1.npy"))
  assert real.shape == (16, 4, 128)  # 16 images, 2 x 2 tokens of tiny/14 (width 128)

  # The cache holds the frozen backbone's features of the centre crops.
  model, params = features.frozen_backbone(config)
  source = pipeline.open_split(tiny_data, "tiny_set", "train")
  image = transforms.center_crop(decode.decode_rgb8(source[0]["image"]), 28)[None] / 255.0
  np.testing.assert_allclose(real[0], detector.Detector.from_config(config, model).features(
      params, image.astype(np.float32))[0], rtol=1e-5, atol=1e-5)

  # Batches are a pure function of (seed, step); an epoch sees every image once.
  batches = features.CachedBatches(folder, groups=8, per_side=1, seed=0)
  again = features.CachedBatches(folder, groups=8, per_side=1, seed=0)
  np.testing.assert_array_equal(batches.batch(3)["fake"], again.batch(3)["fake"])
  epoch = np.concatenate([batches.batch(s)["real"].reshape(-1, 4 * 128) for s in (0, 1)])
  assert len(np.unique(epoch, axis=0)) == 16

  # A different patch config gets its own cache.
  other = tiny_config(tiny_data, **{"patches.mode": "pooled_tokens"})
  other.data.cache_dir = config.data.cache_dir
  assert features.cache_dir(other, "train") != folder


def test_local_launch_script(tiny_data, tmp_path):
  workdir = tmp_path / "launched"
  subprocess.run(["bash", "launch/local.sh", "configs/demo.py:tiny", str(workdir),
                  f"--config.data.data_dir={tiny_data}", "--config.data.name=tiny_set",
                  "--config.train.total_steps=2", "--config.eval.after_training=False"],
                 cwd=REPO, env={**os.environ, "PYTHON": sys.executable, "PYTHONPATH": REPO},
                 check=True, capture_output=True)
  assert "2" in os.listdir(workdir / "checkpoints")


class _InMemoryBucket(fsspec.implementations.memory.MemoryFileSystem):
  """gs:// served from memory: a filesystem other than the local one, as a pod's bucket."""

  protocol = ("gs", "gcs")
  store = {}
  pseudo_dirs = [""]


@pytest.fixture
def memory_bucket(monkeypatch, tmp_path):
  """gs:// through fsspec into memory; the local working directory is tmp_path."""
  registry = importlib.import_module("fsspec.registry")._registry
  for name in ("gs", "gcs"):  # epath asks fsspec for "gcs"
    monkeypatch.setitem(registry, name, _InMemoryBucket)
  monkeypatch.setattr(_InMemoryBucket, "store", {})
  monkeypatch.setattr(_InMemoryBucket, "pseudo_dirs", [""])
  epath_backend.fsspec_backend._get_filesystem.cache_clear()
  monkeypatch.chdir(tmp_path)
  yield _InMemoryBucket()
  epath_backend.fsspec_backend._get_filesystem.cache_clear()
  assert not os.listdir(tmp_path), "a gs:// path was written to the local disk"


def test_cloud_workdir_and_data_dir_go_through_epath(tiny_data, memory_bucket, monkeypatch):
  workdir = "gs://bucket/run"
  config = tiny_config(tiny_data)
  checkpoint.guard_workdir(workdir, config)
  assert json.loads(memory_bucket.cat(f"{workdir}/config.json"))["data"]["name"] == "tiny_set"
  with pytest.raises(ValueError, match="optim.lr"):
    checkpoint.guard_workdir(workdir, tiny_config(tiny_data, **{"optim.lr": 0.5}))

  for start, steps in ((0, (1, 2)), (2, (3,))):  # a run and its resumption
    log = metric_log.MetricLog(workdir, total_steps=3, images_per_step=2, start_step=start)
    for step in steps:
      log.write(step, {"loss": 1.0, "j": 0.5, "mmd2": 0.1, "grad_norm": 2.0})
    log.close()
  lines = memory_bucket.cat(f"{workdir}/metrics.jsonl").decode().splitlines()
  assert [json.loads(l)["step"] for l in lines] == [1, 2, 3]
  assert memory_bucket.ls(f"{workdir}/tensorboard")

  bank = scoring.Bank(points=np.arange(12.0).reshape(3, 2, 2), rr_mean=np.float32(0.5),
                      vote_threshold=np.float32(0.25))
  path = f"{workdir}/eval/bank_mdmf.npz"
  evaluate.save_bank(path, bank, {"images": 3})
  loaded = evaluate.load_bank(path)
  np.testing.assert_array_equal(loaded.points, bank.points)
  assert float(loaded.rr_mean) == 0.5 and float(loaded.vote_threshold) == 0.25
  assert memory_bucket.exists(path)

  managers = []  # Orbax itself needs google-cloud-storage for gs://: record what it is given
  monkeypatch.setattr(checkpoint.ocp, "CheckpointManager",
                      lambda directory, options: managers.append(directory))
  checkpoint.Checkpoints(workdir, save_every=1, keep=1)
  assert [str(d) for d in managers] == [f"{workdir}/checkpoints"]

  # Evaluation's tables, plots and the linear probe go to the bucket too.
  rows = [{"generator": "g", "auroc": 75.0}]
  reports.write_table(rows, f"{workdir}/eval/mdmf", "t")
  assert json.loads(memory_bucket.cat(f"{workdir}/eval/mdmf.json"))["rows"] == rows
  assert memory_bucket.cat(f"{workdir}/eval/mdmf.md").decode().startswith("### t")
  reports.plot_roc({"g": (np.array([0.1, 0.9]), np.array([0, 1]))}, f"{workdir}/eval/roc.png")
  assert memory_bucket.cat(f"{workdir}/eval/roc.png").startswith(b"\x89PNG")
  probe = linear_probe.Probe(mean=np.zeros(2), scale=np.ones(2), coef=np.array([1.0, -1.0]),
                             intercept=np.array(0.5), feature="cls", block=None, c=1.0,
                             val_auroc=((1.0, 90.0),))
  linear_probe.save(probe, f"{workdir}/eval/probe.json", {"k": 1})
  np.testing.assert_array_equal(linear_probe.load(f"{workdir}/eval/probe.json", {"k": 1}).coef,
                                probe.coef)
  assert not os.path.exists("gs:")  # nothing landed on the local disk

  config.data.data_dir = "gs://bucket/tfds"
  with pytest.raises(config_lib.ConfigError, match="config.data.data_dir: no such folder"):
    config_lib.validate(config, device_count=8)
  memory_bucket.mkdir("gs://bucket/tfds")
  memory_bucket.pipe("gs://bucket/tfds/placeholder", b"")
  config_lib.validate(config, device_count=8)
  config.data.feature_cache = True  # memory-mapped: only on a local disk
  with pytest.raises(config_lib.ConfigError, match="config.data.cache_dir: .* local folder"):
    config_lib.validate(config, device_count=8)
  config.data.cache_dir = "/tmp/feature_cache"
  config_lib.validate(config, device_count=8)


def test_preempted_pmap_run_with_feature_cache_resumes_to_the_uninterrupted_result(
    tiny_data, tmp_path, monkeypatch):
  fields = {"parallel": "pmap", "data.feature_cache": True, "train.total_steps": 6,
            "train.checkpoint_every": 1000}

  def config():
    c = tiny_config(tiny_data, **{k: v for k, v in fields.items() if "." in k})
    c.parallel, c.data.cache_dir = fields["parallel"], str(tmp_path / "cache")
    return c

  reference = train.train(config(), str(tmp_path / "reference"))
  original = checkpoint.Checkpoints.save

  def save(self, step, *args, **kwargs):
    if step == 2:
      os.kill(os.getpid(), signal.SIGTERM)
    return original(self, step, *args, **kwargs)

  with monkeypatch.context() as patch:
    patch.setattr(checkpoint.Checkpoints, "save", save)
    preempted = train.train(config(), str(tmp_path / "resumed"))
  assert int(preempted.step) == 3  # stopped (and saved) mid-way
  resumed = train.train(config(), str(tmp_path / "resumed"))
  assert int(resumed.step) == 6
  jax.tree.map(np.testing.assert_array_equal, resumed.params, reference.params)
  jax.tree.map(np.testing.assert_array_equal, resumed.opt_state, reference.opt_state)
