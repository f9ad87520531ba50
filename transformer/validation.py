"""Validation of an experiment config before any data is read or anything compiled.

`validate(config)` runs the checks of the fields every task reads
(`experiment_config.common_problems`) and those of the config's task
(`Task.validate`), and raises one `ConfigError` listing every problem.
`validate_sharding` checks, once the model's parameter shapes are known, that
the mesh divides every dimension it splits.
"""

from __future__ import annotations

import ml_collections

from transformer import sharding, tasks
from transformer.experiment_config import common_problems, raise_if_problems


def semantic_warnings(config: ml_collections.ConfigDict) -> list[str]:
  """Valid but probably unintended settings, each a sentence saying what will happen."""
  out = []
  steps = config.num_train_steps
  if config.get('warmup_steps', 0) >= steps:
    out.append(f'warmup_steps={config.warmup_steps} >= num_train_steps={steps}: the learning '
               'rate never reaches its peak')
  if config.eval_every_steps > steps:
    out.append(f'eval_every_steps={config.eval_every_steps} > num_train_steps={steps}: '
               'evaluation runs only at the end')
  if config.checkpoint_every_steps > steps:
    out.append(f'checkpoint_every_steps={config.checkpoint_every_steps} > num_train_steps='
               f'{steps}: a checkpoint is written only at the end')
  return out


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises one ConfigError naming every invalid field of `config` (common and task fields)."""
  problems = common_problems(config)
  task_cls = tasks.TASKS.get(config.get('task'))
  if task_cls is None:
    problems.insert(0, f'task={config.get("task")!r} is not one of {tuple(tasks.TASKS)}')
  else:
    problems.extend(task_cls.validate(config))
  raise_if_problems(problems)


# The config field that sets the size of each logical parameter axis.
_AXIS_FIELDS = {'heads': 'model.num_heads', 'mlp': 'model.d_ff', 'embed': 'model.d_model',
                'kv': 'model.head_dim', 'vocab': 'vocab_size (or model.target_vocab_size)',
                'classes': 'model.num_classes', 'length': 'seq_len / model.max_len'}


def validate_sharding(config: ml_collections.ConfigDict, mesh_sizes: dict[str, int],
                      abstract_params, rules) -> None:
  """Checks, before compilation, that the mesh divides every dimension it splits.

  `abstract_params` is the boxed (nn.LogicallyPartitioned) tree from
  jax.eval_shape of the initialization; `rules` the logical axis rules in use.
  Raises one ConfigError naming each logical axis that does not divide, the
  parameter, and the config field to change.
  """
  problems: list[str] = []
  batch_ways = mesh_sizes['data'] * mesh_sizes['fsdp']
  for name in ('batch_size', 'eval_batch_size'):
    size = config.get(name) or config.batch_size
    if size % batch_ways:
      problems.append(f'{name}={size} must be divisible by the {batch_ways} data-parallel '
                      f'devices (mesh {mesh_sizes}); change {name} or config.mesh.')
  if config.get('parallelism') == 'pmap':
    per_device = config.batch_size // batch_ways
    if per_device % config.grad_accum_steps:
      problems.append(f'grad_accum_steps={config.grad_accum_steps} must divide the per-device '
                      f'batch {per_device} (batch_size={config.batch_size} over {batch_ways} '
                      'devices) with parallelism=\'pmap\'')
  seen = set()
  for path, dim, name, size, axes, ways in sharding.sharded_dims(abstract_params, mesh_sizes,
                                                                  rules):
    if size % ways and name not in seen:
      seen.add(name)
      field = _AXIS_FIELDS.get(name, f'the size of logical axis {name!r}')
      problems.append(
          f'logical axis {name!r} is split over mesh {"x".join(axes)}={ways}, but {path} has '
          f'size {size} in dimension {dim}; set {field} to a multiple of {ways}, change '
          'config.mesh, or map it to no mesh axis in config.logical_axis_rules')
  raise_if_problems(problems, 'Invalid sharding')
