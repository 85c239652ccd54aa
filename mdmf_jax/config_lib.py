"""The base config every experiment starts from, and its validation.

Config files (configs/*.py) call `base()` and change fields; `validate` then
checks the result against `base()` before any work starts: an unknown
(misspelt) field, a wrong type or an impossible combination raises
`ConfigError` naming the field.
"""

from __future__ import annotations

import difflib
import os

from etils import epath
import ml_collections
from ml_collections import config_dict

from mdmf_jax import kernels, objectives, parallel, patches, scoring
from mdmf_jax.models import backbones, pretrained

_optional_str = lambda: config_dict.placeholder(str)
_optional_int = lambda: config_dict.placeholder(int)


class ConfigError(ValueError):
  pass


def base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.parallel = "jit"  # "jit" (NamedSharding) or "pmap"; see parallel.py

  # Frozen backbone: `name` a key of models/backbones.BACKBONES, `variant` one
  # of its variants. `weights`: a local checkpoint file of that backbone (see
  # docs/backbone.md) or a name in models/pretrained.py; without it a randomly
  # initialised `variant` is used (tests and the offline demo only).
  c.backbone = ml_collections.ConfigDict()
  c.backbone.name = "dinov2"
  c.backbone.weights = _optional_str()
  c.backbone.variant = "S/14"
  c.backbone.dtype = "float32"

  # Patch sets (docs/method.md, section 2).
  c.patches = ml_collections.ConfigDict()
  c.patches.mode = "tokens"  # tokens | pooled_tokens | crops
  c.patches.pool = 2
  c.patches.crop_size = 32
  c.patches.crop_resolution = 224
  c.patches.block = _optional_int()  # None: last block

  c.pfs = ml_collections.ConfigDict()
  c.pfs.hidden_dim = 512
  c.pfs.out_dim = 128
  c.pfs.dropout = 0.1

  c.kernel = ml_collections.ConfigDict()
  c.kernel.name = "deep"  # a key of kernels.KERNELS
  # The unit's fixed parameters (its dataclass fields, checked by the unit);
  # unset ones keep the unit's defaults. What is learned is the unit's choice.
  c.kernel.params = ml_collections.ConfigDict()

  c.objective = ml_collections.ConfigDict()
  c.objective.name = "mmd_d"  # a key of objectives.OBJECTIVES
  c.objective.patches_per_side = _optional_int()  # None: all patches of the group
  c.objective.reg = 1e-8
  # The MMD is estimated on `groups` independent groups of the batch (1: one
  # global set) and the loss averages them; it never depends on the device count,
  # but must divide it or be a multiple of it (see parallel.py).
  c.objective.groups = 1

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"
  c.optim.lr = 1e-4
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.weight_decay = 1e-4
  c.optim.warmup_steps = 100
  c.optim.end_lr_factor = 0.01
  c.optim.grad_clip = 1.0

  c.data = ml_collections.ConfigDict()
  c.data.data_dir = _optional_str()
  c.data.name = _optional_str()
  c.data.train_split = "train"
  c.data.image_size = 224
  c.data.batch_size = 32  # global images per step, half real and half fake
  # Train-time augmentation (data/pipeline.py): CNNSpot's blur and JPEG, flips.
  c.data.flip = True
  c.data.blur_prob = 0.1
  c.data.blur_sigma = (0.0, 3.0)
  c.data.jpeg_prob = 0.1
  c.data.jpeg_quality = (30, 100)
  c.data.resize = _optional_int()  # resize before cropping (off: resizing smears traces)
  c.data.small_images = "pad"  # pad | upsample
  c.data.format_alignment_quality = _optional_int()  # JPEG re-encode real and fake alike
  c.data.num_threads = 4
  c.data.num_workers = 0
  # Train from cached frozen-backbone features (features.py); no augmentation then.
  c.data.feature_cache = False
  c.data.cache_dir = _optional_str()  # default: <data_dir>/feature_cache
  c.data.build_demo = False  # build the offline demo benchmark into data_dir if missing

  c.train = ml_collections.ConfigDict()
  c.train.total_steps = 1000
  c.train.log_every = 10
  c.train.checkpoint_every = 200
  c.train.keep_checkpoints = 3

  # Model selection on validation (selection.py): every `every` steps (0: off) the
  # mdmf score's average AUROC on data.name's `split` picks the checkpoint that
  # evaluation and detection use (W/selected, W/selected.json).
  c.select = ml_collections.ConfigDict()
  c.select.every = 0
  c.select.split = "val"

  # The study harness (study.py, configs/study.py): variants of this config, each a
  # (name, {"dotted.field": value}) pair, trained and scored on the same cached features.
  c.study = ml_collections.ConfigDict()
  c.study.variants = ()
  c.study.splits = ("val",)  # scored splits; add "test", "cross_source" to report once
  c.study.probe_blocks = (None,)  # linear probes on mean-pooled tokens (None: last block)
  c.study.train = True  # False: score only the variants already trained, train nothing

  # Evaluation (evaluate.py); changing these never invalidates a training workdir.
  c.eval = ml_collections.ConfigDict()
  c.eval.after_training = True  # --mode=train ends with the evaluation
  c.eval.data_name = _optional_str()  # benchmark data set in data.data_dir (None: data.name)
  c.eval.bank_split = "train"  # clean reals of data.name for the reference bank
  c.eval.bank_images = 128
  c.eval.bank_patches = 8192  # a random subset of the bank images' patches
  c.eval.bank_block = 4096  # streaming block over the bank
  c.eval.calibration_split = "val"  # its reals: half calibrate, half check the FPR
  # Data set of the calibration reals (None: data.name, the training data's own
  # reals, as deployed): another benchmark (eval.data_name) may lack a val split.
  c.eval.calibration_data_name = _optional_str()
  c.eval.alpha = 0.05  # target false-positive rate
  c.eval.test_split = "test"
  # Further splits of the benchmark scored and tabulated like test (W/eval/<split>/),
  # e.g. "cross_source"; one the benchmark lacks is logged and skipped.
  c.eval.extra_splits = ()
  c.eval.batch_size = 16
  c.eval.methods = ("mdmf", "linear_probe", "global", "patch_vote")
  # linear_probe (linear_probe.py): logistic regression on frozen global features,
  # the UnivFD-style baseline; trained on data.name's train split, saved in W/eval.
  c.eval.probe_feature = "cls"  # "cls" (final CLS token) | "mean" (mean patch token)
  c.eval.probe_block = _optional_int()  # "mean" only: tokens of this block (None: last)
  c.eval.probe_cs = (0.001, 0.01, 0.1, 1.0, 10.0)  # inverse L2 strengths; best val AUROC
  c.eval.probe_images = 2000  # per class (real, fake) from data.train_split, balanced
  c.eval.probe_val_split = "val"  # data.name split (reals and fakes) that chooses C
  c.eval.vote_quantile = 0.95  # patch_vote: patch density quantile of the bank
  c.eval.num_heatmaps = 6
  c.eval.robustness = False  # each strength below is one more pass over the test split;
  # an empty tuple skips that perturbation
  c.eval.jpeg_qualities = (100, 90, 80, 70, 60, 50)
  c.eval.blur_sigmas = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)
  c.eval.noise_sigmas = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25)
  # Whole-image evaluation (evaluate_whole.py, docs/whole_image.md): centre crop vs
  # all patches at native resolution, on a benchmark of full-size images.
  c.eval.whole_data_name = _optional_str()  # e.g. "mdmf_demo_whole"; None: not run
  c.eval.whole_calibration_split = "val"  # its reals calibrate each mode
  c.eval.whole_splits = ("test", "cross_source")
  c.eval.whole_max_patches = 8192  # seeded subsample above this (also in detection)
  c.eval.whole_tile_batch = 16  # tiles per backbone call

  # Detection (--mode=detect, detect.py).
  c.detect = ml_collections.ConfigDict()
  c.detect.inputs = ""  # comma-separated files and folders (walked recursively)
  c.detect.output = "detections.csv"  # .csv or .json
  c.detect.heatmaps = False  # one witness heat-map PNG per scored image
  c.detect.batch_size = 16
  c.detect.resize = False  # resize to the model size instead of centre-cropping
  c.detect.method = "mdmf"
  # crop: the centre S x S crop; whole: every patch at native resolution
  # (whole_image.py; calibrated by --mode=eval_whole). crop stays the default on the
  # measurement in docs/whole_image.md (whole's FPR needs matching calibration reals).
  c.detect.mode = "crop"

  # Shortcut audit (--mode=audit, audit.py): trivial cues vs the real/fake label.
  c.audit = ml_collections.ConfigDict()
  c.audit.threshold = 0.8  # warn when a cue's max(AUROC, 1 - AUROC) exceeds this
  c.audit.max_images = 2000  # per split, generator and label (evenly spaced); 0: all

  c.distributed = ml_collections.ConfigDict()
  c.distributed.enabled = False
  c.distributed.coordinator_address = _optional_str()
  c.distributed.num_processes = _optional_int()
  c.distributed.process_id = _optional_int()
  return c


def from_json(values: dict) -> ml_collections.ConfigDict:
  """A config saved as JSON (a workdir's config.json) back on top of `base()`, tuples restored."""

  def merge(reference, loaded):
    for key, value in loaded.items():
      if isinstance(value, dict) and isinstance(reference.get(key), ml_collections.ConfigDict):
        merge(reference[key], value)
      elif isinstance(value, list):
        reference[key] = tuple(value)
      else:
        reference[key] = value

  config = base()
  merge(config, values)
  return config


def _fail(field, message):
  raise ConfigError(f"config.{field}: {message}")


def _check_fields(config, reference, prefix=""):
  for key, value in config.items():
    field = prefix + key
    if key not in reference:
      close = difflib.get_close_matches(key, list(reference.keys()), n=1)
      _fail(field, "unknown field" + (f"; did you mean {prefix + close[0]!r}?" if close else ""))
    expected = reference[key]
    if isinstance(expected, ml_collections.ConfigDict):
      if not isinstance(value, ml_collections.ConfigDict):
        _fail(field, f"expected a ConfigDict, got {type(value).__name__}")
      if field != "kernel.params":  # free-form: the kernel's own arguments
        _check_fields(value, expected, field + ".")
      continue
    expected_type = reference.get_type(key)
    if value is None or expected_type is type(None):
      continue
    if expected_type is float and isinstance(value, int) and not isinstance(value, bool):
      continue
    if not isinstance(value, expected_type) or (expected_type is int and isinstance(value, bool)):
      _fail(field, f"expected {expected_type.__name__}, got {type(value).__name__} {value!r}")


def _choice(field, value, choices):
  if value not in choices:
    _fail(field, f"{value!r} is not one of {sorted(choices)}")


def _positive(field, value):
  if value is None or value <= 0:
    _fail(field, f"must be > 0, got {value!r}")


def validate(config, *, device_count=None):
  """Raises ConfigError naming the first bad field; returns the config."""
  _check_fields(config, base())
  _choice("parallel", config.parallel, parallel.MODES)
  _choice("backbone.name", config.backbone.name, backbones.BACKBONES)
  _choice("backbone.variant", config.backbone.variant,
          backbones.BACKBONES[config.backbone.name].variants)
  _choice("backbone.dtype", config.backbone.dtype, ("float32", "bfloat16"))
  weights = config.backbone.weights
  names = {k for k, v in pretrained.PRETRAINED.items() if v.backbone == config.backbone.name}
  if weights in pretrained.PRETRAINED and weights not in names:
    _fail("backbone.weights", f"{weights!r} are {pretrained.PRETRAINED[weights].backbone} "
          f"weights, but backbone.name is {config.backbone.name!r}")
  if weights and weights not in names and not os.path.exists(weights):
    _fail("backbone.weights", f"no such file or folder, nor a {config.backbone.name} name in "
          f"{sorted(names)}: {weights}")
  _choice("patches.mode", config.patches.mode, ("tokens", "pooled_tokens", "crops"))
  _choice("kernel.name", config.kernel.name, kernels.KERNELS)
  try:
    kernels.make(config.kernel)
  except kernels.ParamError as e:
    _fail(f"kernel.params.{e.param}", str(e))
  _choice("objective.name", config.objective.name, objectives.OBJECTIVES)
  _choice("optim.name", config.optim.name, ("adamw", "adam", "sgd"))
  for field in ("pfs.hidden_dim", "pfs.out_dim", "optim.lr", "data.batch_size",
                "data.image_size", "train.total_steps", "train.log_every",
                "train.checkpoint_every", "train.keep_checkpoints"):
    _positive(field, config[field.split(".")[0]][field.split(".")[1]])
  for method in config.eval.methods:
    _choice("eval.methods", method, scoring.METHODS)
  _choice("detect.method", config.detect.method, scoring.METHODS)
  _choice("detect.mode", config.detect.mode, ("crop", "whole"))
  if config.detect.mode == "whole" and config.detect.method != "mdmf":
    _fail("detect.mode", f"'whole' scores with mdmf only, not {config.detect.method!r}")
  if config.detect.mode == "whole" and config.detect.resize:
    _fail("detect.resize", "whole-image detection scores native pixels; it never resizes")
  _positive("eval.whole_max_patches", config.eval.whole_max_patches)
  _positive("eval.whole_tile_batch", config.eval.whole_tile_batch)
  if config.detect.heatmaps and config.detect.method == "linear_probe":
    _fail("detect.heatmaps", "linear_probe scores whole images; it has no patch heat map")
  _choice("eval.probe_feature", config.eval.probe_feature, ("cls", "mean"))
  if config.eval.probe_feature == "cls" and config.eval.probe_block is not None:
    _fail("eval.probe_block", "the backbone returns the CLS token of the last block only; "
          "use eval.probe_feature='mean' for an intermediate block")
  if not 0.5 <= config.audit.threshold <= 1.0:
    _fail("audit.threshold", f"must be in [0.5, 1], got {config.audit.threshold}")
  if not 0.0 < config.eval.alpha < 1.0:
    _fail("eval.alpha", f"must be in (0, 1), got {config.eval.alpha}")
  for field in ("data_dir", "name"):
    if not config.data[field]:
      _fail(f"data.{field}", "is required")
  if config.data.build_demo and config.data.name != "mdmf_demo":
    _fail("data.build_demo", f"builds mdmf_demo, but data.name is {config.data.name!r}")
  if (config.data.data_dir and not config.data.build_demo
      and not epath.Path(config.data.data_dir).is_dir()):  # local or gs://
    _fail("data.data_dir", f"no such folder: {config.data.data_dir}")
  cache_root = config.data.cache_dir or f"{config.data.data_dir}/feature_cache"
  if config.data.feature_cache and "://" in cache_root:  # np.load(mmap_mode) needs a local file
    _fail("data.cache_dir", f"the feature cache is memory-mapped and needs a local folder, "
          f"got {cache_root}; set data.cache_dir to a local disk")
  if config.select.every < 0:
    _fail("select.every", f"must be >= 0 (0: no selection), got {config.select.every}")
  if not 0.0 <= config.pfs.dropout < 1.0:
    _fail("pfs.dropout", f"must be in [0, 1), got {config.pfs.dropout}")

  patch_size = backbones.patch_size(config.backbone)
  window = patches.patch_window(config.patches, patch_size)
  if config.data.image_size % window:
    _fail("data.image_size", f"{config.data.image_size} is not a multiple of the "
          f"{config.patches.mode} patch size {window} px")
  if config.patches.mode == "crops" and config.patches.crop_resolution % patch_size:
    _fail("patches.crop_resolution", f"must be a multiple of the {config.backbone.name} "
          f"{config.backbone.variant} patch size {patch_size}")

  devices = device_count or 1
  groups = config.objective.groups
  _positive("objective.groups", groups)
  if config.data.batch_size % (2 * groups):
    _fail("objective.groups", f"{groups} groups do not split the {config.data.batch_size} "
          f"images (data.batch_size must be a multiple of 2 x groups = {2 * groups})")
  if not parallel.groups_fit_devices(groups, devices):
    _fail("objective.groups", f"{groups} groups on {devices} devices: the groups must be a "
          f"multiple or a divisor of the device count")
  if config.data.batch_size % (2 * devices):
    _fail("data.batch_size", f"{config.data.batch_size} images must split into real and "
          f"fake halves over {devices} devices (a multiple of {2 * devices})")
  per_group = config.data.batch_size // (2 * groups)
  if config.objective.name == "image_score" and per_group < 2:
    _fail("objective.groups", "image_score needs >= 2 real and 2 fake images per group")
  return config
