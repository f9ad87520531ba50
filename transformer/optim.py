"""Optimizers and learning-rate schedules from the experiment config.

- schedule 'rsqrt' (the paper): lr = learning_rate * d_model^-0.5 *
  min(step^-0.5, step * warmup^-1.5); learning_rate=1.0 is the paper's.
- schedule 'cosine': linear warmup to learning_rate, cosine decay to
  min_learning_rate at num_train_steps (nanoGPT, big_vision).
- schedule 'linear' (warmup then linear decay to min_learning_rate) and
  'constant' (after warmup).
Optimizers 'adam', 'adamw' (decoupled weight decay on a mask of parameters,
by default every matrix but not biases, norms or position tables) and 'sgd'
(momentum). Global-norm gradient clipping when grad_clip_norm > 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

SCHEDULES = ('rsqrt', 'cosine', 'linear', 'constant')
OPTIMIZERS = ('adam', 'adamw', 'sgd')
WEIGHT_DECAY_MASKS = ('matrices', 'all', 'none')


def make_schedule(config, d_model: int) -> optax.Schedule:
  """The learning rate at each optimizer step (0-based as optax counts)."""
  base, warmup, total = config.learning_rate, config.warmup_steps, config.num_train_steps
  end = config.min_learning_rate
  name = config.schedule
  if name == 'rsqrt':
    def rsqrt(count):
      step = jnp.asarray(count, jnp.float32) + 1.0  # the paper counts from 1
      w = jnp.maximum(jnp.float32(warmup), 1.0)
      return base * d_model ** -0.5 * jnp.minimum(step ** -0.5, step * w ** -1.5)
    return rsqrt
  warm = optax.linear_schedule(0.0, base, warmup) if warmup > 0 else None
  decay_steps = max(total - warmup, 1)
  if name == 'cosine':
    after = optax.cosine_decay_schedule(base, decay_steps, alpha=end / base if base else 0.0)
  elif name == 'linear':
    after = optax.linear_schedule(base, end, decay_steps)
  elif name == 'constant':
    after = optax.constant_schedule(base)
  else:
    raise ValueError(f'schedule={name!r} is not one of {SCHEDULES}')
  return optax.join_schedules([warm, after], [warmup]) if warm is not None else after


def weight_decay_mask(params, which: str):
  """True for parameters that get weight decay.

  'matrices': every parameter of rank >= 2 except embeddings tables of
  positions and the class token; 'all'; 'none'.
  """
  def decide(path, leaf):
    names = [getattr(k, 'key', getattr(k, 'name', str(k))) for k in path]
    if which == 'all':
      return True
    if which == 'none':
      return False
    return leaf.ndim >= 2 and not any(n in ('pos_embedding', 'cls_token') for n in names)
  return jax.tree_util.tree_map_with_path(decide, params)


def make_optimizer(config, d_model: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  schedule = make_schedule(config, d_model)
  name = config.optimizer
  if name == 'adam':
    opt = optax.adam(schedule, b1=config.b1, b2=config.b2, eps=config.eps)
  elif name == 'adamw':
    opt = optax.adamw(schedule, b1=config.b1, b2=config.b2, eps=config.eps,
                      weight_decay=config.weight_decay,
                      mask=lambda p: weight_decay_mask(p, config.weight_decay_mask))
  elif name == 'sgd':
    opt = optax.sgd(schedule, momentum=config.b1 or None)
  else:
    raise ValueError(f'optimizer={name!r} is not one of {OPTIMIZERS}')
  if config.grad_clip_norm > 0:
    opt = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), opt)
  return opt, schedule
