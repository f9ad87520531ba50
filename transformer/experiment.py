"""Experiment-config helpers: validation before any compilation, model config.

`validate(config)` checks every field the engine reads and raises one
`ConfigError` listing each wrong field with what is allowed.
"""

from __future__ import annotations

import ml_collections

from transformer import config as model_config_lib
from transformer import optim


class ConfigError(ValueError):
  """An invalid experiment config; the message names each field and what is allowed."""


def _registry():
  from transformer import tasks  # imported here: task modules import this one
  return tuple(tasks.TASKS), tasks.DATASETS


def validate(config: ml_collections.ConfigDict) -> None:
  problems: list[str] = []

  def check(cond, msg):
    if not cond:
      problems.append(msg)

  task_names, all_datasets = _registry()
  check(config.task in task_names, f'task={config.task!r} is not one of {task_names}')
  datasets = all_datasets.get(config.task, ())
  check(config.dataset in datasets,
        f'dataset={config.dataset!r} is not a {config.task!r} dataset; allowed: {datasets}')
  for name in ('batch_size', 'num_train_steps', 'log_every_steps', 'eval_every_steps',
               'checkpoint_every_steps', 'keep_checkpoints', 'grad_accum_steps', 'seq_len'):
    check(isinstance(config.get(name), int) and config.get(name) > 0,
          f'{name}={config.get(name)!r} must be a positive integer')
  for name in ('warmup_steps', 'eval_batch_size', 'vocab_size'):
    check(config.get(name, 0) >= 0, f'{name}={config.get(name)!r} must be >= 0')
  check(config.learning_rate > 0, f'learning_rate={config.learning_rate} must be > 0')
  check(config.min_learning_rate >= 0,
        f'min_learning_rate={config.min_learning_rate} must be >= 0')
  check(config.optimizer in optim.OPTIMIZERS,
        f'optimizer={config.optimizer!r} is not one of {optim.OPTIMIZERS}')
  check(config.schedule in optim.SCHEDULES,
        f'schedule={config.schedule!r} is not one of {optim.SCHEDULES}')
  check(config.weight_decay_mask in optim.WEIGHT_DECAY_MASKS,
        f'weight_decay_mask={config.weight_decay_mask!r} is not one of '
        f'{optim.WEIGHT_DECAY_MASKS}')
  check(0 <= config.b1 < 1 and 0 <= config.b2 < 1, f'b1={config.b1}, b2={config.b2} must be in [0, 1)')
  check(config.weight_decay >= 0, f'weight_decay={config.weight_decay} must be >= 0')
  check(config.grad_clip_norm >= 0, f'grad_clip_norm={config.grad_clip_norm} must be >= 0')
  check(0 <= config.label_smoothing < 1,
        f'label_smoothing={config.label_smoothing} must be in [0, 1)')
  if isinstance(config.batch_size, int) and isinstance(config.grad_accum_steps, int):
    check(config.grad_accum_steps > 0 and config.batch_size % config.grad_accum_steps == 0,
          f'grad_accum_steps={config.grad_accum_steps} must divide batch_size={config.batch_size}')
  for axis in ('data', 'fsdp', 'tensor'):
    size = config.mesh.get(axis)
    check(isinstance(size, int) and (size == -1 or size > 0),
          f'mesh.{axis}={size!r} must be a positive integer or -1')
  if config.model_preset:
    check(config.model_preset in model_config_lib.PRESETS,
          f'model_preset={config.model_preset!r} is not one of {sorted(model_config_lib.PRESETS)}')
  try:
    model_config(config, vocab_size=max(config.get('vocab_size', 0), 1))
  except ValueError as e:
    problems.append(f'model: {e}')
  if problems:
    raise ConfigError('Invalid config:\n  - ' + '\n  - '.join(problems))


def model_config(config: ml_collections.ConfigDict, vocab_size: int,
                 **overrides) -> model_config_lib.TransformerConfig:
  """The TransformerConfig of an experiment: preset, then config.model, then overrides."""
  values = {k: v for k, v in config.model.to_dict().items() if v is not None}
  values.setdefault('max_len', config.seq_len)
  values['vocab_size'] = vocab_size
  values.update(overrides)
  if config.model_preset:
    return model_config_lib.preset(config.model_preset, **values)
  return model_config_lib.from_dict(values)
