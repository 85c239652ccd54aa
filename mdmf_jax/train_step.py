"""Train state, optimiser and the one update step (pure; no I/O).

Only the PFS and the kernel's raw parameters are trained, by one optimiser:
params = {"pfs": PFS params, "kernel": the kernel unit's raw params
(kernels.py)}, as `detector.Detector` lays them out. The step's batch is
{"real": x, "fake": x} with x of shape (G, b, ...): G groups of b images,
given either as images (G, b, H, W, 3), turned into patch features (G, b, K, D)
by `detector.features(backbone_params, images)` inside the step, before and
outside the differentiated function (the frozen backbone's forward pass is
never differentiated), or as cached patch features to a detector built
without a backbone.

The loss is the objective evaluated on each group and averaged over groups;
G is `config.objective.groups`, a choice of the config. The step sees the
groups (or, under pmap, the parts of groups) its device holds; parallel.py
lays them out, so that any device count and both parallel modes compute the
update of a single-device run over the same G groups (tests/test_parallel.py,
tests/test_device_count.py).
"""

from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from mdmf_jax import objectives


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array  # raw uint32 key data (checkpointable); the step's key is fold_in(key, step)


def make_optimizer(config) -> optax.GradientTransformation:
  """optax chain from `config.optim`: clip, then the optimiser with warmup + cosine decay
  over `config.train.total_steps`."""
  cfg = config.optim
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=cfg.lr, warmup_steps=cfg.warmup_steps,
      decay_steps=max(config.train.total_steps, cfg.warmup_steps + 1),
      end_value=cfg.lr * cfg.end_lr_factor)
  if cfg.name == "adamw":
    opt = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay)
  elif cfg.name == "adam":
    opt = optax.adam(schedule, b1=cfg.b1, b2=cfg.b2)
  elif cfg.name == "sgd":
    opt = optax.sgd(schedule, momentum=cfg.b1)
  else:
    raise ValueError(f"config.optim.name={cfg.name!r}; expected adamw, adam or sgd")
  return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt)


def init_state(config, detector, features, rng) -> TrainState:
  """Fresh state of `detector`'s trained parameters (Detector.init) and `config.optim`'s
  optimiser; the kernel's parameters start from `features` (kernels.py, `init`).

  `features`: a (N, K, D) sample of patch features (real and fake) from the
  training data. Compiled as one program (op-by-op, initialisation compiles
  dozens of small ones).
  """
  return jax.jit(functools.partial(_init_state, config, detector))(features, rng)


def _init_state(config, detector, features, rng) -> TrainState:
  pfs_key, kernel_key, state_key = jax.random.split(rng, 3)
  params = detector.init(features, pfs_key, kernel_key)
  opt_state = make_optimizer(config).init(params)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
                    rng=jax.random.key_data(state_key))


def _group_loss(params, real, fake, key, *, config, detector):
  dropout_key, objective_key = jax.random.split(key)
  real_key, fake_key = jax.random.split(dropout_key)
  objective = objectives.OBJECTIVES[config.objective.name]
  return objective(detector.kernel_fn(params),
                   detector.points(params, real, dropout_rng=real_key),
                   detector.points(params, fake, dropout_rng=fake_key), objective_key,
                   config.objective)


def _features(detector, backbone_params, x):
  """(G, b, ...) inputs -> (G, b, K, D) patch features, outside the differentiated function."""
  z = detector.features(backbone_params, x.reshape((-1,) + x.shape[2:]))
  return jax.lax.stop_gradient(z.reshape(x.shape[:2] + z.shape[1:]))


def train_step(state: TrainState, batch, backbone_params=None, *, config, detector,
               group_offset=0, axis_name=None, gather_group=None):
  """One optimiser update of `detector`'s trained parameters; returns (new state, metrics).

  Group g of the batch draws its randomness (dropout, patch subsets) from
  fold_in(fold_in(key, step), group_offset + g), so the same global group gets
  the same key whichever device holds it. Under `jax.pmap`, `axis_name`
  averages gradients and metrics across devices, and `gather_group`, when a
  group spans devices, maps this device's (g, b / M, ...) features to the
  whole groups' (g, b, ...) (an all-gather; the data are not differentiated).
  """
  real = _features(detector, backbone_params, batch["real"])
  fake = _features(detector, backbone_params, batch["fake"])
  if gather_group is not None:
    real, fake = gather_group(real), gather_group(fake)
  step_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  num_groups = real.shape[0]
  group_keys = jax.vmap(lambda g: jax.random.fold_in(step_key, g))(
      group_offset + jnp.arange(num_groups))

  def loss_fn(params):
    losses, metrics = jax.vmap(
        functools.partial(_group_loss, params, config=config, detector=detector))(
        real, fake, group_keys)
    return jnp.mean(losses), jax.tree.map(jnp.mean, metrics)

  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  if axis_name is not None:
    loss, metrics, grads = jax.lax.pmean((loss, metrics, grads), axis_name)
  updates, opt_state = make_optimizer(config).update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  kernel_params = detector.kernel.constrain(state.params["kernel"])
  metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads),
             "update_norm": optax.tree.norm(updates),
             **{f"kernel/{name}": value for name, value in kernel_params.items()}}
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics
