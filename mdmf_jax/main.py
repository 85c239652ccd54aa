"""Entry point: python -m mdmf_jax.main --config=configs/X.py[:arg] --workdir=DIR [--mode=...].

  --mode=train   train (resuming from DIR), then evaluate if config.eval.after_training
  --mode=eval    reference bank, calibration, tables and plots into DIR/eval
  --mode=eval_whole  centre crop vs whole-image scoring of config.eval.whole_data_name
                 into DIR/eval/whole (also run by --mode=eval when that is set)
  --mode=detect  score config.detect.inputs with DIR's trained, calibrated detector
                 (config.detect.mode: crop | whole)
  --mode=audit   shortcut audit (audit.py) of data.name and eval.data_name into DIR/audit

Any config field can be overridden on the command line: --config.optim.lr=3e-4.
"""

import logging as py_logging
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from mdmf_jax import (audit, checkpoint, config_lib, detect, evaluate, evaluate_whole, parallel,
                      train)

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval", "eval_whole", "detect", "audit"],
                          "What to run.")
flags.mark_flags_as_required(["config", "workdir"])


class _QuietOrbax(py_logging.Filter):
  """Orbax logs every checkpoint save in a dozen INFO lines; keep its warnings only."""

  def filter(self, record):
    return record.levelno >= py_logging.WARNING or "/orbax/" not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.get_absl_handler().addFilter(_QuietOrbax())
  config, workdir, mode = _CONFIG.value, _WORKDIR.value, _MODE.value
  parallel.initialize_distributed(config.distributed)  # before any other JAX call
  logging.info("mode=%s workdir=%s\n%s", mode, workdir, config)
  if mode == "train":
    train.train(config, workdir)
    if not config.eval.after_training:
      return
  config_lib.validate(config, device_count=jax.device_count())
  if mode == "audit":  # reads the data only: no trained workdir needed
    audit.audit_with_config(config, workdir)
    return
  checkpoint.guard_workdir(workdir, config)
  if mode in ("train", "eval"):
    evaluate.evaluate(config, workdir)
  if mode == "eval_whole" or (mode in ("train", "eval") and config.eval.whole_data_name):
    evaluate_whole.evaluate_whole(config, workdir)
  if mode != "detect":
    return
  load = evaluate_whole.load_detector if config.detect.mode == "whole" else evaluate.load_detector
  detector = load(workdir, config, config.detect.method)
  sys.exit(detect.exit_code(detect.detect_with_config(detector, config)))


if __name__ == "__main__":
  app.run(main)
