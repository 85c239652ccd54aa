"""Two processes on localhost (jax.distributed, CPU, explicit distributed.* arguments).

They train, evaluate and, rerun on a new port, detect; under pmap they train
and resume. Process 1 must pass the
workdir guard each time, and both processes must score against one bank: the
scores they gather must equal one process's evaluation of the same checkpoint.
"""

import csv
import json
import os
import re
import shutil
import socket
import subprocess

import jax
import numpy as np
from PIL import Image
import pytest

from mdmf_jax import detect, evaluate
from mdmf_jax.data import builder
from tests.test_train import REPO, main_command, tiny_config

DEVICES_2 = "--xla_force_host_platform_device_count=2"  # per process: 2 x 2 = 4 devices
EVAL = {"eval.after_training": True, "eval.robustness": False, "eval.calibration_split": "val",
        "eval.test_split": "test", "eval.bank_images": 6, "eval.bank_patches": 20,
        "eval.num_heatmaps": 0, "eval.methods": ("mdmf", "global", "patch_vote")}


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def split_data(tmp_path_factory):
  """train, val and test splits (8 real + 8 fake each), 32 x 32 PNGs."""
  root = tmp_path_factory.mktemp("split_images")
  rng = np.random.default_rng(1)
  roots = {}
  for split in ("train", "val", "test"):
    for i in range(8):
      smooth = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
      for label, resample in (("0_real", Image.BILINEAR), ("1_fake", Image.NEAREST)):
        folder = root / split / "toys" / label
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(smooth).resize((32, 32), resample).save(folder / f"{i}.png")
    roots[split] = str(root / split)
  data_dir = str(tmp_path_factory.mktemp("split_tfds"))
  builder.build_image_folder(name="tiny_set", layout="cnnspot", roots=roots, data_dir=data_dir,
                             generator="toy")
  return data_dir, roots["test"]


def run_two(workdir, data_dir, *extra):
  """Both processes' logs; each gets explicit coordinator, process count and id."""
  port = free_port()
  env = {**os.environ, "PYTHONPATH": REPO, "XLA_FLAGS": DEVICES_2}
  processes = [
      subprocess.Popen(
          main_command(workdir, data_dir, *overrides(EVAL), "--config.distributed.enabled=True",
                       f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                       "--config.distributed.num_processes=2",
                       f"--config.distributed.process_id={i}", *extra),
          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
      for i in range(2)
  ]
  outputs = [p.communicate(timeout=600)[0] for p in processes]
  for p, out in zip(processes, outputs):
    assert p.returncode == 0, out[-3000:]
  return outputs


def overrides(fields):
  return [f"--config.{k}={v}" for k, v in fields.items()]


def digest(output):
  found = re.search(r"process \d: step 6, params sha256 ([0-9a-f]+)", output)
  assert found, output[-2000:]
  return found.group(1)


def eval_outputs(workdir):
  out = os.path.join(workdir, "eval")
  calibration = json.load(open(os.path.join(out, "calibration.json")))
  tables = {m: json.load(open(os.path.join(out, f"{m}.json")))["rows"] for m in calibration}
  return calibration, tables, evaluate.load_bank(os.path.join(out, "bank_mdmf.npz"))


def test_two_processes_train_evaluate_and_detect_with_one_bank(split_data, tmp_path):
  data_dir, test_images = split_data
  multi, single = str(tmp_path / "multi"), str(tmp_path / "single")
  outputs = run_two(multi, data_dir)  # trains, then evaluates
  assert digest(outputs[0]) == digest(outputs[1])
  lines = [json.loads(l) for l in open(os.path.join(multi, "metrics.jsonl"))]
  assert [l["step"] for l in lines] == [2, 4, 6]  # written once, by process 0
  assert len(os.listdir(os.path.join(multi, "tensorboard"))) == 1

  # One process evaluates the same checkpoint: the scores gathered from both
  # processes (each scored its shard) must equal its scores, bank included.
  shutil.copytree(multi, single, ignore=shutil.ignore_patterns("eval"))
  config = tiny_config(data_dir, **EVAL)
  evaluate.evaluate(config, single)
  (cal_2, tables_2, bank_2), (cal_1, tables_1, bank_1) = eval_outputs(multi), eval_outputs(single)
  for points_2, points_1 in zip(jax.tree.leaves(bank_2.points), jax.tree.leaves(bank_1.points),
                                strict=True):
    np.testing.assert_allclose(points_2, points_1, rtol=1e-5, atol=1e-6)
  for method in cal_1:
    np.testing.assert_allclose(cal_2[method]["scores"], cal_1[method]["scores"], rtol=1e-4,
                               atol=1e-6)
    for row_2, row_1 in zip(tables_2[method], tables_1[method], strict=True):
      assert row_2["generator"] == row_1["generator"]
      np.testing.assert_allclose(row_2["auroc"], row_1["auroc"], atol=1e-6)

  # A rerun on a new port (process 1 included) detects as one process does.
  output = str(tmp_path / "multi.csv")
  run_two(multi, data_dir, "--mode=detect", f"--config.detect.inputs={test_images}",
          f"--config.detect.output={output}")
  multi_scores = {r["path"]: float(r["score"]) for r in csv.DictReader(open(output))}
  config.detect.inputs, config.detect.output = test_images, str(tmp_path / "single.csv")
  detect.detect_with_config(evaluate.load_detector(single, config), config)
  single_scores = {r["path"]: float(r["score"])
                   for r in csv.DictReader(open(tmp_path / "single.csv"))}
  assert len(single_scores) == 16 and multi_scores.keys() == single_scores.keys()
  np.testing.assert_allclose([multi_scores[k] for k in single_scores],
                             list(single_scores.values()), rtol=1e-4, atol=1e-6)

  # A bank built with other eval.bank_* settings is stale: rebuilt, not reused.
  scorer = evaluate.load_scorer(config, single)
  config.eval.bank_images = 4
  smaller = evaluate.build_banks(config, scorer, single)["mdmf"]
  size = lambda bank: jax.tree.leaves(bank.points)[0].shape[0]
  assert size(smaller) < size(bank_1)
  saved = evaluate.load_bank(os.path.join(single, "eval", "bank_mdmf.npz"))
  jax.tree.map(np.testing.assert_array_equal, saved.points, smaller.points)


def test_two_processes_train_under_pmap_and_resume(tiny_data, tmp_path):
  workdir = str(tmp_path / "pmap")
  args = ("--config.parallel=pmap", "--config.eval.after_training=False")
  outputs = run_two(workdir, tiny_data, *args)
  assert digest(outputs[0]) == digest(outputs[1])
  assert "6" in os.listdir(os.path.join(workdir, "checkpoints"))
  # Cut back to the step-4 checkpoint: a rerun (new port) resumes there on both
  # processes and ends where the uninterrupted run ended.
  shutil.rmtree(os.path.join(workdir, "checkpoints", "6"))
  resumed = run_two(workdir, tiny_data, *args)
  for output in resumed:
    assert "resumed from the checkpoint at step 4" in output
    assert digest(output) == digest(outputs[0])
