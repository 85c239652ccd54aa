"""Kernel and objective study on cached demo features (seconds per run on a CPU).

One run per (kernel, objective); the argument picks them:

    for k in deep gaussian laplace imq multi_gaussian; do
      for o in mmd_d mmd_mp image_score; do
        python -m mdmf_jax.main --config=configs/kernel_study.py:$k,$o \
            --workdir=workdirs/kernels/$k-$o
      done
    done

The frozen backbone's patch features of the demo's training split are
computed once (data.feature_cache) and shared by every run, so only the PFS
and the MMD are computed per step. Non-deep kernels act on the PFS
signatures; gaussian and laplace learn their bandwidth (sigma_phi, started at
the median heuristic), imq and multi_gaussian use the fixed parameters below
(our choice: a grid around the unit scale of the LayerNorm'd PFS output).
"""

from configs import demo

KERNEL_PARAMS = {
    "deep": {},
    "gaussian": {},
    "laplace": {},
    "imq": {"c": 1.0, "beta": -0.5},
    "multi_gaussian": {"bandwidths": (0.25, 1.0, 4.0, 16.0, 64.0)},
}


def get_config(arg: str = "deep,mmd_d"):
  kernel, objective = arg.split(",")
  if kernel not in KERNEL_PARAMS:
    raise ValueError(f"kernel {kernel!r}: choose one of {sorted(KERNEL_PARAMS)}")
  c = demo.get_config()
  c.data.feature_cache = True
  c.kernel.name = kernel
  c.kernel.params.update(KERNEL_PARAMS[kernel])
  c.kernel.learn_bandwidth = kernel in ("gaussian", "laplace")
  c.objective.name = objective
  c.train.total_steps = 300
  c.train.log_every = 50
  return c
