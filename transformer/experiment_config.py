"""Helpers for experiment configs (the `ml_collections.ConfigDict` of configs/*.py).

A leaf module: tasks and the engine import it; it imports no task.

- `ConfigError`: an invalid experiment config; the message lists every wrong
  field and what is allowed.
- `build_model_config(config, vocab_size)`: the frozen `TransformerConfig` an
  experiment's model is built from (preset, then `config.model`, then what the
  task fills in from its data).
- `common_problems(config)`: the checks of the fields every task reads (batch
  sizes, steps, optimizer, schedule, parallelism). Each task checks its own
  fields in `Task.validate`; `transformer.validation.validate` runs both.
"""

from __future__ import annotations

import ml_collections

from transformer import model_config as model_config_lib
from transformer import optim, sharding
from transformer.errors import ConfigError  # noqa: F401  (re-exported)

# config.matmul_precision: jax.default_matmul_precision's names (config_schema says what each does).
MATMUL_PRECISIONS = ('default', 'high', 'highest')


def raise_if_problems(problems: list[str], title: str = 'Invalid config') -> None:
  """Raises one ConfigError listing every problem (nothing when the list is empty)."""
  if problems:
    raise ConfigError(f'{title}:\n  - ' + '\n  - '.join(problems))


def common_problems(config: ml_collections.ConfigDict) -> list[str]:
  """Problems with the fields every task reads (empty when they are valid)."""
  problems: list[str] = []

  def check(cond, msg):
    if not cond:
      problems.append(msg)

  for name in ('batch_size', 'num_train_steps', 'log_every_steps', 'eval_every_steps',
               'checkpoint_every_steps', 'keep_checkpoints', 'grad_accum_steps', 'seq_len'):
    check(isinstance(config.get(name), int) and config.get(name) > 0,
          f'{name}={config.get(name)!r} must be a positive integer')
  for name in ('max_bad_steps', 'preemption_sync_every_steps'):
    value = config.get(name, 1)
    check(isinstance(value, int) and value > 0, f'{name}={value!r} must be a positive integer')
  window = config.get('profile_steps') or ()
  check(len(window) == 0 or (len(window) == 2 and all(isinstance(v, int) for v in window)
                             and 0 <= window[0] < window[1]),
        f'profile_steps={tuple(window)!r} must be () or (start, stop) with 0 <= start < stop')
  max_batches = config.get('eval_max_batches', -1)
  check(isinstance(max_batches, int) and (max_batches == -1 or max_batches > 0),
        f'eval_max_batches={max_batches!r} must be a positive integer, or -1 (the whole split)')
  extra = config.get('extra_eval_every_steps', 0)
  check(isinstance(extra, int) and extra >= 0,
        f'extra_eval_every_steps={extra!r} must be an integer >= 0 (0: evaluators only in eval.py)')
  check(config.get('best_mode', '') in ('', 'max', 'min'),
        f"best_mode={config.get('best_mode')!r} must be 'max', 'min' or '' (by the metric)")
  for name in ('warmup_steps', 'eval_batch_size', 'vocab_size'):
    check(config.get(name, 0) >= 0, f'{name}={config.get(name)!r} must be >= 0')
  check(config.learning_rate > 0, f'learning_rate={config.learning_rate} must be > 0')
  check(config.min_learning_rate >= 0,
        f'min_learning_rate={config.min_learning_rate} must be >= 0')
  check(config.optimizer in optim.OPTIMIZERS,
        f'optimizer={config.optimizer!r} is not one of {optim.OPTIMIZERS}')
  check(config.schedule in optim.SCHEDULES,
        f'schedule={config.schedule!r} is not one of {optim.SCHEDULES}')
  check(config.get('matmul_precision', 'default') in MATMUL_PRECISIONS,
        f"matmul_precision={config.get('matmul_precision')!r} is not one of {MATMUL_PRECISIONS}")
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
  _check_parallelism(config, check)
  if config.model_preset:
    check(config.model_preset in model_config_lib.PRESETS,
          f'model_preset={config.model_preset!r} is not one of {sorted(model_config_lib.PRESETS)}')
  try:
    build_model_config(config, vocab_size=max(config.get('vocab_size', 0), 1))
  except ValueError as e:
    problems.append(f'model: {e}')
  return problems


def _check_parallelism(config, check) -> None:
  parallelism = config.get('parallelism', 'data')
  check(parallelism in sharding.PARALLELISM,
        f'parallelism={parallelism!r} is not one of {sharding.PARALLELISM} (docs/SHARDING.md)')
  for axis in sharding.MESH_AXES:
    size = config.mesh.get(axis)
    check(size is None or (isinstance(size, int) and (size == -1 or size > 0)),
          f'mesh.{axis}={size!r} must be a positive integer, -1 (the remaining devices) '
          "or unset (the parallelism preset's)")
  if parallelism == 'pmap':
    for axis in ('fsdp', 'tensor'):
      check(config.mesh.get(axis) in (None, 1),
            f'mesh.{axis}={config.mesh.get(axis)} does not apply to parallelism=\'pmap\' '
            '(replicated parameters); use parallelism=\'fsdp\', \'tensor\' or a combination')
  rules = config.get('logical_axis_rules')
  if rules is None:
    return
  for rule in rules:
    ok = isinstance(rule, (list, tuple)) and len(rule) == 2 and isinstance(rule[0], str)
    if ok:
      axes = rule[1] if isinstance(rule[1], (list, tuple)) else (rule[1],)
      ok = all(a is None or a in sharding.MESH_AXES for a in axes)
    check(ok, f'logical_axis_rules entry {rule!r} must be (logical axis, mesh axis or tuple of '
              f'mesh axes) with mesh axes from {sharding.MESH_AXES}')


def build_model_config(config: ml_collections.ConfigDict, vocab_size: int,
                       **overrides) -> model_config_lib.TransformerConfig:
  """The TransformerConfig of an experiment: preset, then config.model, then overrides."""
  values = {k: v for k, v in config.model.to_dict().items() if v is not None}
  values.setdefault('max_len', config.seq_len)
  values['vocab_size'] = vocab_size
  values.update(overrides)
  if config.model_preset:
    return model_config_lib.preset(config.model_preset, **values)
  return model_config_lib.from_dict(values)
