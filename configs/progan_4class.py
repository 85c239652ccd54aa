"""The paper's setting: DINOv2 ViT-L/14, trained on 4-class ProGAN (CNNSpot layout), W = 32.

Build the data set once (CNNSpot's progan_train folder, 4 classes):

    python -m mdmf_jax.data.build --layout=cnnspot --generator=progan \
        --classes=car,cat,chair,horse --root=train=PROGAN_TRAIN_DIR \
        --data_dir=data --name=progan_4class

convert the official weights once (see README, "weight import"):

    python -m mdmf_jax.models.weights --input dinov2_vitl14_pretrain.pth \
        --output weights/dinov2_vitl14.npz

then train (one host; see launch/ for TPU pods and SLURM):

    python -m mdmf_jax.main --config=configs/progan_4class.py --workdir=workdirs/progan4

From the paper: backbone DINOv2 ViT-L/14 frozen; 4 ProGAN classes (car, cat,
chair, horse); 224 px inputs; patch size W = 32 (the ablation's best), i.e.
224 / 32 = 7 x 7 = 49 crops per image, each embedded by the backbone; PFS
= Dense-GELU-LayerNorm-Dropout-Dense; MMD-D's deep kernel and J objective.

Our choices (the paper does not state them): crops resized to 224 px for the
backbone (DINOv2's native scale; 49 ViT-L passes per image, so the frozen
features are cached once with data.feature_cache); PFS 1024 -> 512 -> 128,
dropout 0.1; AdamW lr 1e-4, weight decay 1e-4, 500 warmup steps, cosine to
1e-6, gradient clip 1.0; 64 images per step (32 real + 32 fake), 20k steps;
all 49 x 32 patches per side in the MMD (no subsampling); eps starts at 0.5,
the sigmas at the median heuristic of the first batch.
"""

from mdmf_jax import config_lib


def get_config(arg: str = ""):
  del arg
  c = config_lib.base()
  c.backbone.weights = "weights/dinov2_vitl14.npz"
  c.backbone.variant = "L/14"
  c.backbone.dtype = "bfloat16"
  c.patches.mode = "crops"
  c.patches.crop_size = 32
  c.patches.crop_resolution = 224
  c.pfs.hidden_dim, c.pfs.out_dim, c.pfs.dropout = 512, 128, 0.1
  c.kernel.name = "deep"
  c.objective.name = "mmd_d"
  c.optim.lr, c.optim.weight_decay, c.optim.warmup_steps = 1e-4, 1e-4, 500
  c.optim.end_lr_factor = 0.01
  c.data.data_dir, c.data.name = "data", "progan_4class"
  c.data.image_size = 224
  c.data.batch_size = 64
  c.data.feature_cache = True
  c.train.total_steps = 20_000
  c.train.log_every = 100
  c.train.checkpoint_every = 1000
  return c
