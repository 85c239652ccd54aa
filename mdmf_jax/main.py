"""Entry point: python -m mdmf_jax.main --config=configs/X.py[:arg] --workdir=DIR [--mode=train].

Any config field can be overridden on the command line: --config.optim.lr=3e-4.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from mdmf_jax import parallel, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results.")
_MODE = flags.DEFINE_enum("mode", "train", ["train"], "What to run.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  parallel.initialize_distributed(config.distributed)  # before any other JAX call
  logging.info("mode=%s workdir=%s\n%s", _MODE.value, _WORKDIR.value, config)
  if _MODE.value == "train":
    train.train(config, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
