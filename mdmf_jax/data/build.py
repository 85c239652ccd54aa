r"""Builds a data set (TFDS, array_record) from image folders, or the demo benchmark.

Image folders (layouts: mdmf_jax/data/layouts.py):
  python -m mdmf_jax.data.build --layout=cnnspot --generator=progan \
      --classes=car,cat,chair,horse --root=train=/data/progan_train \
      --root=val=/data/progan_val --data_dir=/data/tfds --name=progan4
  python -m mdmf_jax.data.build --layout=generator --root=/data/ufd_test \
      --split=test --data_dir=/data/tfds --name=ufd
--root is `SPLIT=DIR`, or `DIR` for the split named by --split; repeat it for
several splits. Skipped files are listed in DATA_DIR/NAME/1.0.0/build_report.json.

Demo benchmark (no input needed):
  python -m mdmf_jax.data.build --demo --data_dir=/data/tfds [--seed=0] \
      [--demo_config.crop_size=64]
"""

from __future__ import annotations

import re

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
import tensorflow_datasets as tfds

from mdmf_jax.data import builder
from mdmf_jax.data import decode
from mdmf_jax.data import demo
from mdmf_jax.data import layouts

_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.",
                                required=True)
_DEMO = flags.DEFINE_bool("demo", False, "Build the offline demo benchmark.")
_SEED = flags.DEFINE_integer("seed", 0, "Demo: seed of crops and autoencoders.")
_DEMO_CONFIG = config_flags.DEFINE_config_dict(
    "demo_config", demo.get_config(), "Demo settings (demo.get_config()).")
_LAYOUT = flags.DEFINE_enum("layout", None, sorted(layouts.LAYOUTS),
                            "Folder layout.")
_ROOT = flags.DEFINE_multi_string("root", [], "[SPLIT=]DIR, repeatable.")
_SPLIT = flags.DEFINE_string("split", "train", "Split of a --root without SPLIT=.")
_NAME = flags.DEFINE_string("name", None, "Data set name (lower_snake_case).")
_GENERATOR = flags.DEFINE_string(
    "generator", None, "Generator name for layouts without generator folders.")
_CLASSES = flags.DEFINE_list("classes", None, "Class folders to read (all if unset).")
_GENERATORS = flags.DEFINE_list("generators", None,
                                "Generator folders to read (all if unset).")
_MIN_SIZE = flags.DEFINE_integer(
    "min_size", None, "Skip (and report) images with a shorter side below this.")
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", decode.DEFAULT_MAX_PIXELS,
                                   "Refuse larger images (decompression bombs).")
_NUM_THREADS = flags.DEFINE_integer("num_threads", None,
                                    "Decoding threads (default: all cores).")


def parse_roots(values: list[str], default_split: str) -> dict[str, str]:
  """['train=/a', '/b'] -> {'train': '/a', default_split: '/b'}; no split twice."""
  roots = {}
  for value in values:
    match = re.fullmatch(r"(\w+)=(.+)", value)
    split, root = match.groups() if match else (default_split, value)
    if split in roots:
      raise ValueError(f"--root: split {split!r} given twice")
    roots[split] = root
  return roots


def main(argv):
  del argv
  tfds.disable_progress_bar()  # our own log lines report files/s and ETA
  logging.set_verbosity(logging.INFO)
  if _DEMO.value:
    report = demo.build_demo(_DATA_DIR.value, seed=_SEED.value,
                             config=_DEMO_CONFIG.value)
    print(f"demo built in {report['seconds']} s; per generator:")
    for generator, stats in report["generators"].items():
      print(f"  {generator}: {stats}")
  else:
    for flag in (_LAYOUT, _NAME):
      if flag.value is None:
        raise app.UsageError(f"--{flag.name} is required (or pass --demo)")
    if not _ROOT.value:
      raise app.UsageError("--root is required (or pass --demo)")
    report = builder.build_image_folder(
        name=_NAME.value, layout=_LAYOUT.value,
        roots=parse_roots(_ROOT.value, _SPLIT.value), data_dir=_DATA_DIR.value,
        generator=_GENERATOR.value, classes=_CLASSES.value,
        generators=_GENERATORS.value, min_size=_MIN_SIZE.value,
        max_pixels=_MAX_PIXELS.value, num_threads=_NUM_THREADS.value)
  print(builder.summary_line(report))


if __name__ == "__main__":
  app.run(main)
