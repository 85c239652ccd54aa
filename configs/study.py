"""The recipe study on the demo benchmark (docs/study.md): one command, one table.

    python -m mdmf_jax.study --config=configs/study.py --workdir=workdirs/study \
        --config.data.cache_dir=workdirs/study/cache

Every variant is configs/demo.py plus the overrides below, trained from cached
features with model selection on val; rows are compared on the same splits.
By default only val is scored (choose there); report test and cross_source
once, after choosing, with

        --config.study.splits='("val", "test", "cross_source")'

(finished runs are reused: only the new splits are scored).

`:quick` shrinks everything to seconds for tests (tiny random backbone; pass
data.data_dir and data.name of a data set with train/val/test/cross_source).
"""

from configs import demo

STEPS = 300  # per variant: the study must fit in about 15 minutes on 2 cores

# (name, overrides of configs/demo.py).
VARIANTS = (  # in the order they run: the questions that matter most first
    ("demo: image_score, last block", {}),
    ("block 8", {"patches.block": 8}),
    ("block 8, mmd_d", {"patches.block": 8, "objective.name": "mmd_d"}),
    ("block 8, mmd_mp", {"patches.block": 8, "objective.name": "mmd_mp"}),
    ("block 8, gaussian kernel on s only", {"patches.block": 8, "kernel.name": "gaussian"}),
    ("block 8, bank of 32 images", {"patches.block": 8, "eval.bank_images": 32}),
    ("block 6", {"patches.block": 6}),
    ("block 10", {"patches.block": 10}),
    ("block 8, lr 1e-3", {"patches.block": 8, "optim.lr": 1e-3}),
    ("block 8, mmd_d, 64 patches per side",
     {"patches.block": 8, "objective.name": "mmd_d", "objective.patches_per_side": 64}),
    # The paper's objective on the best block, then with DK-for-TST's start: eps near
    # 1e-10 (the kernel is almost the product of the two Gaussians) and sigma_phi at a
    # tenth of the median.
    ("block 6, mmd_d", {"patches.block": 6, "objective.name": "mmd_d"}),
    ("block 6, mmd_d, DK-for-TST init",
     {"patches.block": 6, "objective.name": "mmd_d", "kernel.params.eps_init": 1e-10,
      "kernel.params.sigma_phi_scale": 0.1}),
    ("block 6, mmd_mp, DK-for-TST init",
     {"patches.block": 6, "objective.name": "mmd_mp", "kernel.params.eps_init": 1e-10,
      "kernel.params.sigma_phi_scale": 0.1}),
)


def get_config(arg: str = ""):
  c = demo.get_config()
  c.data.build_demo = False  # the study reads a built benchmark
  c.train.total_steps = STEPS
  c.train.log_every = 100
  c.train.checkpoint_every = STEPS
  c.select.every = 100
  c.study.variants = VARIANTS
  c.study.probe_blocks = (None, 6, 8)
  if arg == "quick":
    c.data.image_size = 28
    c.data.batch_size = 16  # a multiple of 2 x 8: the tests run on 8 fake devices
    c.data.num_threads = 1
    c.backbone.variant, c.backbone.weights = "tiny/14", None
    c.patches.block = None  # the tiny ViT has 2 blocks
    c.eval.probe_feature, c.eval.probe_block = "cls", None
    c.pfs.hidden_dim, c.pfs.out_dim = 16, 8
    c.objective.patches_per_side = None  # all 8 x 4 patches of a side
    c.optim.warmup_steps = 1
    c.train.total_steps, c.train.log_every, c.train.checkpoint_every = 4, 2, 4
    c.select.every = 2
    c.eval.bank_images, c.eval.bank_patches, c.eval.batch_size = 4, 12, 8
    c.eval.probe_cs = (1.0,)
    c.study.variants = (("block 0, mmd_d", {"patches.block": 0, "objective.name": "mmd_d"}),
                        ("block 0, mmd_d, bank of 2",
                         {"patches.block": 0, "objective.name": "mmd_d", "eval.bank_images": 2}))
    c.study.probe_blocks = (None, 0)
  elif arg:
    raise ValueError(f"configs/study.py takes '' or 'quick', got {arg!r}")
  return c
