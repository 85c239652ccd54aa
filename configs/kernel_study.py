"""Kernel and objective study on cached demo features (seconds per run on a CPU).

One run per (kernel, objective); the argument picks them, any name of
kernels.KERNELS and objectives.OBJECTIVES:

    for k in $(python -c "from mdmf_jax import kernels; print(*kernels.KERNELS)"); do
      for o in mmd_d mmd_mp image_score; do
        python -m mdmf_jax.main --config=configs/kernel_study.py:$k,$o \
            --workdir=workdirs/kernels/$k-$o
      done
    done

The frozen backbone's patch features of the demo's training split are
computed once (data.feature_cache) and shared by every run, so only the PFS
and the MMD are computed per step. Every kernel runs with its unit's default
parameters (kernels.py: what it learns and where that starts); change one with
e.g. --config.kernel.params.bandwidth_scale=0.5.
"""

from configs import demo
from mdmf_jax import kernels, objectives


def get_config(arg: str = "deep,mmd_d"):
  kernel, objective = arg.split(",")
  if kernel not in kernels.KERNELS:
    raise ValueError(f"kernel {kernel!r}: choose one of {sorted(kernels.KERNELS)}")
  if objective not in objectives.OBJECTIVES:
    raise ValueError(f"objective {objective!r}: choose one of {sorted(objectives.OBJECTIVES)}")
  c = demo.get_config()
  c.data.feature_cache = True
  c.kernel.name = kernel
  c.objective.name = objective
  c.train.total_steps = 300
  c.train.log_every = 50
  return c
