"""The task interface, the task registry, and the token-level loss shared by sequence tasks.

Tasks: what differs between experiment families.

A task owns its data source and model, turns a batch into a loss, reports
metrics as *sums* (so that evaluation over a whole split is token- or
example-weighted, not an average of batch averages), and does the family's
extra evaluation work in eval.py (sampling text, decoding and BLEU, a
confusion matrix). The engine (transformer/engine/) knows nothing else.

A task registers itself with the `@register` decorator under its `name`, and
checks its own config fields in `validate(config)`; `transformer.tasks`
imports every module of the package, so a new family is one new file.
"""

from __future__ import annotations

import logging
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from transformer import flops as flops_lib
from transformer import pretrained
from transformer import workdir as workdir_lib

log = logging.getLogger('transformer')


def token_cross_entropy(logits: jax.Array, targets: jax.Array, weights: jax.Array,
                        label_smoothing: float = 0.0) -> dict[str, jax.Array]:
  """Sums over tokens: the (label-smoothed) objective, the true NLL, correct argmax, weight.

  The objective has the smoothing's constant entropy subtracted, so a perfect
  fit gives 0 (as in tensor2tensor); `nll` is the plain cross-entropy used for
  perplexity.
  """
  vocab = logits.shape[-1]
  logits = logits.astype(jnp.float32)
  log_probs = jax.nn.log_softmax(logits)
  nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
  if label_smoothing > 0:
    confidence = 1.0 - label_smoothing
    low = label_smoothing / (vocab - 1)
    normalizer = -(confidence * np.log(confidence) + (vocab - 1) * low * np.log(low + 1e-20))
    smooth = -jnp.mean(log_probs, axis=-1) * vocab  # sum over classes of -log p
    objective = confidence * nll + low * (smooth - nll) - normalizer
  else:
    objective = nll
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return {'objective': jnp.sum(objective * weights), 'nll': jnp.sum(nll * weights),
          'correct': jnp.sum(correct * weights), 'weight': jnp.sum(weights)}


TASKS: dict[str, type['Task']] = {}


def register(cls: type['Task']) -> type['Task']:
  """Class decorator: makes a Task subclass available as `config.task = cls.name`."""
  if cls.name in TASKS and TASKS[cls.name] is not cls:
    raise ValueError(f'Two tasks named {cls.name!r}: {TASKS[cls.name]} and {cls}')
  TASKS[cls.name] = cls
  return cls


class Task:
  """Base class. Subclasses set `self.data` and `self.model_cfg` in __init__."""
  name = 'task'
  weight_name = 'tokens'
  datasets: tuple[str, ...] = ()   # values of config.dataset the task accepts
  # Config fields of this task's own that a resumed run may not change (its data and
  # batches), besides the common ones in transformer.workdir.RESUME_FIXED.
  resume_fixed: tuple[str, ...] = ()

  @classmethod
  def validate(cls, config: ml_collections.ConfigDict) -> list[str]:
    """Problems with the fields this task reads (empty when they are valid).

    Runs before any data is read; subclasses extend the base check of
    `config.dataset`.
    """
    if config.get('dataset') not in cls.datasets:
      return [f'dataset={config.get("dataset")!r} is not a {cls.name!r} dataset; '
              f'allowed: {cls.datasets}']
    return []

  def __init__(self, config: ml_collections.ConfigDict, workdir: str | None):
    self.config = config
    self.workdir = workdir

  def model(self, train: bool) -> nn.Module:
    raise NotImplementedError

  def init_inputs(self) -> tuple:
    """Dummy model inputs for initialization (batch of 1)."""
    raise NotImplementedError

  def loss_sums(self, params, batch, rng, train: bool) -> dict[str, jax.Array]:
    """Sums for one batch: at least `objective` (minimized in training) and `weight`."""
    raise NotImplementedError

  def forward_flops(self, batch) -> float | None:
    """Analytic forward FLOPs of one training batch (from its padded shapes); None: not
    counted."""
    return None

  def train_flops(self, batch) -> float | None:
    """Training FLOPs of one batch (3 x forward), or None: TFLOP/s and MFU are then not
    reported."""
    forward = self.forward_flops(batch)
    return None if forward is None else flops_lib.train_flops(forward)

  def summarize(self, sums: dict[str, float]) -> dict[str, float]:
    """Turns summed metrics into reported ones (means, perplexity, accuracy)."""
    w = max(float(sums['weight']), 1e-9)
    out = {'loss': float(sums['objective']) / w, 'nll': float(sums['nll']) / w,
           'accuracy': float(sums['correct']) / w, self.weight_name: float(sums['weight'])}
    return out

  def initial_params(self, params):
    """Parameters a fresh run starts from: the random init, or with `config.init_from`
    (a trained or converted workdir) its weights adapted to this model
    (transformer/pretrained.py: a ViT's positions resized, a head of another class
    count re-initialized)."""
    source = self.config.get('init_from')
    if not source:
      return params
    adapted, notes = pretrained.adapt_params(workdir_lib.restore_params(source),
                                             jax.device_get(params))
    log.info('Initialized from %s%s', source, ''.join(f'\n  {n}' for n in notes))
    return adapted

  def evaluator_sums(self, params, batch) -> dict[str, jax.Array]:
    """Per-batch sums that `evaluate_extra` needs over the whole split (classification: the
    confusion matrix). The engine runs this over the split with its own shardings and
    host layout (`Experiment.split_sums`) and passes the totals in; a task that needs
    none leaves it as it is."""
    return {}

  def evaluate_extra(self, params, writer, step: int,
                     sums: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The family's own evaluation (sampling, decoding and BLEU, a confusion matrix), run by
    eval.py and, every config.extra_eval_every_steps, during training. `params` in the
    plain layout; `sums`: the split's totals of `evaluator_sums`."""
    return {}
